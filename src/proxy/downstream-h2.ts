// The HTTP/2 downstream: one node:http2 ServerHttp2Stream as the exchange's client side.

import { constants, type ServerHttp2Stream } from 'node:http2';
import { type Downstream, PAUSE_AT, type RequestBody } from './downstream.js';
import { cutByVeer, UPSTREAM_FAILED_MID_STREAM } from './errors.js';
import type { OutHeaders } from './headers.js';

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = constants;

export class Http2Downstream implements Downstream {
  readonly protocol = 'h2';

  constructor(private readonly stream: ServerHttp2Stream) {}

  onClose(listener: () => void): void {
    this.stream.once('close', listener);
  }

  respond(status: number, headers: OutHeaders, _lastOnConnection: boolean): void {
    headers[':status'] = status as unknown as string;
    this.stream.respond(headers as Record<string, string>);
  }

  earlyHints(hints: OutHeaders): void {
    this.stream.additionalHeaders({ ...hints, ':status': 103 } as unknown as Record<string, string>);
  }

  write(chunk: Buffer): boolean {
    const stream = this.stream;
    return !stream.write(chunk) && stream.writableLength >= PAUSE_AT;
  }

  onDrain(listener: () => void): void {
    this.stream.on('drain', listener);
  }

  end(): void {
    this.stream.end();
  }

  /** RST_STREAM(NO_ERROR) after the response tells the client to stop sending (RFC 9113 §8.1). */
  endAndStopUpload(_body: RequestBody): void {
    const stream = this.stream;
    stream.end(() => stream.close(NGHTTP2_NO_ERROR));
  }

  stillSending(): boolean {
    return !this.stream.readableEnded;
  }

  waitingForBody(): boolean {
    const stream = this.stream;
    return !stream.readableEnded && stream.readableLength === 0;
  }

  cutStalled(): void {
    cutByVeer.add(this.stream);
    this.stream.close(NGHTTP2_CANCEL);
  }

  /**
   * destroy(err), not close(code): close() ends the writable side first, so the client would see
   * END_STREAM — a clean end — before the RST_STREAM. destroy(err) sends RST_STREAM(INTERNAL_ERROR).
   */
  cutMidStream(): void {
    cutByVeer.add(this.stream);
    this.stream.destroy(UPSTREAM_FAILED_MID_STREAM);
  }

  answer(status: number, headers: Record<string, string | number>, body: string, unfinishedBody: RequestBody): void {
    const stream = this.stream;
    if (stream.destroyed || stream.headersSent) return;
    headers[':status'] = status;
    stream.respond(headers);
    // RST_STREAM(NO_ERROR) after the answer tells the client to stop sending (RFC 9113 §8.1).
    stream.end(body, unfinishedBody !== null ? () => stream.close(NGHTTP2_NO_ERROR) : undefined);
  }
}
