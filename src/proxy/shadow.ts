// Shadow traffic: admits a copy of a legacy-bound request (or drops it, counted), tees its body, sends it to new.

import { performance } from 'node:perf_hooks';
import type { ShadowConfig, UpstreamConfig } from '../config/types.js';
import type { Recorder } from '../measure/recorder.js';
import type { Metrics } from '../metrics/registry.js';
import type { ShadowResult } from '../metrics/shadow-metrics.js';
import { type ShadowScope, shadowScope } from '../routing/shadow-scope.js';
import type { OutHeaders } from './headers.js';
import { type ShadowEnd, ShadowExchange } from './shadow-exchange.js';
import { BodyTee, type TeeResult } from './shadow-tee.js';
import { Upstream } from './upstream.js';

/** Connect errors in a row after which new counts as failing and copies are dropped for a while. */
const FAILURES_TO_PAUSE = 3;
/** How long copies are dropped once new is failing; then one is let through to try again. */
const PAUSE_MS = 5000;

export interface ShadowOptions {
  config: ShadowConfig;
  /** new's upstream settings; copies go over their own pool, sized max_inflight, never new's real one. */
  upstream: UpstreamConfig;
  recorder: Recorder;
  metrics: Metrics;
}

function launch(
  shadow: ShadowTraffic,
  method: string,
  path: string,
  headers: OutHeaders,
  chunks: Buffer[] | null,
  bytes: number,
): void {
  shadow.launch(method, path, headers, chunks, bytes);
}

function abandonTee(tee: () => BodyTee): void {
  tee().abandon();
}

/**
 * Never costs the user anything: admission is a counter check on the request path; a full house or a
 * failing new drops the copy (counted, not queued); the body is teed by reference and the copy sent
 * only once the whole body is in, on a later turn of the event loop. Memory is bounded by
 * max_inflight × max_body. A copy outlives its user's request (a cancel does not cancel it) up to
 * rollout.shadow.timeout.
 */
export class ShadowTraffic {
  /** Copies admitted and not yet ended (buffering their body, or waiting on new). */
  inflight = 0;
  scope: ShadowScope;
  private config: ShadowConfig;
  private upstream: Upstream;
  private readonly open = new Set<ShadowExchange>();
  private failures = 0;
  private failingUntil = 0;
  private closing = false;

  constructor(private readonly options: ShadowOptions) {
    this.config = options.config;
    this.scope = shadowScope(options.config);
    this.upstream = new Upstream('new', { ...options.upstream, maxSockets: options.config.maxInflight });
    options.metrics.live.shadowInflight = () => this.inflight;
  }

  /** A reload: new limits apply to the next copies; a changed upstream gets a fresh pool (open copies finish). */
  configure(config: ShadowConfig, upstream: UpstreamConfig): void {
    this.config = config;
    this.scope = shadowScope(config);
    const next = { ...upstream, maxSockets: config.maxInflight };
    if (!this.upstream.sameAs(next)) {
      const old = this.upstream;
      this.upstream = new Upstream('new', next);
      old.close().catch(() => {});
    }
  }

  /**
   * Called on the request path for a request the table chose for the shadow: returns the body the user's
   * exchange must read (the tee, or the body itself when the copy is dropped).
   */
  mirror<B extends AsyncIterator<Buffer>>(
    method: string,
    path: string,
    headers: OutHeaders,
    body: B | null,
  ): B | BodyTee | null {
    if (this.closing) return body;
    if (this.inflight >= this.config.maxInflight) {
      this.count('dropped_saturated');
      return body;
    }
    if (this.failures >= FAILURES_TO_PAUSE && performance.now() < this.failingUntil) {
      this.count('dropped_new_failing');
      return body;
    }
    this.inflight++;
    const copyHeaders = this.copyHeaders(headers);
    if (body === null) {
      setImmediate(launch, this, method, path, copyHeaders, null, 0);
      return null;
    }
    // A body that never ends nor fails (its exchange stopped reading it) must not hold a slot for ever.
    const timer = setTimeout(abandonTee, this.config.timeoutMs, () => tee).unref();
    const tee = new BodyTee(body, this.config.maxBodyBytes, (result: TeeResult) => {
      clearTimeout(timer);
      if ('dropped' in result) {
        this.inflight--;
        this.count(result.dropped === 'body_too_large' ? 'dropped_body_too_large' : 'dropped_body_incomplete');
        return;
      }
      setImmediate(launch, this, method, path, copyHeaders, result.chunks, result.bytes);
    });
    return tee;
  }

  /** Sends one admitted copy (off the user's path: a later turn of the event loop). */
  launch(method: string, path: string, headers: OutHeaders, chunks: Buffer[] | null, bytes: number): void {
    if (this.closing) {
      this.inflight--;
      this.count('cancelled');
      return;
    }
    const body = chunks === null ? null : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes);
    const exchange: ShadowExchange = new ShadowExchange(this.upstream, this.config.timeoutMs, (end) =>
      this.ended(exchange, end),
    );
    this.open.add(exchange);
    exchange.start(method, path, headers, body);
  }

  /** Shutdown: copies still open end now, without a sample; their pool is destroyed. */
  async close(): Promise<void> {
    this.closing = true;
    for (const exchange of this.open) exchange.cancel();
    await this.upstream.destroy();
  }

  private ended(exchange: ShadowExchange, end: ShadowEnd): void {
    this.open.delete(exchange);
    this.inflight--;
    this.count(end.outcome);
    if (end.outcome === 'cancelled') return;
    if (end.outcome === 'connect_error') {
      this.failures++;
      if (this.failures >= FAILURES_TO_PAUSE) this.failingUntil = performance.now() + PAUSE_MS;
    } else this.failures = 0;
    this.options.recorder.finishedShadow(end.outcome, end.status, end.ttfbMs, end.durationMs);
  }

  /** The user's upstream headers, for new, marked as a copy; undici sets the length of the copied body. */
  private copyHeaders(headers: OutHeaders): OutHeaders {
    const { 'content-length': _length, ...rest } = headers;
    const out: OutHeaders = { ...rest, 'x-veer-shadow': '1' };
    if (this.upstream.config.hostHeader === 'upstream') out.host = this.upstream.host;
    return out;
  }

  private count(result: ShadowResult): void {
    this.options.metrics.shadowRequests.inc({ result });
  }
}
