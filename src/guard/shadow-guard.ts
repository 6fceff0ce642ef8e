// The shadow's guard: judges the shadow window at each evaluation, keeps its memory, audits a breach it only records.

import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/registry.js';
import type { AuditEntry } from '../state/audit.js';
import type { PersistedState } from '../state/store.js';
import { type FleetHooks, summary } from './apply.js';
import type { PlannedChange } from './change.js';
import { ruleJson, type WindowView } from './evaluate.js';
import {
  FRESH_SHADOW_MEMORY,
  judgeShadow,
  type ShadowMemory,
  type ShadowVerdict,
  shadowDecision,
  shadowInForce,
} from './shadow-judge.js';

export interface ShadowGuardOptions {
  metrics: Metrics;
  logger: Logger;
  clock: () => number;
  /** The shadow window and legacy's (absent: no shadow wired, nothing judged). */
  shadowWindows?: () => { shadow: WindowView; legacy: WindowView };
  audit: (entry: AuditEntry) => void;
}

export class ShadowGuard {
  lastVerdict: ShadowVerdict | undefined;
  private memory: ShadowMemory = FRESH_SHADOW_MEMORY;
  /** The shadow the memory belongs to (state and share): a new one starts with a fresh memory. */
  private judged = '';

  constructor(private readonly options: ShadowGuardOptions) {}

  /** One evaluation; returns the change to apply (stop the shadow, open the first step, hold), if any. */
  judge(
    rollout: PersistedState,
    config: Config,
    fleet: FleetHooks | undefined,
    now: number,
  ): { kind: 'none' } | { kind: 'change'; change: PlannedChange } {
    const read = this.options.shadowWindows;
    const inForce = shadowInForce(rollout, config);
    const judged = `${rollout.state}:${inForce}`;
    if (judged !== this.judged) this.memory = FRESH_SHADOW_MEMORY;
    this.judged = judged;
    // In a fleet only the lease holder judges (and keeps memory), as for the main guard.
    if (!read || inForce === 0 || (fleet && !fleet.mayAct())) {
      this.memory = FRESH_SHADOW_MEMORY;
      this.lastVerdict = undefined;
      return { kind: 'none' };
    }
    const r = config.rollout;
    const verdict = judgeShadow(
      read(),
      config.slo,
      {
        state: rollout.state,
        stepsBp: r.stepsBp,
        stepMinDurationMs: r.stepMinDurationMs,
        autoPromote: r.autoPromote,
        onBreach: r.shadow.onBreach,
        since: rollout.weight_since,
      },
      this.memory,
      now,
    );
    this.lastVerdict = verdict;
    this.memory = verdict.memory;
    for (const rule of verdict.rules) {
      const status = rule.status === 'pass' ? 1 : rule.status === 'breach' ? -1 : 0;
      this.options.metrics.shadowRuleStatus.set({ rule: rule.name }, status);
    }
    const decision = shadowDecision(verdict, rollout, config, this.options.clock());
    if (decision.kind === 'record') {
      const spec = decision.spec;
      const state = summary(rollout);
      this.options.audit({
        time: new Date(this.options.clock()).toISOString(),
        actor: spec.actor,
        action: spec.action,
        reason: spec.reason,
        rollout_id: rollout.rollout_id,
        before: state,
        after: state,
        rules: (spec.rules ?? []).map(ruleJson),
      });
      this.options.logger.warn({ action: spec.action, rules: verdict.breached }, spec.reason);
      return { kind: 'none' };
    }
    if (decision.kind === 'none') return decision;
    // Stopping the shadow is always allowed; opening a step needs the fleet's confirmation.
    if (decision.change.spec.action !== 'shadow_stop' && fleet && !fleet.mayMoveTowardNew()) return { kind: 'none' };
    return decision;
  }
}
