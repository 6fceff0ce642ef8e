// One proxied request: relays it to its upstream through undici and the response back, unbuffered, and meters it.

import type { ServerResponse } from 'node:http';
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { UpstreamName } from '../config/types.js';
import type { Outcome } from '../measure/outcome.js';
import type { Recorder, StreamRecord } from '../measure/recorder.js';
import { cutByVeer, ERROR_STATUS, errorBody, type ProxyErrorCode, UPSTREAM_FAILED_MID_STREAM } from './errors.js';
import { withoutHopByHop } from './headers.js';
import type { Upstream } from './upstream.js';

/** What every exchange of one proxy shares; `upstreams` may be swapped whole by a reload. */
export interface ExchangeContext {
  upstreams: Record<UpstreamName, Upstream>;
  recorder: Recorder;
  responseHeader: boolean;
  fallbackOnConnectError: boolean;
  onFallback: () => void;
  draining: boolean;
  /** The drain's grace period is over: what is still open is cut by veer, not failed by an upstream. */
  closing: boolean;
  /** listen.idle_timeout: how long a client may leave a paused stream unread before it is cut. */
  clientIdleTimeoutMs: number;
}

type Body = Readable | AsyncIterable<Buffer> | null;

/**
 * Response headers that belong to one connection (RFC 9110 §7.6.1, RFC 9113 §8.2.2; node's HTTP/2 refuses
 * to send them), and `trailer`: veer does not relay trailers, so it does not announce them.
 */
const RESPONSE_HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'http2-settings',
  'trailer',
]);

/** Errors that undici reports before the request was written: nothing reached the upstream. */
const CONNECT_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = constants;

/**
 * Bytes a client may have queued (unsent) before veer pauses the upstream. Node's 16 KiB stream
 * high-water mark would pause an HTTP/2 stream every 16 chunks — its writes queue until nghttp2 sends
 * them — and the pause/resume round trips cut its throughput tenfold. This is also the memory bound
 * per stream for a client that reads slowly.
 */
const PAUSE_AT = 64 * 1024;
const kTimeout = new Error('time to first byte exceeded');
const kIdle = new Error('upstream silent for longer than idle_timeout');
const kClientGone = new Error('client went away');

function destroySocket(socket: Socket): void {
  socket.destroy();
}

function onClientStalled(exchange: Exchange): void {
  exchange.clientStalled();
}

function flushHeadersIfNoBody(exchange: Exchange): void {
  exchange.flushHeadersIfNoBody();
}

function onFirstByteTimeout(exchange: Exchange): void {
  exchange.firstByteTimedOut();
}

function onUpstreamIdle(exchange: Exchange): void {
  exchange.upstreamIdle();
}

/**
 * Implements undici's dispatch handler directly: response chunks are written to the client as they
 * arrive, the upstream is paused when the client cannot keep up, and every path ends in exactly one
 * call to the recorder. HTTP/1.1 (`res`) and HTTP/2 (`stream`) clients share this one code path.
 */
export class Exchange implements Dispatcher.DispatchHandler, StreamRecord {
  upstream: UpstreamName;
  status = 0;
  outcome: Outcome = 'ok';
  headersAt = 0;
  firstByteAt = 0;
  endedAt = 0;
  bytesOut = 0;
  fallback = false;
  /** When the request went to its current upstream (a fallback starts legacy's clock afresh). */
  startedAt = performance.now();

  private controller: Dispatcher.DispatchController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  /** idle_timeout between body chunks, from the first one on (before it, the first-byte timer runs). */
  private idleTimer: NodeJS.Timeout | undefined;
  private idledOut = false;
  /** Why the upstream's response headers could not be relayed (set just before the abort). */
  private unrelayable: string | undefined;
  private responded = false;
  private done = false;
  private timedOut = false;
  /** At the first-byte timeout, the client had not finished sending its request body. */
  private clientSlow = false;
  private watchingDrain = false;

  constructor(
    private readonly ctx: ExchangeContext,
    upstream: UpstreamName,
    readonly reason: string,
    readonly bucket: number,
    readonly method: string,
    readonly path: string,
    readonly protocol: string,
    private readonly headers: Record<string, string | string[] | undefined>,
    private readonly body: Body,
    private readonly res: ServerResponse | undefined,
    private readonly stream: ServerHttp2Stream | undefined,
  ) {
    this.upstream = upstream;
    if (res) res.once('close', () => this.clientClosed());
    else stream!.once('close', () => this.clientClosed());
  }

