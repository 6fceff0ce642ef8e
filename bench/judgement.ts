// `npm run bench:judgement`: how fast and how rightly veer's guard judges (faults mid-rollout, healthy runs, cold start).

import { setMaxListeners } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { installCleanup, killChildren, REPO } from './lib/children.js';
import { startVeer, type VeerProcess } from './lib/veer-process.js';
import { type MockBehavior, type MockUpstream, startMockUpstream } from './mock-upstream.js';

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } },
});
const QUICK = values.quick;

/** The operator's setup of issue #24: 25 % on new, interval 1 s, two breaches in a row, a 20 s window. */
const SLO = {
  window: '20s',
  slices: 20,
  interval: '1s',
  consecutive_breaches: 2,
  min_samples: 30,
  rules: ['ttfb_p95 <= 500ms', 'error_rate <= 1%'],
};
const BASE: Partial<MockBehavior> = {
  ttfb: { dist: 'lognormal', median: 100, sigma: 0.3 },
  tokens: 8,
  tokenIntervalMs: 25,
};

const agent = new Agent({ connections: 512, pipelining: 0 });
// Every request of a run shares one AbortSignal: more than ten listeners on it is expected.
setMaxListeners(100_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sent {
  at: number;
  upstream: string;
  status: number;
  ttfbMs: number;
}

/** Open-loop load: one request every 1000/rate ms whatever the answers do, until stopped. */
function openLoop(url: string, rate: number, signal: AbortSignal) {
  const sent: Sent[] = [];
  let n = 0;
  let running = true;
  const one = async () => {
    const at = performance.now();
    const s: Sent = { at, upstream: 'none', status: 0, ttfbMs: Number.NaN };
    sent.push(s);
    try {
      const res = await request(`${url}/v1/chat/completions`, {
        method: 'POST',
        dispatcher: agent,
        signal,
        headers: { 'x-user-id': `user-${n++}-${Math.random()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      });
      s.upstream = String(res.headers['x-veer-upstream'] ?? 'direct');
      s.status = res.statusCode;
      let first = true;
      for await (const _ of res.body) {
        if (first) s.ttfbMs = performance.now() - at;
        first = false;
      }
    } catch {
      if (s.status === 0) s.status = -1;
    }
  };
  const done = (async () => {
    const start = performance.now();
    for (let i = 0; running; i++) {
      void one();
      const next = start + ((i + 1) * 1000) / rate;
      await sleep(Math.max(0, next - performance.now()));
    }
  })();
  return {
    sent,
    async stop() {
      running = false;
      await done;
    },
  };
}

async function weightOf(veer: VeerProcess): Promise<number> {
  return (await veer.guard()).weight;
}

interface FaultRun {
  name: string;
  fault: string;
  ratePerSecond: number;
  decisionMs: number | null;
  sentToNewAfterFault: number;
  sentToNewAfterDecision: number;
  /** From the start of new's second failed request after the fault to the decision (evidence, not traffic). */
  afterSecondFailureMs: number | null;
  action: string;
}

async function withStack<T>(
  extra: Record<string, unknown>,
  fn: (veer: VeerProcess, legacy: MockUpstream, next: MockUpstream) => Promise<T>,
): Promise<T> {
  const legacy = await startMockUpstream({ ...BASE, name: 'legacy' });
  const next = await startMockUpstream({ ...BASE, name: 'new' });
  const veer = await startVeer(legacy.url, next.url, {
    extra: { rollout: { id: 'judgement', weight: 25 }, slo: SLO, drain: { grace_period: '200ms' }, ...extra },
  });
  try {
    return await fn(veer, legacy, next);
  } finally {
    await veer.stop();
    await Promise.all([legacy.close(), next.close()]);
  }
}

/** Healthy traffic until the guard has judged new, then the fault; time to weight 0 and what new got meanwhile. */
async function faultRun(
  name: string,
  fault: Partial<MockBehavior>,
  rate: number,
  warmS: number,
  limitS: number,
  slo: Record<string, unknown> = {},
) {
  return withStack({ slo: { ...SLO, ...slo } }, async (veer, _legacy, next) => {
    const abort = new AbortController();
    const load = openLoop(veer.url, rate, abort.signal);
    await sleep(warmS * 1000);
    next.set(fault);
    const faultAt = performance.now();
    let decidedAt: number | null = null;
    while (performance.now() - faultAt < limitS * 1000) {
      if ((await weightOf(veer)) === 0) {
        decidedAt = performance.now();
        break;
      }
      await sleep(50);
    }
    await sleep(1000);
    await load.stop();
    abort.abort();
    const onNew = load.sent.filter((s) => s.upstream === 'new');
    const audit = await (await fetch(`${veer.adminUrl}/api/audit?limit=5`)).json().catch(() => ({ entries: [] }));
    const last = (audit as { entries: { action: string; actor: string }[] }).entries.find(
      (e) => e.actor === 'slo-guard',
    );
    const run: FaultRun = {
      name,
      fault: JSON.stringify(fault) + (Object.keys(slo).length > 0 ? ` slo ${JSON.stringify(slo)}` : ''),
      ratePerSecond: rate,
      decisionMs: decidedAt === null ? null : Math.round(decidedAt - faultAt),
      sentToNewAfterFault: onNew.filter((s) => s.at >= faultAt && (decidedAt === null || s.at < decidedAt)).length,
      sentToNewAfterDecision: decidedAt === null ? 0 : onNew.filter((s) => s.at > decidedAt! + 5).length,
      afterSecondFailureMs: (() => {
        const failed = onNew.filter((s) => s.at >= faultAt && (s.status >= 500 || s.status <= 0));
        return decidedAt === null || failed.length < 2 ? null : Math.round(decidedAt - failed[1]!.at);
      })(),
      action: last?.action ?? 'none',
    };
    console.log(JSON.stringify(run));
    return run;
  });
}

/** A healthy run: both sides alike, noisy; any rollback is a false one. */
async function healthyRun(seconds: number, rate: number) {
  return withStack({}, async (veer) => {
    const abort = new AbortController();
    const load = openLoop(veer.url, rate, abort.signal);
    await sleep(seconds * 1000);
    await load.stop();
    abort.abort();
    const g = await veer.guard();
    const evaluations = Math.floor(seconds / 1);
    console.log(JSON.stringify({ healthy: seconds, rollbacks: g.rollbacks }));
    return { seconds, rate, evaluations, rollbacks: g.rollbacks, requests: load.sent.length };
  });
}

/** TTFB through veer minus TTFB straight to the mock, by time since veer's start, one request each way at a time. */
async function coldStart(seconds: number, preconnect: number) {
  const legacy = await startMockUpstream({ ttfb: 20, tokens: 2, tokenIntervalMs: 5, name: 'legacy' });
  const next = await startMockUpstream({ ttfb: 20, tokens: 2, tokenIntervalMs: 5, name: 'new' });
  const directAgent = new Agent({ connections: 64 });
  const spawnedAt = performance.now();
  const veer = await startVeer(legacy.url, next.url, {
    extra: {
      rollout: { id: 'cold', weight: 50 },
      // A tight absolute rule (3 × the upstream's 20 ms): veer's own warm-up must not break it.
      slo: { ...SLO, rules: ['ttfb_p95 <= 60ms', 'error_rate <= 1%'] },
      upstreams: { legacy: { url: legacy.url, preconnect }, new: { url: next.url, preconnect } },
    },
  });
  const readyAt = performance.now();
  const time = async (url: string, dispatcher: Agent) => {
    const t0 = performance.now();
    const res = await request(`${url}/v1/chat/completions`, {
      method: 'POST',
      dispatcher,
      headers: { 'x-user-id': `k${Math.random()}`, 'content-type': 'application/json' },
      body: '{"stream":true}',
    });
    let ttfb = Number.NaN;
    for await (const _ of res.body) if (Number.isNaN(ttfb)) ttfb = performance.now() - t0;
    return ttfb;
  };
  const buckets = new Map<string, number[]>();
  const bucketOf = (s: number) => (s < 1 ? '0-1 s' : s < 5 ? '1-5 s' : s < 30 ? '5-30 s' : 'steady (30 s +)');
  try {
    while (performance.now() - readyAt < seconds * 1000) {
      const since = (performance.now() - readyAt) / 1000;
      const viaVeer = await time(veer.url, agent);
      const direct = await time(legacy.url, directAgent);
      const key = bucketOf(since);
      const list = buckets.get(key) ?? [];
      list.push(viaVeer - direct);
      buckets.set(key, list);
      await sleep(20);
    }
    const g = await veer.guard();
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
    const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.95)] ?? Number.NaN;
    const rows = [...buckets].map(([k, xs]) => ({
      since: k,
      n: xs.length,
      addedMedianMs: round(median(xs)),
      addedP95Ms: round(p95(xs)),
      first: round(xs[0]!),
    }));
    const out = { preconnect, startMs: Math.round(readyAt - spawnedAt), rows, rollbacks: g.rollbacks };
    console.log(JSON.stringify(out));
    return out;
  } finally {
    await directAgent.close();
    await veer.stop();
    await Promise.all([legacy.close(), next.close()]);
  }
}

const round = (x: number) => Math.round(x * 100) / 100;

async function main() {
  installCleanup();
  const only = values.only?.split(',');
  const want = (k: string) => !only || only.includes(k);
  const faults: FaultRun[] = [];
  const warm = QUICK ? 12 : 20;
  if (want('faults')) {
    faults.push(await faultRun('TTFB ×4', { ttfb: { dist: 'lognormal', median: 400, sigma: 0.3 } }, 40, warm, 30));
    faults.push(await faultRun('5 % errors', { errorRate: 0.05 }, 40, warm, 60));
    faults.push(await faultRun('5 % errors, confidence 0.9', { errorRate: 0.05 }, 40, warm, 60, { confidence: 0.9 }));
    faults.push(await faultRun('20 % hangs (ttfb_timeout 30 s)', { hangRate: 0.2 }, 40, warm, 40));
    faults.push(await faultRun('5 % reset after the first token', { resetRate: 0.05 }, 40, warm, 30));
    faults.push(await faultRun('dead new at 0.25 req/s', { errorRate: 1 }, 1, 5, 60));
  }
  const healthy = [];
  if (want('healthy')) for (let i = 0; i < (QUICK ? 1 : 2); i++) healthy.push(await healthyRun(QUICK ? 30 : 60, 40));
  const cold = [];
  if (want('cold')) for (const preconnect of [0, 2, 0, 2]) cold.push(await coldStart(QUICK ? 10 : 40, preconnect));
  const dir = join(REPO, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `judgement${QUICK ? '-quick' : ''}.json`);
  // --only re-runs some sections and keeps the others from the last run.
  const previous = only && existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  const result = {
    ...previous,
    at: new Date().toISOString(),
    quick: QUICK,
    slo: SLO,
    ...(want('faults') ? { faults } : {}),
    ...(want('healthy') ? { healthy } : {}),
    ...(want('cold') ? { cold } : {}),
  };
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  await agent.close();
  killChildren();
}

main().catch((err) => {
  console.error(err);
  killChildren();
  process.exitCode = 1;
});
