// The dashboard's time series: one point a second sampled from the measurement windows, kept for an hour.

import type { SloRule, UpstreamName } from '../../config/types.js';
import { judgeRule, type WindowView } from '../../guard/evaluate.js';
import type { Clock } from '../../measure/window.js';
import type { SeriesPoint, SeriesSide } from '../api-types.js';
import { LONGEST_RANGE_S } from './ranges.js';

/** What the sampler reads; getters, because a reload replaces the rules. */
export interface SeriesSource {
  windows: () => Record<UpstreamName, WindowView>;
  finishedTotal: Readonly<Record<UpstreamName, number>>;
  weightBp: () => number;
  rules: () => readonly SloRule[];
  clock: Clock;
}

export const SERIES_INTERVAL_MS = 1000;
/**
 * An hour at one point a second, the dashboard's longest time range: enough to see what led up to a
 * rollback after the fact. A point is a few hundred bytes: about 1-2 MB for the hour.
 */
export const SERIES_CAPACITY = (LONGEST_RANGE_S * 1000) / SERIES_INTERVAL_MS;

const round = (x: number | null | undefined, digits: number): number | null => {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** The token panel's figures of one window side; null where it has no samples. */
function tokenFields(w: WindowView) {
  const t = w.tokens;
  const share = (r: { failures: number; total: number } | undefined) =>
    r && r.total > 0 ? round(r.failures / r.total, 5) : null;
  return {
    itl_p50_ms: round(t?.itlQuantile(0.5), 2),
    itl_p99_ms: round(t?.itlQuantile(0.99), 2),
    tpot_p95_ms: round(t?.tpotQuantile(0.95), 2),
    incomplete_rate: share(t?.incomplete),
    inband_error_rate: share(t?.inbandErrors),
    empty_rate: share(t?.empty),
  };
}

/**
 * Samples from the moment veer starts rather than when a browser first asks, so whoever opens the page
 * after an incident sees the minutes before it.
 */
export class SeriesSampler {
  private readonly points: SeriesPoint[] = [];
  private timer: NodeJS.Timeout | undefined;
  private prevAt: number;
  private prevTotals: Record<UpstreamName, number>;

  constructor(
    private readonly source: SeriesSource,
    readonly intervalMs = SERIES_INTERVAL_MS,
    readonly capacity = SERIES_CAPACITY,
  ) {
    this.prevAt = source.clock();
    this.prevTotals = { ...source.finishedTotal };
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes one point now and keeps it (the oldest falls off past capacity). */
  sample(): SeriesPoint {
    const now = this.source.clock();
    const windows = this.source.windows();
    const totals = { ...this.source.finishedTotal };
    const seconds = (now - this.prevAt) / 1000;
    const done = { legacy: totals.legacy - this.prevTotals.legacy, new: totals.new - this.prevTotals.new };
    const side = (name: UpstreamName): SeriesSide => {
      const w = windows[name];
      return {
        ttfb_p50_ms: round(w.ttfbQuantile(0.5), 1),
        ttfb_p95_ms: round(w.ttfbQuantile(0.95), 1),
        ttfb_p99_ms: round(w.ttfbQuantile(0.99), 1),
        error_rate: w.requests > 0 ? round(w.errorRate, 5) : null,
        rps: seconds > 0 ? round(done[name] / seconds, 2) : null,
        ...tokenFields(w),
      };
    };
    const finished = done.legacy + done.new;
    const point: SeriesPoint = {
      t: now,
      weight_percent: this.source.weightBp() / 100,
      share_new: finished > 0 ? round(done.new / finished, 4) : null,
      legacy: side('legacy'),
      new: side('new'),
      rules: this.source.rules().map((rule) => {
        const r = judgeRule(rule, windows);
        const digits = r.unit === 'ratio' ? 5 : r.unit === 'per_s' ? 2 : 1;
        return {
          name: r.name,
          metric: r.metric,
          value: round(r.value, digits),
          threshold: round(r.threshold, digits),
          status: r.status,
        };
      }),
    };
    this.prevAt = now;
    this.prevTotals = totals;
    this.points.push(point);
    if (this.points.length > this.capacity) this.points.splice(0, this.points.length - this.capacity);
    return point;
  }

  /** Points taken strictly after `t` (all of them without `t`), oldest first. */
  since(t?: number): SeriesPoint[] {
    if (t === undefined) return this.points.slice();
    let i = this.points.length;
    while (i > 0 && this.points[i - 1]!.t > t) i--;
    return this.points.slice(i);
  }
}
