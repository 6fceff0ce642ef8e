// Fleet mode: one rollout shared by many sidecars over Redis: shared state by compare-and-set, a leader judging merged windows.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Redis, type RedisOptions } from 'ioredis';
import type { Config, UpstreamName } from '../config/types.js';
import type { Controller, FleetHooks, LocalChange } from '../guard/controller.js';
import type { WindowView } from '../guard/evaluate.js';
import type { Logger } from '../log.js';
import type { Clock, WindowSnapshot } from '../measure/window.js';
import type { Metrics } from '../metrics/registry.js';
import type { PersistedState } from '../state/store.js';
import { mergeWindows, toWire, type WindowWire } from './merge.js';

export interface FleetOptions {
  config: Config;
  controller: Controller;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  /** This sidecar's own windows, published every interval. */
  localWindows: () => Record<UpstreamName, WindowSnapshot>;
  memberId?: string;
}

/** Writes the state only when the stored version is the one the writer last saw; publishes the new version. */
const CAS = `
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur ~= tonumber(ARGV[1]) then return cur end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'state', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return -1`;

/** Extends the lease only for its holder. */
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type FleetRedis = Redis & {
  veerCas(state: string, channel: string, expected: number, version: number, json: string): Promise<number>;
  veerRenew(lease: string, member: string, ttl: number): Promise<number>;
  veerRelease(lease: string, member: string): Promise<number>;
};

export class Fleet implements FleetHooks {
  readonly memberId: string;
  /** Redis is reachable and this sidecar's state has been reconciled with the fleet's. */
  connected = false;
  leader = false;
  private readonly redis: FleetRedis;
  private readonly sub: Redis;
  /** Local changes not yet in Redis (made while it was unreachable, or on their way). */
  private pending: LocalChange[] = [];
  /** The version this sidecar last saw stored in Redis. */
  private syncedVersion = 0;
  private merged: { at: number; view: Record<UpstreamName, WindowView>; members: number } | undefined;
  private timers: NodeJS.Timeout[] = [];
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  private config: Config;
  /** The changes channel the subscriber listens on (it names the rollout id). */
  private channel = '';
  private rolloutId: string;

