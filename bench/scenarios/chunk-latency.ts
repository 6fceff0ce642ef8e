// chunk-latency: inter-token gaps seen by the client vs written by the upstream, direct and through veer.

import type { ScenarioContext } from '../lib/context.js';
import { benchPool, chatRequest, timedRequest } from '../lib/h1-client.js';
import { type Side, sleep } from '../lib/load.js';
import { startMockHost } from '../lib/mocks.js';
import { startNginx } from '../lib/nginx.js';
import { runQueueWait } from '../lib/proc.js';
import { type Figure, figure, type ScenarioResult, scenarioRun } from '../lib/results.js';
import { alternate } from '../lib/rounds.js';
import { Samples } from '../lib/samples.js';
import { ELD_RESOLUTION_S, endScenario, loopStats, startReferences, startVeer } from '../lib/veer-process.js';

export async function chunkLatency(ctx: ScenarioContext): Promise<ScenarioResult> {
  const run = scenarioRun('chunk-latency', ctx.quick);
  const q = ctx.quick;
  const params = {
    streams: q ? 50 : 200,
    tokens: q ? 30 : 100,
    tokenIntervalMs: 50,
    rounds: q ? 1 : 3,
    abRounds: q ? 2 : 4,
  };
  const streamMs = params.tokens * params.tokenIntervalMs;
  const mocks = await startMockHost({ ttfb: 10, tokens: params.tokens, tokenIntervalMs: params.tokenIntervalMs });
  const veer = await startVeer(mocks.legacy.url, mocks.new.url);
  // The same build with token accounting off, measured in the same run (interleaved A/B rounds below).
  const veerOff = await startVeer(mocks.legacy.url, mocks.new.url, { extra: { measure: { token_accounting: false } } });
  const references = q ? [] : await startReferences(['bare', 'relay'], mocks.legacy.url);
  const nginx = await startNginx(mocks.legacy.url, mocks.new.url, 20);
  if (nginx) references.push(nginx);
  const urlOf = (side: Side) => references.find((ref) => ref.side === side)?.url ?? mocks.legacy.url;
  const figures: Figure[] = [];
  const notes: string[] = [];
  try {
    const pools = {
      direct: benchPool(mocks.legacy.url, params.streams),
      veer: benchPool(veer.url, params.streams),
      bare: benchPool(urlOf('bare'), params.streams),
      // The A/A control is not run here (a pool opens no connection until used).
      bare_copy: benchPool(urlOf('bare_copy'), params.streams),
      relay: benchPool(urlOf('relay'), params.streams),
      veerOff: benchPool(veerOff.url, params.streams),
      nginx: benchPool(urlOf('nginx'), params.streams),
    };
    let key = 0;
    /**
     * One stream per loop, all open at once; every event's gap to the previous one at the client minus
     * the same gap at the mock (its `t` stamp) is the delay added on the way. The CPU window covers
     * only the time when every stream is open, so it is per relayed event, not per request.
     */
    const round = async (side: Side, measureCpu: boolean, tokensOff = false) => {
      // CPU is measured on veer and on the references; veer's event loop on veer alone.
      const veerHere = tokensOff ? veerOff : veer;
      const proc = !measureCpu ? undefined : side === 'veer' ? veerHere : references.find((ref) => ref.side === side);
      const veerLoop = measureCpu && side === 'veer' ? veerHere : undefined;
      const pool = tokensOff ? pools.veerOff : pools[side];
      const added = new Samples();
      let events = 0;
      let failed = 0;
      let cpu: { s: number; events: number } | undefined;
      const loop0 = veerLoop ? await loopStats(veerLoop) : undefined;
      const wait0 = runQueueWait(process.pid);
      const t0 = performance.now();
      const window = proc
        ? (async () => {
            await sleep(params.tokenIntervalMs + 300);
            const c0 = proc.cpu().total;
            const e0 = events;
            await sleep(streamMs - 2 * (params.tokenIntervalMs + 300));
            cpu = { s: proc.cpu().total - c0, events: events - e0 };
          })()
        : Promise.resolve();
      const one = async (slot: number) => {
        // Spread over one token interval, so events reach veer evenly rather than in bursts of N.
        await sleep((slot / params.streams) * params.tokenIntervalMs);
        {
          let prevRecv = 0n;
          let prevT = 0;
          const t = await timedRequest(pool, chatRequest(`c-${key++}`, true), {
            onEvent(recvNs, stamp) {
              events++;
              if (prevRecv !== 0n) added.add(Number(recvNs - prevRecv) / 1e6 - (stamp - prevT));
              prevRecv = recvNs;
              prevT = stamp;
            },
          });
          if (t.status !== 200 || t.error) failed++;
        }
      };
      await Promise.all(Array.from({ length: params.streams }, (_, i) => one(i)));
      await window;
      const seconds = (performance.now() - t0) / 1000;
      const loop1 = veerLoop ? await loopStats(veerLoop) : undefined;
      const loop =
        loop0 && loop1
          ? {
              eldP99Ms: loop1.eldP99Ms,
              eldMaxMs: loop1.eldMaxMs,
              gcMsPerS: ((loop1.gcSeconds - loop0.gcSeconds) * 1000) / seconds,
              waitMsPerS: ((loop1.waitSeconds - loop0.waitSeconds) * 1000) / seconds,
            }
          : undefined;
      const clientWaitMsPerS = ((runQueueWait(process.pid) - wait0) * 1000) / seconds;
      return { ok: cpu?.events ?? events, failed, added, events, cpu, loop, clientWaitMsPerS };
    };
    ctx.log('chunk-latency: warm-up');
    await round('direct', false);
    await round('veer', false);
    for (const ref of references) await round(ref.side, false);
    ctx.log(`chunk-latency: ${params.streams} streams × ${params.tokens} tokens, ${params.rounds} rounds`);
    const r = await alternate(params.rounds, veer, (side) => round(side, true), {
      references: references.map((ref) => ref.side),
    });
    // Token accounting on against off: the same build, the same mocks, rounds interleaved (on, off, off, on, ...).
    ctx.log(`chunk-latency: token accounting on/off, ${params.abRounds} rounds each`);
    await round('veer', false, true);
    const ab = { on: [] as Awaited<ReturnType<typeof round>>[], off: [] as Awaited<ReturnType<typeof round>>[] };
    for (let i = 0; i < params.abRounds; i++) {
      const order = i % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const);
      for (const which of order) ab[which].push(await round('veer', true, which === 'off'));
    }
    await Promise.all(Object.values(pools).map((p) => p.close()));
    const pooled = (side: Side) => Samples.pooled(r[side].map((x) => x.added));
    const d = pooled('direct');
    const v = pooled('veer');
    const cpuPerEvent = (side: Side) => {
      const s = r[side].reduce((a, x) => a + (x.cpu?.s ?? 0), 0);
      const events = r[side].reduce((a, x) => a + (x.cpu?.events ?? 0), 0);
      return { s, events, us: (s * 1e6) / Math.max(1, events) };
    };
    const { s: cpuS, events: cpuEvents, us: cpuUs } = cpuPerEvent('veer');
    const failed = [...r.direct, ...r.veer].reduce((a, x) => a + x.failed, 0);
    figures.push(
      figure({
        key: 'chunk.delay_p50',
        label: 'inter-token gap, client minus upstream, p50',
        unit: 'ms',
        noRatio: true,
        direct: d.percentile(50),
        veer: v.percentile(50),
      }),
      figure({
        key: 'chunk.delay_p99',
        label: 'inter-token gap, client minus upstream, p99',
        unit: 'ms',
        noRatio: true,
        direct: d.percentile(99),
        veer: v.percentile(99),
        target: { of: 'added', max: 1 },
      }),
      figure({
        key: 'chunk.delay_p999',
        label: 'inter-token gap, client minus upstream, p99.9',
        unit: 'ms',
        noRatio: true,
        direct: d.percentile(99.9),
        veer: v.percentile(99.9),
      }),
      ...references.map((ref) =>
        figure({
          key: `chunk.${ref.side}_delay_p99`,
          label: `inter-token gap p99, reference: ${ref.label}`,
          unit: 'ms',
          noRatio: true,
          direct: d.percentile(99),
          value: pooled(ref.side).percentile(99),
        }),
      ),
      figure({
        key: 'chunk.cpu_us_per_event',
        label: 'proxy CPU per relayed SSE event',
        unit: 'us',
        value: cpuUs,
        target: { of: 'value', max: 30 },
      }),
      ...references.map((ref) =>
        figure({
          key: `chunk.${ref.side}_cpu_us_per_event`,
          label: `reference: ${ref.label}, CPU per relayed SSE event`,
          unit: 'us',
          value: cpuPerEvent(ref.side).us,
        }),
      ),
      ...(nginx
        ? [
            figure({
              key: 'chunk.cpu_per_event_vs_nginx',
              label: 'CPU per relayed SSE event, veer ÷ NGINX',
              unit: 'x',
              value: cpuUs / cpuPerEvent('nginx').us,
            }),
          ]
        : []),
    );
    const abCpu = (rounds: typeof ab.on) => {
      const s = rounds.reduce((a, x) => a + (x.cpu?.s ?? 0), 0);
      const events = rounds.reduce((a, x) => a + (x.cpu?.events ?? 0), 0);
      return (s * 1e6) / Math.max(1, events);
    };
    const onUs = abCpu(ab.on);
    const offUs = abCpu(ab.off);
    const abDelay = (rounds: typeof ab.on) => Samples.pooled(rounds.map((x) => x.added)).percentile(99);
    figures.push(
      figure({
        key: 'chunk.tokens_on_cpu_us_per_event',
        label: 'CPU per relayed SSE event, token accounting on (A/B rounds)',
        unit: 'us',
        value: onUs,
      }),
      figure({
        key: 'chunk.tokens_off_cpu_us_per_event',
        label: 'CPU per relayed SSE event, token accounting off (A/B rounds)',
        unit: 'us',
        value: offUs,
      }),
      figure({
        key: 'chunk.token_accounting_cpu_us_per_event',
        label: 'token accounting: added CPU per relayed SSE event (on - off)',
        unit: 'us',
        value: onUs - offUs,
        target: { of: 'value', max: 2 },
      }),
      figure({
        key: 'chunk.tokens_on_delay_p99',
        label: 'inter-token gap p99, token accounting on (A/B rounds)',
        unit: 'ms',
        noRatio: true,
        value: abDelay(ab.on),
      }),
      figure({
        key: 'chunk.tokens_off_delay_p99',
        label: 'inter-token gap p99, token accounting off (A/B rounds)',
        unit: 'ms',
        noRatio: true,
        value: abDelay(ab.off),
      }),
    );
    notes.push(
      `Token accounting A/B: ${params.abRounds} rounds each on two veer processes of the same build (measure.token_accounting true/false), interleaved; CPU per event per round on ${ab.on.map((x) => ((x.cpu!.s * 1e6) / Math.max(1, x.cpu!.events)).toFixed(1)).join(', ')} µs, off ${ab.off.map((x) => ((x.cpu!.s * 1e6) / Math.max(1, x.cpu!.events)).toFixed(1)).join(', ')} µs.`,
    );
    const loops = r.veer.map((x) => x.loop!);
    const waits = [...r.direct, ...r.veer, ...r.bare, ...r.relay, ...r.nginx].map((x) => x.clientWaitMsPerS);
    notes.push(
      `veer's event loop in each of its rounds: delay p99/max ${loops.map((l) => `${l.eldP99Ms.toFixed(1)}/${l.eldMaxMs.toFixed(1)}`).join(', ')} ms (beyond the ${ELD_RESOLUTION_S * 1000} ms sampling interval); GC ${loops.map((l) => l.gcMsPerS.toFixed(0)).join(', ')} ms/s; waiting for a CPU while runnable ${loops.map((l) => l.waitMsPerS.toFixed(0)).join(', ')} ms/s. The bench client waited for a CPU ${Math.min(...waits).toFixed(0)}–${Math.max(...waits).toFixed(0)} ms/s across all rounds.`,
      `${d.count} direct and ${v.count} veer gaps; ${params.streams} streams open at once, ${(params.streams * 1000) / params.tokenIntervalMs} events/s; failed streams ${failed}.`,
      `CPU per event: veer's CPU over the part of each round when all streams were open (${cpuEvents} events, ${(cpuS * 1000).toFixed(0)} ms CPU), so request set-up is left out; it still includes veer's idle work (timers, the guard's evaluation).`,
    );
  } finally {
    await veerOff.stop();
    await endScenario(notes, veer, references, mocks);
  }
  return run.result(params, figures, notes);
}
