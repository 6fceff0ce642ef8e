// One shadow copy: a detached request to new whose answer is read and dropped; it touches no client.

import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { Outcome } from '../measure/outcome.js';
import { UNREACHABLE_CODES } from './errors.js';
import type { OutHeaders } from './headers.js';
import type { Upstream } from './upstream.js';

/** How a copy ended: an outcome judged like a real request's, or `cancelled` by veer (shutdown, reload). */
export interface ShadowEnd {
  outcome: Exclude<Outcome, 'client_abort' | 'saturated'> | 'cancelled';
  status: number;
  /** From sending the copy to new's first body byte (or its headers, for an empty answer). */
  ttfbMs: number | undefined;
  durationMs: number | undefined;
}

/** Errors undici reports before the copy was written (as for a real request: new is not reachable). */
const CONNECT_ERROR_CODES = UNREACHABLE_CODES;

const kTimeout = new Error('shadow copy timed out');
const kCancelled = new Error('shadow copy cancelled');

function onTimeout(exchange: ShadowExchange): void {
  exchange.timedOutNow();
}

/**
 * undici's dispatch handler for a copy: no buffer shared with the user's exchange (its body is the tee's
 * own copy), no back-pressure (chunks are counted and dropped), and exactly one `ended` call.
 */
export class ShadowExchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private readonly startedAt = performance.now();
  private headersAt = 0;
  private firstByteAt = 0;
  private status = 0;
  private done = false;
  private timedOut = false;
  /** The copy's own limit (rollout.shadow.timeout). */
  private timer: NodeJS.Timeout | undefined;
  /** new's ttfb_timeout, as a real request to new would have. */
  private firstByteTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly upstream: Upstream,
    private readonly timeoutMs: number,
    private readonly ended: (end: ShadowEnd) => void,
  ) {}

  start(method: string, path: string, headers: OutHeaders, body: Buffer | null): void {
    this.timer = setTimeout(onTimeout, this.timeoutMs, this);
    this.firstByteTimer = setTimeout(onTimeout, this.upstream.config.ttfbTimeoutMs, this);
    try {
      this.upstream.pool.dispatch(
        {
          path: this.upstream.basePath + path,
          method: method as Dispatcher.HttpMethod,
          headers: headers as Record<string, string | string[]>,
          body,
        },
        this,
      );
    } catch {
      this.end('reset');
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.done) controller.abort(kCancelled);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode < 200 || this.done) return;
    this.status = statusCode;
    this.headersAt = performance.now();
  }

  onResponseData(): void {
    if (this.firstByteAt !== 0) return;
    this.firstByteAt = performance.now();
    clearTimeout(this.firstByteTimer);
  }

  onResponseEnd(): void {
    this.end(this.status >= 500 ? 'upstream_5xx' : 'ok');
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.done) return;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (this.timedOut || code === 'UND_ERR_HEADERS_TIMEOUT') this.end('timeout');
    else if (this.controller === undefined && CONNECT_ERROR_CODES.has(code)) this.end('connect_error');
    else if (code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_CLOSED') this.end('cancelled');
    else this.end('reset');
  }

  /** The copy's timeout or new's first-byte timeout: cut it and count a timeout. */
  timedOutNow(): void {
    if (this.done) return;
    this.timedOut = true;
    if (this.controller) this.controller.abort(kTimeout);
    else this.end('timeout');
  }

  /** veer is shutting down: the copy ends without a sample. */
  cancel(): void {
    if (this.done) return;
    this.end('cancelled');
    this.controller?.abort(kCancelled);
  }

  private end(outcome: ShadowEnd['outcome']): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    clearTimeout(this.firstByteTimer);
    const now = performance.now();
    const firstByteAt = this.firstByteAt > 0 ? this.firstByteAt : outcome === 'ok' ? this.headersAt : 0;
    this.ended({
      outcome,
      status: this.status,
      ttfbMs: firstByteAt > 0 ? firstByteAt - this.startedAt : undefined,
      durationMs: outcome === 'ok' ? now - this.startedAt : undefined,
    });
  }
}
