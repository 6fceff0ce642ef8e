// Fleet mode: one rollout shared by many sidecars over Redis: shared state by compare-and-set, a leader judging merged windows.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config, UpstreamName } from '../config/types.js';
import type { Controller, FleetHooks, LocalChange, Proposal } from '../guard/controller.js';
import type { WindowView } from '../guard/evaluate.js';
import type { Logger } from '../log.js';
import type { Clock, WindowSnapshot } from '../measure/window.js';
import type { Metrics } from '../metrics/registry.js';
import type { FleetStatus } from '../rollout.js';
import type { RoutingTable } from '../routing/table.js';
import type { AuditLog } from '../state/audit.js';
import type { PersistedState } from '../state/store.js';
import { ChangesChannel } from './changes-channel.js';
import { Judge } from './judge.js';
import { RedisLink } from './link.js';
import { knowledgeOf, reconcile, type Seen, type StoreRecord, sameContent } from './reconcile.js';
import { conflict, FleetReport, redact, unavailable } from './report.js';
import { UnconfirmedWrite } from './take-back.js';

export type { FleetLinkState, FleetStatus } from '../rollout.js';

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

export class Fleet implements FleetHooks {
  readonly memberId: string;
  /** Redis is reachable and this sidecar's state has been reconciled with a confirmed fleet state. */
  connected = false;
  /** Serving legacy only: no state file, no sync yet (fleet.start_without_store: awaiting). */
  awaiting: boolean;
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
  private readonly judge: Judge;
  private readonly report: FleetReport;
  private timers: NodeJS.Timeout[] = [];
  private queue: Promise<void> = Promise.resolve();
  private syncQueued = false;
  /** A change toward new answered 503 whose write timed out: it may be in the store all the same. */
  private readonly unconfirmed: UnconfirmedWrite;
  private proposals = 0;
  private pinging = false;
  private stopped = false;
  private config: Config;
  /** The changes channel of the current rollout id (the subscriber's). */
  private readonly changes: ChangesChannel;
  private rolloutId: string;

  constructor(private readonly options: FleetOptions) {
    this.config = options.config;
    const local = options.controller.snapshot;
    this.rolloutId = local.rollout_id;
    this.memberId = options.memberId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    if (local.fleet_version !== undefined) this.seen = { epoch: local.fleet_epoch ?? '', version: local.fleet_version };
    // Invariant 3 (reconcile.ts): a sidecar that knows only its config serves legacy until it has synced.
    this.awaiting = options.config.fleet.startWithoutStore === 'awaiting' && knowledgeOf(local, []) === 'none';
    this.serveTable(options.controller.table);
    this.outSince = Date.now();
    options.metrics.live.fleetDisconnectedSeconds = () => (this.connected ? 0 : (Date.now() - this.outSince) / 1000);
    this.link = new RedisLink(options.config.fleet);
    this.report = new FleetReport({
      memberId: this.memberId,
      logger: options.logger,
      clock: options.clock,
      audit: options.audit,
      seedHoldMs: () => this.config.fleet.seedHoldMs,
    });
    this.unconfirmed = new UnconfirmedWrite({
      link: this.link,
      keys: () => this.keys(),
      clock: options.clock,
      logger: options.logger,
      memberId: this.memberId,
      report: this.report,
    });
    this.judge = new Judge({
      link: this.link,
      memberId: this.memberId,
      metrics: options.metrics,
      logger: options.logger,
      clock: options.clock,
      fleet: () => this.config.fleet,
      key: (name) => this.key(name),
      localWindows: options.localWindows,
      connected: () => this.connected,
      failed: (what, err) => this.failed(what, err),
    });
    for (const [name, client] of [
      ['store', this.link.commands],
      ['subscriber', this.link.subscriber],
    ] as const) {
      client.on('error', (err: Error) =>
        this.options.logger.debug({ err: err.message, client: name }, 'fleet: redis error'),
      );
      client.on('close', () => this.lost(`${name} connection closed`));
    }
    this.link.commands.on('ready', () => this.schedule('redis ready'));
    this.changes = new ChangesChannel(
      this.link.subscriber,
      () => this.key('changes'),
      (message) => {
        // Compared with the store position we last reconciled with, not our own version number: two sidecars
        // can hold the same number for different states.
        if (!this.seen || message !== `${this.seen.epoch}:${this.seen.version}`) this.schedule('change published');
      },
    );
  }

  private key(name: string): string {
    return `${this.config.fleet.keyPrefix}:${this.options.controller.snapshot.rollout_id}:${name}`;
  }

