// A fleet under test: real veer processes on one redis-server (directly or through cuttable relays), load through each, and what each request hit.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import type { MockUpstream } from '../../bench/mock-upstream.js';
import { spawnVeer, type VeerProcess } from './process.js';
import { RedisRelay, startRedis, stopRedis } from './redis.js';
import { unusedPort } from './stack.js';

export const TOKEN = 'fleet-operator-token-0123456789';

/** Short intervals so that every fault plays out in a few seconds. */
export const FAST_FLEET = {
  publish_interval: '200ms',
  lease_ttl: '1s',
  resync_interval: '500ms',
  connect_timeout: '1s',
  command_timeout: '300ms',
  health_interval: '200ms',
  seed_hold: '3s',
};

export interface Member {
  name: string;
  dir: string;
  proc: VeerProcess;
  /** Spawned at (performance.now()), for start-up bounds. */
  spawnedAt: number;
}

export interface Hit {
  member: string;
  /** performance.now() when the request was sent. */
  sentAt: number;
  upstream: string;
}

// biome-ignore lint/suspicious/noExplicitAny: JSON from the admin API, read field by field in the tests.
export type Json = any;

export class FleetRig {
  redis: ChildProcess | undefined;
  readonly members: Member[] = [];
  readonly hits: Hit[] = [];
  readonly relays: RedisRelay[] = [];
  private loads: Promise<void>[] = [];
  private loading = false;
  private sent = 0;

  constructor(
    readonly redisPort: number,
    readonly upstreams: { legacy: MockUpstream; next: MockUpstream },
    readonly rolloutId: string,
  ) {}

  static async create(upstreams: { legacy: MockUpstream; next: MockUpstream }, rolloutId: string) {
    const rig = new FleetRig(await unusedPort(), upstreams, rolloutId);
    await rig.startRedis();
    return rig;
  }

  async startRedis(): Promise<void> {
    this.redis = await startRedis(this.redisPort);
  }

  async killRedis(): Promise<void> {
    if (this.redis) await stopRedis(this.redis);
  }

  /** A relay to redis for one member, so that member alone can be kept from redis. */
  async relay(): Promise<RedisRelay> {
    const relay = new RedisRelay(await unusedPort(), this.redisPort);
    await relay.up();
    this.relays.push(relay);
    return relay;
  }

