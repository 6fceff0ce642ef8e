// Applying a change, the single writer of routing state: persist, swap the new table onto the request path, audit, log, tell the fleet.

import type { Config, UpstreamName } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Clock } from '../measure/window.js';
import type { Metrics } from '../metrics/registry.js';
import { ROLLOUT_STATES } from '../rollout.js';
import { makeTable, type RoutingTable } from '../routing/table.js';
import type { AuditEntry, AuditLog, RolloutSummary } from '../state/audit.js';
import type { ChangeRecord, PersistedState, StateStore } from '../state/store.js';
import {
  type Cause,
  type ChangeOutcome,
  type ChangeSpec,
  ControllerError,
  type PlannedChange,
  percentOf,
} from './change.js';
import { mergedOverrides } from './commands.js';
import { ruleJson, type Verdict } from './evaluate.js';
import { shadowInForce } from './shadow-judge.js';

/** What fleet mode plugs into the controller (src/fleet): who may act, and where changes go. */
export interface FleetHooks {
  /** May the guard act on its verdicts here? (In a connected fleet only the lease holder does.) */
  mayAct(): boolean;
  /** False while the shared state cannot be read: nothing may move traffic toward new on stale data. */
  mayMoveTowardNew(): boolean;
  /** A local change was applied; `mutate` replays it on another base state (for a safe change). */
  changed(change: LocalChange): void;
  /**
   * A change toward new: written to the fleet's store first, `apply` called once it is there; rejects
   * (nothing applied) when the store cannot confirm it in time or the rollout changed meanwhile.
   */
  propose<T>(proposal: Proposal<T>): Promise<T>;
  /** A proposal is on its way to the store. */
  readonly proposing: boolean;
}

/** A change toward new as the fleet sees it: decided on `prev`, built on the state the store confirms. */
export interface Proposal<T> {
  prev: PersistedState;
  action: string;
  /** The next state on a base (the fleet sets the version: the store's next). */
  build: (cur: PersistedState) => PersistedState;
  /** Applies the confirmed state here (persist, swap, audit). */
  apply: (next: PersistedState) => T;
}

export interface LocalChange {
  prev: PersistedState;
  next: PersistedState;
  safe: boolean;
  action: string;
  mutate: (cur: PersistedState) => PersistedState;
}

export interface WriterOptions {
  store: StateStore;
  audit: AuditLog;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  /** Publishes a routing snapshot to the request path. */
  swap: (table: RoutingTable) => void;
  /** The weight or the state moved: what the guard remembers of the old one no longer applies. */
  moved: () => void;
  observers?: readonly ControllerObserver[];
}

/**
 * Hears of what the controller did, after it is done (as the audit log does): an applied change as its
 * audit entry, and each evaluation this sidecar acts on. An observer must return at once; a throw is
 * logged and never undoes or delays the change.
 */
export interface ControllerObserver {
  applied?(entry: AuditEntry): void;
  judged?(verdict: Verdict, rollout: Readonly<PersistedState>): void;
}

export class RoutingStateWriter {
  /** The config the next table is built from (salt, config overrides, force header, steps). */
  config: Config;
  fleet: FleetHooks | undefined;
  /** False when the last write of the state file failed (reported by /readyz). */
  persisted = true;
  private rollout: PersistedState;
  private published!: RoutingTable;

  constructor(
    private readonly deps: WriterOptions,
    config: Config,
    initial: PersistedState,
  ) {
    this.config = config;
    this.rollout = initial;
  }

  get state(): Readonly<PersistedState> {
    return this.rollout;
  }

  get table(): RoutingTable {
    return this.published;
  }

  /**
   * Persist first, then publish: nothing observes a change that is not on disk. When the file cannot be
   * written, a change toward legacy (kill, rollback) is applied anyway and reported as not persisted,
   * because refusing it would keep users on a failing backend; any other change is refused (thrown).
   */
  apply(change: PlannedChange): ChangeOutcome {
    const { spec } = change;
    const prev = this.rollout;
    const fleet = this.fleet;
    if (!spec.safe && spec.cause !== 'config' && fleet) {
      if (!fleet.mayMoveTowardNew()) {
        throw new ControllerError(
          'fleet_unavailable',
          `${spec.action} refused: the fleet store is unreachable, and nothing moves traffic toward new on stale state; kill and rollback still work`,
        );
      }
      // Fleet invariant: a change toward new needs the store's confirmation before it applies here.
      const confirmed = fleet.propose({
        prev,
        action: spec.action,
        build: (cur) => this.nextOf(change, cur),
        apply: (next) => this.commit(change, this.rollout, next, true),
      });
      return { applied: false, persisted: true, confirmed };
    }
    return this.commit(change, prev, this.nextOf(change, prev), false);
  }

