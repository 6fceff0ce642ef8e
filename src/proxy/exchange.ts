// One proxied request: relays it to its upstream through undici and the response back, unbuffered, and meters it.

import type { IncomingHttpHeaders } from 'node:http2';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { UpstreamName } from '../config/types.js';
import type { Outcome } from '../measure/outcome.js';
import type { Recorder, StreamRecord } from '../measure/recorder.js';
import type { TokenSummary } from '../measure/token-summary.js';
import type { WaitingList, WaitingRecord } from '../measure/waiting.js';
import type { Downstream, RequestBody, ResponseObserver } from './downstream.js';
import { ERROR_STATUS, errorBody, type ProxyErrorCode } from './errors.js';
import { Phase } from './exchange-phase.js';
import { type OutHeaders, RESPONSE_HOP_BY_HOP, withoutHopByHop } from './headers.js';
import { poolTimeoutMessage, saturatedBeforeDispatch } from './pool-wait.js';
import type { Upstream } from './upstream.js';
import { classifyFailure } from './upstream-failure.js';

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

/** One request to relay: where it goes, what it carries, and the client side its response goes to. */
export interface ExchangeOptions {
  ctx: ExchangeContext;
  upstream: UpstreamName;
  /** Why the routing table chose this upstream, and the key's bucket (for the access log). */
  reason: string;
  bucket: number;
  method: string;
  path: string;
  /** The headers for the upstream (hop-by-hop ones removed); `host` is replaced when the upstream says so. */
  headers: OutHeaders;
  body: RequestBody;
  downstream: Downstream;
  /** Sees each forwarded response chunk and the end; optional, free when absent. */
  observer?: ResponseObserver | undefined;
}

const kTimeout = new Error('time to first byte exceeded');
const kIdle = new Error('upstream silent for longer than idle_timeout');
const kClientGone = new Error('client went away');

function onClientStalled(exchange: Exchange): void {
  exchange.clientStalled();
}

