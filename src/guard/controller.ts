// The rollout's controller: runs the SLO guard on a timer and takes operator and config commands, all applied through one writer of routing state.

import type { Config, UpstreamName } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Clock } from '../measure/window.js';
import { type Metrics, setSloRuleSeries } from '../metrics/registry.js';
import type { RoutingTable } from '../routing/table.js';
import type { AuditLog } from '../state/audit.js';
import type { PersistedState, StateStore } from '../state/store.js';
import { type ControllerObserver, type FleetHooks, type LocalChange, RoutingStateWriter, summary } from './apply.js';
import { type ChangeOutcome, freshState, NOTHING_CHANGED, type PlannedChange, percentOf } from './change.js';
import {
  killChange,
  newRolloutChange,
  overrideLists,
  promoteChange,
  reloadChange,
  removeOverridesChange,
  resumeChange,
  rollbackChange,
  setOverridesChange,
  shadowChange,
  weightChange,
} from './commands.js';
import { decide, describeBreach, stallReason } from './decisions.js';
import {
  evaluate,
  FRESH_MEMORY,
  type GuardMemory,
  guardActive,
  type QueryInput,
  ruleJson,
  stepWindows,
  type Verdict,
  type WindowView,
} from './evaluate.js';
import { RefusalAudit } from './refusals.js';
import { ShadowGuard } from './shadow-guard.js';
import type { ShadowVerdict } from './shadow-judge.js';

export { type ControllerObserver, type FleetHooks, type LocalChange, type Proposal, summary } from './apply.js';
export { type ChangeOutcome, ControllerError, freshState, notPersistedError, settledOutcome } from './change.js';
export { describeBreach } from './decisions.js';
export { REFUSED_PER_MINUTE } from './refusals.js';

export interface ControllerOptions {
  config: Config;
  store: StateStore;
  audit: AuditLog;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  /** The measurement windows as they are now. */
  windows: () => Record<UpstreamName, WindowView>;
  /** Publishes a routing snapshot to the request path. */
  swap: (table: RoutingTable) => void;
  /** Query rules' latest readings (Prometheus), when the policy has query rules. */
  queries?: () => QueryInput | undefined;
  /** Told of each applied change and each evaluation this sidecar acts on (notifications). */
  observers?: readonly ControllerObserver[];
  /** The shadow window and legacy's, when the shadow is wired (judged by the same rules). */
  shadowWindows?: () => { shadow: WindowView; legacy: WindowView };
}

export class Controller {
  lastVerdict: Verdict | undefined;
  /** What the guard carries from one evaluation to the next (breach streak, gate clock). */
  private memory: GuardMemory = FRESH_MEMORY;
  /** The shadow's own judgement (rollout.shadow), beside the main one. */
  private readonly shadow: ShadowGuard;
  private timer: NodeJS.Timeout | undefined;
  private config: Config;
  private readonly writer: RoutingStateWriter;
  private readonly refusals: RefusalAudit;

  private constructor(
    private readonly options: ControllerOptions,
    initial: PersistedState,
  ) {
    this.config = options.config;
    this.writer = new RoutingStateWriter(
      { ...options, moved: () => (this.memory = FRESH_MEMORY) },
      options.config,
      initial,
    );
    this.refusals = new RefusalAudit(options.clock, (entry) => this.writer.appendAudit(entry));
    this.shadow = new ShadowGuard({ ...options, audit: (entry) => this.writer.appendAudit(entry) });
  }

