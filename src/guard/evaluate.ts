// Pure SLO evaluation: (windows, policy, guard memory, now) → per-rule results and the action they call for.

import type { QueryRule, SloConfig, SloRule, StepPlan, UpstreamName } from '../config/types.js';
import type { RolloutState, RuleJson } from '../rollout.js';
import { judgeWindowRule, type RuleResult, type WindowView } from './evidence.js';
import type { QueryReading, QueryReadings } from './prometheus.js';

export type { RuleStatus } from '../rollout.js';
export { measure, type RuleResult, rateCounts, type WindowView } from './evidence.js';

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
  /** Breaching evaluations at this step, in a row or not (slo.failure_limit). */
  stepBreaches?: number;
  /** Start of the current run of evaluations with an acting rule inconclusive; null when the last was conclusive. */
  inconclusiveSince?: number | null;
  /** The step has been inconclusive for slo.inconclusive_limit (escalated once, until evidence comes). */
  stalled?: boolean;
}

export const FRESH_MEMORY: GuardMemory = Object.freeze({
  breachStreak: 0,
  passingSince: null,
  stepBreaches: 0,
  inconclusiveSince: null,
  stalled: false,
});

/** The routing facts evaluation needs to choose an action. */
export interface RolloutView {
  state: RolloutState;
  weightBp: number;
  stepsBp: readonly number[];
  stepMinDurationMs: number;
  autoPromote: boolean;
  /** Each step's own plan; a weight not on a step uses stepMinDurationMs and autoPromote. */
  stepPlans?: readonly StepPlan[];
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
  | { kind: 'hold'; nextBp: number }
  /** The step stayed inconclusive for slo.inconclusive_limit: escalate, then hold or roll back. */
  | { kind: 'stalled'; onInconclusive: 'hold' | 'rollback'; sinceMs: number };

export interface Verdict {
  at: number;
  rules: RuleResult[];
  /** Acting rules that breached. */
  breached: RuleResult[];
  /** Observe rules that breached: alerted, never acted on. */
  observed: RuleResult[];
  /** Every acting rule passed on the samples taken at this step. */
  allPassed: boolean;
  action: GuardAction;
  memory: GuardMemory;
  /** Next step above the current weight, and when it becomes eligible, for the status page. */
  gate: { nextBp: number; eligibleAt: number | null; manual: boolean; minDurationMs: number } | null;
  /** The step has been inconclusive since this time for at least slo.inconclusive_limit; null otherwise. */
  stalledSince: number | null;
}

/** Policy fields evaluation reads; the evidence fields default as the config does. */
export type EvaluationPolicy = Pick<SloConfig, 'rules' | 'consecutiveBreaches' | 'onBreach' | 'cooldownMs'> &
  Partial<Pick<SloConfig, 'confidence' | 'failureLimit' | 'inconclusiveLimitMs' | 'onInconclusive'>>;

/** A query reading's value, or why it does not count (a failure, or older than the input allows). */
function usable(reading: QueryReading | undefined, input: QueryInput, now: number): number | string {
  if (reading === undefined) return 'no reading yet';
  if (reading.status !== 'ok') return `${reading.status}: ${reading.detail}`;
  if (now - reading.at > input.staleAfterMs) return `stale: last answer ${now - reading.at} ms ago`;
  return reading.value;
}

/** Judges a query rule on its latest readings: any missing, failed or stale one is inconclusive. */
export function judgeQueryRule(
  rule: QueryRule & { action?: SloRule['action'] },
  input: QueryInput | undefined,
  now: number,
): RuleResult {
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
  const base = {
    name: rule.name,
    text: rule.text,
    metric: 'query' as const,
    action: rule.action ?? 'act',
    unit: 'value' as const,
    minSamples: 0,
    lower: null,
    upper: null,
    waiting: 0,
  };
  if (value === null || threshold === null) {
    const detail = typeof mine === 'string' ? mine : typeof theirs === 'string' ? `legacy_query ${theirs}` : undefined;
    return { ...base, value, threshold, legacy, samples: 0, status: 'inconclusive', decidedBy: null, detail };
  }
  const status = value <= threshold * (1 + 1e-12) + 1e-12 ? 'pass' : 'breach';
  return { ...base, value, threshold, legacy, samples: 1, status, decidedBy: 'samples' };
}

/**
 * Judges one rule; relative rules read legacy from the same window (or query round), at the same moment.
 * Window rules are judged on their evidence (guard/evidence.ts) at `confidence`.
 */
export function judgeRule(
  rule: SloRule,
  windows: Record<UpstreamName, WindowView>,
  queries?: QueryInput,
  now = 0,
  confidence = 0.99,
): RuleResult {
  if (rule.metric === 'query') return judgeQueryRule(rule, queries, now);
  return judgeWindowRule(rule, windows, confidence);
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

const EMPTY_SIDE: WindowView = {
  requests: 0,
  errorRate: 0,
  errors: 0,
  ttfbSamples: 0,
  durationSamples: 0,
  ttfbQuantile: () => undefined,
  durationQuantile: () => undefined,
};

/**
 * The samples taken at this step: each side's own `since` when it has one; a view that cannot tell (a
 * fleet's merged window) counts only once the whole window is younger than the step, and is empty before.
 */
export function stepWindows(
  windows: Record<UpstreamName, WindowView>,
  stepStart: number,
  windowMs: number,
  now: number,
): Record<UpstreamName, WindowView> {
  const { legacy, new: fresh } = windows;
  if (legacy.since && fresh.since) return { legacy: legacy.since(stepStart), new: fresh.since(stepStart) };
  return now - stepStart >= windowMs ? windows : { legacy: EMPTY_SIDE, new: EMPTY_SIDE };
}

/** The plan of the step the weight is on; a weight between steps takes the rollout-wide plan. */
export function stepPlan(rollout: RolloutView): StepPlan {
  const own = rollout.stepPlans?.find((p) => p.bp === rollout.weightBp);
  return (
    own ?? {
      bp: rollout.weightBp,
      minDurationMs: rollout.stepMinDurationMs,
      gate: rollout.autoPromote ? 'auto' : 'manual',
    }
  );
}

/**
 * Breaches act once `consecutive_breaches` evaluations in a row breached, or `failure_limit` evaluations at
 * this step did. A rollback is never held back by the cooldown (it only moves toward safety and only an
 * operator undoes it); a step down or a promotion waits out the cooldown, because the window still holds
 * traffic from before the last change. A step is eligible when every acting rule passed (none
 * inconclusive), judged on `stepWindows` (the samples taken at this step), in every evaluation for at
 * least the step's min_duration. Observe rules are judged and reported, never acted on.
 */
export function evaluate(
  windows: Record<UpstreamName, WindowView>,
  policy: EvaluationPolicy,
  rollout: RolloutView,
  memory: GuardMemory,
  now: number,
  queries?: QueryInput,
  stepWindows: Record<UpstreamName, WindowView> = windows,
): Verdict {
  const confidence = policy.confidence ?? 0.99;
  const rules = policy.rules.map((r) => judgeRule(r, windows, queries, now, confidence));
  const acting = rules.filter((r) => r.action === 'act');
  const breached = acting.filter((r) => r.status === 'breach');
  const observed = rules.filter((r) => r.action === 'observe' && r.status === 'breach');
  const gateRules =
    stepWindows === windows
      ? acting
      : policy.rules
          .filter((r) => (r.action ?? 'act') === 'act')
          .map((r) => judgeRule(r, stepWindows, queries, now, confidence));
  const allPassed = gateRules.length > 0 && gateRules.every((r) => r.status === 'pass');
  const inconclusive = breached.length === 0 && gateRules.some((r) => r.status === 'inconclusive');
  const active = guardActive(rollout.state, rollout.weightBp);
  const stepping = rollout.stepsBp.length > 0 && rollout.state !== 'promoted';
  const nextBp = stepping ? nextStepBp(rollout.weightBp, rollout.stepsBp) : null;
  const plan = stepPlan(rollout);
  const inconclusiveSince = active && nextBp !== null && inconclusive ? (memory.inconclusiveSince ?? now) : null;
  const limit = policy.inconclusiveLimitMs ?? null;
  const stalledSince =
    limit !== null && inconclusiveSince !== null && now - inconclusiveSince >= limit ? inconclusiveSince : null;
  const next: GuardMemory = {
    breachStreak: active && breached.length > 0 ? memory.breachStreak + 1 : 0,
    passingSince: active && allPassed ? Math.max(memory.passingSince ?? now, rollout.weightSince) : null,
    stepBreaches: (memory.stepBreaches ?? 0) + (active && breached.length > 0 ? 1 : 0),
    inconclusiveSince,
    stalled: stalledSince !== null,
  };
  const eligibleAt = next.passingSince === null ? null : next.passingSince + plan.minDurationMs;
  const gate =
    active && nextBp !== null
      ? { nextBp, eligibleAt, manual: plan.gate === 'manual', minDurationMs: plan.minDurationMs }
      : null;
  const done = (action: GuardAction): Verdict => ({
    at: now,
    rules,
    breached,
    observed,
    allPassed,
    action,
    memory: next,
    gate,
    stalledSince,
  });

  if (!active) return done({ kind: 'none', why: `guard idle: state ${rollout.state}, weight ${rollout.weightBp}bp` });
  const cooling = now - rollout.lastChangeAt < policy.cooldownMs;
  if (breached.length > 0) {
    const budget = policy.failureLimit ?? null;
    const overBudget = budget !== null && (next.stepBreaches ?? 0) >= budget;
    if (next.breachStreak < policy.consecutiveBreaches && !overBudget) {
      const of = budget === null ? '' : `, ${next.stepBreaches} of ${budget} at this step`;
      return done({ kind: 'none', why: `breach ${next.breachStreak} of ${policy.consecutiveBreaches} in a row${of}` });
    }
    if (policy.onBreach === 'alert_only') return done({ kind: 'alert' });
    if (policy.onBreach === 'rollback') return done({ kind: 'rollback' });
    if (cooling) return done({ kind: 'none', why: 'breach during cooldown' });
    const toBp = previousStepBp(rollout.weightBp, rollout.stepsBp);
    return done(toBp === 0 ? { kind: 'rollback' } : { kind: 'step_down', toBp });
  }
  if (stalledSince !== null) {
    return done({ kind: 'stalled', onInconclusive: policy.onInconclusive ?? 'hold', sinceMs: now - stalledSince });
  }
  if (gate === null || eligibleAt === null || now < eligibleAt) return done({ kind: 'none', why: 'no gate open' });
  if (gate.manual) return done({ kind: 'hold', nextBp: gate.nextBp });
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
    action: r.action,
    lower: r.lower,
    upper: r.upper,
    waiting: r.waiting,
    decided_by: r.decidedBy,
  };
}
