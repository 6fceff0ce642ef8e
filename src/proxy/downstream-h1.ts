// The HTTP/1.1 downstream: one node:http ServerResponse (and its request) as the exchange's client side.

import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { type Downstream, PAUSE_AT, type RequestBody } from './downstream.js';
import type { OutHeaders } from './headers.js';

function destroySocket(socket: Socket): void {
  socket.destroy();
}

function flushHeadersIfNoBody(downstream: Http1Downstream): void {
  downstream.flushHeadersIfNoBody();
}

export class Http1Downstream implements Downstream {
  readonly protocol = 'http/1.1';
  /** A body chunk went out: it carried the headers with it. */
  private wroteBody = false;
  /** The response was ended, cut or answered by veer: nothing more goes out. */
  private settled = false;

  constructor(private readonly res: ServerResponse) {}

  onClose(listener: () => void): void {
    this.res.once('close', listener);
  }

  respond(status: number, headers: OutHeaders, lastOnConnection: boolean): void {
    if (lastOnConnection) headers.connection = 'close';
    this.res.writeHead(status, headers);
    // A stream (no length: SSE, chunked) shows its headers at once, as over HTTP/2, rather than with
    // the first token; but a first token that came in the same read as the headers (the usual case)
    // goes out with them in one write. A response of known length always keeps them together.
    if (headers['content-length'] === undefined) process.nextTick(flushHeadersIfNoBody, this);
  }

  /** Sends the response headers when no body byte has carried them yet. */
  flushHeadersIfNoBody(): void {
    if (!this.wroteBody && !this.settled && !this.res.destroyed) this.res.flushHeaders();
  }

  earlyHints(hints: OutHeaders): void {
    this.res.writeEarlyHints(hints as Record<string, string | string[]>);
  }

  write(chunk: Buffer): boolean {
    this.wroteBody = true;
    const res = this.res;
    return !res.write(chunk) && res.writableLength >= PAUSE_AT;
  }

  onDrain(listener: () => void): void {
    this.res.on('drain', listener);
  }

  end(): void {
    this.settled = true;
    this.res.end();
  }

  /**
   * HTTP/1.1 has no signal short of closing to stop an upload, and a close with unread input resets the
   * connection, which can lose the answer: the rest of the body is read and dropped, as node's own server
   * does, and the connection stays usable.
   */
  endAndStopUpload(body: RequestBody): void {
    this.settled = true;
    this.discardRestOfBody(body);
    this.res.end();
  }

  /**
   * Reads and drops what is left of the request body. undici may have left its iterator waiting on a
   * read, and while the iterator's 'readable' listener is on the request, resume() does nothing: the
   * iterator is returned first (which leaves the request itself open).
   */
  private discardRestOfBody(body: RequestBody): void {
    const req = this.res.req;
    const resume = () => req.resume();
    Promise.resolve((body as unknown as AsyncIterator<Buffer>).return?.()).then(resume, resume);
  }

  stillSending(): boolean {
    return !this.res.req.complete;
  }

  waitingForBody(): boolean {
    const req = this.res.req;
    return !req.complete && req.readableLength === 0;
  }

  cutStalled(): void {
    this.settled = true;
    this.res.destroy();
  }

  cutMidStream(): void {
    this.settled = true;
    this.res.destroy();
  }

  answer(status: number, headers: Record<string, string | number>, body: string, unfinishedBody: RequestBody): void {
    this.settled = true;
    const res = this.res;
    // The rest of an unfinished body would be read as the next request: close the connection, with a
    // moment for the client to read the answer (closing with unread input would send a TCP RST).
    if (unfinishedBody !== null) headers.connection = 'close';
    if (res.headersSent || res.destroyed) return;
    const socket = res.socket;
    res.writeHead(status, headers).end(body);
    if (unfinishedBody === null) return;
    this.discardRestOfBody(unfinishedBody);
    if (socket) setTimeout(destroySocket, 250, socket).unref();
  }
}
