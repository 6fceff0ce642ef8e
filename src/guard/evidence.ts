// Judging one rule on its evidence: a value with its sample count, confidence bounds and hangs still open.

import { higherIsBetter, metricUnit, type SloUnit } from '../config/slo-metrics.js';
import type { RuleAction, SloMetric, UpstreamName, WindowRule } from '../config/types.js';
import { type RateEvidence, rateEvidence } from '../measure/confidence.js';
import { type Centroid, mergeSorted, quantileOf } from '../measure/quantile.js';
import type { TokenView } from '../measure/token-window.js';
import type { RuleStatus } from '../rollout.js';
import { isTokenRate, measureToken, tokenRateCounts } from './token-metrics.js';

/** What evaluation reads from a measurement window (a WindowSnapshot satisfies it). */
export interface WindowView {
  requests: number;
  errorRate: number;
  /** Upstream errors among `requests`; derived from errorRate when a view does not say. */
  errors?: number;
  ttfbSamples: number;
  durationSamples: number;
  ttfbQuantile(q: number): number | undefined;
  durationQuantile(q: number): number | undefined;
  /** TTFB centroids sorted by mean: lets a read add the requests still waiting (censored samples). */
  ttfbCentroids?(): Centroid[];
  /** Ages (ms, oldest first) of this side's requests still waiting for a first byte longer than `ms`. */
  waitingOver?(ms: number): number[];
  /** Token accounting's side of the window; absent (token rules inconclusive) when nothing provides it. */
  tokens?: TokenView | undefined;
  /** The same side with only the samples taken since `at` (a step's start); absent when it cannot tell. */
  since?(at: number): WindowView;
}

export interface RuleResult {
  name: string;
  text: string;
  metric: SloMetric | 'query';
  /** observe: shown, exported and alerted, never acting. */
  action: RuleAction;
  status: RuleStatus;
  /**
   * The new upstream's value: milliseconds for latency metrics, a ratio for rates, the query's own value
   * for a query rule; null without data.
   */
  value: number | null;
  /** What the value is judged against (absolute, or derived from legacy in the same window). */
  threshold: number | null;
  /** For relative rules, legacy's value in the same window. */
  legacy: number | null;
  unit: SloUnit | 'value';
  /** Samples behind the value (hangs included); for relative rules the smaller of the two sides. */
  samples: number;
  minSamples: number;
  /**
   * The bounds the evidence rests on, at slo.confidence: for rates, new's rate; for quantiles, the share
   * of new's requests slower than the threshold. Null when not computed.
   */
  lower: number | null;
  upper: number | null;
  /** Requests still waiting for their first byte past the threshold, counted as samples at least that slow. */
  waiting: number;
  /** How a pass or breach was reached: on min_samples, or on the bounds before min_samples. */
  decidedBy: 'samples' | 'bounds' | null;
  /** Why a query rule is inconclusive (no_data, multiple_series, not_a_number, error, timeout, stale). */
  detail?: string;
}

const QUANTILE: Partial<Record<SloMetric, number>> = {
  ttfb_p50: 0.5,
  ttfb_p90: 0.9,
  ttfb_p95: 0.95,
  ttfb_p99: 0.99,
  duration_p95: 0.95,
};

/** A metric's value and sample count in one window (no evidence: what the dashboard plots). */
export function measure(metric: SloMetric, w: WindowView): { value: number | null; samples: number } {
  if (metric === 'error_rate') return { value: w.requests > 0 ? w.errorRate : null, samples: w.requests };
  if (metric === 'duration_p95') return { value: w.durationQuantile(0.95) ?? null, samples: w.durationSamples };
  const q = QUANTILE[metric];
  if (q !== undefined) return { value: w.ttfbQuantile(q) ?? null, samples: w.ttfbSamples };
  // Token metrics (streams as samples); a side without token figures has none.
  return measureToken(metric, w) ?? { value: null, samples: 0 };
}

export const isRateMetric = (metric: SloMetric): boolean => metric === 'error_rate' || isTokenRate(metric);

/** TTFB and duration quantiles: judged with the requests still waiting (hangs) counted in. */
const isRequestQuantile = (metric: SloMetric): boolean => metric === 'duration_p95' || QUANTILE[metric] !== undefined;