  /**
   * Loads the state file (a StateFileError propagates: never start on a state we cannot read), keeps it
   * when it belongs to this rollout id, and otherwise starts the rollout afresh, audited.
   */
  static open(options: ControllerOptions): Controller {
    const now = options.clock();
    const saved = options.store.load();
    if (saved && saved.rollout_id === options.config.rollout.id) {
      const controller = new Controller(options, saved);
      controller.writer.restore();
      options.logger.info(
        {
          rollout: saved.rollout_id,
          state: saved.state,
          weight_percent: percentOf(saved.weight_bp),
          version: saved.version,
        },
        'rollout state restored',
      );
      return controller;
    }
    const controller = new Controller(options, saved ?? freshState(options.config, now));
    const reason = saved
      ? `new rollout id ${options.config.rollout.id} (was ${saved.rollout_id}): starting afresh`
      : `rollout ${options.config.rollout.id} started`;
    // A state file that cannot be written does not keep veer from starting on the config's own initial
    // state (a restart rebuilds the same): the apply logs it, and /readyz reports the file until it can be
    // written, as it does after a restore.
    controller.writer.apply({
      spec: {
        actor: 'config',
        action: saved ? 'new_rollout' : 'start',
        reason,
        cause: 'config',
        safe: true,
        noBefore: !saved,
      },
      mutate: () => ({ ...freshState(options.config, now), version: (saved?.version ?? 0) + 1 }),
      replace: true,
    });
    return controller;
  }

  get table(): RoutingTable {
    return this.writer.table;
  }

  get snapshot(): Readonly<PersistedState> {
    return this.writer.state;
  }

  /** The shadow's last verdict (undefined while no shadow runs). */
  get lastShadowVerdict(): ShadowVerdict | undefined {
    return this.shadow.lastVerdict;
  }

  get policy(): Config['slo'] {
    return this.config.slo;
  }

  /** False when the last write of the state file failed (reported by /readyz). */
  get persisted(): boolean {
    return this.writer.persisted;
  }

  attachFleet(hooks: FleetHooks | undefined): void {
    this.writer.fleet = hooks;
  }

  /** Fleet mode: a local change made during a fleet write, applied again on the adopted state. */
  reapply(change: LocalChange): void {
    this.writer.reapply(change);
  }

  /** Fleet mode: the store holds our state as of `version` in its seeding `epoch`. */
  noteFleetVersion(version: number, epoch?: string): void {
    this.writer.noteFleetVersion(version, epoch);
  }

  /** Fleet mode: the fleet's shared state, newer than ours, applied as is. */
  adopt(shared: PersistedState, actor = 'fleet'): void {
    this.writer.adopt(shared, actor);
  }

