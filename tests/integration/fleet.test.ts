// Fleet mode with a real redis-server and three real veer processes: propagation, judgement, failover, outages.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MockUpstream, startMockUpstream } from '../../bench/mock-upstream.js';
import { spawnVeer, type VeerProcess } from '../helpers/process.js';
import { requireProgram } from '../helpers/programs.js';
import { startRedis, stopRedis } from '../helpers/redis.js';
import { unusedPort } from '../helpers/stack.js';

const TOKEN = 'fleet-operator-token-0123456789';

interface Member {
  name: string;
  dir: string;
  proc: VeerProcess;
}

async function status(m: Member): Promise<any> {
  const res = await request(`http://127.0.0.1:${m.proc.adminPort()}/api/status`);
  return res.body.json();
}

async function metric(m: Member, name: string): Promise<number> {
  const res = await request(`http://127.0.0.1:${m.proc.adminPort()}/metrics`);
  const text = await res.body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : Number.NaN;
}

async function admin(m: Member, method: string, path: string, body: unknown) {
  const res = await request(`http://127.0.0.1:${m.proc.adminPort()}${path}`, {
    method: method as 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.statusCode, body: (await res.body.json()) as any };
}

function audit(m: Member): any[] {
  return readFileSync(join(m.dir, 'audit.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

/** What the fleet looked like, for the message of a wait that timed out. */
let picture: () => Promise<string> = async () => '';

async function until<T>(what: string, f: () => Promise<T | undefined | false>, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${await picture().catch(String)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.skipIf(requireProgram('redis-server'))('fleet mode: three sidecars, one redis', () => {
  let redisPort: number;
  let redis: ChildProcess;
  let legacy: MockUpstream;
  let next: MockUpstream;
  const members: Member[] = [];

  const startMember = async (name: string) => {
    const dir = mkdtempSync(join(tmpdir(), `veer-fleet-${name}-`));
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
    const config = {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0, tokens: [{ name: 'oncall', file: join(dir, 'token') }] },
      upstreams: { legacy: { url: legacy.url }, new: { url: next.url } },
      rollout: { id: 'fleet-test', weight: 100 },
      routing: { keys: [{ header: 'x-user-id' }] },
      slo: {
        window: '20s',
        slices: 4,
        interval: '250ms',
        min_samples: 60,
        cooldown: '1s',
        rules: ['ttfb_p95 <= 550ms'],
      },
      state: { path: join(dir, 'state.json'), audit_path: join(dir, 'audit.jsonl') },
      fleet: {
        enabled: true,
        redis_url: `redis://127.0.0.1:${redisPort}`,
        publish_interval: '200ms',
        lease_ttl: '1s',
        resync_interval: '500ms',
        seed_hold: '300ms',
      },
      log: { level: 'info', access: false },
    };
    writeFileSync(join(dir, 'veer.json'), JSON.stringify(config));
    const proc = spawnVeer(['run', '--config', join(dir, 'veer.json')], { env: { VEER_LOG_LEVEL: 'info' } });
    await proc.waitForLine((l) => l.msg === 'veer started');
    const m = { name, dir, proc };
    members.push(m);
    return m;
  };
  const live = () => members.filter((m) => m.proc.child.exitCode === null && m.proc.child.signalCode === null);
  picture = async () => {
    const rows = await Promise.all(
      live().map(async (m) => {
        const st = await status(m).catch((e: Error) => ({ error: e.message }));
        const fleetLines = m.proc.lines
          .filter((l) => String(l.msg).startsWith('fleet') || String(l.msg).startsWith('rollout'))
          .slice(-6)
          .map(
            (l) =>
              `    ${l.msg} ${JSON.stringify({ ...l, msg: undefined, time: undefined, pid: undefined, hostname: undefined })}`,
          );
        return `  ${m.name}: ${JSON.stringify(st.rollout ?? st)}\n${fleetLines.join('\n')}`;
      }),
    );
    return rows.join('\n');
  };

  beforeAll(async () => {
    redisPort = await unusedPort();
    redis = await startRedis(redisPort);
    legacy = await startMockUpstream({ name: 'legacy', ttfb: 5, tokens: 2, tokenIntervalMs: 1 });
    next = await startMockUpstream({ name: 'new', ttfb: 5, tokens: 2, tokenIntervalMs: 1 });
    await Promise.all(['a', 'b', 'c'].map(startMember));
  }, 30_000);

  afterAll(async () => {
    await Promise.all(members.map((m) => m.proc.stop()));
    if (redis) await stopRedis(redis);
    await Promise.all([legacy?.close(), next?.close()]);
  });

  it('all three join, and exactly one holds the lease', async () => {
    await until('three members and one leader', async () => {
      const leaders = await Promise.all(members.map((m) => metric(m, 'veer_fleet_leader')));
      const counts = await Promise.all(members.map((m) => metric(m, 'veer_fleet_members')));
      return leaders.reduce((a, b) => a + b, 0) === 1 && counts.every((c) => c === 3);
    });
  });

  it('a kill on one sidecar reaches all three within 1 s', async () => {
    const [a, b, c] = members as [Member, Member, Member];
    const t0 = performance.now();
    const r = await admin(b, 'POST', '/api/kill', { reason: 'fleet drill' });
    expect(r.status).toBe(200);
    const seen = await Promise.all(
      [a, c].map((m) =>
        until(`${m.name} killed`, async () => (await status(m)).rollout.state === 'killed' && performance.now()),
      ),
    );
    const propagationMs = Math.max(...seen) - t0;
    console.log(
      `fleet kill propagation: ${propagationMs.toFixed(1)} ms (from the kill call to the last sidecar's status)`,
    );
    expect(propagationMs).toBeLessThan(1000);
    // The other sidecars route to legacy at once.
    const res = await request(`http://127.0.0.1:${c.proc.proxyPort()}/v1/completions`, {
      method: 'POST',
      headers: { 'x-user-id': 'u1' },
      body: '{}',
    });
    await res.body.dump();
    expect(res.headers['x-veer-upstream']).toBe('legacy');
    expect(audit(a).at(-1)).toMatchObject({ action: 'fleet_sync', after: { state: 'killed' } });
    expect((await admin(a, 'POST', '/api/resume', { reason: 'drill over' })).status).toBe(200);
    await until('all resumed', async () =>
      (await Promise.all(members.map(status))).every((s) => s.rollout.state === 'promoted'),
    );
  });

  it('rolls a degraded new back once, fleet-wide, on merged windows no single sidecar could judge', async () => {
    next.set({ ttfb: 700 });
    // 30 slow streams through each sidecar: 90 fleet-wide, above min_samples 60; 30 each, below it.
    await Promise.all(
      members.flatMap((m, i) =>
        Array.from({ length: 30 }, async (_, j) => {
          const res = await request(`http://127.0.0.1:${m.proc.proxyPort()}/v1/completions`, {
            method: 'POST',
            headers: { 'x-user-id': `deg-${i}-${j}` },
            body: '{}',
          });
          await res.body.dump();
        }),
      ),
    );
    await until(
      'fleet rolled back',
      async () => (await Promise.all(members.map(status))).every((s) => s.rollout.state === 'rolled_back'),
      6000,
    );
    const rollbacks = members.flatMap((m) =>
      audit(m).filter((e) => e.action === 'rollback' && e.actor === 'slo-guard'),
    );
    expect(rollbacks).toHaveLength(1);
    const rule = rollbacks[0].rules[0];
    expect(rule.samples).toBeGreaterThanOrEqual(60);
    for (const s of await Promise.all(members.map(status))) expect(s.upstreams.new.samples).toBeLessThanOrEqual(30);
    next.set({ ttfb: 5 });
  }, 20_000);

  it('a dead leader loses the lease to another sidecar within the lease time', async () => {
    const leaders = await Promise.all(members.map((m) => metric(m, 'veer_fleet_leader')));
    const leader = members[leaders.indexOf(1)]!;
    const t0 = performance.now();
    leader.proc.child.kill('SIGKILL');
    await leader.proc.exited;
    const rest = live();
    await until('a new leader', async () => {
      const l = await Promise.all(rest.map((m) => metric(m, 'veer_fleet_leader')));
      return l.reduce((a, b) => a + b, 0) === 1;
    });
    const failoverMs = performance.now() - t0;
    console.log(`fleet leader failover: ${failoverMs.toFixed(0)} ms (lease ttl 1000 ms)`);
    expect(failoverMs).toBeLessThan(2000);
  });

  it('with redis down every sidecar keeps serving and the kill switch still works locally', async () => {
    const [x, y] = live() as [Member, Member];
    await stopRedis(redis);
    const readyz = async (m: Member) =>
      (await (await request(`http://127.0.0.1:${m.proc.adminPort()}/readyz`)).body.json()) as any;
    await until('both see redis gone', async () =>
      (await Promise.all([x, y].map(readyz))).every((r) => r.ready && r.fleet.connected === false),
    );
    for (const m of [x, y]) {
      const res = await request(`http://127.0.0.1:${m.proc.proxyPort()}/v1/completions`, {
        method: 'POST',
        headers: { 'x-user-id': 'u2' },
        body: '{}',
      });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
    }
    const refused = await admin(y, 'POST', '/api/resume', {});
    expect(refused).toMatchObject({ status: 503, body: { error: { code: 'fleet_unavailable' } } });
    const killed = await admin(x, 'POST', '/api/kill', { reason: 'redis is down and so is new' });
    expect(killed.status).toBe(200);
    expect((await status(x)).rollout.state).toBe('killed');
    expect((await status(y)).rollout.state).toBe('rolled_back');
  });

  it('when redis returns, the sidecars re-sync without moving traffic to new', async () => {
    const [x, y] = live() as [Member, Member];
    redis = await startRedis(redisPort);
    const weights: number[] = [];
    await until(
      'both killed',
      async () => {
        const s = await Promise.all([x, y].map(status));
        for (const v of s) weights.push(v.rollout.weight_percent);
        return s.every((v) => v.rollout.state === 'killed');
      },
      5000,
    );
    expect(Math.max(...weights)).toBe(0);
    expect(await metric(y, 'veer_fleet_state_version')).toBeGreaterThan(0);
  }, 10_000);
});
