// Where a finished stream's measurements go: its upstream's window, the Prometheus metrics and the access log.

import type { UpstreamName } from '../config/types.js';
import { type AccessFields, accessLogWriter, type Logger } from '../log.js';
import { type Metrics, WINDOW_QUANTILES } from '../metrics/registry.js';
import type { Outcome } from './outcome.js';
import { type Clock, SlidingWindow } from './window.js';

/** What the proxy hands over when a stream ends; times are monotonic milliseconds. */
export interface StreamRecord {
  upstream: UpstreamName;
  reason: string;
  bucket: number;
  method: string;
  path: string;
  protocol: string;
  /** The status the client saw, 0 when none was sent. */
  status: number;
  outcome: Outcome;
  startedAt: number;
  headersAt: number;
  firstByteAt: number;
  endedAt: number;
  bytesOut: number;
  /** Set when the request was retried on legacy after new refused it. */
  fallback: boolean;
}

const CODE_CLASS = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'];

export interface RecorderOptions {
  metrics: Metrics;
  logger: Logger;
  accessLog: boolean;
  windowMs: number;
  slices: number;
  clock: Clock;
}

export class Recorder {
  readonly windows: Record<UpstreamName, SlidingWindow>;
  readonly inflight: Record<UpstreamName, number> = { legacy: 0, new: 0 };
  /** Streams finished per upstream since start (monotonic; the dashboard derives req/s from it). */
  readonly finishedTotal: Record<UpstreamName, number> = { legacy: 0, new: 0 };
  private readonly metrics: Metrics;
  private readonly writeAccess: (f: AccessFields) => void;
  private readonly ttfbHistograms;
  private readonly durationHistograms;
  accessLog: boolean;

  constructor(options: RecorderOptions) {
    this.metrics = options.metrics;
    this.writeAccess = accessLogWriter(options.logger);
    this.accessLog = options.accessLog;
    const window = () =>
      new SlidingWindow({ windowMs: options.windowMs, slices: options.slices, clock: options.clock });
    this.windows = { legacy: window(), new: window() };
    this.ttfbHistograms = { legacy: this.metrics.ttfb.labels('legacy'), new: this.metrics.ttfb.labels('new') };
    this.durationHistograms = {
      legacy: this.metrics.duration.labels('legacy'),
      new: this.metrics.duration.labels('new'),
    };
    this.metrics.live.inflight = () => this.inflight;
    this.metrics.live.window = () => {
      const read = (w: SlidingWindow) => {
        const s = w.snapshot();
        const quantiles: Record<string, number | undefined> = {};
        for (const q of WINDOW_QUANTILES) {
          const v = s.ttfbQuantile(Number(q));
          quantiles[q] = v === undefined ? undefined : v / 1000;
        }
        return { quantiles, samples: s.ttfbSamples, errorRate: s.errorRate };
      };
      return { legacy: read(this.windows.legacy), new: read(this.windows.new) };
    };
  }

  started(upstream: UpstreamName): void {
    this.inflight[upstream]++;
  }

  /**
   * TTFB is the first body byte, or the response headers for a response without a body; it is
   * recorded whenever the upstream answered with a non-5xx status, since a client that leaves after
   * the first token still saw that token's latency. Duration is recorded for completed responses only.
   */
  finished(r: StreamRecord): void {
    this.inflight[r.upstream]--;
    this.finishedTotal[r.upstream]++;
    const answered = r.outcome === 'ok' || r.outcome === 'reset' || r.outcome === 'client_abort';
    const firstByteAt = r.firstByteAt > 0 ? r.firstByteAt : r.outcome === 'ok' ? r.headersAt : 0;
    const ttfbMs = answered && firstByteAt > 0 ? firstByteAt - r.startedAt : undefined;
    const durationMs = r.outcome === 'ok' ? r.endedAt - r.startedAt : undefined;
    this.windows[r.upstream].record(r.outcome, ttfbMs, durationMs);
    if (ttfbMs !== undefined) this.ttfbHistograms[r.upstream].observe(ttfbMs / 1000);
    if (durationMs !== undefined) this.durationHistograms[r.upstream].observe(durationMs / 1000);
    this.metrics.outcomes.inc({ upstream: r.upstream, outcome: r.outcome });
    this.metrics.requests.inc({
      upstream: r.upstream,
      code_class: CODE_CLASS[Math.floor(r.status / 100)] ?? 'none',
      reason: r.fallback ? 'fallback' : r.reason,
    });
    if (this.accessLog) {
      this.writeAccess({
        upstream: r.upstream,
        reason: r.fallback ? 'fallback' : r.reason,
        bucket: r.bucket,
        method: r.method,
        path: r.path,
        proto: r.protocol,
        status: r.status,
        outcome: r.outcome,
        ttfb_ms: ttfbMs === undefined ? null : round(ttfbMs),
        headers_ms: r.headersAt > 0 ? round(r.headersAt - r.startedAt) : null,
        duration_ms: round(r.endedAt - r.startedAt),
        bytes: r.bytesOut,
      });
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
