// shadow: veer with 0, 5 and 100 % shadow traffic in the same run — CPU per request and per copy, and the user's TTFB.

import type { ScenarioContext } from '../lib/context.js';
import { benchPool, chatRequest, timedRequest } from '../lib/h1-client.js';
import { closedLoop, fixedRate } from '../lib/load.js';
import { startMockHost } from '../lib/mocks.js';
import { type Figure, figure, type ScenarioResult, scenarioRun } from '../lib/results.js';
import { median, Samples } from '../lib/samples.js';
import { startVeer, type VeerProcess } from '../lib/veer-process.js';

/** veer_shadow_requests_total summed over its `result`s, or those starting with `prefix`. */
function shadowCount(text: string, prefix = ''): number {
  let n = 0;
  for (const m of text.matchAll(/^veer_shadow_requests_total\{result="([^"]+)"\} ([^\s]+)/gm)) {
    if (m[1]!.startsWith(prefix)) n += Number(m[2]);
  }
  return n;
}

type Side = 'off' | 'on' | 'all';

export async function shadow(ctx: ScenarioContext): Promise<ScenarioResult> {
  const run = scenarioRun('shadow', ctx.quick);
  const q = ctx.quick;
  const params = {
    rounds: q ? 2 : 4,
    roundSeconds: q ? 1 : 3,
    /** CPU rounds: a closed loop keeps veer busy, so fixed per-process costs (timers, GC) do not swamp a request's. */
    concurrency: 16,
    /** TTFB rounds: an open loop at a rate well below saturation. */
    ratePerS: q ? 100 : 150,
    shadowPercent: 5,
    upstreamTtfbMs: 5,
    weight: 0,
  };
  // Streaming completions, every user on legacy (weight 0); new answers the copies as legacy would.
  const mocks = await startMockHost({ ttfb: params.upstreamTtfbMs, tokens: 4, tokenIntervalMs: 2 });
  const rollout = (percent: number) => ({
    rollout: { id: 'bench-shadow', weight: params.weight, shadow: { percent, max_inflight: 256 } },
  });
  // off: no shadow; on: the 5 % asked about; all: every request mirrored, so the copies' own cost stands
  // out of the machine's noise (at 5 % it is a few copies a second).
  const sides: Record<Side, VeerProcess> = {
    off: await startVeer(mocks.legacy.url, mocks.new.url, { extra: rollout(0) }),
    on: await startVeer(mocks.legacy.url, mocks.new.url, { extra: rollout(params.shadowPercent) }),
    all: await startVeer(mocks.legacy.url, mocks.new.url, { extra: rollout(100) }),
  };
  const pools = {
    off: benchPool(sides.off.url, 64),
    on: benchPool(sides.on.url, 64),
    all: benchPool(sides.all.url, 64),
  };
  const figures: Figure[] = [];
  const notes: string[] = [];
  try {
    const roundP99: Record<Side, number[]> = { off: [], on: [], all: [] };
    const roundP50: Record<Side, number[]> = { off: [], on: [], all: [] };
    const cpuPerReq: Record<Side, number[]> = { off: [], on: [], all: [] };
    const perCopy: number[] = [];
    const copies: Record<Side, number> = { off: 0, on: 0, all: 0 };
    let key = 0;
    const round = async (side: Side, ms: number, load: 'cpu' | 'ttfb') => {
      const samples = new Samples();
      let ok = 0;
      const before = shadowCount(await sides[side].metrics());
      const c0 = sides[side].cpu().total;
      const fire = async () => {
        const t = await timedRequest(pools[side], chatRequest(`user-${key++}`, true));
        if (t.status === 200 && t.firstByteNs > 0n) {
          ok++;
          samples.add(Number(t.firstByteNs - t.startNs) / 1e6);
        }
      };
      if (load === 'cpu') await closedLoop(params.concurrency, ms, fire);
      else await fixedRate(params.ratePerS, ms, fire);
      // Copies still open finish on the veer that sent them: their CPU belongs to this round.
      await new Promise((r) => setTimeout(r, 200));
      const cpuS = sides[side].cpu().total - c0;
      const sent = shadowCount(await sides[side].metrics()) - before;
      return { samples, ok, cpuS, sent };
    };
    ctx.log('shadow: warm-up');
    for (const side of ['off', 'on', 'all'] as const) await round(side, q ? 300 : 1500, 'cpu');
    ctx.log(`shadow: ${params.rounds} rounds of ${params.roundSeconds} s per side, closed loop and open loop`);
    for (let r = 0; r < params.rounds; r++) {
      const order: Side[] = r % 2 === 0 ? ['off', 'on', 'all'] : ['all', 'on', 'off'];
      const out = {} as Record<Side, Awaited<ReturnType<typeof round>>>;
      for (const side of order) {
        out[side] = await round(side, params.roundSeconds * 1000, 'cpu');
        cpuPerReq[side].push((out[side].cpuS * 1e6) / out[side].ok);
        copies[side] += out[side].sent;
        const timed = await round(side, params.roundSeconds * 1000, 'ttfb');
        roundP99[side].push(timed.samples.percentile(99));
        roundP50[side].push(timed.samples.percentile(50));
        copies[side] += timed.sent;
      }
      // The copies' own cost: what the fully mirrored veer spent beyond the plain one, per copy sent.
      const extraUs = (out.all.cpuS / out.all.ok - out.off.cpuS / out.off.ok) * out.all.ok * 1e6;
      if (out.all.sent > 0) perCopy.push(extraUs / out.all.sent);
    }
    const dropped = shadowCount(await sides.on.metrics(), 'dropped_');
    // Noise: the spread of the plain side's middle rounds (a neighbour's burst in one round moves a p99 by
    // seconds on this shared machine; the median of rounds and this spread are not thrown by it).
    const sorted = [...roundP99.off].sort((a, b) => a - b);
    const middle = sorted.slice(Math.floor(sorted.length / 4), Math.ceil((3 * sorted.length) / 4));
    const noise = Math.max(2, Math.max(...middle) - Math.min(...middle));
    figures.push(
      figure({
        key: 'shadow.cpu_us_per_req',
        label: `proxy CPU per request (SSE, ${params.concurrency} in flight), ${params.shadowPercent} % shadow off (direct column) vs on (veer column)`,
        unit: 'us',
        direct: median(cpuPerReq.off),
        veer: median(cpuPerReq.on),
      }),
      figure({
        key: 'shadow.cpu_us_per_copy',
        label: 'CPU per mirrored request (its tee, the copy to new, reading and dropping the answer), 100 % shadow',
        unit: 'us',
        value: median(perCopy),
      }),
      figure({
        key: 'shadow.ttfb_p99',
        label: `user TTFB p99 (median of rounds, ${params.ratePerS} req/s), ${params.shadowPercent} % shadow off (direct column) vs on (veer column), SSE, upstream TTFB ${params.upstreamTtfbMs} ms`,
        unit: 'ms',
        direct: median(roundP99.off),
        veer: median(roundP99.on),
        target: { of: 'added', max: noise },
      }),
      figure({
        key: 'shadow.ttfb_p50',
        label: `user TTFB p50 (median of rounds), ${params.shadowPercent} % shadow off vs on`,
        unit: 'ms',
        direct: median(roundP50.off),
        veer: median(roundP50.on),
      }),
    );
    const list = (v: number[], digits = 1) => v.map((x) => x.toFixed(digits)).join(', ');
    notes.push(
      `Three veer processes: rollout.shadow.percent 0, ${params.shadowPercent} and 100, weight 0 (every user on legacy); per round and side, CPU from a closed loop of ${params.concurrency} and TTFB from an open loop at ${params.ratePerS} req/s; rounds alternated; copies sent to new: ${copies.on} at ${params.shadowPercent} %, ${copies.all} at 100 %; ${dropped} dropped at ${params.shadowPercent} %.`,
      `CPU per request by round, off: ${list(cpuPerReq.off)} µs; ${params.shadowPercent} %: ${list(cpuPerReq.on)} µs; 100 %: ${list(cpuPerReq.all)} µs. Per copy (100 % against off) by round: ${list(perCopy, 0)} µs.`,
      `TTFB p99 by round, off: ${list(roundP99.off, 2)} ms; ${params.shadowPercent} %: ${list(roundP99.on, 2)} ms; 100 %: ${list(roundP99.all, 2)} ms. Target: ${params.shadowPercent} % shadow adds at most the larger of 2 ms and the spread of the off side's middle rounds (${noise.toFixed(2)} ms).`,
    );
  } finally {
    for (const side of ['off', 'on', 'all'] as const) {
      await pools[side].close();
      await sides[side].stop();
    }
    await mocks.stop();
  }
  return run.result(params, figures, notes);
}