/** (failures, total) of a rate metric on one side; the shape any rate rule (errors, token rates) reads. */
export function rateCounts(metric: SloMetric, w: WindowView): { failures: number; total: number } {
  if (isTokenRate(metric)) return tokenRateCounts(metric, w);
  if (metric !== 'error_rate') throw new Error(`${metric} is not a rate`);
  const failures = w.errors ?? Math.round(w.errorRate * w.requests);
  return { failures, total: w.requests };
}

/** Float noise must not turn `value == threshold` into a breach (1.2 × 500 is 600.0000000000001). */
const within = (value: number, threshold: number) => value <= threshold * (1 + 1e-12);

type Judged = Omit<RuleResult, 'name' | 'text' | 'metric' | 'action' | 'unit' | 'minSamples'>;

/**
 * A rate rule on (failures, total) breaches when the evidence is conclusive, at any count: new's lower
 * bound above the threshold (absolute), or above legacy's upper bound plus δ / times the factor (relative).
 * It passes from min_samples on when the rate is within the threshold. A rate above the threshold whose
 * lower bound is not (yet) above it is inconclusive: it neither acts nor counts toward a promotion.
 */
export function judgeRate(
  rule: WindowRule,
  mine: { failures: number; total: number },
  theirs: { failures: number; total: number } | null,
  confidence: number,
): Judged {
  const m = rateEvidence(mine.failures, mine.total, confidence);
  const base = { value: m.value, lower: m.total > 0 ? m.lower : null, upper: m.total > 0 ? m.upper : null, waiting: 0 };
  let threshold: number | null;
  let legacy: number | null = null;
  let samples = m.total;
  let boundThreshold: number | null;
  if (rule.kind === 'absolute') {
    threshold = rule.threshold;
    boundThreshold = rule.threshold;
  } else {
    const l: RateEvidence = rateEvidence(theirs?.failures ?? 0, theirs?.total ?? 0, confidence);
    legacy = l.value;
    samples = Math.min(samples, l.total);
    const derive = (x: number) => (rule.kind === 'ratio_to_legacy' ? rule.factor * x : x + rule.delta);
    threshold = legacy === null ? null : derive(legacy);
    boundThreshold = l.total > 0 ? derive(l.upper) : null;
  }
  const enough = samples >= rule.minSamples;
  if (m.total > 0 && boundThreshold !== null && m.lower > boundThreshold) {
    return { ...base, threshold, legacy, samples, status: 'breach', decidedBy: enough ? 'samples' : 'bounds' };
  }
  if (enough && m.value !== null && threshold !== null && within(m.value, threshold)) {
    return { ...base, threshold, legacy, samples, status: 'pass', decidedBy: 'samples' };
  }
  // Above the threshold but not conclusively (2 errors in 140 at 1 %), or too few samples: neither acts.
  return { ...base, threshold, legacy, samples, status: 'inconclusive', decidedBy: null };
}

/** Requests waiting past `ms` as centroids of one sample each at their current age, sorted by mean. */
function waitingCentroids(ages: readonly number[]): Centroid[] {
  const out: Centroid[] = new Array(ages.length);
  // agesOver lists the oldest first: reversed, they are sorted ascending.
  for (let i = 0; i < ages.length; i++) out[i] = { mean: ages[ages.length - 1 - i]!, n: 1 };
  return out;
}

/**
 * A quantile rule. A TTFB rule counts each request still waiting for its first byte longer than the
 * threshold as one more sample at its current age (it is at least that slow), so hangs weigh in while
 * they hang, not when ttfb_timeout ends them. Below min_samples it breaches only when the share of
 * requests hanging past the threshold is conclusively above 1 − q (e.g. 5 % for a p95).
 */