  /** The state a change leads to from `cur`, dated now. */
  private nextOf({ spec, mutate, replace = false }: PlannedChange, cur: PersistedState): PersistedState {
    const now = this.deps.clock();
    const last: ChangeRecord = {
      time: new Date(now).toISOString(),
      actor: spec.actor,
      action: spec.action,
      reason: spec.reason,
    };
    const mutated = mutate(cur);
    return {
      ...mutated,
      version: replace ? mutated.version : cur.version + 1,
      weight_since: mutated.weight_bp !== cur.weight_bp || replace ? now : cur.weight_since,
      last_change: last,
    };
  }

  /**
   * Persist, swap, audit. `confirmed`: the fleet's store already has `next`, so it applies whether or not
   * the file can take it (as an adopted state does) and is not sent to the fleet again.
   */
  private commit(
    { spec, mutate, rollbackCause }: PlannedChange,
    prev: PersistedState,
    next: PersistedState,
    confirmed: boolean,
  ): ChangeOutcome {
    let persistError: Error | undefined;
    try {
      this.deps.store.save(next);
      this.persisted = true;
    } catch (err) {
      persistError = err as Error;
      this.persisted = false;
      if (!spec.safe && !confirmed) {
        this.deps.logger.error(
          { err: persistError.message, action: spec.action },
          'state file not writable: change refused',
        );
        throw new ControllerError(
          'state_write_failed',
          `the state file ${this.deps.store.path} could not be written (${persistError.message}); nothing changed`,
        );
      }
    }
    this.rollout = next;
    if (next.weight_bp !== prev.weight_bp || next.state !== prev.state) this.deps.moved();
    this.publish(spec.cause);
    this.record(spec, spec.noBefore ? null : summary(prev), persistError);
    if (!confirmed) this.fleet?.changed({ prev, next, safe: spec.safe, action: spec.action, mutate });
    if (rollbackCause) this.deps.metrics.rollbacks.inc({ cause: rollbackCause });
    if (!persistError) return { applied: true, persisted: true };
    this.deps.logger.error(
      { err: persistError.message, action: spec.action },
      'state file not writable: change applied in memory only',
    );
    return {
      applied: true,
      persisted: false,
      error: `${spec.action} applied, but the state file ${this.deps.store.path} could not be written (${persistError.message}); it will not survive a restart`,
    };
  }

  /** At start-up: the state file's own state, for the same rollout id, taken as is and audited. */
  restore(): void {
    this.publish();
    const reason = `state restored from ${this.deps.store.path}`;
    this.record({ actor: 'config', action: 'restore', reason, cause: 'config', safe: true }, null);
  }

  /**
   * Fleet mode: a local change made while the fleet's state was being written, applied again on top of the
   * state adopted from the fleet (it was audited when it was made).
   */
  reapply(change: LocalChange): void {
    const cur = this.rollout;
    const mutated = change.mutate(cur);
    this.rollout = {
      ...mutated,
      version: cur.version + 1,
      weight_since: mutated.weight_bp !== cur.weight_bp ? this.deps.clock() : cur.weight_since,
      last_change: change.next.last_change,
    };
    this.saveApplied(change.action);
    this.publish('fleet');
  }

  /** Fleet mode: the store holds our state as of `version` (in `epoch`); written to the state file for the next start. */
  noteFleetVersion(version: number, epoch = this.rollout.fleet_epoch): void {
    if (this.rollout.fleet_version === version && this.rollout.fleet_epoch === epoch) return;
    this.rollout = { ...this.rollout, fleet_version: version, fleet_epoch: epoch };
    this.saveApplied('fleet version');
  }