  start(): void {
    const up = this.ctx.upstreams[this.upstream];
    this.ctx.recorder.started(this.upstream);
    if (up.config.hostHeader === 'upstream') this.headers.host = up.host;
    this.timer = setTimeout(onFirstByteTimeout, up.config.ttfbTimeoutMs, this);
    try {
      up.pool.dispatch(
        {
          path: up.basePath + this.path,
          method: this.method as Dispatcher.HttpMethod,
          headers: this.headers as Record<string, string | string[]>,
          // undici accepts async iterables at run time; its typings list only streams and buffers.
          body: this.body as Readable | null,
        },
        this,
      );
    } catch (err) {
      // undici refuses some requests synchronously (e.g. a header it will not send).
      this.fail('reset', 'bad_request', `request cannot be forwarded: ${(err as Error).message}`);
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.done) controller.abort(kClientGone);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, upstream: IncomingHttpHeaders): void {
    if (this.done) return;
    if (statusCode < 200) {
      if (statusCode === 103) this.relayEarlyHints(upstream);
      return;
    }
    this.headersAt = performance.now();
    this.status = statusCode;
    const headers = withoutHopByHop(upstream, RESPONSE_HOP_BY_HOP);
    if (this.ctx.responseHeader) headers['x-veer-upstream'] = this.upstream;
    try {
      if (this.res) {
        if (this.ctx.draining) headers.connection = 'close';
        this.res.writeHead(statusCode, headers);
        // A stream (no length: SSE, chunked) shows its headers at once, as over HTTP/2, rather than with
        // the first token; but a first token that came in the same read as the headers (the usual case)
        // goes out with them in one write. A response of known length always keeps them together.
        if (headers['content-length'] === undefined) process.nextTick(flushHeadersIfNoBody, this);
      } else {
        headers[':status'] = statusCode as unknown as string;
        this.stream!.respond(headers as Record<string, string>);
      }
      this.responded = true;
    } catch (err) {
      // abort() comes back through onResponseError at once: it must answer bad_gateway, not upstream_reset.
      this.unrelayable = `upstream response cannot be relayed: ${(err as Error).message}`;
      controller.abort(err as Error);
      if (!this.done) this.fail('reset', 'bad_gateway', this.unrelayable);
    }
  }

  /** 103 Early Hints go on to the client (a proxy forwards 1xx, RFC 9110 §15.2); other 1xx stay here. */
  private relayEarlyHints(upstream: IncomingHttpHeaders): void {
    const hints = withoutHopByHop(upstream, RESPONSE_HOP_BY_HOP);
    try {
      if (this.res) this.res.writeEarlyHints(hints as Record<string, string | string[]>);
      else this.stream!.additionalHeaders({ ...hints, ':status': 103 } as unknown as Record<string, string>);
    } catch {
      // Hints are optional: one that cannot be relayed is dropped, the response still comes.
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.firstByteAt === 0) {
      this.firstByteAt = performance.now();
      clearTimeout(this.timer);
      const idleMs = this.ctx.upstreams[this.upstream].config.idleTimeoutMs;
      if (idleMs > 0) this.idleTimer = setTimeout(onUpstreamIdle, idleMs, this);
    } else this.idleTimer?.refresh();
    this.bytesOut += chunk.length;
    if (this.done) return;
    const writable = this.res ?? this.stream!;
    if (!writable.write(chunk) && writable.writableLength >= PAUSE_AT) {
      controller.pause();
      this.stallTimer ??= setTimeout(onClientStalled, this.ctx.clientIdleTimeoutMs, this);
      if (!this.watchingDrain) {
        this.watchingDrain = true;
        writable.on('drain', () => {
          clearTimeout(this.stallTimer);
          this.stallTimer = undefined;
          this.idleTimer?.refresh();
          this.controller?.resume();
        });
      }
    }
  }

  onResponseEnd(): void {
    if (this.done) return;
    this.endedAt = performance.now();
    if (this.body !== null && this.clientStillSending()) this.endAndStopUpload();
    else if (this.res) this.res.end();
    else this.stream!.end();
    this.finish(this.status >= 500 ? 'upstream_5xx' : 'ok');
  }

