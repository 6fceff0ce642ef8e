// The metrics the SLO rule language knows: each one's unit and which direction is worse.

import type { SloMetric } from './types.js';

/** ms for latencies, ratio for shares of requests or answers, per_s for decode rates (tokens per second). */
export type SloUnit = 'ms' | 'ratio' | 'per_s';

interface MetricTraits {
  unit: SloUnit;
  /** Judged from below (`>=`): a decode rate is worse when it is lower. */
  higherIsBetter: boolean;
}

const latency: MetricTraits = { unit: 'ms', higherIsBetter: false };
const ratio: MetricTraits = { unit: 'ratio', higherIsBetter: false };

export const SLO_METRIC_TRAITS: Readonly<Record<SloMetric, MetricTraits>> = {
  ttfb_p50: latency,
  ttfb_p90: latency,
  ttfb_p95: latency,
  ttfb_p99: latency,
  duration_p95: latency,
  error_rate: ratio,
  itl_p50: latency,
  itl_p95: latency,
  itl_p99: latency,
  tpot_p95: latency,
  tokens_per_s_p5: { unit: 'per_s', higherIsBetter: true },
  incomplete_rate: ratio,
  inband_error_rate: ratio,
  empty_rate: ratio,
};

export const SLO_METRICS = Object.keys(SLO_METRIC_TRAITS) as SloMetric[];

export function isSloMetric(name: string): name is SloMetric {
  return Object.hasOwn(SLO_METRIC_TRAITS, name);
}

export function metricUnit(metric: SloMetric): SloUnit {
  return SLO_METRIC_TRAITS[metric].unit;
}

export function higherIsBetter(metric: SloMetric): boolean {
  return SLO_METRIC_TRAITS[metric].higherIsBetter;
}

const RATE = /^\s*(\d+(?:\.\d+)?)\s*(?:(?:tokens?)?\s*\/\s*s)?\s*$/;

/** A decode rate: `30`, `30/s` or `30 tokens/s`; undefined otherwise. */
export function parseRate(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = RATE.exec(value);
  return m ? Number(m[1]) : undefined;
}
