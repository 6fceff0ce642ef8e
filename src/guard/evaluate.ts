// Pure SLO evaluation: (windows, policy, guard memory, now) → per-rule results and the action they call for.

import type { QueryRule, SloConfig, SloMetric, SloRule, UpstreamName } from '../config/types.js';
import type { RolloutState, RuleJson, RuleStatus } from '../rollout.js';
import type { QueryReading, QueryReadings } from './prometheus.js';

/** What evaluation reads from a measurement window (a WindowSnapshot satisfies it). */
export interface WindowView {
  requests: number;
  errorRate: number;
  ttfbSamples: number;
  durationSamples: number;
  ttfbQuantile(q: number): number | undefined;
  durationQuantile(q: number): number | undefined;
}

export interface RuleResult {
  name: string;
  text: string;
  metric: SloMetric | 'query';
  status: RuleStatus;
  /**
   * The new upstream's value: milliseconds for latency metrics, a ratio for error_rate, the query's own
   * value for a query rule; null without data.
   */
  value: number | null;
  /** What the value is judged against (absolute, or derived from legacy in the same window). */
  threshold: number | null;
  /** For relative rules, legacy's value in the same window. */
  legacy: number | null;
  unit: 'ms' | 'ratio' | 'value';
  /** Samples behind the value; for relative rules the smaller of the two sides (a query counts 1). */
  samples: number;
  minSamples: number;
  /** Why a query rule is inconclusive (no_data, multiple_series, not_a_number, error, timeout, stale). */
  detail?: string;
}

/** Query rules' latest readings, and how old a reading may be before it no longer counts. */
export interface QueryInput {
  readings: QueryReadings;
  staleAfterMs: number;
}

/** What the guard carries from one evaluation to the next (the controller stores it). */
export interface GuardMemory {
  /** Breaching evaluations in a row. */
  breachStreak: number;
  /** Start of the current run of evaluations in which every rule passed; null when the last did not. */
  passingSince: number | null;
}

export const FRESH_MEMORY: GuardMemory = Object.freeze({ breachStreak: 0, passingSince: null });

/** The routing facts evaluation needs to choose an action. */
export interface RolloutView {
  state: RolloutState;
  weightBp: number;
  stepsBp: readonly number[];
  stepMinDurationMs: number;
  autoPromote: boolean;
  /** When the current weight took effect (a gate's minimum duration counts from here). */
  weightSince: number;
  /** When the guard last changed the weight by itself (the cooldown counts from here). */
  lastChangeAt: number;
}

export type GuardAction =
  /** Nothing to do. */
  | { kind: 'none'; why: string }
  /** Breach with on_breach alert_only: log and count, change nothing. */
  | { kind: 'alert' }
  | { kind: 'rollback' }
  | { kind: 'step_down'; toBp: number }
  | { kind: 'promote'; toBp: number }
  /** A manual gate became eligible: wait for an operator's promote. */
  | { kind: 'hold'; nextBp: number };

export interface Verdict {
  at: number;
  rules: RuleResult[];
  breached: RuleResult[];
  allPassed: boolean;
  action: GuardAction;
  memory: GuardMemory;
  /** Next step above the current weight, and when it becomes eligible, for the status page. */
  gate: { nextBp: number; eligibleAt: number | null } | null;
}

const QUANTILE: Record<Exclude<SloMetric, 'error_rate'>, number> = {
  ttfb_p50: 0.5,
  ttfb_p90: 0.9,
  ttfb_p95: 0.95,
  ttfb_p99: 0.99,
  duration_p95: 0.95,
};

/** A metric's value and sample count in one window. */
export function measure(metric: SloMetric, w: WindowView): { value: number | null; samples: number } {
  if (metric === 'error_rate') return { value: w.requests > 0 ? w.errorRate : null, samples: w.requests };
  if (metric === 'duration_p95') return { value: w.durationQuantile(0.95) ?? null, samples: w.durationSamples };
  return { value: w.ttfbQuantile(QUANTILE[metric]) ?? null, samples: w.ttfbSamples };
}

/** A query reading's value, or why it does not count (a failure, or older than the input allows). */
function usable(reading: QueryReading | undefined, input: QueryInput, now: number): number | string {
  if (reading === undefined) return 'no reading yet';
  if (reading.status !== 'ok') return `${reading.status}: ${reading.detail}`;
  if (now - reading.at > input.staleAfterMs) return `stale: last answer ${now - reading.at} ms ago`;
  return reading.value;
}

/** Judges a query rule on its latest readings: any missing, failed or stale one is inconclusive. */
export function judgeQueryRule(rule: QueryRule, input: QueryInput | undefined, now: number): RuleResult {
  const readings = input?.readings.get(rule.name);
  const mine = input ? usable(readings?.new, input, now) : 'no query source';
  const theirs = rule.kind === 'absolute' ? null : input ? usable(readings?.legacy, input, now) : 'no query source';
  const value = typeof mine === 'number' ? mine : null;
  const legacy = typeof theirs === 'number' ? theirs : null;
  const threshold =
    rule.kind === 'absolute'
      ? rule.threshold
      : legacy === null
        ? null
        : rule.kind === 'ratio_to_legacy'
          ? rule.factor * legacy
          : legacy + rule.delta;
  const base = { name: rule.name, text: rule.text, metric: 'query' as const, unit: 'value' as const, minSamples: 0 };
  if (value === null || threshold === null) {
    const detail = typeof mine === 'string' ? mine : typeof theirs === 'string' ? `legacy_query ${theirs}` : undefined;
    return { ...base, value, threshold, legacy, samples: 0, status: 'inconclusive', detail };
  }
  const status = value <= threshold * (1 + 1e-12) + 1e-12 ? 'pass' : 'breach';
  return { ...base, value, threshold, legacy, samples: 1, status };
}

