// The two Redis connections of fleet mode (commands, subscriber), their scripts, and the health ping that bounds what a hang costs.

import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/types.js';
import type { PersistedState } from '../state/store.js';
import type { StoreRecord } from './reconcile.js';

/** Redis' clock in epoch ms, inside a script (effects replication, so a write may follow it). */
const NOW = `
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * Writes the state only over the store position the writer read (epoch and version; an empty store is
 * epoch '' version 0), and only before ARGV[7] in Redis' clock when it is not 0: a write that waited in a
 * hung Redis past its deadline does nothing, so a caller that gave up never finds it applied later.
 */
const WRITE = `${NOW}
if tonumber(ARGV[7]) > 0 and now > tonumber(ARGV[7]) then return -2 end
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local epoch = redis.call('HGET', KEYS[1], 'epoch') or ''
if cur ~= tonumber(ARGV[1]) or epoch ~= ARGV[2] then return cur end
redis.call('HSET', KEYS[1], 'version', ARGV[3], 'epoch', ARGV[4], 'provisional', ARGV[5], 'state', ARGV[6])
redis.call('PUBLISH', KEYS[2], ARGV[4] .. ':' .. ARGV[3])
return -1`;

/**
 * Takes the lease when free, renews it for its holder (also a holder that did not hear its own
 * acquisition answered), before the deadline ARGV[3]; answers the holder either way.
 */
const LEASE = `${NOW}
if now > tonumber(ARGV[3]) then return redis.call('GET', KEYS[1]) or '' end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return ARGV[1] end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return ARGV[1] end
return holder`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type ScriptedRedis = Redis & {
  veerWrite(
    state: string,
    channel: string,
    expectedVersion: number,
    expectedEpoch: string,
    version: number,
    epoch: string,
    provisional: string,
    json: string,
    deadline: number,
  ): Promise<number>;
  veerLease(lease: string, member: string, ttl: number, deadline: number): Promise<string>;
  veerRelease(lease: string, member: string): Promise<number>;
};

/** What a compare-and-set came to: written, the store moved under us, or Redis saw it after its deadline. */
export type WriteResult = 'written' | 'moved' | 'expired';

export class RedisLink {
  readonly commands: ScriptedRedis;
  readonly subscriber: Redis;
  /** Redis' clock minus ours (ms), from the last health ping; undefined before the first. */
  private offsetMs: number | undefined;

  constructor(fleet: Config['fleet']) {
    const url = new URL(fleet.redisUrl);
    const options: RedisOptions = {
      lazyConnect: true,
      // Fail fast while Redis is away or hung: the proxy never waits on it, and the guard falls back to
      // local data. connectTimeout bounds the TCP connect, commandTimeout every command (the ready check's
      // INFO included), so neither client can wait on a hung Redis for longer.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: fleet.connectTimeoutMs,
      commandTimeout: fleet.commandTimeoutMs,
      retryStrategy: (times) => Math.min(100 * times, 500),
      username: fleet.usernameEnv ? process.env[fleet.usernameEnv] : undefined,
      password: fleet.passwordEnv ? process.env[fleet.passwordEnv] : undefined,
      tls: url.protocol === 'rediss:' ? { rejectUnauthorized: !fleet.tlsInsecure } : undefined,
    };
    this.commands = new Redis(fleet.redisUrl, options) as ScriptedRedis;
    this.commands.defineCommand('veerWrite', { numberOfKeys: 2, lua: WRITE });
    this.commands.defineCommand('veerLease', { numberOfKeys: 1, lua: LEASE });
    this.commands.defineCommand('veerRelease', { numberOfKeys: 1, lua: RELEASE });
    this.subscriber = new Redis(fleet.redisUrl, options);
  }

  get ready(): boolean {
    return this.commands.status === 'ready';
  }

  connect(): Promise<unknown> {
    return Promise.all([this.commands.connect().catch(() => {}), this.subscriber.connect().catch(() => {})]);
  }

  disconnect(): void {
    this.commands.disconnect();
    this.subscriber.disconnect();
  }

  /** Both connections answer within the command timeout; also measures Redis' clock against ours. */
  async ping(): Promise<void> {
    const t0 = Date.now();
    const time = (this.commands.time() as unknown as Promise<[string, string]>).then(([sec, usec]) => {
      const t1 = Date.now();
      this.offsetMs = Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - (t0 + t1) / 2;
    });
    await Promise.all([time, this.subscriber.ping()]);
  }

  /**
   * A deadline in Redis' clock for a command sent now: half the command timeout, so an answer that
   * comes back is back before the client gives up on it, and a command that came too late did nothing.
   */
  async deadline(commandTimeoutMs: number): Promise<number> {
    if (this.offsetMs === undefined) await this.ping();
    return Math.floor(Date.now() + (this.offsetMs ?? 0) + commandTimeoutMs / 2);
  }

  async read(key: string): Promise<StoreRecord | undefined> {
    const [version, epoch, provisional, json] = await this.commands.hmget(
      key,
      'version',
      'epoch',
      'provisional',
      'state',
    );
    if (!version || !json) return undefined;
    return {
      version: Number(version),
      epoch: epoch ?? '',
      provisional: provisional === '1',
      state: JSON.parse(json) as PersistedState,
    };
  }

  async write(
    keys: { state: string; channel: string },
    expected: { version: number; epoch: string },
    next: { state: PersistedState; epoch: string; provisional: boolean },
    deadline = 0,
  ): Promise<WriteResult> {
    const { fleet_version: _v, fleet_epoch: _e, ...shared } = next.state;
    const r = await this.commands.veerWrite(
      keys.state,
      keys.channel,
      expected.version,
      expected.epoch,
      next.state.version,
      next.epoch,
      next.provisional ? '1' : '0',
      JSON.stringify(shared),
      deadline,
    );
    return r === -1 ? 'written' : r === -2 ? 'expired' : 'moved';
  }

  /** Takes or renews the lease; answers the holder ('' when Redis saw the call after its deadline). */
  lease(key: string, member: string, ttlMs: number, deadline: number): Promise<string> {
    return this.commands.veerLease(key, member, ttlMs, deadline);
  }

  release(key: string, member: string): Promise<number> {
    return this.commands.veerRelease(key, member);
  }
}
