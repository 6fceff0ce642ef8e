// The SLO guard's decisions, pure: (rollout state, verdict, config, now) → the change the verdict calls for, flap latch included.

import type { Config } from '../config/types.js';
import type { PersistedState } from '../state/store.js';
import { type PlannedChange, percentOf } from './change.js';
import type { RuleResult, Verdict } from './evaluate.js';

export type GuardDecision =
  | { kind: 'none' }
  /** A breach under on_breach alert_only: logged, nothing changes. */
  | { kind: 'alert'; why: string }
  | { kind: 'change'; change: PlannedChange };

/** What the verdict's action means for the rollout as it is now. */
export function decide(verdict: Verdict, current: PersistedState, config: Config, now: number): GuardDecision {
  const action = verdict.action;
  const why = verdict.breached.map(describeBreach).join('; ');
  // The step's own min_duration (rollout.steps objects), else the rollout-wide one.
  const gateSeconds = (verdict.gate?.minDurationMs ?? config.rollout.stepMinDurationMs) / 1000;
  switch (action.kind) {
    case 'alert':
      return { kind: 'alert', why };
    case 'rollback':
      return automatic(current, config, now, 'rollback', `SLO breach: ${why}`, verdict.rules, {
        state: 'rolled_back',
        weight_bp: 0,
      });
    case 'step_down':
      return automatic(
        current,
        config,
        now,
        'step_down',
        `SLO breach: ${why}; stepping down to ${percentOf(action.toBp)}%`,
        verdict.rules,
        { state: 'progressing', weight_bp: action.toBp },
      );
    case 'promote':
      return automatic(
        current,
        config,
        now,
        'promote',
        `every rule passed at this step for ${gateSeconds}s; promoting to ${percentOf(action.toBp)}%`,
        verdict.rules,
        { state: action.toBp === 10_000 ? 'promoted' : 'progressing', weight_bp: action.toBp },
      );
    case 'hold':
      if (current.state !== 'progressing') return { kind: 'none' };
      return gateOpen(
        `every rule passed at this step for ${gateSeconds}s; waiting for an operator to promote to ${percentOf(action.nextBp)}%`,
        verdict.rules,
      );
    case 'stalled':
      // The warning and the audit record are the controller's (once per stall); here only the follow-up.
      if (action.onInconclusive !== 'rollback') return { kind: 'none' };
      return automatic(
        current,
        config,
        now,
        'rollback',
        `stalled: ${stallReason(verdict, current, config)}`,
        verdict.rules,
        {
          state: 'rolled_back',
          weight_bp: 0,
        },
      );
    case 'none':
      return { kind: 'none' };
  }
}

/** Why a step is stalled: how long, against which limit, and which rules still wait for samples. */
export function stallReason(verdict: Verdict, current: PersistedState, config: Config): string {
  const waiting = verdict.rules
    .filter((r) => r.action === 'act' && r.status === 'inconclusive')
    .map((r) => `${r.name} (${r.samples} of ${r.minSamples} samples)`)
    .join(', ');
  const sinceS = verdict.stalledSince === null ? 0 : Math.round((verdict.at - verdict.stalledSince) / 1000);
  return `step at ${percentOf(current.weight_bp)}% inconclusive for ${sinceS}s (slo.inconclusive_limit ${(config.slo.inconclusiveLimitMs ?? 0) / 1000}s): ${waiting || 'not every rule judged at this step'}; on_inconclusive: ${config.slo.onInconclusive}`;
}

/** The guard opens a manual gate: the rollout holds where it is until an operator promotes it. */
export function gateOpen(reason: string, rules: RuleResult[]): { kind: 'change'; change: PlannedChange } {
  return {
    kind: 'change',
    change: {
      spec: { actor: 'slo-guard', action: 'gate_open', reason, cause: 'slo', safe: true, rules },
      mutate: (cur) => ({ ...cur, state: 'holding' }),
    },
  };
}

/** An automatic change counts toward the flap latch; one flip too many latches at the safe side. */
export function automatic(
  current: PersistedState,
  config: Config,
  now: number,
  action: 'rollback' | 'step_down' | 'promote',
  reason: string,
  rules: RuleResult[],
  target: Pick<PersistedState, 'state' | 'weight_bp'>,
): GuardDecision {
  const { flapMaxFlips, flapPeriodMs } = config.slo;
  const flips = [...current.flips.filter((t) => now - t < flapPeriodMs), now];
  if (flips.length > flapMaxFlips) {
    return {
      kind: 'change',
      change: {
        spec: {
          actor: 'slo-guard',
          action: 'latch',
          reason: `${flips.length} automatic changes within ${flapPeriodMs / 1000}s (max ${flapMaxFlips}): latched on legacy until an operator resumes; last trigger: ${reason}`,
          cause: 'slo',
          safe: true,
          rules,
        },
        mutate: (cur) => ({ ...cur, state: 'latched', weight_bp: 0, latched: true, flips }),
        rollbackCause: 'slo',
      },
    };
  }
  return {
    kind: 'change',
    change: {
      spec: { actor: 'slo-guard', action, reason, cause: 'slo', safe: action !== 'promote', rules },
      mutate: (cur) => ({ ...cur, ...target, flips }),
      ...(action === 'rollback' ? { rollbackCause: 'slo' as const } : {}),
    },
  };
}

function formatValue(rule: RuleResult, value: number | null): string {
  if (value === null) return 'n/a';
  if (rule.unit === 'per_s') return `${value.toFixed(1)}/s`;
  return rule.unit === 'ms' ? `${Math.round(value)}ms` : `${(value * 100).toFixed(2)}%`;
}

export function describeBreach(rule: RuleResult): string {
  // A decode rate breaches from below.
  const op = rule.unit === 'per_s' ? '<' : '>';
  return `${rule.name} ${formatValue(rule, rule.value)} ${op} ${formatValue(rule, rule.threshold)} (${rule.samples} samples)`;
}