  constructor(private readonly o: FleetOptions) {
    this.config = o.config;
    this.rolloutId = o.controller.snapshot.rollout_id;
    this.memberId = o.memberId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    const f = o.config.fleet;
    const url = new URL(f.redisUrl);
    const options: RedisOptions = {
      lazyConnect: true,
      // Fail fast while Redis is away: the proxy never waits on it, and the guard falls back to local data.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 1000,
      commandTimeout: 1000,
      retryStrategy: (times) => Math.min(100 * times, 1000),
      username: f.usernameEnv ? process.env[f.usernameEnv] : undefined,
      password: f.passwordEnv ? process.env[f.passwordEnv] : undefined,
      tls: url.protocol === 'rediss:' ? { rejectUnauthorized: !f.tlsInsecure } : undefined,
    };
    this.redis = new Redis(f.redisUrl, options) as FleetRedis;
    this.redis.defineCommand('veerCas', { numberOfKeys: 2, lua: CAS });
    this.redis.defineCommand('veerRenew', { numberOfKeys: 1, lua: RENEW });
    this.redis.defineCommand('veerRelease', { numberOfKeys: 1, lua: RELEASE });
    this.sub = new Redis(f.redisUrl, { ...options, commandTimeout: undefined });
    for (const [name, client] of [
      ['store', this.redis],
      ['subscriber', this.sub],
    ] as const) {
      client.on('error', (err: Error) => this.o.logger.debug({ err: err.message, client: name }, 'fleet: redis error'));
      client.on('close', () => this.lost(`${name} connection closed`));
    }
    this.redis.on('ready', () => this.schedule('redis ready'));
    this.sub.on('ready', () => {
      this.channel = this.key('changes');
      this.sub.subscribe(this.channel).catch(() => {});
    });
    this.sub.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      // Compared with the store version we last reconciled with, not our own version number: two sidecars
      // can hold the same number for different states.
      if (Number(message) !== this.syncedVersion) this.schedule('change published');
    });
  }

  private key(name: string): string {
    return `${this.config.fleet.keyPrefix}:${this.o.controller.snapshot.rollout_id}:${name}`;
  }

  async start(): Promise<void> {
    const f = this.config.fleet;
    this.timers.push(setInterval(() => this.publishWindow(), f.publishIntervalMs));
    this.timers.push(setInterval(() => this.holdLease(), Math.max(100, Math.floor(f.leaseTtlMs / 3))));
    this.timers.push(setInterval(() => this.schedule('resync'), f.resyncIntervalMs));
    for (const t of this.timers) t.unref();
    await Promise.all([this.redis.connect().catch(() => {}), this.sub.connect().catch(() => {})]);
    // A first reconciliation before serving, when Redis is there; without it, the last-known local state serves.
    if (this.redis.status === 'ready') await this.flush();
    this.o.logger.info(
      { member: this.memberId, redis: redact(f.redisUrl), connected: this.connected, version: this.syncedVersion },
      'fleet mode on',
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    if (this.leader) await this.redis.veerRelease(this.key('lease'), this.memberId).catch(() => {});
    this.leader = false;
    this.redis.disconnect();
    this.sub.disconnect();
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
    this.schedule(`local ${change.action}`);
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

  reconfigure(config: Config): void {
    this.config = { ...config, fleet: this.config.fleet };
    const id = this.o.controller.snapshot.rollout_id;
    if (id === this.rolloutId) return;
    // A new rollout id has its own state key and channel: nothing seen or queued for the old one applies.
    this.rolloutId = id;
    this.syncedVersion = 0;
    this.pending = [];
    if (this.sub.status === 'ready') {
      if (this.channel) this.sub.unsubscribe(this.channel).catch(() => {});
      this.channel = this.key('changes');
      this.sub.subscribe(this.channel).catch(() => {});
    }
    this.schedule('rollout id changed');
  }

  // ---- reconciliation ----

  private schedule(why: string): void {
    if (this.stopped) return;
    this.queue = this.queue.then(() =>
      this.sync().catch((err: Error) => {
        this.o.metrics.fleetSyncErrors.inc();
        this.lost(`sync failed (${why}): ${err.message}`);
      }),
    );
  }

  private lost(why: string): void {
    if (!this.connected && !this.leader) return;
    this.connected = false;
    this.leader = false;
    this.o.metrics.fleetLeader.set(0);
    this.o.logger.warn({ member: this.memberId, why }, 'fleet: shared state unreachable; serving the last known table');
  }

  private async read(): Promise<{ version: number; state: PersistedState } | undefined> {
    const [version, json] = await this.redis.hmget(this.key('state'), 'version', 'state');
    if (!version || !json) return undefined;
    return { version: Number(version), state: JSON.parse(json) as PersistedState };
  }

  private async cas(expected: number, next: PersistedState): Promise<boolean> {
    const { fleet_version: _own, ...shared } = next;
    const r = await this.redis.veerCas(
      this.key('state'),
      this.key('changes'),
      expected,
      next.version,
      JSON.stringify(shared),
    );
    return r === -1;
  }

  /**
   * Brings local and shared state together. `seen` is the store version this sidecar last reconciled with
   * (kept in its state file across restarts); version numbers of different writers say nothing about which
   * state is newer, so only "the store moved since we saw it" and "we have unshared changes" decide:
   * - store unmoved, changes here: pushed by compare-and-set;
   * - store moved, nothing here: adopted;
   * - store moved and changes here: the fleet's state wins, and only our moves toward legacy are replayed on
   *   top of it (kill, rollback, lower weight from the queue; after a restart, when the queue is gone, the
   *   kill, rollback or latch the state file holds).
   */
  private async sync(): Promise<void> {
    if (this.stopped || this.redis.status !== 'ready') return;
    const c = this.o.controller;
    for (let attempt = 0; attempt < 5; attempt++) {
      const remote = await this.read();
      // Taken after the read: a change made while Redis answered is part of what is decided here. A copy,
      // so that what is handled is exactly what was decided on.
      const local = c.snapshot;
      const pending = [...this.pending];
      const seen = this.syncedVersion || local.fleet_version || 0;
      const ahead = pending.length > 0 || local.version > seen;
      if (!remote) {
        // An empty store (first sidecar, or Redis restarted without data): seed it with what we know.
        if (await this.cas(0, local)) return this.synced(local.version, pending);
        continue;
      }
      if (remote.version === seen) {
        if (!ahead) {
          if (local.version !== remote.version) c.adopt(remote.state);
          return this.synced(remote.version, pending);
        }
        const next = local.version > remote.version ? local : { ...local, version: remote.version + 1 };
        if (!(await this.cas(remote.version, next))) continue;
        // A change made during the write was made on `local`, which is what went out (maybe numbered higher):
        // it stays queued for the next sync, and adopting `next` would undo it.
        if (next !== local && c.snapshot === local) c.adopt(next, 'fleet');
        return this.synced(next.version, pending);
      }
      if (!ahead) {
        c.adopt(remote.state);
        return this.synced(remote.version, pending);
      }
      // The fleet moved on meanwhile: keep our moves toward legacy, drop the rest.
      let next = remote.state;
      let kept = 0;
      if (pending.length > 0) {
        const safe = pending.filter((p) => p.safe);
        for (const p of safe) {
          if (next.state === 'killed' && p.action !== 'kill') continue;
          next = { ...p.mutate(next), last_change: p.next.last_change, weight_since: this.o.clock() };
          kept++;
        }
        if (pending.length > safe.length) {
          this.o.logger.warn(
            { dropped: pending.filter((p) => !p.safe).map((p) => p.action), fleet_version: remote.version },
            'fleet: another sidecar changed the rollout at the same time; its state wins over these changes',
          );
        }
      } else {
        next = towardLegacy(local, remote.state);
        if (next !== remote.state) kept++;
      }
      if (kept > 0) {
        next = { ...next, version: remote.version + 1 };
        if (!(await this.cas(remote.version, next))) continue;
      }
      const late = c.snapshot === local ? [] : this.pending.filter((p) => !pending.includes(p));
      c.adopt(kept > 0 ? next : remote.state, 'fleet');
      // Changes made during the write were made on a state the fleet has replaced: the moves toward legacy
      // among them are applied again on top of it (and go out with the next sync), the rest are dropped.
      for (const p of late) if (p.safe) c.reapply(p);
      this.pending = this.pending.filter((p) => !late.includes(p) || p.safe);
      return this.synced(kept > 0 ? next.version : remote.version, pending);
    }
    throw new Error('state kept changing under five compare-and-set attempts');
  }

  private synced(version: number, handled: LocalChange[]): void {
    this.pending = this.pending.filter((p) => !handled.includes(p));
    this.syncedVersion = version;
    this.o.controller.noteFleetVersion(version);
    this.o.metrics.fleetStateVersion.set(version);
    if (!this.connected) {
      this.connected = true;
      this.o.logger.info({ member: this.memberId, version }, 'fleet: in sync with the shared state');
    }
  }

  // ---- windows and the lease ----

  private async publishWindow(): Promise<void> {
    if (this.redis.status !== 'ready') return;
    const now = this.o.clock();
    const ttl = 3 * this.config.fleet.publishIntervalMs;
    const own = toWire(this.memberId, now, this.o.localWindows());
    try {
      const r = await this.redis
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
      const raw = others.length ? await this.redis.mget(others.map((m) => this.key(`window:${m}`))) : [];
      const wires: WindowWire[] = [own];
      for (const text of raw) if (text) wires.push(JSON.parse(text) as WindowWire);
      this.merged = { at: now, view: mergeWindows(wires), members: wires.length };
    } catch (err) {
      this.o.metrics.fleetSyncErrors.inc();
      this.o.logger.debug({ err: (err as Error).message }, 'fleet: window publish failed');
    }
  }

  private async holdLease(): Promise<void> {
    if (this.redis.status !== 'ready' || !this.connected) return;
    const key = this.key('lease');
    const ttl = this.config.fleet.leaseTtlMs;
    try {
      const was = this.leader;
      this.leader = this.leader
        ? (await this.redis.veerRenew(key, this.memberId, ttl)) === 1
        : (await this.redis.set(key, this.memberId, 'PX', ttl, 'NX')) === 'OK';
      this.o.metrics.fleetLeader.set(this.leader ? 1 : 0);
      if (this.leader !== was) {
        this.o.logger.info(
          { member: this.memberId, leader: this.leader },
          this.leader ? 'fleet: took the lease' : 'fleet: lost the lease',
        );
        if (this.leader) void this.publishWindow();
      }
    } catch (err) {
      this.o.metrics.fleetSyncErrors.inc();
      this.leader = false;
      this.o.metrics.fleetLeader.set(0);
      this.o.logger.debug({ err: (err as Error).message }, 'fleet: lease renewal failed');
    }
  }
}

/**
 * After a restart the queue of unshared changes is gone; of what the state file holds beyond the store,
 * only a stop (kill, rollback, latch) is carried onto the fleet's state. A stale stop can only hold traffic
 * on legacy until an operator resumes; a stale weight could send it to a failing backend.
 */
export function towardLegacy(local: PersistedState, shared: PersistedState): PersistedState {
  if (local.state === 'killed' && shared.state !== 'killed') {
    return {
      ...shared,
      state: 'killed',
      weight_bp: 0,
      kill_reason: local.kill_reason,
      before_kill: { state: shared.state, weight_bp: shared.weight_bp },
      last_change: local.last_change,
    };
  }
  const stopped = local.state === 'rolled_back' || local.state === 'latched';
  const running = shared.state === 'progressing' || shared.state === 'holding' || shared.state === 'promoted';
  if (stopped && running) {
    return {
      ...shared,
      state: local.state,
      weight_bp: 0,
      latched: local.latched,
      flips: local.flips,
      last_change: local.last_change,
    };
  }
  return shared;
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
