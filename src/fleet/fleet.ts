// Fleet mode: one rollout shared by many sidecars over Redis: shared state by compare-and-set, a leader judging merged windows.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config, UpstreamName } from '../config/types.js';
import { VeerError } from '../errors.js';
import type { Controller, FleetHooks, LocalChange, Proposal } from '../guard/controller.js';
import type { WindowView } from '../guard/evaluate.js';
import type { Logger } from '../log.js';
import type { Clock, WindowSnapshot } from '../measure/window.js';
import type { Metrics } from '../metrics/registry.js';
import type { RoutingTable } from '../routing/table.js';
import type { AuditLog } from '../state/audit.js';
import type { PersistedState } from '../state/store.js';
import { RedisLink } from './link.js';
import { mergeWindows, toWire, type WindowWire } from './merge.js';
import { knowledgeOf, type Plan, reconcile, type Seen, type StoreRecord, sameContent } from './reconcile.js';

export interface FleetOptions {
  config: Config;
  controller: Controller;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  /** This sidecar's own windows, published every interval. */
  localWindows: () => Record<UpstreamName, WindowSnapshot>;
  /** Puts a routing table on the request path (the controller's, or legacy-only while awaiting the fleet). */
  serve?: (table: RoutingTable) => void;
  /** Where store resets and dropped changes are audited. */
  audit?: AuditLog;
  memberId?: string;
}

export type FleetLinkState = 'awaiting_fleet' | 'connected' | 'disconnected';

/** What /api/status, `veer status` and the dashboard show of the fleet. */
export interface FleetStatus {
  state: FleetLinkState;
  connected: boolean;
  member: string;
  /** The lease holder as last seen (null when unknown), and whether it is this sidecar. */
  leader: string | null;
  is_leader: boolean;
  version: number | null;
  last_sync: string | null;
  pending_changes: number;
}

export class Fleet implements FleetHooks {
  readonly memberId: string;
  /** Redis is reachable and this sidecar's state has been reconciled with a confirmed fleet state. */
  connected = false;
  leader = false;
  /** Serving legacy only: no state file, no sync yet (fleet.start_without_store: awaiting). */
  awaiting: boolean;
  private leaderId: string | null = null;
  private readonly link: RedisLink;
  /** Local changes toward legacy not yet in Redis (made while it was unreachable, or on their way). */
  private pending: LocalChange[] = [];
  /** The store position this sidecar last reconciled with. */
  private seen: Seen | undefined;
  private lastSyncAt: number | undefined;
  /** When this sidecar last stopped being in sync (or started without being), for the disconnected gauge. */
  private outSince: number;
  /** A provisional store this sidecar is waiting on, and since when (local clock). */
  private provisional: { epoch: string; since: number } | undefined;
  private merged: { at: number; view: Record<UpstreamName, WindowView>; members: number } | undefined;
  private timers: NodeJS.Timeout[] = [];
  private queue: Promise<void> = Promise.resolve();
  private syncQueued = false;
  private proposals = 0;
  private pinging = false;
  private stopped = false;
  private config: Config;
  /** The changes channel the subscriber listens on (it names the rollout id). */
  private channel = '';
  private rolloutId: string;

