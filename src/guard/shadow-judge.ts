// Pure judgement of the shadow: the SLO rules on new's answers to shadow copies against legacy, same window.

import type { Config, SloConfig } from '../config/types.js';
import type { RolloutState } from '../rollout.js';
import type { PersistedState } from '../state/store.js';
import { type ChangeSpec, type PlannedChange, percentOf } from './change.js';
import { automatic, describeBreach, gateOpen } from './decisions.js';
import { judgeRule, type RuleResult, type WindowView } from './evaluate.js';

/** What the shadow's judgement carries from one evaluation to the next. */
export interface ShadowMemory {
  breachStreak: number;
  /** Start of the current run of evaluations in which every rule passed on the shadow. */
  passingSince: number | null;
  /** The current breach streak was already acted on (audited once, not at every evaluation). */
  reported: boolean;
}

export const FRESH_SHADOW_MEMORY: ShadowMemory = Object.freeze({
  breachStreak: 0,
  passingSince: null,
  reported: false,
});

export type ShadowAction =
  | { kind: 'none' }
  /** Breached for `consecutive_breaches` evaluations: recorded and audited; `stop` with on_breach rollback. */
  | { kind: 'breach'; stop: boolean }
  /** In `shadowing`, every rule passed for step_min_duration: open the first step. */
  | { kind: 'open_first_step'; toBp: number }
  /** ...the same, with auto_promote false: wait for an operator's promote. */
  | { kind: 'gate_open'; nextBp: number };

export interface ShadowVerdict {
  at: number;
  rules: RuleResult[];
  breached: RuleResult[];
  action: ShadowAction;
  memory: ShadowMemory;
  /** In `shadowing`: when the first step becomes eligible (null while a rule does not pass). */
  eligibleAt: number | null;
}

/** States in which copies are sent: anything but a kill, a rollback or a latch (new has failed or is off). */
export function shadowRuns(state: RolloutState): boolean {
  return state !== 'killed' && state !== 'rolled_back' && state !== 'latched';
}

/** The shadow share the routing table applies: the operator's (or the config's) percent while it may run. */
export function shadowInForce(s: Pick<PersistedState, 'state' | 'shadow_bp'>, config: Config): number {
  return shadowRuns(s.state) ? (s.shadow_bp ?? config.rollout.shadow.percentBp) : 0;
}

/**
 * Judges every rule with the shadow window in new's place. A breach never moves real traffic: it is
 * reported once per streak, and stops the shadow with on_breach rollback. In `shadowing`, a run of passes
 * as long as step_min_duration (counted from `since`, when the shadow began) opens the first step.
 */
export function judgeShadow(
  windows: { shadow: WindowView; legacy: WindowView },
  policy: Pick<SloConfig, 'rules' | 'consecutiveBreaches'> & { confidence?: number },
  rollout: {
    state: RolloutState;
    stepsBp: readonly number[];
    stepMinDurationMs: number;
    autoPromote: boolean;
    onBreach: 'rollback' | 'alert_only';
    since: number;
  },
  memory: ShadowMemory,
  now: number,
): ShadowVerdict {
  // Query rules read new's real traffic from Prometheus; they say nothing of the copies, so the shadow is
  // judged by the window rules only.
  const rules = policy.rules
    .filter((r) => r.metric !== 'query')
    .map((r) =>
      judgeRule(r, { new: windows.shadow, legacy: windows.legacy }, undefined, now, policy.confidence ?? 0.99),
    );
  // Observe rules are judged and shown, as for real traffic, but neither breach nor gate.
  const acting = rules.filter((r) => r.action === 'act');
  const breached = acting.filter((r) => r.status === 'breach');
  const allPassed = acting.length > 0 && acting.every((r) => r.status === 'pass');
  const streak = breached.length > 0 ? memory.breachStreak + 1 : 0;
  const next: ShadowMemory = {
    breachStreak: streak,
    passingSince: allPassed ? Math.max(memory.passingSince ?? now, rollout.since) : null,
    reported: streak > 0 && memory.reported,
  };
  const shadowing = rollout.state === 'shadowing';
  const eligibleAt = shadowing && next.passingSince !== null ? next.passingSince + rollout.stepMinDurationMs : null;
  const done = (action: ShadowAction): ShadowVerdict => ({
    at: now,
    rules,
    breached,
    action,
    memory: next,
    eligibleAt,
  });
  if (streak >= policy.consecutiveBreaches && !next.reported) {
    next.reported = true;
    return done({ kind: 'breach', stop: rollout.onBreach === 'rollback' });
  }
  if (eligibleAt === null || now < eligibleAt) return done({ kind: 'none' });
  const firstBp = rollout.stepsBp[0] ?? 10_000;
  return done(
    rollout.autoPromote ? { kind: 'open_first_step', toBp: firstBp } : { kind: 'gate_open', nextBp: firstBp },
  );
}

export type ShadowDecision =
  | { kind: 'none' }
  /** A breach under on_breach alert_only: audited, nothing changes. */
  | { kind: 'record'; spec: ChangeSpec }
  | { kind: 'change'; change: PlannedChange };

/** What the shadow's verdict means for the rollout as it is now: no decision ever moves real traffic toward legacy. */
export function shadowDecision(
  verdict: ShadowVerdict,
  current: PersistedState,
  config: Config,
  now: number,
): ShadowDecision {
  const action = verdict.action;
  const rules = verdict.rules;
  const passed = `the shadow passed every rule for ${config.rollout.stepMinDurationMs / 1000}s`;
  switch (action.kind) {
    case 'breach': {
      const why = `SLO breach in the shadow: ${verdict.breached.map(describeBreach).join('; ')}`;
      if (!action.stop) {
        const reason = `${why}; recorded only (rollout.shadow.on_breach: alert_only), real traffic unchanged`;
        return {
          kind: 'record',
          spec: { actor: 'slo-guard', action: 'shadow_breach', reason, cause: 'slo', safe: true, rules },
        };
      }
      const reason = `${why}; shadow stopped (rollout.shadow.on_breach: rollback), real traffic unchanged`;
      return {
        kind: 'change',
        change: {
          spec: { actor: 'slo-guard', action: 'shadow_stop', reason, cause: 'slo', safe: true, rules },
          mutate: (cur) => ({ ...cur, shadow_bp: 0 }),
        },
      };
    }
    case 'open_first_step': {
      if (current.state !== 'shadowing') return { kind: 'none' };
      const decision = automatic(
        current,
        config,
        now,
        'promote',
        `${passed}; opening the first step at ${percentOf(action.toBp)}%`,
        rules,
        {
          state: action.toBp === 10_000 ? 'promoted' : 'progressing',
          weight_bp: action.toBp,
        },
      );
      return decision.kind === 'change' ? decision : { kind: 'none' };
    }
    case 'gate_open':
      if (current.state !== 'shadowing') return { kind: 'none' };
      return gateOpen(`${passed}; waiting for an operator to promote to ${percentOf(action.nextBp)}%`, rules);
    case 'none':
      return { kind: 'none' };
  }
}
