// The client side of one exchange: what the exchange asks of a downstream session, whatever its protocol.

import type { IncomingHttpHeaders } from 'node:http2';
import type { Readable } from 'node:stream';
import type { Outcome } from '../measure/outcome.js';
import type { TokenSummary } from '../measure/token-summary.js';
import type { OutHeaders } from './headers.js';

/** A request body as undici takes it: veer hands it an iterator over the client's stream (or a tee). */
export type RequestBody = Readable | AsyncIterable<Buffer> | null;

/**
 * Bytes a client may have queued (unsent) before veer pauses the upstream. Node's 16 KiB stream
 * high-water mark would pause an HTTP/2 stream every 16 chunks — its writes queue until nghttp2 sends
 * them — and the pause/resume round trips cut its throughput tenfold. This is also the memory bound
 * per stream for a client that reads slowly.
 */
export const PAUSE_AT = 64 * 1024;

/**
 * One client's request and response as the exchange sees it, as pingora separates its downstream
 * sessions per protocol: HTTP/1.1 (downstream-h1.ts), HTTP/2 (downstream-h2.ts), or nobody at all
 * (downstream-discard.ts, for an exchange whose response is read and dropped). Every method is called at
 * most in the order the exchange's phases allow; none is called after the exchange is done, except
 * that the close listener may fire at any time.
 */
export interface Downstream {
  /** Goes into the access log and the recorder: 'http/1.1', 'h2'... */
  readonly protocol: string;
  /** `listener` runs once when the client's side closes (it went away, or the response ended). */
  onClose(listener: () => void): void;
  /** Sends the response head. Throws when the headers cannot be relayed. `lastOnConnection`: HTTP/1.1 closes after. */
  respond(status: number, headers: OutHeaders, lastOnConnection: boolean): void;
  /** Relays 103 Early Hints; may throw (the caller drops hints that cannot go). */
  earlyHints(hints: OutHeaders): void;
  /** Writes one body chunk; true when the client is so far behind (PAUSE_AT) that the upstream should pause. */
  write(chunk: Buffer): boolean;
  /** `listener` runs each time the client has taken what was queued; registered once. */
  onDrain(listener: () => void): void;
  /** Ends the response normally. */
  end(): void;
  /** Ends the response while the client is still uploading `body`, so that it stops (or its rest is dropped). */
  endAndStopUpload(body: RequestBody): void;
  /** The client has not finished sending its request body. */
  stillSending(): boolean;
  /** The client is still sending and nothing of its body waits in veer's buffers. */
  waitingForBody(): boolean;
  /** veer cuts the response because the client stopped reading. */
  cutStalled(): void;
  /** veer cuts the response because the upstream failed after the head went out. */
  cutMidStream(): void;
  /** Answers with veer's own error (headers not sent yet); `unfinishedBody` is the body still arriving, if any. */
  answer(status: number, headers: Record<string, string | number>, body: string, unfinishedBody: RequestBody): void;
}

/**
 * Sees each response chunk as it is forwarded and the exchange's end (token accounting, for one). Must not
 * hold or change the chunk; it is called on the relay path, so it must be cheap. Absent, it costs nothing.
 */
export interface ResponseObserver {
  /** The upstream's response head (status 200 and up), once it was sent to the client, before any chunk. */
  onHead?(status: number, headers: IncomingHttpHeaders): void;
  /** A body chunk, after it was written to the downstream (not called once the exchange is done). */
  onChunk(chunk: Buffer): void;
  /** veer paused the upstream because the client fell behind (gaps from here on are partly the client's). */
  onHeldBack?(): void;
  /** Once, when the exchange is done, just before it is recorded: how it ended (the outcome the recorder gets). */
  onEnd(endClass: Outcome): void;
  /** What the observer concluded about the answer (token accounting), recorded with the stream. */
  readonly tokens?: TokenSummary | undefined;
}
