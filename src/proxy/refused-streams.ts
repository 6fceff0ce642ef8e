// Counting the HTTP/2 streams nghttp2 refuses itself (malformed headers, over the stream limit), which node never announces.

import type { Http2Session } from 'node:http2';

/**
 * nghttp2 resets a stream whose header block is malformed (a connection-specific field, a bad pseudo-header,
 * content-length against the DATA) or that goes over SETTINGS_MAX_CONCURRENT_STREAMS before node creates a
 * stream object, so no 'stream' event and no hook sees it. What node does expose is the last stream id whose
 * HEADERS nghttp2 processed: a client opens its streams on consecutive odd ids (RFC 9113 §5.1.1), so every
 * id up to it that was not announced was refused. A client that skips ids (allowed, never seen in practice)
 * has the skipped ones counted as refused too.
 */
export class RefusedStreams {
  private announced = 0;
  private counted = 0;
  private stopped = false;

  constructor(
    private readonly session: Http2Session,
    private readonly onRefused: (count: number) => void,
  ) {}

  /** A stream reached veer (call before `tally`, from the session's 'stream' event). */
  announce(): void {
    this.announced++;
  }

  /**
   * No more counting: the session is being closed for abuse (counted as that), or closing, when node itself
   * refuses new streams.
   */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Counts what nghttp2 refused since the last call. Also called when the connection ends (the socket's
   * 'end', 'error' or 'close', listened to before node's own so the session is still readable).
   */
  tally(): void {
    if (this.stopped || this.session.destroyed || this.session.closed) return;
    const last = this.session.state.lastProcStreamID ?? 0;
    const seen = last > 0 ? (last + 1) / 2 : 0;
    const refused = seen - this.announced - this.counted;
    if (refused <= 0) return;
    this.counted += refused;
    this.onRefused(refused);
  }
}