  /** Connects and reconciles once, for at most `fleet.connect_timeout`: the proxy listens after it whatever Redis does. */
  async start(): Promise<void> {
    const f = this.config.fleet;
    this.timers.push(setInterval(() => this.judge.publish(), f.publishIntervalMs));
    this.timers.push(setInterval(() => this.judge.hold(), Math.max(100, Math.floor(f.leaseTtlMs / 3))));
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
    this.options.logger.info(
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
    await this.judge.release();
    this.link.disconnect();
  }

  // ---- FleetHooks ----

  /** This sidecar holds the lease and judges the fleet. */
  get leader(): boolean {
    return this.judge.leader;
  }

  mayAct(): boolean {
    // Connected: only the lease holder judges, on fleet-wide data. Cut off: the local guard protects alone.
    return !this.connected || this.leader;
  }

  mayMoveTowardNew(): boolean {
    return this.connected;
  }

  changed(change: LocalChange): void {
    this.pending.push(change);
    this.options.metrics.fleetPendingChanges.set(this.pending.length);
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
      const c = this.options.controller;
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
        // Redis may have run it before its deadline with the answer still on its way: the next read on
        // this connection (Redis answers in order) tells, and sync() takes it back if it is there.
        this.unconfirmed.note(seen.epoch, c.snapshot, next);
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
    return this.connected ? this.judge.windows() : undefined;
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
      this.options.serve?.(table);
      return;
    }
    // Weight 0, no segment, no shadow copy, only keys pinned to legacy: nothing reaches new.
    const overrides = new Map([...table.overrides].filter(([, side]) => side === 'legacy'));
    this.options.serve?.(Object.freeze({ ...table, weightBp: 0, overrides, segments: [], shadowBp: 0 }));
  }

  status(): FleetStatus {
    return {
      state: this.awaiting ? 'awaiting_fleet' : this.connected ? 'connected' : 'disconnected',
      connected: this.connected,
      member: this.memberId,
      leader: this.judge.holder,
      is_leader: this.leader,
      version: this.seen?.version ?? null,
      last_sync: this.lastSyncAt === undefined ? null : new Date(this.lastSyncAt).toISOString(),
      pending_changes: this.pending.length,
    };
  }

  reconfigure(config: Config): void {
    this.config = { ...config, fleet: this.config.fleet };
    const id = this.options.controller.snapshot.rollout_id;
    if (id === this.rolloutId) return;
    // A new rollout id has its own state key and channel: nothing seen or queued for the old one applies.
    this.rolloutId = id;
    this.seen = undefined;
    this.provisional = undefined;
    this.pending = [];
    this.changes.follow();
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
    this.options.metrics.fleetSyncErrors.inc();
    this.lost(`${what}: ${err.message}`);
  }

  /** Marks the fleet unreachable at once (a failed command of any kind): nothing moves toward new from here. */
  private lost(why: string): void {
    const wasLeader = this.leader;
    if (!this.connected && !wasLeader) return;
    this.connected = false;
    this.judge.drop();
    this.outSince = Date.now();
    this.options.metrics.fleetConnected.set(0);
    this.options.logger.warn(
      { member: this.memberId, why, was_leader: wasLeader },
      'fleet: shared state unreachable; serving the last known table, judging locally',
    );
  }

  private async sync(): Promise<void> {
    if (this.stopped || !this.link.ready) return;
    await this.changes.subscribed();
    const c = this.options.controller;
    for (let attempt = 0; attempt < 5; attempt++) {
      const remote = await this.link.read(this.key('state'));
      if (await this.unconfirmed.takeBack(remote)) continue;
      // Taken after the read: a change made while Redis answered is part of what is decided here. A copy,
      // so that what is handled is exactly what was decided on.
      const local = c.snapshot;
      const pending = [...this.pending];
      const now = this.options.clock();
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
        this.report.dropped(plan.dropped, plan.record);
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
      this.report.wrote(plan, record, remote, this.seen);
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
      this.report.dropped(plan.dropped, record);
      return this.synced(record, pending);
    }
    throw new Error('state kept changing under five compare-and-set attempts');
  }

  private handled(pending: LocalChange[]): void {
    this.pending = this.pending.filter((p) => !pending.includes(p));
    this.options.metrics.fleetPendingChanges.set(this.pending.length);
  }

  private synced(record: StoreRecord, handled: LocalChange[]): void {
    this.handled(handled);
    this.seen = { epoch: record.epoch, version: record.version };
    this.provisional = undefined;
    this.lastSyncAt = this.options.clock();
    this.options.controller.noteFleetVersion(record.version, record.epoch);
    this.options.metrics.fleetStateVersion.set(record.version);
    if (this.awaiting) {
      this.awaiting = false;
      this.serveTable(this.options.controller.table);
      this.options.logger.info(
        { member: this.memberId, version: record.version },
        'fleet: first sync; serving the fleet state',
      );
    }
    if (!this.connected) {
      this.connected = true;
      this.options.metrics.fleetConnected.set(1);
      this.options.logger.info(
        { member: this.memberId, version: record.version },
        'fleet: in sync with the shared state',
      );
      // At once, not at the next lease tick: between now and an answer, only the lease holder judges.
      void this.judge.hold();
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
}

function stateOf(record: StoreRecord): PersistedState {
  return { ...record.state, version: record.version, fleet_epoch: record.epoch };
}