  private clientStillSending(): boolean {
    return this.res ? !this.res.req.complete : !this.stream!.readableEnded;
  }

  /**
   * The upstream answered before the request body was in (413, 401, 429...): the client gets the answer
   * instead of uploading into a connection nobody reads. HTTP/2: RST_STREAM(NO_ERROR) after the
   * response tells it to stop (RFC 9113 §8.1). HTTP/1.1 has no such signal short of closing, and a close
   * with unread input resets the connection, which can lose the answer: the rest of the body is read and
   * dropped, as node's own server does, and the connection stays usable.
   */
  private endAndStopUpload(): void {
    if (this.stream) {
      const stream = this.stream;
      stream.end(() => stream.close(NGHTTP2_NO_ERROR));
      return;
    }
    this.discardRestOfBody();
    this.res!.end();
  }

  /**
   * HTTP/1.1: reads and drops what is left of the request body. undici may have left its iterator waiting
   * on a read, and while the iterator's 'readable' listener is on the request, resume() does nothing: the
   * iterator is returned first (which leaves the request itself open).
   */
  private discardRestOfBody(): void {
    const req = this.res!.req;
    const resume = () => req.resume();
    Promise.resolve((this.body as unknown as AsyncIterator<Buffer>).return?.()).then(resume, resume);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.done) return;
    this.endedAt = performance.now();
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (this.ctx.closing) {
      // Shutting down: the client's stream was cut by veer; the upstream did nothing wrong.
      this.finish('client_abort');
    } else if (this.unrelayable) {
      this.fail('reset', 'bad_gateway', this.unrelayable);
    } else if (err.name === 'HTTPParserError') {
      // Not valid HTTP/1.1 (an invalid header character, a bad chunk): the upstream's fault, and a response
      // veer cannot relay.
      this.fail('reset', 'bad_gateway', `${this.upstream} upstream sent an invalid response (${err.message})`);
    } else if (this.timedOut && this.clientSlow) {
      this.fail(
        'client_abort',
        'request_timeout',
        'the request body did not arrive in time (upstream ttfb_timeout); the upstream was not at fault',
      );
    } else if (this.timedOut) {
      this.fail('timeout', 'upstream_timeout', `${this.upstream} upstream sent no first byte in time`);
    } else if (this.idledOut) {
      this.fail('timeout', 'upstream_timeout', `${this.upstream} upstream went silent for longer than idle_timeout`);
    } else if (this.controller === undefined && CONNECT_ERROR_CODES.has(code)) {
      if (this.upstream === 'new' && this.ctx.fallbackOnConnectError && !this.fallback) {
        this.retryOnLegacy();
        return;
      }
      this.fail('connect_error', 'upstream_unavailable', `${this.upstream} upstream is unavailable (${code})`);
    } else if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      this.fail('timeout', 'upstream_timeout', `${this.upstream} upstream went silent (${code})`);
    } else {
      this.fail('reset', 'upstream_reset', `${this.upstream} upstream closed the connection (${code || err.message})`);
    }
  }

  /** Sends the HTTP/1.1 response headers when no body byte has carried them yet. */
  flushHeadersIfNoBody(): void {
    if (this.firstByteAt === 0 && !this.done && !this.res!.destroyed) this.res!.flushHeaders();
  }

  /** Called when the client has taken nothing of a paused stream for listen.idle_timeout. */
  clientStalled(): void {
    if (this.done) return;
    this.endedAt = performance.now();
    // A reader that stopped is the client's doing, like a client that left.
    this.finish('client_abort');
    this.controller?.abort(kClientGone);
    if (this.res) this.res.destroy();
    else {
      cutByVeer.add(this.stream!);
      this.stream!.close(NGHTTP2_CANCEL);
    }
  }

  /** Called by the idle timer: no body chunk for idle_timeout (unless veer itself paused the upstream). */
  upstreamIdle(): void {
    if (this.done) return;
    // The stall timer runs exactly while veer holds the upstream back for a slow client: that silence is
    // veer's, not the upstream's.
    if (this.stallTimer !== undefined) {
      this.idleTimer!.refresh();
      return;
    }
    this.idledOut = true;
    this.controller?.abort(kIdle);
  }

  /** Called by the first-byte timer. */
  firstByteTimedOut(): void {
    if (this.done || this.firstByteAt !== 0) return;
    this.timedOut = true;
    if (this.controller) {
      this.clientSlow = this.waitingForClientBody();
      this.controller.abort(kTimeout);
    } else {
      // Still queued or connecting: answer now; onRequestStart aborts it if it ever starts.
      this.endedAt = performance.now();
      this.fail('timeout', 'upstream_timeout', `${this.upstream} upstream sent no first byte in time`);
    }
  }

  /**
   * The upstream cannot answer a request it has not fully received: when the client is still sending
   * its body (nothing of it waits in veer's buffers), a first-byte timeout is the client's doing, and
   * must not count against the upstream's SLO (a client trickling bodies to new could roll it back).
   */
  private waitingForClientBody(): boolean {
    if (this.body === null) return false;
    if (this.res) {
      const req = this.res.req;
      return !req.complete && req.readableLength === 0;
    }
    const stream = this.stream!;
    return !stream.readableEnded && stream.readableLength === 0;
  }

  private clientClosed(): void {
    if (this.done) return;
    this.endedAt = performance.now();
    this.finish('client_abort');
    // Aborting destroys the upstream socket, so the upstream sees the stream end at once.
    this.controller?.abort(kClientGone);
  }

  /**
   * New refused the connection before a byte was sent: count it against new, then serve the request
   * from legacy. The body has not been read, so it can still be sent once.
   */
  private retryOnLegacy(): void {
    clearTimeout(this.timer);
    this.outcome = 'connect_error';
    this.ctx.recorder.finished(this);
    this.outcome = 'ok';
    this.ctx.onFallback();
    this.upstream = 'legacy';
    this.fallback = true;
    this.controller = undefined;
    this.endedAt = 0;
    // Legacy's TTFB is legacy's own: the time lost on new's failed connect is not its doing.
    this.startedAt = performance.now();
    this.start();
  }

  /** Answers with veer's own JSON error, or cuts the stream when the upstream's headers already went out. */
  private fail(outcome: Outcome, code: ProxyErrorCode, message: string): void {
    if (this.responded) {
      // destroy(err), not close(code): close() ends the writable side first, so the client would see
      // END_STREAM — a clean end — before the RST_STREAM. destroy(err) sends RST_STREAM(INTERNAL_ERROR).
      if (this.res) this.res.destroy();
      else {
        cutByVeer.add(this.stream!);
        this.stream!.destroy(UPSTREAM_FAILED_MID_STREAM);
      }
    } else {
      const status = ERROR_STATUS[code];
      this.status = status;
      const body = errorBody(code, message);
      const headers: Record<string, string | number> = {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
      };
      if (this.ctx.responseHeader) headers['x-veer-upstream'] = this.upstream;
      // A client still sending its body (too slow, or the upstream failed before reading it all).
      const unfinishedBody = this.body !== null && this.clientStillSending();
      if (this.res) {
        // The rest of an unfinished body would be read as the next request: close the connection, with a
        // moment for the client to read the answer (closing with unread input would send a TCP RST).
        if (unfinishedBody) headers.connection = 'close';
        if (!this.res.headersSent && !this.res.destroyed) {
          const socket = this.res.socket;
          this.res.writeHead(status, headers).end(body);
          if (unfinishedBody) this.discardRestOfBody();
          if (unfinishedBody && socket) setTimeout(destroySocket, 250, socket).unref();
        }
      } else if (!this.stream!.destroyed && !this.stream!.headersSent) {
        headers[':status'] = status;
        const stream = this.stream!;
        stream.respond(headers);
        // RST_STREAM(NO_ERROR) after the answer tells the client to stop sending (RFC 9113 §8.1).
        stream.end(body, unfinishedBody ? () => stream.close(NGHTTP2_NO_ERROR) : undefined);
      }
    }
    this.finish(outcome);
  }

  private finish(outcome: Outcome): void {
    this.done = true;
    clearTimeout(this.timer);
    clearTimeout(this.stallTimer);
    clearTimeout(this.idleTimer);
    if (this.endedAt === 0) this.endedAt = performance.now();
    this.outcome = outcome;
    this.ctx.recorder.finished(this);
  }
}