/** Judges one rule; relative rules read legacy from the same window (or query round), at the same moment. */
export function judgeRule(
  rule: SloRule,
  windows: Record<UpstreamName, WindowView>,
  queries?: QueryInput,
  now = 0,
): RuleResult {
  if (rule.metric === 'query') return judgeQueryRule(rule, queries, now);
  const mine = measure(rule.metric, windows.new);
  const base = {
    name: rule.name,
    text: rule.text,
    metric: rule.metric,
    unit: rule.metric === 'error_rate' ? ('ratio' as const) : ('ms' as const),
    minSamples: rule.minSamples,
    value: mine.value,
  };
  let threshold: number | null;
  let legacy: number | null = null;
  let samples = mine.samples;
  if (rule.kind === 'absolute') {
    threshold = rule.threshold;
  } else {
    const theirs = measure(rule.metric, windows.legacy);
    legacy = theirs.value;
    samples = Math.min(samples, theirs.samples);
    threshold = legacy === null ? null : rule.kind === 'ratio_to_legacy' ? rule.factor * legacy : legacy + rule.delta;
  }
  if (samples < rule.minSamples || mine.value === null || threshold === null) {
    return { ...base, threshold, legacy, samples, status: 'inconclusive' };
  }
  // Float noise must not turn `value == threshold` into a breach (1.2 × 500 is 600.0000000000001).
  const status = mine.value <= threshold * (1 + 1e-12) ? 'pass' : 'breach';
  return { ...base, threshold, legacy, samples, status };
}

/** The first step strictly above the weight (100 % after the last step), or null when at 100 %. */
export function nextStepBp(weightBp: number, stepsBp: readonly number[]): number | null {
  for (const s of stepsBp) if (s > weightBp) return s;
  return weightBp < 10_000 ? 10_000 : null;
}

/** The last step strictly below the weight, or 0 (a rollback) when there is none. */
export function previousStepBp(weightBp: number, stepsBp: readonly number[]): number {
  let prev = 0;
  for (const s of stepsBp) if (s < weightBp) prev = s;
  return prev;
}

/** States in which new carries traffic by weight and the guard may act on it. */
export function guardActive(state: RolloutState, weightBp: number): boolean {
  return (state === 'progressing' || state === 'holding' || state === 'promoted') && weightBp > 0;
}

/**
 * Breaches act once `consecutive_breaches` evaluations in a row breached. A rollback is never held back
 * by the cooldown (it only moves toward safety and only an operator undoes it); a step down or a
 * promotion waits out the cooldown, because the window still holds traffic from before the last change.
 * A step is eligible when every rule passed (none inconclusive) in every evaluation since the weight took
 * effect, for at least step_min_duration.
 */
export function evaluate(
  windows: Record<UpstreamName, WindowView>,
  policy: Pick<SloConfig, 'rules' | 'consecutiveBreaches' | 'onBreach' | 'cooldownMs'>,
  rollout: RolloutView,
  memory: GuardMemory,
  now: number,
  queries?: QueryInput,
): Verdict {
  const rules = policy.rules.map((r) => judgeRule(r, windows, queries, now));
  const breached = rules.filter((r) => r.status === 'breach');
  const allPassed = rules.length > 0 && rules.every((r) => r.status === 'pass');
  const active = guardActive(rollout.state, rollout.weightBp);
  const next: GuardMemory = {
    breachStreak: active && breached.length > 0 ? memory.breachStreak + 1 : 0,
    passingSince: active && allPassed ? Math.max(memory.passingSince ?? now, rollout.weightSince) : null,
  };
  const stepping = rollout.stepsBp.length > 0 && rollout.state !== 'promoted';
  const nextBp = stepping ? nextStepBp(rollout.weightBp, rollout.stepsBp) : null;
  const eligibleAt = next.passingSince === null ? null : next.passingSince + rollout.stepMinDurationMs;
  const gate = active && nextBp !== null ? { nextBp, eligibleAt } : null;
  const done = (action: GuardAction): Verdict => ({ at: now, rules, breached, allPassed, action, memory: next, gate });

  if (!active) return done({ kind: 'none', why: `guard idle: state ${rollout.state}, weight ${rollout.weightBp}bp` });
  const cooling = now - rollout.lastChangeAt < policy.cooldownMs;
  if (breached.length > 0) {
    if (next.breachStreak < policy.consecutiveBreaches) {
      return done({ kind: 'none', why: `breach ${next.breachStreak} of ${policy.consecutiveBreaches} needed` });
    }
    if (policy.onBreach === 'alert_only') return done({ kind: 'alert' });
    if (policy.onBreach === 'rollback') return done({ kind: 'rollback' });
    if (cooling) return done({ kind: 'none', why: 'breach during cooldown' });
    const toBp = previousStepBp(rollout.weightBp, rollout.stepsBp);
    return done(toBp === 0 ? { kind: 'rollback' } : { kind: 'step_down', toBp });
  }
  if (gate === null || eligibleAt === null || now < eligibleAt) return done({ kind: 'none', why: 'no gate open' });
  if (!rollout.autoPromote) return done({ kind: 'hold', nextBp: gate.nextBp });
  if (cooling) return done({ kind: 'none', why: 'gate open during cooldown' });
  return done({ kind: 'promote', toBp: gate.nextBp });
}

/** A rule result as the admin API and the audit log show it (snake_case). */
export function ruleJson(r: RuleResult): RuleJson {
  return {
    name: r.name,
    text: r.text,
    status: r.status,
    value: r.value,
    threshold: r.threshold,
    legacy: r.legacy,
    unit: r.unit,
    samples: r.samples,
    min_samples: r.minSamples,
    ...(r.detail === undefined ? {} : { detail: r.detail }),
  };
}