  start(): void {
    this.stop();
    this.timer = setInterval(() => {
      try {
        this.tick();
      } catch (err) {
        // The guard must never take the proxy down; a failed evaluation is logged and retried next tick.
        this.options.logger.error({ err: (err as Error).message }, 'SLO evaluation failed');
      }
    }, this.config.slo.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  // ---- the SLO guard ----

  /**
   * One evaluation: judge the windows, update rule metrics, apply the verdict. A change the state file
   * cannot take is still in effect when it moves toward legacy; the writer logs it and /readyz reports it.
   */
  tick(now = this.options.clock()): Verdict {
    const rollout = this.writer.state;
    const windows = this.options.windows();
    const verdict = evaluate(
      windows,
      this.config.slo,
      {
        state: rollout.state,
        weightBp: rollout.weight_bp,
        stepsBp: this.config.rollout.stepsBp,
        stepMinDurationMs: this.config.rollout.stepMinDurationMs,
        autoPromote: this.config.rollout.autoPromote,
        stepPlans: this.config.rollout.stepPlans,
        weightSince: rollout.weight_since,
        // The last automatic change (flips are kept in time order). Operator and config changes do not
        // start a cooldown: an operator meant it, and at start-up the window holds nothing from before.
        lastChangeAt: rollout.flips.at(-1) ?? Number.NEGATIVE_INFINITY,
      },
      this.memory,
      now,
      this.options.queries?.(),
      // A promotion judges only the samples taken at this step.
      stepWindows(windows, rollout.weight_since, this.config.slo.windowMs, now),
    );
    this.lastVerdict = verdict;
    this.ruleMetrics(verdict);
    const shadow = this.shadow.judge(this.writer.state, this.config, this.writer.fleet, now);
    if (shadow.kind === 'change') this.writer.apply(shadow.change);
    const fleet = this.writer.fleet;
    // In a fleet, one sidecar judges fleet-wide data; the others only show their local view, and keep no
    // memory of it: a sidecar taking the lease must not bring a gate clock or breach streak built on its
    // own traffic to the fleet's windows.
    if (fleet && !fleet.mayAct()) {
      this.memory = FRESH_MEMORY;
      return verdict;
    }
    const wasStalled = this.memory.stalled === true;
    this.memory = verdict.memory;
    this.alertObserved(verdict);
    if (verdict.action.kind === 'stalled' && !wasStalled) this.stalled(verdict);
    const towardNew = verdict.action.kind === 'promote' || verdict.action.kind === 'hold';
    const stallRepeated = verdict.action.kind === 'stalled' && wasStalled;
    // One proposal toward new at a time: the next evaluation sees the confirmed state, not a second copy.
    if (!(towardNew && fleet && (!fleet.mayMoveTowardNew() || fleet.proposing)) && !stallRepeated) {
      // The flap latch counts flips on the controller's clock, as every change is dated.
      const decision = decide(verdict, rollout, this.config, this.options.clock());
      if (decision.kind === 'alert') {
        this.options.logger.warn({ rules: verdict.breached }, `SLO breach (alert only): ${decision.why}`);
      } else if (decision.kind === 'change') {
        const outcome = this.writer.apply(decision.change);
        if ('confirmed' in outcome) {
          outcome.confirmed.catch((err: Error) =>
            this.options.logger.warn(
              { err: err.message, action: decision.change.spec.action },
              'SLO guard change not confirmed by the fleet',
            ),
          );
        }
      }
    }
    // Observers hear of the evaluation after its decision is applied: they never sit in between.
    for (const observer of this.options.observers ?? []) {
      try {
        observer.judged?.(verdict, rollout);
      } catch (err) {
        this.options.logger.error({ err: (err as Error).message }, 'controller observer failed');
      }
    }
    return verdict;
  }

  // ---- operator commands (actor is `admin:<token name>`): refusals throw ControllerError ----

  kill(actor: string, reason: string): ChangeOutcome {
    const change = killChange(this.writer.state, actor, reason);
    if (!change) this.options.logger.info({ actor, reason }, 'kill: already killed');
    return this.applyIfAny(change);
  }

  resume(actor: string, reason: string): ChangeOutcome {
    return this.writer.apply(resumeChange(this.writer.state, this.config, actor, reason));
  }

  setWeight(actor: string, weightBp: number, reason: string): ChangeOutcome {
    return this.writer.apply(weightChange(this.writer.state, actor, weightBp, reason));
  }

  promote(actor: string, reason: string): ChangeOutcome {
    return this.writer.apply(promoteChange(this.writer.state, this.config, actor, reason));
  }

  rollback(actor: string, reason: string): ChangeOutcome {
    return this.applyIfAny(rollbackChange(this.writer.state, actor, reason));
  }

  /** The shadow's share in basis points (0: off); moves no real traffic. */
  setShadow(actor: string, shadowBp: number, reason: string): ChangeOutcome {
    return this.writer.apply(shadowChange(this.writer.state, this.config, actor, shadowBp, reason));
  }

  /** Pins keys to a side (merged into the runtime overrides). */
  setOverrides(actor: string, keys: [string, UpstreamName][], reason: string): ChangeOutcome {
    return this.writer.apply(setOverridesChange(actor, keys, reason));
  }

  removeOverrides(actor: string, keys: string[], reason: string): ChangeOutcome {
    return this.writer.apply(removeOverridesChange(actor, keys, reason));
  }

  /** Runtime overrides merged over the config's own: what the routing table applies. */
  effectiveOverrides(): { new: string[]; legacy: string[] } {
    return overrideLists(this.writer.effectiveOverrides());
  }

  /** A refused admin attempt: nothing changes, but the audit log remembers who tried (rate-limited). */
  refused(actor: string, action: string, reason: string, detail: Record<string, unknown>): void {
    this.refusals.refused(this.writer.state.rollout_id, actor, action, reason, detail);
  }

  /**
   * A reloaded config: a new rollout id starts a new rollout; otherwise policy, salt, config overrides
   * and the force header apply to the next table and the evaluation timer restarts on the new interval.
   */
  reconfigure(config: Config, changed: string[], actor = 'config', reason?: string): ChangeOutcome {
    const old = this.config;
    this.config = config;
    this.writer.config = config;
    let outcome: ChangeOutcome;
    if (config.rollout.id !== old.rollout.id) {
      this.memory = FRESH_MEMORY;
      outcome = this.writer.apply(newRolloutChange(config, old.rollout.id, this.options.clock(), actor, reason));
    } else {
      // New rules, thresholds or steps: the gate clock starts over (the old rules' passes prove nothing
      // about the new ones); a breach streak stays, so a rollback is not delayed by a reload.
      if (changed.some((field) => field.startsWith('slo.') || field.startsWith('rollout.'))) {
        this.memory = { ...this.memory, passingSince: null };
      }
      outcome = this.writer.apply(reloadChange(actor, reason, changed, config));
    }
    if (this.timer) this.start();
    return outcome;
  }

  private applyIfAny(change: PlannedChange | null): ChangeOutcome {
    return change ? this.writer.apply(change) : NOTHING_CHANGED;
  }

  /**
   * A step inconclusive for slo.inconclusive_limit: warned and audited once (until evidence comes back);
   * on_inconclusive rollback then rolls back through the guard's decision, as a breach would.
   */
  private stalled(verdict: Verdict): void {
    const rollout = this.writer.state;
    const reason = stallReason(verdict, rollout, this.config);
    this.options.logger.warn(
      {
        rollout: rollout.rollout_id,
        weight_percent: percentOf(rollout.weight_bp),
        on_inconclusive: this.config.slo.onInconclusive,
      },
      `rollout stalled: ${reason}`,
    );
    this.writer.appendAudit({
      time: new Date(this.options.clock()).toISOString(),
      actor: 'slo-guard',
      action: 'stalled',
      reason,
      rollout_id: rollout.rollout_id,
      before: summary(rollout),
      after: summary(rollout),
      rules: verdict.rules.map(ruleJson),
    });
  }

  /** Rules observe-only now breaching: logged at warn when each starts (metrics count every evaluation). */
  private readonly observing = new Set<string>();
  private alertObserved(verdict: Verdict): void {
    for (const rule of verdict.observed) {
      if (!this.observing.has(rule.name)) {
        this.options.logger.warn(
          { rule: ruleJson(rule) },
          `SLO breach (observe only, not acted on): ${describeBreach(rule)}`,
        );
      }
    }
    this.observing.clear();
    for (const rule of verdict.observed) this.observing.add(rule.name);
  }

  /** Breaching evaluations at the current step (slo.failure_limit counts these). */
  get stepBreaches(): number {
    return this.memory.stepBreaches ?? 0;
  }

  private ruleMetrics(verdict: Verdict): void {
    const metrics = this.options.metrics;
    const rollout = this.writer.state;
    metrics.rolloutStalled.set(verdict.stalledSince === null ? 0 : 1);
    for (const rule of verdict.rules) {
      setSloRuleSeries(metrics, rule);
      metrics.sloRuleStatus.set({ rule: rule.name }, rule.status === 'pass' ? 1 : rule.status === 'breach' ? -1 : 0);
      metrics.sloRuleObserveOnly.set({ rule: rule.name }, rule.action === 'observe' ? 1 : 0);
      if (rule.status === 'breach' && guardActive(rollout.state, rollout.weight_bp)) {
        metrics.sloBreaches.inc({ rule: rule.name });
      }
    }
  }
}
