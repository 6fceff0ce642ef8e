// The only writer of routing state: applies SLO verdicts and operator commands, persists, audits, logs, swaps.

import type { Config, UpstreamName } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Clock } from '../measure/window.js';
import type { Metrics } from '../metrics/registry.js';
import { makeTable, type RolloutState, type RoutingTable } from '../routing/table.js';
import type { AuditEntry, AuditLog, RolloutSummary } from '../state/audit.js';
import { type ChangeRecord, type PersistedState, STATE_FORMAT, type StateStore } from '../state/store.js';
import {
  evaluate,
  FRESH_MEMORY,
  type GuardMemory,
  guardActive,
  nextStepBp,
  type RuleResult,
  ruleJson,
  type Verdict,
  type WindowView,
} from './evaluate.js';

export const ROLLOUT_STATES: readonly RolloutState[] = [
  'progressing',
  'holding',
  'promoted',
  'rolled_back',
  'killed',
  'latched',
];

/** A command the controller refuses: the admin API turns it into an HTTP error as is. */
export class ControllerError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ControllerError';
  }
}

export type Cause = 'slo' | 'operator' | 'config' | 'kill' | 'fleet';

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
}

/** What fleet mode plugs into the controller (src/fleet): who may act, and where changes go. */
export interface FleetHooks {
  /** May the guard act on its verdicts here? (In a connected fleet only the lease holder does.) */
  mayAct(): boolean;
  /** False while the shared state cannot be read: nothing may move traffic toward new on stale data. */
  mayMoveTowardNew(): boolean;
  /** A local change was applied; `mutate` replays it on another base state (for a safe change). */
  changed(change: LocalChange): void;
}

export interface LocalChange {
  prev: PersistedState;
  next: PersistedState;
  safe: boolean;
  action: string;
  mutate: (cur: PersistedState) => PersistedState;
}

interface ChangeSpec {
  actor: string;
  action: string;
  reason: string;
  cause: Cause;
  /** Moves traffic toward legacy: applied even when the state file cannot be written. */
  safe: boolean;
  rules?: RuleResult[];
  detail?: Record<string, unknown>;
  /** The audit entry shows no "before" (the very first state of a rollout). */
  noBefore?: boolean;
}

const pct = (bp: number) => bp / 100;

/** Refused admin attempts audited one by one per minute; beyond it they are counted in one entry. */
export const REFUSED_PER_MINUTE = 100;

export function freshState(config: Config, now: number): PersistedState {
  const weight = config.rollout.weightBp;
  return {
    format: STATE_FORMAT,
    rollout_id: config.rollout.id,
    state: weight === 10_000 ? 'promoted' : 'progressing',
    weight_bp: weight,
    latched: false,
    kill_reason: null,
    before_kill: null,
    overrides: { new: [], legacy: [] },
    flips: [],
    weight_since: now,
    last_change: null,
    version: 1,
  };
}

export class Controller {
  private s: PersistedState;
  private memory: GuardMemory = FRESH_MEMORY;
  private timer: NodeJS.Timeout | undefined;
  private config: Config;
  private current!: RoutingTable;
  lastVerdict: Verdict | undefined;
  private fleet: FleetHooks | undefined;
  /** False when the last write of the state file failed (reported by /readyz). */
  persisted = true;
  private refusals = { since: Number.NEGATIVE_INFINITY, count: 0, suppressed: 0 };

  private constructor(
    private readonly o: ControllerOptions,
    initial: PersistedState,
  ) {
    this.config = o.config;
    this.s = initial;
  }