function onPoolTimeout(exchange: Exchange): void {
  exchange.poolTimedOut();
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
 * call to the recorder. The client side is a Downstream, one per client protocol.
 */
export class Exchange implements Dispatcher.DispatchHandler, StreamRecord {
  upstream: UpstreamName;
  readonly reason: string;
  readonly bucket: number;
  readonly method: string;
  readonly path: string;
  readonly protocol: string;
  status = 0;
  outcome: Outcome = 'ok';
  headersAt = 0;
  firstByteAt = 0;
  endedAt = 0;
  bytesOut = 0;
  fallback = false;
  /** When the request was dispatched to its current upstream's pool (a fallback starts afresh). */
  dispatchedAt = performance.now();
  /**
   * When undici put the request on a connection and began sending it: the upstream's timings (TTFB,
   * headers, duration) and ttfb_timeout start here; the time before is the pool wait. Until then the
   * dispatch time; the end time for a request that never went out.
   */
  startedAt = this.dispatchedAt;
  private sent = false;
  phase: Phase = Phase.Connecting;
  // Links of the recorder's list of requests waiting for their first byte (see measure/waiting.ts).
  waitPrev: WaitingRecord | null = null;
  waitNext: WaitingRecord | null = null;
  waitList: WaitingList | null = null;

  /** Token accounting's summary of the answer, when an observer read it (StreamRecord.tokens). */
  get tokens(): TokenSummary | undefined {
    return this.observer?.tokens;
  }

  private readonly ctx: ExchangeContext;
  private readonly headers: OutHeaders;
  private readonly body: RequestBody;
  private readonly downstream: Downstream;
  private readonly observer: ResponseObserver | undefined;
  private controller: Dispatcher.DispatchController | undefined;
  /** The pool undici holds this request in (counted in its `inPool`) until its last callback. */
  private dispatchedTo: Upstream | undefined;
  /** pool_timeout while waiting for a connection, then ttfb_timeout until the first body byte. */
  private timer: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  /** idle_timeout between body chunks, from the first one on (before it, the first-byte timer runs). */
  private idleTimer: NodeJS.Timeout | undefined;
  private idledOut = false;
  /** Why the upstream's response headers could not be relayed (set just before the abort). */
  private unrelayable: string | undefined;
  private timedOut = false;
  /** At the first-byte timeout, the client had not finished sending its request body. */
  private clientSlow = false;
  private watchingDrain = false;

  constructor(options: ExchangeOptions) {
    this.ctx = options.ctx;
    this.upstream = options.upstream;
    this.reason = options.reason;
    this.bucket = options.bucket;
    this.method = options.method;
    this.path = options.path;
    this.headers = options.headers;
    this.body = options.body;
    this.downstream = options.downstream;
    this.protocol = options.downstream.protocol;
    this.observer = options.observer;
    this.downstream.onClose(() => this.clientClosed());
  }

  start(): void {
    const up = this.ctx.upstreams[this.upstream];
    // In flight from now; waiting for its first byte (the hang watch) only once it is sent.
    this.ctx.recorder.started(this.upstream);
    if (up.config.hostHeader === 'upstream') this.headers.host = up.host;
    const saturated = saturatedBeforeDispatch(up);
    if (saturated !== undefined) {
      this.fail('saturated', 'upstream_saturated', saturated);
      return;
    }
    up.inPool++;
    this.dispatchedTo = up;
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
      this.leavePool();
      this.fail('reset', 'bad_request', `request cannot be forwarded: ${(err as Error).message}`);
      return;
    }
    // Behind max_sockets busy connections it waits in undici's queue, for pool_timeout at most (opening a
    // connection of its own is connect_timeout's to bound). Most requests never arm this timer.
    if (up.queues() && this.phase === Phase.Connecting) {
      this.timer = setTimeout(onPoolTimeout, up.config.poolTimeoutMs, this);
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Refused while it waited, or the client left: it leaves undici's queue only now, on a connection.
    if (this.phase === Phase.Done) controller.abort(kClientGone);
    else {
      this.phase = Phase.Requesting;
      this.sent = true;
      this.startedAt = performance.now();
      this.ctx.recorder.sent(this);
      clearTimeout(this.timer);
      const ttfbTimeoutMs = (this.dispatchedTo ?? this.ctx.upstreams[this.upstream]).config.ttfbTimeoutMs;
      this.timer = setTimeout(onFirstByteTimeout, ttfbTimeoutMs, this);
    }
  }

  /** undici is done with the request (its last callback): it no longer takes a place in the pool. */
  private leavePool(): void {
    if (this.dispatchedTo !== undefined) {
      this.dispatchedTo.inPool--;
      this.dispatchedTo = undefined;
    }
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, upstream: IncomingHttpHeaders): void {
    if (this.phase === Phase.Done) return;
    if (statusCode < 200) {
      if (statusCode === 103) this.relayEarlyHints(upstream);
      return;
    }
    this.headersAt = performance.now();
    this.status = statusCode;
    const headers = withoutHopByHop(upstream, RESPONSE_HOP_BY_HOP);
    if (this.ctx.responseHeader) headers['x-veer-upstream'] = this.upstream;
    try {
      this.downstream.respond(statusCode, headers, this.ctx.draining);
      this.phase = Phase.Responding;
      if (this.observer?.onHead !== undefined) this.observer.onHead(statusCode, upstream);
    } catch (err) {
      // abort() comes back through onResponseError at once: it must answer bad_gateway, not upstream_reset.
      this.unrelayable = `upstream response cannot be relayed: ${(err as Error).message}`;
      controller.abort(err as Error);
      // (abort() may have finished the exchange: TypeScript's narrowing does not know it.)
      if ((this.phase as Phase) !== Phase.Done) this.fail('reset', 'bad_gateway', this.unrelayable);
    }
  }

  /** 103 Early Hints go on to the client (a proxy forwards 1xx, RFC 9110 §15.2); other 1xx stay here. */
  private relayEarlyHints(upstream: IncomingHttpHeaders): void {
    try {
      this.downstream.earlyHints(withoutHopByHop(upstream, RESPONSE_HOP_BY_HOP));
    } catch {
      // Hints are optional: one that cannot be relayed is dropped, the response still comes.
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.firstByteAt === 0) {
      this.firstByteAt = performance.now();
      this.ctx.recorder.firstByte(this);
      clearTimeout(this.timer);
      const idleMs = this.ctx.upstreams[this.upstream].config.idleTimeoutMs;
      if (idleMs > 0) this.idleTimer = setTimeout(onUpstreamIdle, idleMs, this);
    } else this.idleTimer?.refresh();
    this.bytesOut += chunk.length;
    if (this.phase === Phase.Done) return;
    this.phase = Phase.Streaming;
    if (this.downstream.write(chunk)) {
      controller.pause();
      if (this.observer?.onHeldBack !== undefined) this.observer.onHeldBack();
      this.stallTimer ??= setTimeout(onClientStalled, this.ctx.clientIdleTimeoutMs, this);
      if (!this.watchingDrain) {
        this.watchingDrain = true;
        this.downstream.onDrain(() => {
          clearTimeout(this.stallTimer);
          this.stallTimer = undefined;
          this.idleTimer?.refresh();
          this.controller?.resume();
        });
      }
    }
    if (this.observer !== undefined) this.observer.onChunk(chunk);
  }

  onResponseEnd(): void {
    this.leavePool();
    if (this.phase === Phase.Done) return;
    this.endedAt = performance.now();
    // The upstream answered before the request body was in (413, 401, 429...): the client gets the answer
    // instead of uploading into a connection nobody reads.
    if (this.body !== null && this.downstream.stillSending()) this.downstream.endAndStopUpload(this.body);
    else this.downstream.end();
    this.finish(this.status >= 500 ? 'upstream_5xx' : 'ok');
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.leavePool();
    if (this.phase === Phase.Done) return;
    this.endedAt = performance.now();
    const verdict = classifyFailure(err, {
      upstream: this.upstream,
      closing: this.ctx.closing,
      unrelayable: this.unrelayable,
      timedOut: this.timedOut,
      clientSlow: this.clientSlow,
      idledOut: this.idledOut,
      connecting: this.phase === Phase.Connecting,
      mayFallBack: this.upstream === 'new' && this.ctx.fallbackOnConnectError && !this.fallback,
    });
    if (verdict.kind === 'cut_by_veer') this.finish('client_abort');
    else if (verdict.kind === 'fall_back') this.retryOnLegacy();
    else this.fail(verdict.outcome, verdict.code, verdict.message);
  }

  /** Called when the client has taken nothing of a paused stream for listen.idle_timeout. */
  clientStalled(): void {
    if (this.phase === Phase.Done) return;
    this.endedAt = performance.now();
    // A reader that stopped is the client's doing, like a client that left.
    this.finish('client_abort');
    this.controller?.abort(kClientGone);
    this.downstream.cutStalled();
  }

  /** Called by the idle timer: no body chunk for idle_timeout (unless veer itself paused the upstream). */
  upstreamIdle(): void {
    if (this.phase === Phase.Done) return;
    // The stall timer runs exactly while veer holds the upstream back for a slow client: that silence is
    // veer's, not the upstream's.
    if (this.stallTimer !== undefined) {
      this.idleTimer!.refresh();
      return;
    }
    this.idledOut = true;
    this.controller?.abort(kIdle);
  }

  /** Called by the pool timer: no connection for pool_timeout. */
  poolTimedOut(): void {
    if (this.phase !== Phase.Connecting || this.dispatchedTo === undefined) return;
    this.endedAt = performance.now();
    // undici keeps it queued (it has no way to take a request back): onRequestStart aborts it if it starts.
    this.fail('saturated', 'upstream_saturated', poolTimeoutMessage(this.dispatchedTo));
  }

  /** Called by the first-byte timer, which runs from onRequestStart (the controller is set). */
  firstByteTimedOut(): void {
    if (this.phase === Phase.Done || this.firstByteAt !== 0) return;
    this.timedOut = true;
    this.clientSlow = this.waitingForClientBody();
    this.controller?.abort(kTimeout);
  }

  /**
   * The upstream cannot answer a request it has not fully received: when the client is still sending
   * its body (nothing of it waits in veer's buffers), a first-byte timeout is the client's doing, and
   * must not count against the upstream's SLO (a client trickling bodies to new could roll it back).
   */
  private waitingForClientBody(): boolean {
    return this.body !== null && this.downstream.waitingForBody();
  }

  private clientClosed(): void {
    if (this.phase === Phase.Done) return;
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
    if (!this.sent) this.startedAt = this.endedAt;
    this.ctx.recorder.finished(this);
    this.outcome = 'ok';
    this.ctx.onFallback();
    this.upstream = 'legacy';
    this.fallback = true;
    this.controller = undefined;
    this.phase = Phase.Connecting;
    this.endedAt = 0;
    this.sent = false;
    // Legacy's TTFB is legacy's own: the time lost on new's failed connect is not its doing.
    this.dispatchedAt = performance.now();
    this.startedAt = this.dispatchedAt;
    this.start();
  }

  /** Answers with veer's own JSON error, or cuts the stream when the upstream's headers already went out. */
  private fail(outcome: Outcome, code: ProxyErrorCode, message: string): void {
    if (this.phase === Phase.Responding || this.phase === Phase.Streaming) {
      this.downstream.cutMidStream();
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
      const unfinishedBody = this.body !== null && this.downstream.stillSending() ? this.body : null;
      this.downstream.answer(status, headers, body, unfinishedBody);
    }
    this.finish(outcome);
  }

  private finish(outcome: Outcome): void {
    this.phase = Phase.Done;
    clearTimeout(this.timer);
    clearTimeout(this.stallTimer);
    clearTimeout(this.idleTimer);
    if (this.endedAt === 0) this.endedAt = performance.now();
    // Never sent: it waited in the pool until now, and no upstream timing started.
    if (!this.sent) this.startedAt = this.endedAt;
    this.outcome = outcome;
    // Before the recorder: the observer's conclusion (token accounting's summary) is part of the record.
    if (this.observer !== undefined) this.observer.onEnd(outcome);
    this.ctx.recorder.finished(this);
  }
}
