// Fleet reconciliation against a real redis-server: kills made during partitions, restarts, reloads, lease handover.

import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet/fleet.js';
import { Controller, settledOutcome } from '../../src/guard/controller.js';
import { SlidingWindow } from '../../src/measure/window.js';
import { createMetrics } from '../../src/metrics/registry.js';
import { AuditLog } from '../../src/state/audit.js';
import type { PersistedState } from '../../src/state/store.js';
import { StateStore } from '../../src/state/store.js';
import { requireProgram } from '../helpers/programs.js';
import { RedisRelay, startRedis, stopRedis } from '../helpers/redis.js';
import { deepMerge, mustBuild, rawConfig, silentLogger, stateFiles, unusedPort, waitFor } from '../helpers/stack.js';

const FLEET = {
  enabled: true,
  publish_interval: '200ms',
  lease_ttl: '1s',
  resync_interval: '500ms',
  seed_hold: '200ms',
};

/** One sidecar's controller and fleet link, in process (no proxy), on its own state files. */
function sidecar(redisPort: number, extra: Record<string, unknown> = {}, files = stateFiles()) {
  const config = mustBuild(
    deepMerge(
      rawConfig('http://127.0.0.1:9', 'http://127.0.0.1:9', {
        rollout: { id: 'sync-test', weight: 20 },
        fleet: { ...FLEET, redis_url: `redis://127.0.0.1:${redisPort}` },
        state: files,
      }),
      extra,
    ),
  );
  const windows = {
    legacy: new SlidingWindow({ windowMs: 60_000, slices: 6, clock: Date.now }),
    new: new SlidingWindow({ windowMs: 60_000, slices: 6, clock: Date.now }),
  };
  const local = () => ({ legacy: windows.legacy.snapshot(), new: windows.new.snapshot() });
  let fleet: Fleet | undefined;
  const controller = Controller.open({
    config,
    store: new StateStore(config.state.path),
    audit: new AuditLog(config.state.auditPath),
    metrics: createMetrics({ defaultMetrics: false }),
    logger: silentLogger(),
    clock: Date.now,
    windows: () => fleet?.evaluationWindows() ?? local(),
    swap: () => {},
  });
  fleet = new Fleet({
    config,
    controller,
    metrics: createMetrics({ defaultMetrics: false }),
    logger: silentLogger(),
    clock: Date.now,
    localWindows: local,
  });
  controller.attachFleet(fleet);
  return { controller, fleet, config, files, windows };
}
type Sidecar = ReturnType<typeof sidecar>;