  /**
   * Loads the state file (a StateFileError propagates: never start on a state we cannot read), keeps it
   * when it belongs to this rollout id, and otherwise starts the rollout afresh, audited.
   */
  static open(o: ControllerOptions): Controller {
    const now = o.clock();
    const saved = o.store.load();
    if (saved && saved.rollout_id === o.config.rollout.id) {
      const c = new Controller(o, saved);
      c.publish();
      c.record(
        {
          actor: 'config',
          action: 'restore',
          reason: `state restored from ${o.store.path}`,
          cause: 'config',
          safe: true,
        },
        null,
      );
      o.logger.info(
        { rollout: saved.rollout_id, state: saved.state, weight_percent: pct(saved.weight_bp), version: saved.version },
        'rollout state restored',
      );
      return c;
    }
    const c = new Controller(o, saved ?? freshState(o.config, now));
    const reason = saved
      ? `new rollout id ${o.config.rollout.id} (was ${saved.rollout_id}): starting afresh`
      : `rollout ${o.config.rollout.id} started`;
    try {
      c.change(
        {
          actor: 'config',
          action: saved ? 'new_rollout' : 'start',
          reason,
          cause: 'config',
          safe: true,
          noBefore: !saved,
        },
        () => ({ ...freshState(o.config, now), version: (saved?.version ?? 0) + 1 }),
        true,
      );
    } catch (err) {
      // A state file that cannot be written does not keep veer from starting on the config's own initial
      // state (a restart rebuilds the same): the change is logged, and /readyz reports the file until it
      // can be written, as it does after a restore.
      if (!(err instanceof ControllerError && err.code === 'state_not_persisted')) throw err;
    }
    return c;
  }

  get table(): RoutingTable {
    return this.current;
  }

  get snapshot(): Readonly<PersistedState> {
    return this.s;
  }

  get policy(): Config['slo'] {
    return this.config.slo;
  }

  attachFleet(hooks: FleetHooks | undefined): void {
    this.fleet = hooks;
  }

  /**
   * Fleet mode: a local change made while the fleet's state was being written, applied again on top of the
   * state adopted from the fleet (it was audited when it was made).
   */
  reapply(change: LocalChange): void {
    const cur = this.s;
    const mutated = change.mutate(cur);
    this.s = {
      ...mutated,
      version: cur.version + 1,
      weight_since: mutated.weight_bp !== cur.weight_bp ? this.o.clock() : cur.weight_since,
      last_change: change.next.last_change,
    };
    this.saveApplied(change.action);
    this.publish('fleet');
  }

  /** Fleet mode: the store holds our state as of `version`; written to the state file for the next start. */
  noteFleetVersion(version: number): void {
    if (this.s.fleet_version === version) return;
    this.s = { ...this.s, fleet_version: version };
    this.saveApplied('fleet version');
  }

  /**
   * Writes the state already applied in memory (fleet mode: what the fleet decided is applied whether or not
   * the file can take it); a failure is logged and reported by /readyz through `persisted`.
   */
  private saveApplied(what: string): void {
    try {
      this.o.store.save(this.s);
      this.persisted = true;
    } catch (err) {
      this.persisted = false;
      this.o.logger.error({ err: (err as Error).message, what }, 'state file not writable: applied in memory only');
    }
  }

  /**
   * Applies the fleet's shared state as is (it is newer than ours): written to the local file as the
   * last-known copy, swapped onto the request path, audited when anything but the version changed.
   */
  adopt(shared: PersistedState, actor = 'fleet'): void {
    const prev = this.s;
    const remote: PersistedState = { ...shared, fleet_version: shared.version };
    const same =
      prev.rollout_id === remote.rollout_id &&
      prev.state === remote.state &&
      prev.weight_bp === remote.weight_bp &&
      prev.latched === remote.latched &&
      prev.kill_reason === remote.kill_reason &&
      JSON.stringify(prev.overrides) === JSON.stringify(remote.overrides);
    this.s = remote;
    this.saveApplied('fleet state');
    if (same) {
      this.o.metrics.fleetStateVersion.set(remote.version);
      return;
    }
    if (remote.weight_bp !== prev.weight_bp || remote.state !== prev.state) this.memory = FRESH_MEMORY;
    this.publish('fleet');
    const lc = remote.last_change;
    this.record(
      {
        actor,
        action: 'fleet_sync',
        reason: lc
          ? `fleet state v${remote.version}: ${lc.action} by ${lc.actor}: ${lc.reason}`
          : `fleet state v${remote.version}`,
        cause: 'fleet',
        safe: true,
      },
      summary(prev),
    );
  }