  /** Spawns a member; `dir` reuses a state directory (a restart), `port` points it at a relay. */
  spawn(name: string, options: { dir?: string; port?: number; fleet?: Record<string, unknown> } = {}): Member {
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), `veer-faults-${name}-`));
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0, tokens: [{ name: 'oncall', file: join(dir, 'token') }] },
      upstreams: { legacy: { url: this.upstreams.legacy.url }, new: { url: this.upstreams.next.url } },
      rollout: { id: this.rolloutId, weight: 20 },
      routing: { keys: [{ header: 'x-user-id' }] },
      slo: { window: '20s', slices: 4, interval: '250ms', min_samples: 1000, rules: ['ttfb_p95 <= 5s'] },
      state: { path: join(dir, 'state.json'), audit_path: join(dir, 'audit.jsonl') },
      fleet: {
        enabled: true,
        redis_url: `redis://127.0.0.1:${options.port ?? this.redisPort}`,
        ...FAST_FLEET,
        ...options.fleet,
      },
      log: { level: 'info', access: false },
    };
    writeFileSync(join(dir, 'veer.json'), JSON.stringify(config));
    const proc = spawnVeer(['run', '--config', join(dir, 'veer.json')], { env: { VEER_LOG_LEVEL: 'info' } });
    const member = { name, dir, proc, spawnedAt: performance.now() };
    this.members.push(member);
    return member;
  }

  async start(name: string, options: Parameters<FleetRig['spawn']>[1] = {}): Promise<Member> {
    const member = this.spawn(name, options);
    await member.proc.waitForLine((l) => l.msg === 'veer started', 20_000);
    return member;
  }

  /** Requests through a member, one after another, a fresh user key each, until stopLoad(). */
  load(m: Member, pauseMs = 15): void {
    this.loading = true;
    this.loads.push(this.loop(m, pauseMs));
  }

  private async loop(m: Member, pauseMs: number): Promise<void> {
    while (this.loading && m.proc.child.exitCode === null) {
      const sentAt = performance.now();
      try {
        const res = await request(`http://127.0.0.1:${m.proc.proxyPort()}/v1/completions`, {
          method: 'POST',
          headers: { 'x-user-id': `u-${m.name}-${this.sent++}` },
          body: '{}',
          headersTimeout: 5000,
          bodyTimeout: 5000,
        });
        await res.body.dump();
        this.hits.push({ member: m.name, sentAt, upstream: String(res.headers['x-veer-upstream'] ?? '?') });
      } catch {
        // a member being restarted: the next round tries again
      }
      await sleep(pauseMs);
    }
  }

  async stopLoad(): Promise<void> {
    this.loading = false;
    await Promise.all(this.loads);
    this.loads = [];
  }

  /** Requests sent at or after `t` (performance.now()) that reached new, on the given members. */
  newAfter(t: number, members: string[]): Hit[] {
    return this.hits.filter((h) => h.sentAt >= t && h.upstream === 'new' && members.includes(h.member));
  }

  share(member: string, from: number, to = Number.POSITIVE_INFINITY): { n: number; onNew: number } {
    const hits = this.hits.filter((h) => h.member === member && h.sentAt >= from && h.sentAt < to);
    return { n: hits.length, onNew: hits.filter((h) => h.upstream === 'new').length };
  }

  async status(m: Member): Promise<Json> {
    const res = await request(`http://127.0.0.1:${m.proc.adminPort()}/api/status`);
    return res.body.json();
  }

  async readyz(m: Member): Promise<Json> {
    const res = await request(`http://127.0.0.1:${m.proc.adminPort()}/readyz`);
    return res.body.json();
  }

  async admin(
    m: Member,
    method: string,
    path: string,
    body: unknown,
  ): Promise<{ status: number; body: Json; ms: number }> {
    const t0 = performance.now();
    const res = await request(`http://127.0.0.1:${m.proc.adminPort()}${path}`, {
      method: method as 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = await res.body.json();
    return { status: res.statusCode, body: json, ms: performance.now() - t0 };
  }

  audit(m: Member): Json[] {
    return readFileSync(join(m.dir, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
  }

  live(): Member[] {
    return this.members.filter((m) => m.proc.child.exitCode === null && m.proc.child.signalCode === null);
  }

  /** What the fleet looked like, for the message of a wait that timed out. */
  async picture(): Promise<string> {
    const rows = await Promise.all(
      this.live().map(async (m) => {
        const st = await this.status(m).catch((e: Error) => ({ error: e.message }));
        const lines = m.proc.lines
          .filter((l) => String(l.msg).startsWith('fleet') || String(l.msg).startsWith('rollout'))
          .slice(-6)
          .map((l) => `    ${l.msg} ${JSON.stringify({ ...l, msg: undefined, time: undefined, pid: undefined })}`);
        return `  ${m.name}: ${JSON.stringify(st.rollout ?? st)} fleet=${JSON.stringify(st.fleet)}\n${lines.join('\n')}`;
      }),
    );
    return rows.join('\n');
  }

  async until<T>(what: string, f: () => Promise<T | undefined | false>, timeoutMs = 8000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await f().catch(() => undefined);
      if (v) return v;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}\n${await this.picture().catch(String)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    await this.stopLoad();
    await Promise.all(this.members.map((m) => m.proc.stop()));
    await Promise.all(this.relays.map((r) => r.down()));
    if (this.redis) {
      try {
        this.redis.kill('SIGCONT');
      } catch {
        // already gone
      }
      await this.killRedis();
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