  constructor(private readonly o: FleetOptions) {
    this.config = o.config;
    const local = o.controller.snapshot;
    this.rolloutId = local.rollout_id;
    this.memberId = o.memberId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    if (local.fleet_version !== undefined) this.seen = { epoch: local.fleet_epoch ?? '', version: local.fleet_version };
    // Invariant 3 (reconcile.ts): a sidecar that knows only its config serves legacy until it has synced.
    this.awaiting = o.config.fleet.startWithoutStore === 'awaiting' && knowledgeOf(local, []) === 'none';
    this.serveTable(o.controller.table);
    this.outSince = Date.now();
    o.metrics.live.fleetDisconnectedSeconds = () => (this.connected ? 0 : (Date.now() - this.outSince) / 1000);
    this.link = new RedisLink(o.config.fleet);
    for (const [name, client] of [
      ['store', this.link.commands],
      ['subscriber', this.link.subscriber],
    ] as const) {
      client.on('error', (err: Error) => this.o.logger.debug({ err: err.message, client: name }, 'fleet: redis error'));
      client.on('close', () => this.lost(`${name} connection closed`));
    }
    this.link.commands.on('ready', () => this.schedule('redis ready'));
    this.link.subscriber.on('ready', () => {
      this.channel = this.key('changes');
      this.link.subscriber.subscribe(this.channel).catch(() => {});
    });
    this.link.subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      // Compared with the store position we last reconciled with, not our own version number: two sidecars
      // can hold the same number for different states.
      if (!this.seen || message !== `${this.seen.epoch}:${this.seen.version}`) this.schedule('change published');
    });
  }

  private key(name: string): string {
    return `${this.config.fleet.keyPrefix}:${this.o.controller.snapshot.rollout_id}:${name}`;
  }

  /** Connects and reconciles once, for at most `fleet.connect_timeout`: the proxy listens after it whatever Redis does. */
  async start(): Promise<void> {
    const f = this.config.fleet;
    this.timers.push(setInterval(() => this.publishWindow(), f.publishIntervalMs));
    this.timers.push(setInterval(() => this.holdLease(), Math.max(100, Math.floor(f.leaseTtlMs / 3))));
    this.timers.push(setInterval(() => this.schedule('resync'), f.resyncIntervalMs));
    this.timers.push(setInterval(() => this.health(), f.healthIntervalMs));
    for (const t of this.timers) t.unref();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((r) => {
      timer = setTimeout(r, f.connectTimeoutMs);
    });
    // ioredis bounds the TCP connect and each command; this bounds their sum (connect, ready check, sync).
    await Promise.race([this.link.connect().then(() => (this.link.ready ? this.flush() : undefined)), bound]);
    clearTimeout(timer);
    this.o.logger.info(
      {
        member: this.memberId,
        redis: redact(f.redisUrl),
        connected: this.connected,
        awaiting_fleet: this.awaiting,
        version: this.seen?.version ?? null,
      },
      'fleet mode on',
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    if (this.leader) await this.link.release(this.key('lease'), this.memberId).catch(() => {});
    this.leader = false;
    this.link.disconnect();
  }

  // ---- FleetHooks ----

  mayAct(): boolean {
    // Connected: only the lease holder judges, on fleet-wide data. Cut off: the local guard protects alone.
    return !this.connected || this.leader;
  }

  mayMoveTowardNew(): boolean {
    return this.connected;
  }

  changed(change: LocalChange): void {
    this.pending.push(change);
    this.o.metrics.fleetPendingChanges.set(this.pending.length);
    this.schedule(`local ${change.action}`);
  }

  /**
   * A change toward new: reconciled, then written by compare-and-set with a deadline Redis itself
   * checks, and applied here only once written. Refused (503 fleet_unavailable) when the store cannot
   * confirm it in time; 409 conflict when the rollout changed under it.
   */
  get proposing(): boolean {
    return this.proposals > 0;
  }

  propose<T>(p: Proposal<T>): Promise<T> {
    if (!this.mayMoveTowardNew()) return Promise.reject(unavailable(p.action));
    this.proposals++;
    const run = this.queue.then(async (): Promise<T> => {
      try {
        await this.sync();
      } catch (err) {
        this.failed('sync before a change toward new', err as Error);
      }
      const c = this.o.controller;
      const seen = this.seen;
      if (!this.connected || !seen || this.stopped) throw unavailable(p.action);
      if (!sameContent(c.snapshot, p.prev) || this.pending.length > 0) throw conflict(p.action);
      const next = { ...p.build(c.snapshot), version: seen.version + 1 };
      let result: Awaited<ReturnType<RedisLink['write']>>;
      try {
        const deadline = await this.link.deadline(this.config.fleet.commandTimeoutMs);
        result = await this.link.write(
          this.keys(),
          seen,
          { state: next, epoch: seen.epoch, provisional: false },
          deadline,
        );
      } catch (err) {
        this.failed(`${p.action} not confirmed`, err as Error);
        throw unavailable(p.action);
      }
      if (result === 'expired') {
        this.lost(`${p.action}: Redis saw the write after its deadline`);
        throw unavailable(p.action);
      }
      if (result === 'moved') {
        this.schedule('store moved under a change toward new');
        throw conflict(p.action);
      }
      const outcome = p.apply({ ...next, fleet_version: next.version, fleet_epoch: seen.epoch });
      this.synced({ version: next.version, epoch: seen.epoch, provisional: false, state: next }, []);
      return outcome;
    });
    const done = run.finally(() => this.proposals--);
    this.queue = done.then(
      () => {},
      () => {},
    );
    return done;
  }

  /** Windows the guard judges: the fleet's merge while this sidecar leads and the merge is fresh. */
  evaluationWindows(): Record<UpstreamName, WindowView> | undefined {
    if (!this.connected || !this.leader || !this.merged) return undefined;
    if (this.o.clock() - this.merged.at > 3 * this.config.fleet.publishIntervalMs) return undefined;
    return this.merged.view;
  }

  /** Resolves once every change made so far has been reconciled with Redis (or failed to). */
  flush(): Promise<void> {
    this.schedule('flush');
    return this.queue;
  }

  /**
   * After a change toward legacy (already applied here): waits at most the command timeout for the store
   * to take it; says whether it has (a change made while Redis is away answers at once, `pending`).
   */
  async settle(): Promise<'confirmed' | 'pending'> {
    if (this.connected) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.flush(),
        new Promise<void>((r) => {
          timer = setTimeout(r, 2 * this.config.fleet.commandTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
    }
    return this.connected && this.pending.length === 0 ? 'confirmed' : 'pending';
  }

  /** Routing through the fleet: while awaiting its first sync, legacy only (keys pinned to new included). */
  serveTable(table: RoutingTable): void {
    if (!this.awaiting) {
      this.o.serve?.(table);
      return;
    }
    // Weight 0, no segment, no shadow copy, only keys pinned to legacy: nothing reaches new.
    const overrides = new Map([...table.overrides].filter(([, side]) => side === 'legacy'));
    this.o.serve?.(Object.freeze({ ...table, weightBp: 0, overrides, segments: [], shadowBp: 0 }));
  }

  status(): FleetStatus {
    return {
      state: this.awaiting ? 'awaiting_fleet' : this.connected ? 'connected' : 'disconnected',
      connected: this.connected,
      member: this.memberId,
      leader: this.leaderId,
      is_leader: this.leader,
      version: this.seen?.version ?? null,
      last_sync: this.lastSyncAt === undefined ? null : new Date(this.lastSyncAt).toISOString(),
      pending_changes: this.pending.length,
    };
  }

  reconfigure(config: Config): void {
    this.config = { ...config, fleet: this.config.fleet };
    const id = this.o.controller.snapshot.rollout_id;
    if (id === this.rolloutId) return;
    // A new rollout id has its own state key and channel: nothing seen or queued for the old one applies.
    this.rolloutId = id;
    this.seen = undefined;
    this.provisional = undefined;
    this.pending = [];
    if (this.link.subscriber.status === 'ready') {
      if (this.channel) this.link.subscriber.unsubscribe(this.channel).catch(() => {});
      this.channel = this.key('changes');
      this.link.subscriber.subscribe(this.channel).catch(() => {});
    }
    this.schedule('rollout id changed');
  }

  // ---- reconciliation ----

  private keys() {
    return { state: this.key('state'), channel: this.key('changes') };
  }

  /** One sync queued at a time: a trigger while one waits is already covered by it. */
  private schedule(why: string): void {
    if (this.stopped || this.syncQueued) return;
    this.syncQueued = true;
    this.queue = this.queue.then(() => {
      this.syncQueued = false;
      return this.sync().catch((err: Error) => this.failed(`sync (${why})`, err));
    });
  }

  private failed(what: string, err: Error): void {
    this.o.metrics.fleetSyncErrors.inc();
    this.lost(`${what}: ${err.message}`);
  }

  /** Marks the fleet unreachable at once (a failed command of any kind): nothing moves toward new from here. */
  private lost(why: string): void {
    const wasLeader = this.leader;
    if (!this.connected && !wasLeader) return;
    this.connected = false;
    this.leader = false;
    this.outSince = Date.now();
    this.o.metrics.fleetLeader.set(0);
    this.o.metrics.fleetConnected.set(0);
    this.o.logger.warn(
      { member: this.memberId, why, was_leader: wasLeader },
      'fleet: shared state unreachable; serving the last known table, judging locally',
    );
  }

  private async sync(): Promise<void> {
    if (this.stopped || !this.link.ready) return;
    const c = this.o.controller;
    for (let attempt = 0; attempt < 5; attempt++) {
      const remote = await this.link.read(this.key('state'));
      // Taken after the read: a change made while Redis answered is part of what is decided here. A copy,
      // so that what is handled is exactly what was decided on.
      const local = c.snapshot;
      const pending = [...this.pending];
      const now = this.o.clock();
      if (remote?.provisional && this.provisional?.epoch !== remote.epoch) {
        this.provisional = { epoch: remote.epoch, since: now };
      }
      const plan = reconcile({
        local,
        pending,
        seen: this.seen,
        remote,
        knowledge: this.seen ? 'fleet' : knowledgeOf(local, pending),
        holdOver: this.provisional !== undefined && now - this.provisional.since >= this.config.fleet.seedHoldMs,
        now,
      });
      if (plan.kind === 'wait') return;
      if (plan.kind === 'adopt') {
        if (!sameContent(local, plan.record.state) || local.version !== plan.record.version) {
          c.adopt(stateOf(plan.record));
        }
        this.dropped(plan.dropped, plan.record);
        return this.synced(plan.record, pending);
      }
      const expected = remote ? { version: remote.version, epoch: remote.epoch } : { version: 0, epoch: '' };
      if ((await this.link.write(this.keys(), expected, plan)) !== 'written') continue;
      const record: StoreRecord = {
        version: plan.state.version,
        epoch: plan.epoch,
        provisional: plan.provisional,
        state: plan.state,
      };
      this.wrote(plan, record, remote);
      if (plan.provisional) {
        // Seeded from config alone: nobody serves it until confirmed (invariant 3), this sidecar included.
        this.provisional = { epoch: plan.epoch, since: now };
        this.handled(pending);
        return;
      }
      const late = this.pending.filter((p) => !pending.includes(p));
      if (late.length === 0 || !sameContent(plan.state, local)) {
        c.adopt(stateOf(record));
        // Changes made during the write were made on a state the fleet has replaced: applied again on top
        // of it (they are all moves toward legacy), and sent with the next sync.
        for (const p of late) c.reapply(p);
      }
      this.dropped(plan.dropped, record);
      return this.synced(record, pending);
    }
    throw new Error('state kept changing under five compare-and-set attempts');
  }

  private handled(pending: LocalChange[]): void {
    this.pending = this.pending.filter((p) => !pending.includes(p));
    this.o.metrics.fleetPendingChanges.set(this.pending.length);
  }

  private synced(record: StoreRecord, handled: LocalChange[]): void {
    this.handled(handled);
    this.seen = { epoch: record.epoch, version: record.version };
    this.provisional = undefined;
    this.lastSyncAt = this.o.clock();
    this.o.controller.noteFleetVersion(record.version, record.epoch);
    this.o.metrics.fleetStateVersion.set(record.version);
    if (this.awaiting) {
      this.awaiting = false;
      this.serveTable(this.o.controller.table);
      this.o.logger.info(
        { member: this.memberId, version: record.version },
        'fleet: first sync; serving the fleet state',
      );
    }
    if (!this.connected) {
      this.connected = true;
      this.o.metrics.fleetConnected.set(1);
      this.o.logger.info({ member: this.memberId, version: record.version }, 'fleet: in sync with the shared state');
      // At once, not at the next lease tick: between now and an answer, only the lease holder judges.
      void this.holdLease();
    }
  }

  /** Store resets and merges that replaced or dropped something are audited and logged at warn. */
  private wrote(plan: Extract<Plan, { kind: 'write' }>, record: StoreRecord, remote: StoreRecord | undefined): void {
    if (plan.why !== 'reseed' && plan.why !== 'seed' && plan.why !== 'confirm_seed') return;
    const reason =
      plan.why === 'confirm_seed'
        ? `store seeded from config confirmed after ${this.config.fleet.seedHoldMs} ms without a sidecar that remembers the fleet`
        : plan.why === 'seed'
          ? plan.provisional
            ? 'empty store seeded provisionally from config (served once confirmed)'
            : 'empty store seeded with this sidecar state'
          : remote
            ? `store reset (epoch ${remote.epoch} v${remote.version}${remote.provisional ? ', provisional' : ''}; this sidecar had seen ${this.seen ? `${this.seen.epoch} v${this.seen.version}` : 'none'}): re-seeded with this sidecar's state, stops carried over`
            : `store empty (this sidecar had seen ${this.seen?.epoch} v${this.seen?.version}): re-seeded with this sidecar's state`;
    const level = plan.why === 'reseed' ? 'warn' : 'info';
    this.o.logger[level](
      {
        member: this.memberId,
        state: record.state.state,
        weight_percent: record.state.weight_bp / 100,
        epoch: record.epoch,
        version: record.version,
      },
      `fleet: ${reason}`,
    );
    this.auditEntry(`fleet_${plan.why}`, reason, record.state, { epoch: record.epoch, version: record.version });
  }

  private dropped(actions: string[], record: StoreRecord): void {
    if (actions.length === 0) return;
    const reason = `another sidecar changed the rollout at the same time; its state wins over: ${actions.join(', ')}`;
    this.o.logger.warn({ member: this.memberId, dropped: actions, fleet_version: record.version }, `fleet: ${reason}`);
    this.auditEntry('fleet_merge_dropped', reason, record.state, { dropped: actions, version: record.version });
  }

  private auditEntry(action: string, reason: string, after: PersistedState, detail: Record<string, unknown>): void {
    try {
      this.o.audit?.append({
        time: new Date(this.o.clock()).toISOString(),
        actor: 'fleet',
        action,
        reason,
        rollout_id: after.rollout_id,
        before: null,
        after: {
          rollout_id: after.rollout_id,
          state: after.state,
          weight_percent: after.weight_bp / 100,
          latched: after.latched,
          kill_reason: after.kill_reason,
        },
        detail,
      });
    } catch (err) {
      this.o.logger.error({ err: (err as Error).message, action }, 'audit log not writable');
    }
  }

  // ---- health, windows and the lease ----

  /** A ping on both connections every health_interval: a hung Redis marks this sidecar disconnected within about a second. */
  private async health(): Promise<void> {
    if (this.pinging || this.stopped || !this.link.ready) return;
    this.pinging = true;
    try {
      await this.link.ping();
      if (!this.connected) this.schedule('redis answers');
    } catch (err) {
      this.failed('health ping', err as Error);
    } finally {
      this.pinging = false;
    }
  }

  private async publishWindow(): Promise<void> {
    if (!this.link.ready) return;
    const now = this.o.clock();
    const ttl = 3 * this.config.fleet.publishIntervalMs;
    const own = toWire(this.memberId, now, this.o.localWindows());
    try {
      const r = await this.link.commands
        .multi()
        .set(this.key(`window:${this.memberId}`), JSON.stringify(own), 'PX', ttl)
        .zadd(this.key('members'), now, this.memberId)
        .zremrangebyscore(this.key('members'), '-inf', now - ttl)
        .zrange(this.key('members'), '0', '-1')
        .exec();
      const members = (r?.[3]?.[1] as string[] | undefined) ?? [this.memberId];
      this.o.metrics.fleetMembers.set(members.length);
      if (!this.leader) return;
      const others = members.filter((m) => m !== this.memberId);
      const raw = others.length ? await this.link.commands.mget(others.map((m) => this.key(`window:${m}`))) : [];
      const wires: WindowWire[] = [own];
      for (const text of raw) if (text) wires.push(JSON.parse(text) as WindowWire);
      this.merged = { at: now, view: mergeWindows(wires), members: wires.length };
    } catch (err) {
      this.failed('window publish', err as Error);
    }
  }

  /**
   * Takes or renews the lease. The call carries a deadline Redis checks, so a call that waited in a hung
   * Redis past it does nothing (no lease held by a sidecar that thinks it has none); a holder whose answer
   * was lost finds itself holder on its next call and judges again.
   */
  private async holdLease(): Promise<void> {
    if (this.stopped || !this.link.ready || !this.connected) return;
    const was = this.leader;
    try {
      const deadline = await this.link.deadline(this.config.fleet.commandTimeoutMs);
      const holder = await this.link.lease(this.key('lease'), this.memberId, this.config.fleet.leaseTtlMs, deadline);
      if (holder === '' && !was) return this.lost('lease call reached Redis after its deadline');
      this.leaderId = holder || null;
      this.leader = this.connected && holder === this.memberId;
    } catch (err) {
      return this.failed('lease', err as Error);
    }
    this.o.metrics.fleetLeader.set(this.leader ? 1 : 0);
    if (this.leader === was) return;
    if (this.leader) {
      this.o.logger.info({ member: this.memberId }, 'fleet: took the lease; judging the fleet');
      void this.publishWindow();
    } else {
      this.o.logger.warn({ member: this.memberId, holder: this.leaderId }, 'fleet: lost the lease');
    }
  }
}

function stateOf(record: StoreRecord): PersistedState {
  return { ...record.state, version: record.version, fleet_epoch: record.epoch };
}

function unavailable(action: string): VeerError {
  return new VeerError(
    'fleet_unavailable',
    `${action} refused: the fleet store did not confirm it in time, and nothing moves traffic toward new on unconfirmed state; kill and rollback still work`,
  );
}

function conflict(action: string): VeerError {
  return new VeerError(
    'conflict',
    `${action} refused: the rollout changed in the fleet meanwhile; nothing changed, look and retry`,
  );
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'invalid url';
  }
}