  start(): void {
    this.stop();
    this.timer = setInterval(() => {
      try {
        this.tick();
      } catch (err) {
        // The guard must never take the proxy down; a failed evaluation is logged and retried next tick.
        this.o.logger.error({ err: (err as Error).message }, 'SLO evaluation failed');
      }
    }, this.config.slo.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  // ---- the SLO guard ----

  /** One evaluation: judge the windows, update rule metrics, apply the verdict. */
  tick(now = this.o.clock()): Verdict {
    const s = this.s;
    const verdict = evaluate(
      this.o.windows(),
      this.config.slo,
      {
        state: s.state,
        weightBp: s.weight_bp,
        stepsBp: this.config.rollout.stepsBp,
        stepMinDurationMs: this.config.rollout.stepMinDurationMs,
        autoPromote: this.config.rollout.autoPromote,
        weightSince: s.weight_since,
        // The last automatic change (flips are kept in time order). Operator and config changes do not
        // start a cooldown: an operator meant it, and at start-up the window holds nothing from before.
        lastChangeAt: s.flips.at(-1) ?? Number.NEGATIVE_INFINITY,
      },
      this.memory,
      now,
    );
    this.lastVerdict = verdict;
    this.ruleMetrics(verdict);
    // In a fleet, one sidecar judges fleet-wide data; the others only show their local view, and keep no
    // memory of it: a sidecar taking the lease must not bring a gate clock or breach streak built on its
    // own traffic to the fleet's windows.
    if (this.fleet && !this.fleet.mayAct()) {
      this.memory = FRESH_MEMORY;
      return verdict;
    }
    this.memory = verdict.memory;
    const towardNew = verdict.action.kind === 'promote' || verdict.action.kind === 'hold';
    if (towardNew && this.fleet && !this.fleet.mayMoveTowardNew()) return verdict;
    const a = verdict.action;
    const why = verdict.breached.map(describeBreach).join('; ');
    switch (a.kind) {
      case 'alert':
        this.o.logger.warn({ rules: verdict.breached }, `SLO breach (alert only): ${why}`);
        break;
      case 'rollback':
        this.automatic('rollback', `SLO breach: ${why}`, verdict.rules, () => ({ state: 'rolled_back', weight_bp: 0 }));
        break;
      case 'step_down':
        this.automatic('step_down', `SLO breach: ${why}; stepping down to ${pct(a.toBp)}%`, verdict.rules, () => ({
          state: 'progressing',
          weight_bp: a.toBp,
        }));
        break;
      case 'promote':
        this.automatic(
          'promote',
          `every rule passed for ${this.config.rollout.stepMinDurationMs / 1000}s; promoting to ${pct(a.toBp)}%`,
          verdict.rules,
          () => ({ state: a.toBp === 10_000 ? 'promoted' : 'progressing', weight_bp: a.toBp }),
        );
        break;
      case 'hold':
        if (s.state === 'progressing') {
          this.change(
            {
              actor: 'slo-guard',
              action: 'gate_open',
              reason: `every rule passed for ${this.config.rollout.stepMinDurationMs / 1000}s; waiting for an operator to promote to ${pct(a.nextBp)}%`,
              cause: 'slo',
              safe: true,
              rules: verdict.rules,
            },
            (cur) => ({ ...cur, state: 'holding' }),
          );
        }
        break;
      case 'none':
        break;
    }
    return verdict;
  }

  /** An automatic change counts toward the flap latch; one flip too many latches at the safe side. */
  private automatic(
    action: 'rollback' | 'step_down' | 'promote',
    reason: string,
    rules: RuleResult[],
    target: () => { state: RolloutState; weight_bp: number },
  ): void {
    const now = this.o.clock();
    const { flapMaxFlips, flapPeriodMs } = this.config.slo;
    const flips = [...this.s.flips.filter((t) => now - t < flapPeriodMs), now];
    if (flips.length > flapMaxFlips) {
      this.change(
        {
          actor: 'slo-guard',
          action: 'latch',
          reason: `${flips.length} automatic changes within ${flapPeriodMs / 1000}s (max ${flapMaxFlips}): latched on legacy until an operator resumes; last trigger: ${reason}`,
          cause: 'slo',
          safe: true,
          rules,
        },
        (cur) => ({ ...cur, state: 'latched', weight_bp: 0, latched: true, flips }),
      );
      this.o.metrics.rollbacks.inc({ cause: 'slo' });
      return;
    }
    const t = target();
    this.change({ actor: 'slo-guard', action, reason, cause: 'slo', safe: action !== 'promote', rules }, (cur) => ({
      ...cur,
      ...t,
      flips,
    }));
    if (action === 'rollback') this.o.metrics.rollbacks.inc({ cause: 'slo' });
  }

  // ---- operator commands (actor is `admin:<token name>`) ----

  kill(actor: string, reason: string): void {
    if (this.s.state === 'killed') {
      this.o.logger.info({ actor, reason }, 'kill: already killed');
      return;
    }
    this.change({ actor, action: 'kill', reason, cause: 'kill', safe: true }, (cur) => ({
      ...cur,
      state: 'killed',
      weight_bp: 0,
      kill_reason: reason,
      before_kill: { state: cur.state, weight_bp: cur.weight_bp },
    }));
    this.o.metrics.rollbacks.inc({ cause: 'kill' });
  }

  /**
   * After a kill: back to exactly where the kill found the rollout. After a rollback or a latch: back to
   * the first step (the config's weight without steps), so a backend that just failed is not handed its
   * old share at once.
   */
  resume(actor: string, reason: string): void {
    const s = this.s;
    if (s.state === 'killed') {
      const back = s.before_kill ?? { state: 'progressing' as RolloutState, weight_bp: 0 };
      this.change({ actor, action: 'resume', reason, cause: 'operator', safe: false }, (cur) => ({
        ...cur,
        state: back.state,
        weight_bp: back.weight_bp,
        kill_reason: null,
        before_kill: null,
      }));
      return;
    }
    if (s.state === 'rolled_back' || s.state === 'latched') {
      const weight = this.config.rollout.stepsBp[0] ?? this.config.rollout.weightBp;
      this.change({ actor, action: 'resume', reason, cause: 'operator', safe: false }, (cur) => ({
        ...cur,
        state: weight === 10_000 ? 'promoted' : 'progressing',
        weight_bp: weight,
        latched: false,
        flips: [],
      }));
      return;
    }
    throw new ControllerError(409, 'conflict', `nothing to resume: the rollout is ${s.state}`);
  }

  setWeight(actor: string, weightBp: number, reason: string): void {
    this.refuseWhen(['killed', 'latched'], 'set the weight');
    const cur = this.s;
    this.change({ actor, action: 'weight', reason, cause: 'operator', safe: weightBp <= cur.weight_bp }, (c) => ({
      ...c,
      state: weightBp === 10_000 ? 'promoted' : 'progressing',
      weight_bp: weightBp,
    }));
  }

  promote(actor: string, reason: string): void {
    this.refuseWhen(['killed', 'latched', 'rolled_back'], 'promote');
    const next = nextStepBp(this.s.weight_bp, this.config.rollout.stepsBp);
    if (next === null) throw new ControllerError(409, 'conflict', 'nothing to promote: new already has 100%');
    this.change({ actor, action: 'promote', reason, cause: 'operator', safe: false }, (c) => ({
      ...c,
      state: next === 10_000 ? 'promoted' : 'progressing',
      weight_bp: next,
    }));
  }

  rollback(actor: string, reason: string): void {
    this.refuseWhen(['killed', 'latched'], 'rollback');
    if (this.s.state === 'rolled_back') return;
    this.change({ actor, action: 'rollback', reason, cause: 'operator', safe: true }, (c) => ({
      ...c,
      state: 'rolled_back',
      weight_bp: 0,
    }));
    this.o.metrics.rollbacks.inc({ cause: 'operator' });
  }

  /** Pins keys to a side (merged into the runtime overrides). */
  setOverrides(actor: string, keys: [string, UpstreamName][], reason: string): void {
    this.change(
      {
        actor,
        action: 'overrides_set',
        reason,
        cause: 'operator',
        safe: false,
        detail: { keys: Object.fromEntries(keys) },
      },
      (c) => {
        const map = new Map<string, UpstreamName>(overrideEntries(c.overrides));
        for (const [k, side] of keys) map.set(k, side);
        return { ...c, overrides: overrideLists(map) };
      },
    );
  }

  removeOverrides(actor: string, keys: string[], reason: string): void {
    this.change(
      { actor, action: 'overrides_remove', reason, cause: 'operator', safe: false, detail: { keys } },
      (c) => {
        const map = new Map<string, UpstreamName>(overrideEntries(c.overrides));
        for (const k of keys) map.delete(k);
        return { ...c, overrides: overrideLists(map) };
      },
    );
  }

  /** Runtime overrides merged over the config's own: what the routing table applies. */
  effectiveOverrides(): { new: string[]; legacy: string[] } {
    return overrideLists(this.overrideMap());
  }

  /**
   * A refused admin attempt: nothing changes, but the audit log remembers who tried. At most
   * REFUSED_PER_MINUTE entries a minute, so a flood of bad tokens cannot fill the disk; the rest are
   * counted and summed up in one entry when the minute is over.
   */
  refused(actor: string, action: string, reason: string, detail: Record<string, unknown>): void {
    const now = this.o.clock();
    if (now - this.refusals.since >= 60_000) {
      this.flushSuppressedRefusals(now);
      this.refusals = { since: now, count: 0, suppressed: 0 };
    }
    if (++this.refusals.count > REFUSED_PER_MINUTE) {
      this.refusals.suppressed++;
      return;
    }
    this.appendAudit({
      time: new Date(now).toISOString(),
      actor,
      action,
      reason,
      rollout_id: this.s.rollout_id,
      before: null,
      after: null,
      detail,
    });
  }

  private flushSuppressedRefusals(now: number): void {
    if (this.refusals.suppressed === 0) return;
    this.appendAudit({
      time: new Date(now).toISOString(),
      actor: 'admin',
      action: 'refused_suppressed',
      reason: `${this.refusals.suppressed} more refused admin attempts within a minute were not audited one by one (limit ${REFUSED_PER_MINUTE} a minute)`,
      rollout_id: this.s.rollout_id,
      before: null,
      after: null,
      detail: { suppressed: this.refusals.suppressed, since: new Date(this.refusals.since).toISOString() },
    });
  }

  /**
   * A reloaded config: a new rollout id starts a new rollout; otherwise policy, salt, config overrides
   * and the force header apply to the next table and the evaluation timer restarts on the new interval.
   */
  reconfigure(config: Config, changed: string[], actor = 'config', reason?: string): void {
    const old = this.config;
    this.config = config;
    if (config.rollout.id !== old.rollout.id) {
      const now = this.o.clock();
      this.memory = FRESH_MEMORY;
      this.change(
        {
          actor,
          action: 'new_rollout',
          reason: `${reason ?? 'config reload'}: new rollout id ${config.rollout.id} (was ${old.rollout.id}): starting afresh`,
          cause: 'config',
          safe: true,
        },
        (c) => ({ ...freshState(config, now), version: c.version + 1 }),
        true,
      );
    } else {
      // New rules, thresholds or steps: the gate clock starts over (the old rules' passes prove nothing
      // about the new ones); a breach streak stays, so a rollback is not delayed by a reload.
      if (changed.some((f) => f.startsWith('slo.') || f.startsWith('rollout.'))) {
        this.memory = { ...this.memory, passingSince: null };
      }
      this.change(
        {
          actor,
          action: 'reload',
          reason: reason ?? 'config reloaded',
          cause: 'config',
          safe: true,
          detail: { changed },
        },
        (c) => c,
      );
    }
    if (this.timer) this.start();
  }

  private refuseWhen(states: RolloutState[], what: string): void {
    if (states.includes(this.s.state)) {
      const hint = this.s.state === 'rolled_back' ? 'resume it first' : 'resume it first (veer resume)';
      throw new ControllerError(409, 'conflict', `cannot ${what}: the rollout is ${this.s.state}; ${hint}`);
    }
  }

  // ---- applying a change ----

  /**
   * Persist first, then publish: nothing observes a change that is not on disk. When the file cannot be
   * written, a change toward legacy (kill, rollback) is applied anyway and reported as not persisted,
   * because refusing it would keep users on a failing backend; any other change is refused.
   */
  private change(spec: ChangeSpec, mutate: (cur: PersistedState) => PersistedState, replace = false): void {
    const prev = this.s;
    const now = this.o.clock();
    const last: ChangeRecord = {
      time: new Date(now).toISOString(),
      actor: spec.actor,
      action: spec.action,
      reason: spec.reason,
    };
    if (!spec.safe && spec.cause !== 'config' && this.fleet && !this.fleet.mayMoveTowardNew()) {
      throw new ControllerError(
        503,
        'fleet_unavailable',
        `${spec.action} refused: the fleet store is unreachable, and nothing moves traffic toward new on stale state; kill and rollback still work`,
      );
    }
    const mutated = mutate(prev);
    const next: PersistedState = {
      ...mutated,
      version: replace ? mutated.version : prev.version + 1,
      weight_since: mutated.weight_bp !== prev.weight_bp || replace ? now : prev.weight_since,
      last_change: last,
    };
    let persistError: Error | undefined;
    try {
      this.o.store.save(next);
      this.persisted = true;
    } catch (err) {
      persistError = err as Error;
      this.persisted = false;
      if (!spec.safe) {
        this.o.logger.error(
          { err: persistError.message, action: spec.action },
          'state file not writable: change refused',
        );
        throw new ControllerError(
          503,
          'state_write_failed',
          `the state file ${this.o.store.path} could not be written (${persistError.message}); nothing changed`,
        );
      }
    }
    this.s = next;
    if (next.weight_bp !== prev.weight_bp || next.state !== prev.state) this.memory = FRESH_MEMORY;
    this.publish(spec.cause);
    this.record(spec, spec.noBefore ? null : summary(prev), persistError);
    this.fleet?.changed({ prev, next, safe: spec.safe, action: spec.action, mutate });
    if (persistError) {
      this.o.logger.error(
        { err: persistError.message, action: spec.action },
        'state file not writable: change applied in memory only',
      );
      throw new ControllerError(
        503,
        'state_not_persisted',
        `${spec.action} applied, but the state file ${this.o.store.path} could not be written (${persistError.message}); it will not survive a restart`,
      );
    }
  }

  private overrideMap(): Map<string, UpstreamName> {
    const map = new Map<string, UpstreamName>();
    for (const k of this.config.routing.overrides.legacy) map.set(k, 'legacy');
    for (const k of this.config.routing.overrides.new) map.set(k, 'new');
    for (const [k, side] of overrideEntries(this.s.overrides)) map.set(k, side);
    return map;
  }

  /** Builds the table for the current state and swaps it onto the request path. */
  private publish(cause?: Cause): void {
    const s = this.s;
    this.current = makeTable({
      rolloutId: s.rollout_id,
      salt: this.config.rollout.salt,
      weightBp: s.state === 'killed' ? 0 : s.weight_bp,
      state: s.state,
      overrides: this.overrideMap(),
      forceHeader: this.config.routing.forceHeader,
      version: s.version,
    });
    this.o.swap(this.current);
    const m = this.o.metrics;
    for (const st of ROLLOUT_STATES) m.rolloutState.set({ state: st }, st === s.state ? 1 : 0);
    m.rolloutStep.set(this.config.rollout.stepsBp.indexOf(s.weight_bp));
    if (cause) {
      m.routingChanges.inc({ cause: cause === 'kill' ? 'operator' : cause });
      m.lastChange.set(this.o.clock() / 1000);
    }
  }

  private record(spec: ChangeSpec, before: RolloutSummary | null, persistError?: Error): void {
    const after = summary(this.s);
    const detail = persistError ? { ...spec.detail, persist_error: persistError.message } : spec.detail;
    this.appendAudit({
      time: new Date(this.o.clock()).toISOString(),
      actor: spec.actor,
      action: spec.action,
      reason: spec.reason,
      rollout_id: this.s.rollout_id,
      before,
      after,
      ...(spec.rules ? { rules: spec.rules.map(ruleJson) } : {}),
      ...(detail ? { detail } : {}),
    });
    const level =
      spec.actor === 'slo-guard' && spec.action !== 'promote' && spec.action !== 'gate_open' ? 'warn' : 'info';
    this.o.logger[level](
      {
        actor: spec.actor,
        action: spec.action,
        reason: spec.reason,
        rollout: this.s.rollout_id,
        state: this.s.state,
        weight_percent: pct(this.s.weight_bp),
        version: this.s.version,
      },
      `rollout ${spec.action}`,
    );
  }

  private appendAudit(entry: AuditEntry): void {
    try {
      this.o.audit.append(entry);
    } catch (err) {
      // A full disk must not stop a rollback; the change is still logged above.
      this.o.logger.error({ err: (err as Error).message, action: entry.action }, 'audit log not writable');
    }
  }

  private ruleMetrics(v: Verdict): void {
    const m = this.o.metrics;
    // Latency rules are exported in seconds (Prometheus base units), error rules as ratios.
    const unit = (r: RuleResult, x: number) => (r.unit === 'ms' ? x / 1000 : x);
    for (const r of v.rules) {
      if (r.value !== null) m.sloRuleValue.set({ rule: r.name }, unit(r, r.value));
      if (r.threshold !== null) m.sloRuleThreshold.set({ rule: r.name }, unit(r, r.threshold));
      m.sloRuleStatus.set({ rule: r.name }, r.status === 'pass' ? 1 : r.status === 'breach' ? -1 : 0);
      if (r.status === 'breach' && guardActive(this.s.state, this.s.weight_bp)) m.sloBreaches.inc({ rule: r.name });
    }
  }
}

export function summary(s: PersistedState): RolloutSummary {
  return {
    rollout_id: s.rollout_id,
    state: s.state,
    weight_percent: pct(s.weight_bp),
    latched: s.latched,
    kill_reason: s.kill_reason,
  };
}

function overrideEntries(o: { new: string[]; legacy: string[] }): [string, UpstreamName][] {
  return [
    ...o.legacy.map((k): [string, UpstreamName] => [k, 'legacy']),
    ...o.new.map((k): [string, UpstreamName] => [k, 'new']),
  ];
}

function overrideLists(map: Map<string, UpstreamName>): { new: string[]; legacy: string[] } {
  const out: { new: string[]; legacy: string[] } = { new: [], legacy: [] };
  for (const [k, side] of map) out[side].push(k);
  out.new.sort();
  out.legacy.sort();
  return out;
}

function fmt(r: RuleResult, x: number | null): string {
  if (x === null) return 'n/a';
  return r.unit === 'ms' ? `${Math.round(x)}ms` : `${(x * 100).toFixed(2)}%`;
}

export function describeBreach(r: RuleResult): string {
  return `${r.name} ${fmt(r, r.value)} > ${fmt(r, r.threshold)} (${r.samples} samples)`;
}