  /**
   * Applies the fleet's shared state as is (it is newer than ours): written to the local file as the
   * last-known copy, swapped onto the request path, audited when anything but the version changed.
   */
  adopt(shared: PersistedState, actor: string): void {
    const prev = this.rollout;
    const remote: PersistedState = { ...shared, fleet_version: shared.version };
    const same =
      prev.rollout_id === remote.rollout_id &&
      prev.state === remote.state &&
      prev.weight_bp === remote.weight_bp &&
      prev.latched === remote.latched &&
      prev.kill_reason === remote.kill_reason &&
      prev.shadow_bp === remote.shadow_bp &&
      JSON.stringify(prev.overrides) === JSON.stringify(remote.overrides);
    this.rollout = remote;
    this.saveApplied('fleet state');
    if (same) {
      this.deps.metrics.fleetStateVersion.set(remote.version);
      return;
    }
    if (remote.weight_bp !== prev.weight_bp || remote.state !== prev.state) this.deps.moved();
    this.publish('fleet');
    const lastChange = remote.last_change;
    this.record(
      {
        actor,
        action: 'fleet_sync',
        reason: lastChange
          ? `fleet state v${remote.version}: ${lastChange.action} by ${lastChange.actor}: ${lastChange.reason}`
          : `fleet state v${remote.version}`,
        cause: 'fleet',
        safe: true,
      },
      summary(prev),
    );
  }

  /** Runtime overrides merged over the config's own: what the routing table applies. */
  effectiveOverrides(): Map<string, UpstreamName> {
    return mergedOverrides(this.config, this.rollout.overrides);
  }

  /** Appends to the audit log; a full disk must not stop a rollback (the change is still logged). */
  appendAudit(entry: AuditEntry): void {
    try {
      this.deps.audit.append(entry);
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message, action: entry.action }, 'audit log not writable');
    }
    for (const observer of this.deps.observers ?? []) {
      try {
        observer.applied?.(entry);
      } catch (err) {
        this.deps.logger.error({ err: (err as Error).message }, 'controller observer failed');
      }
    }
  }

  /**
   * Writes the state already applied in memory (fleet mode: what the fleet decided is applied whether or not
   * the file can take it); a failure is logged and reported by /readyz through `persisted`.
   */
  private saveApplied(what: string): void {
    try {
      this.deps.store.save(this.rollout);
      this.persisted = true;
    } catch (err) {
      this.persisted = false;
      this.deps.logger.error({ err: (err as Error).message, what }, 'state file not writable: applied in memory only');
    }
  }

  /** Builds the table for the current state and swaps it onto the request path. */
  private publish(cause?: Cause): void {
    const rollout = this.rollout;
    this.published = makeTable({
      rolloutId: rollout.rollout_id,
      salt: this.config.rollout.salt,
      weightBp: rollout.state === 'killed' ? 0 : rollout.weight_bp,
      state: rollout.state,
      overrides: this.effectiveOverrides(),
      forceHeader: this.config.routing.forceHeader,
      version: rollout.version,
      segments: this.config.routing.segments,
      shadowBp: shadowInForce(rollout, this.config),
    });
    this.deps.swap(this.published);
    const metrics = this.deps.metrics;
    for (const state of ROLLOUT_STATES) metrics.rolloutState.set({ state }, state === rollout.state ? 1 : 0);
    metrics.rolloutStep.set(this.config.rollout.stepsBp.indexOf(rollout.weight_bp));
    if (cause) {
      metrics.routingChanges.inc({ cause: cause === 'kill' ? 'operator' : cause });
      metrics.lastChange.set(this.deps.clock() / 1000);
    }
  }

  private record(spec: ChangeSpec, before: RolloutSummary | null, persistError?: Error): void {
    const rollout = this.rollout;
    const detail = persistError ? { ...spec.detail, persist_error: persistError.message } : spec.detail;
    this.appendAudit({
      time: new Date(this.deps.clock()).toISOString(),
      actor: spec.actor,
      action: spec.action,
      reason: spec.reason,
      rollout_id: rollout.rollout_id,
      before,
      after: summary(rollout),
      ...(spec.rules ? { rules: spec.rules.map(ruleJson) } : {}),
      ...(detail ? { detail } : {}),
    });
    const level =
      spec.actor === 'slo-guard' && spec.action !== 'promote' && spec.action !== 'gate_open' ? 'warn' : 'info';
    this.deps.logger[level](
      {
        actor: spec.actor,
        action: spec.action,
        reason: spec.reason,
        rollout: rollout.rollout_id,
        state: rollout.state,
        weight_percent: percentOf(rollout.weight_bp),
        version: rollout.version,
      },
      `rollout ${spec.action}`,
    );
  }
}

export function summary(rollout: PersistedState): RolloutSummary {
  return {
    rollout_id: rollout.rollout_id,
    state: rollout.state,
    weight_percent: percentOf(rollout.weight_bp),
    latched: rollout.latched,
    kill_reason: rollout.kill_reason,
  };
}