describe.skipIf(requireProgram('redis-server'))('fleet reconciliation', () => {
  let redisPort: number;
  let redis: ChildProcess;
  let store: Redis;
  const started: Sidecar[] = [];
  const relays: RedisRelay[] = [];

  beforeAll(async () => {
    redisPort = await unusedPort();
    redis = await startRedis(redisPort);
    store = new Redis(redisPort, { lazyConnect: true });
    await store.connect();
  });
  afterAll(async () => {
    await Promise.all(started.map((s) => s.fleet.stop()));
    await Promise.all(relays.map((r) => r.down()));
    store?.disconnect();
    if (redis) await stopRedis(redis);
  });

  /** A fresh rollout id per test (its own keys in the shared redis), two sidecars, one behind a relay. */
  async function pair(id: string, extra: Record<string, unknown> = {}) {
    const relay = new RedisRelay(await unusedPort(), redisPort);
    await relay.up();
    relays.push(relay);
    const options = deepMerge({ rollout: { id } }, extra);
    const a = sidecar(relay.port, options);
    const b = sidecar(redisPort, options);
    await a.fleet.start();
    await b.fleet.start();
    started.push(a, b);
    await waitFor(() => a.fleet.connected && b.fleet.connected);
    return { a, b, relay, options };
  }

  async function shared(id: string): Promise<PersistedState> {
    return JSON.parse((await store.hget(`veer:${id}:state`, 'state'))!) as PersistedState;
  }

  it('keeps a kill made while a sidecar was cut off, when that sidecar comes back with more changes of its own', async () => {
    const { a, b, relay } = await pair('cut-off-busy');
    await relay.down();
    await waitFor(() => !a.fleet.connected);
    b.controller.kill('admin:oncall', 'new returns garbage');
    await b.fleet.flush();
    // Cut off, A takes two changes it may make alone: a reload, and a lower weight.
    a.controller.reconfigure(a.config, [], 'config:sighup');
    a.controller.setWeight('admin:oncall', 1000, 'narrow it while redis is away');
    expect(a.controller.snapshot.version).toBeGreaterThan(b.controller.snapshot.version);
    await relay.up();
    await waitFor(() => a.fleet.connected && a.controller.snapshot.state === 'killed');
    await a.fleet.flush();
    expect((await shared('cut-off-busy')).state).toBe('killed');
    expect(b.controller.snapshot.state).toBe('killed');
    expect(a.controller.table.weightBp).toBe(0);
  });

  it.each([1, 2])(
    'adopts, after a restart, a kill made while it was cut off with %d change(s) of its own',
    async (changes) => {
      const id = `restart-${changes}`;
      const { a, b, relay, options } = await pair(id);
      await relay.down();
      await waitFor(() => !a.fleet.connected);
      b.controller.kill('admin:oncall', 'pager');
      await b.fleet.flush();
      for (let i = 0; i < changes; i++) a.controller.reconfigure(a.config, [], 'config:sighup');
      // A's pod restarts (its queue of unshared changes is gone), with redis reachable again.
      await a.fleet.stop();
      await relay.up();
      const a2 = sidecar(relay.port, options, a.files);
      await a2.fleet.start();
      started.push(a2);
      expect(a2.controller.snapshot.state).toBe('killed');
      expect(a2.controller.table.weightBp).toBe(0);
      expect((await shared(id)).state).toBe('killed');
      expect(b.controller.snapshot.state).toBe('killed');
    },
  );

  it('brings a kill made on the cut-off sidecar itself to the fleet, even across a restart', async () => {
    const { a, b, relay, options } = await pair('local-kill');
    await relay.down();
    await waitFor(() => !a.fleet.connected);
    // Meanwhile the fleet moves on (B lowers the weight), and A's on-call kills locally, then A restarts.
    b.controller.setWeight('admin:oncall', 500, 'slower ramp');
    await b.fleet.flush();
    a.controller.kill('admin:oncall', 'local pager');
    await a.fleet.stop();
    await relay.up();
    const a2 = sidecar(relay.port, options, a.files);
    await a2.fleet.start();
    started.push(a2);
    await waitFor(() => b.controller.snapshot.state === 'killed');
    const s = await shared('local-kill');
    expect(s).toMatchObject({ state: 'killed', kill_reason: 'local pager', before_kill: { weight_bp: 500 } });
    expect(a2.controller.snapshot.state).toBe('killed');
  });

  it('keeps an operator change made while a sync is waiting for redis, instead of pushing the state from before it', async () => {
    // Replies held 200 ms: a command timeout well above it, so a loaded machine does not read it as a hang.
    const { a, b, relay } = await pair('change-during-sync', { fleet: { command_timeout: '2s' } });
    b.controller.kill('admin:oncall', 'drill');
    await b.fleet.flush();
    await waitFor(() => a.controller.snapshot.state === 'killed');
    // A's next sync waits 200 ms for redis; the on-call resumes through A meanwhile.
    relay.delayMs = 200;
    const sync = a.fleet.flush();
    await new Promise((r) => setTimeout(r, 50));
    // A change toward new: it waits for the store's confirmation, behind the sync in flight.
    const resumed = a.controller.resume('admin:oncall', 'drill over');
    await sync;
    relay.delayMs = 0;
    expect(await settledOutcome(resumed)).toMatchObject({ applied: true });
    await a.fleet.flush();
    await waitFor(() => b.controller.snapshot.state === 'promoted' || b.controller.snapshot.state === 'progressing');
    expect(a.controller.snapshot.state).not.toBe('killed');
    expect((await shared('change-during-sync')).state).not.toBe('killed');
  });

  it('takes back a change toward new answered 503 whose write reached the store, its answer late', async () => {
    const { a, b, relay } = await pair('late-answer', { fleet: { command_timeout: '300ms' } });
    // The compare-and-set runs in redis at once; its answer (:-1) comes back after the command timeout.
    relay.holdReply = { match: (chunk) => chunk.includes(':-1\r\n'), holdMs: 500 };
    const weight = a.controller.setWeight('admin:oncall', 5000, 'ramp');
    await expect(settledOutcome(weight)).rejects.toMatchObject({ code: 'fleet_unavailable' });
    relay.holdReply = undefined;
    expect(a.controller.snapshot.weight_bp).toBe(2000);
    await waitFor(() => a.fleet.connected, 5000);
    await a.fleet.flush();
    expect(await shared('late-answer')).toMatchObject({
      weight_bp: 2000,
      last_change: { action: 'unconfirmed_taken_back' },
    });
    await waitFor(() => b.controller.snapshot.weight_bp === 2000, 5000);
    expect(a.controller.snapshot.weight_bp).toBe(2000);
  });

  it('keeps kills reaching every sidecar within a publish after a reload to a new rollout id', async () => {
    const { a, b, options } = await pair('before-reload', { fleet: { resync_interval: '5s' } });
    for (const s of [a, b]) {
      const next = mustBuild(
        deepMerge(rawConfig('http://127.0.0.1:9', 'http://127.0.0.1:9'), {
          ...options,
          state: s.files,
          fleet: { ...FLEET, resync_interval: '5s', redis_url: s.config.fleet.redisUrl },
          rollout: { id: 'after-reload', weight: 20 },
        }),
      );
      s.controller.reconfigure(next, ['rollout.id'], 'config:sighup');
      s.fleet.reconfigure(next);
      await s.fleet.flush();
    }
    const t0 = Date.now();
    b.controller.kill('admin:oncall', 'after the reload');
    await b.fleet.flush();
    await waitFor(() => a.controller.snapshot.state === 'killed', 4000);
    // Far below the 5 s resync: the change came on the new rollout's channel.
    expect(Date.now() - t0).toBeLessThan(1000);
    expect((await shared('after-reload')).state).toBe('killed');
  });

  it('lets a sidecar that takes the lease judge the fleet from a fresh gate clock, not from its own traffic', async () => {
    const options = {
      rollout: { id: 'handover', weight: 10, steps: [10, 50], step_min_duration: '1s' },
      slo: { on_breach: 'alert_only', cooldown: '0s', min_samples: 20, rules: ['ttfb_p95 <= 550ms'] },
    };
    const judge = sidecar(redisPort, options);
    await judge.fleet.start();
    started.push(judge);
    await waitFor(() => judge.fleet.leader);
    const other = sidecar(redisPort, options);
    await other.fleet.start();
    started.push(other);
    // The judge's own pod sees a slow new; the other's a fast one; merged, the rule breaches.
    for (let i = 0; i < 100; i++) judge.windows.new.record('ok', 900 + (i % 10), 920);
    for (let i = 0; i < 60; i++) other.windows.new.record('ok', 100 + (i % 10), 120);
    await waitFor(() => judge.fleet.evaluationWindows()?.new.ttfbSamples === 160);
    // Longer than step_min_duration: the other sidecar judges its own (passing) window meanwhile.
    for (const deadline = Date.now() + 1500; Date.now() < deadline; ) {
      expect(judge.controller.tick().rules[0]!.status).toBe('breach');
      other.controller.tick();
      await new Promise((r) => setTimeout(r, 100));
    }
    await judge.fleet.stop();
    // The other takes the lease, and the judge's window has left the merge (its key expired).
    await waitFor(() => other.fleet.leader && other.fleet.evaluationWindows()?.new.ttfbSamples === 60, 5000);
    // Its first fleet-wide evaluation passes, but the gate clock starts only now.
    const first = other.controller.tick();
    expect(first.action.kind).not.toBe('promote');
    expect(other.controller.snapshot.weight_bp).toBe(1000);
  });
});