function judgeQuantile(rule: WindowRule, windows: Record<UpstreamName, WindowView>, confidence: number): Judged {
  const q = rule.metric === 'duration_p95' ? 0.95 : QUANTILE[rule.metric]!;
  const ttfb = rule.metric !== 'duration_p95';
  const read = (w: WindowView) => (ttfb ? w.ttfbQuantile(q) : w.durationQuantile(q)) ?? null;
  const count = (w: WindowView) => (ttfb ? w.ttfbSamples : w.durationSamples);
  let threshold: number | null;
  let legacy: number | null = null;
  let legacySamples = Number.POSITIVE_INFINITY;
  if (rule.kind === 'absolute') threshold = rule.threshold;
  else {
    legacy = read(windows.legacy);
    legacySamples = count(windows.legacy);
    threshold = legacy === null ? null : rule.kind === 'ratio_to_legacy' ? rule.factor * legacy : legacy + rule.delta;
  }
  const side = windows.new;
  const ages = ttfb && threshold !== null && side.waitingOver ? side.waitingOver(threshold) : [];
  const centroids = side.ttfbCentroids?.();
  let value = read(side);
  if (ages.length > 0) {
    value = centroids
      ? (quantileOf(mergeSorted(centroids, waitingCentroids(ages)), q) ?? null)
      : Math.max(value ?? 0, ages[0]!);
  }
  const mineSamples = count(side) + ages.length;
  const samples = Math.min(mineSamples, legacySamples);
  const base = { value, threshold, legacy, samples, waiting: ages.length };
  if (samples >= rule.minSamples && value !== null && threshold !== null) {
    return {
      ...base,
      lower: null,
      upper: null,
      status: within(value, threshold) ? 'pass' : 'breach',
      decidedBy: 'samples',
    };
  }
  // Evidence before min_samples needs a threshold that is itself judged (legacy at min_samples).
  if (threshold === null || legacySamples < rule.minSamples || mineSamples === 0) {
    return { ...base, lower: null, upper: null, status: 'inconclusive', decidedBy: null };
  }
  // Only requests still hanging count as evidence here, never finished slow ones: a few slow first requests
  // (veer's own warm-up, a cold cache) must not roll back before min_samples.
  const ev = rateEvidence(ages.length, mineSamples, confidence);
  const status = ev.lower > 1 - q ? 'breach' : 'inconclusive';
  return { ...base, lower: ev.lower, upper: ev.upper, status, decidedBy: status === 'breach' ? 'bounds' : null };
}

/**
 * A token quantile rule (ITL, TPOT, decode rate; streams as samples): judged on min_samples alone, as a
 * TTFB rule is without hangs. A decode rate is judged from below (`>=`, and `legacy - DELTA`).
 */
function judgeTokenQuantile(rule: WindowRule, windows: Record<UpstreamName, WindowView>): Judged {
  const mine = measure(rule.metric, windows.new);
  const fromBelow = higherIsBetter(rule.metric);
  let threshold: number | null;
  let legacy: number | null = null;
  let samples = mine.samples;
  if (rule.kind === 'absolute') threshold = rule.threshold;
  else {
    const theirs = measure(rule.metric, windows.legacy);
    legacy = theirs.value;
    samples = Math.min(samples, theirs.samples);
    threshold =
      legacy === null
        ? null
        : rule.kind === 'ratio_to_legacy'
          ? rule.factor * legacy
          : legacy + (fromBelow ? -rule.delta : rule.delta);
  }
  const base = { value: mine.value, threshold, legacy, samples, lower: null, upper: null, waiting: 0 };
  if (samples < rule.minSamples || mine.value === null || threshold === null) {
    return { ...base, status: 'inconclusive', decidedBy: null };
  }
  const passes = fromBelow ? mine.value >= threshold * (1 - 1e-12) : within(mine.value, threshold);
  return { ...base, status: passes ? 'pass' : 'breach', decidedBy: 'samples' };
}

/** Judges one window rule on its evidence; relative rules read legacy from the same window, at the same moment. */
export function judgeWindowRule(
  rule: WindowRule,
  windows: Record<UpstreamName, WindowView>,
  confidence = 0.99,
): RuleResult {
  const judged = isRateMetric(rule.metric)
    ? judgeRate(
        rule,
        rateCounts(rule.metric, windows.new),
        rule.kind === 'absolute' ? null : rateCounts(rule.metric, windows.legacy),
        confidence,
      )
    : isRequestQuantile(rule.metric)
      ? judgeQuantile(rule, windows, confidence)
      : judgeTokenQuantile(rule, windows);
  return {
    name: rule.name,
    text: rule.text,
    metric: rule.metric,
    action: rule.action ?? 'act',
    unit: metricUnit(rule.metric),
    minSamples: rule.minSamples,
    ...judged,
  };
}
