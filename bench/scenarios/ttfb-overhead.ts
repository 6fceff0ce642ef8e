// ttfb-overhead: TTFB added by veer at 200 and 1,000 concurrent SSE streams (distinct keys, upstream TTFB 50 ms).

import type { ScenarioContext } from '../lib/context.js';
import { benchPool, chatRequest, timedRequest } from '../lib/h1-client.js';
import { closedLoop, type Side } from '../lib/load.js';
import { startMockHost } from '../lib/mocks.js';
import { startNginx } from '../lib/nginx.js';
import { runQueueWait } from '../lib/proc.js';
import { type Figure, figure, type ScenarioResult, scenarioRun } from '../lib/results.js';
import { alternate } from '../lib/rounds.js';
import { median, Samples, usSince } from '../lib/samples.js';
import { ELD_RESOLUTION_S, endScenario, loopStats, startReferences, startVeer } from '../lib/veer-process.js';

const WEIGHT_PERCENT = 20;

export async function ttfbOverhead(ctx: ScenarioContext): Promise<ScenarioResult> {
  const run = scenarioRun('ttfb-overhead', ctx.quick);
  const q = ctx.quick;
  const params = {
    concurrency: q ? [50, 200] : [200, 1000],
    // Per level. At 200 streams a round holds ~600 TTFB samples, so its p99 is the 6th-worst: more rounds
    // there, where the targets compare two small figures.
    rounds: q ? [1, 1] : [5, 3],
    // Longer than one stream (TTFB + tokens), or no stream would start in the steady state that is measured.
    roundSeconds: q ? 3 : 8,
    upstreamTtfbMs: 50,
    tokens: 4,
    tokenIntervalMs: 500,
    weightPercent: WEIGHT_PERCENT,
  };
  const streamMs = params.upstreamTtfbMs + params.tokens * params.tokenIntervalMs;
  const mocks = await startMockHost({
    ttfb: params.upstreamTtfbMs,
    tokens: params.tokens,
    tokenIntervalMs: params.tokenIntervalMs,
  });
  const veer = await startVeer(mocks.legacy.url, mocks.new.url);
  // The same path through the smallest undici forwarder (what any Node HTTP proxy adds on this machine
  // today), through a raw TCP relay (what one more process on the path adds, with no HTTP at all), and
  // through NGINX doing veer's split (when installed). The 200-stream targets are relative to the bare
  // forwarder's figures in the same rounds, the 1,000-stream p99 one to NGINX's.
  const references = await startReferences(q ? ['bare'] : ['bare', 'bare_copy', 'relay'], mocks.legacy.url);
  const nginx = await startNginx(mocks.legacy.url, mocks.new.url, WEIGHT_PERCENT);
  if (nginx) references.push(nginx);
  const urlOf = (side: Side) => references.find((ref) => ref.side === side)?.url ?? mocks.legacy.url;
  const figures: Figure[] = [];
  const notes: string[] = [];
  let key = 0;
  try {
    for (const [level, n] of params.concurrency.entries()) {
      const first = level === 0;
      const rounds = params.rounds[level]!;
      // The A/A control serves the 200-stream targets only.
      const levelRefs = first ? references : references.filter((ref) => ref.side !== 'bare_copy');
      const pools = {
        direct: benchPool(mocks.legacy.url, n),
        veer: benchPool(veer.url, n),
        bare: benchPool(urlOf('bare'), n),
        bare_copy: benchPool(urlOf('bare_copy'), n),
        relay: benchPool(urlOf('relay'), n),
        nginx: benchPool(urlOf('nginx'), n),
      };
      const round = async (side: Side, ms: number) => {
        const ttfb = new Samples();
        let failed = 0;
        let onNew = 0;
        let total = 0;
        const loop0 = side === 'veer' ? await loopStats(veer) : undefined;
        const wait0 = runQueueWait(process.pid);
        const t0 = performance.now();
        await closedLoop(
          n,
          ms,
          async () => {
            const steady = performance.now() - t0 >= streamMs;
            const t = await timedRequest(pools[side], chatRequest(`s-${key++}`, true));
            if (t.status !== 200 || t.error || t.firstByteNs === 0n) {
              failed++;
              return;
            }
            total++;
            if (t.upstream === 'new') onNew++;
            // Streams started while the loops were still being spread out met less load: left out.
            if (steady) ttfb.add(usSince(t.startNs, t.firstByteNs) / 1000);
          },
          { staggerMs: streamMs },
        );
        const loop1 = loop0 ? await loopStats(veer) : undefined;
        const loop =
          loop0 && loop1
            ? {
                eldP99Ms: loop1.eldP99Ms,
                eldMaxMs: loop1.eldMaxMs,
                gcMsPerS: ((loop1.gcSeconds - loop0.gcSeconds) * 1e6) / (performance.now() - t0),
                waitMsPerS: ((loop1.waitSeconds - loop0.waitSeconds) * 1e6) / (performance.now() - t0),
              }
            : undefined;
        const clientWaitMsPerS = ((runQueueWait(process.pid) - wait0) * 1e6) / (performance.now() - t0);
        return { ok: total, failed, ttfb, onNew, total, loop, clientWaitMsPerS };
      };
      ctx.log(`ttfb-overhead: ${n} streams, warm-up`);
      await round('direct', q ? 600 : 2000);
      await round('veer', q ? 600 : 2000);
      for (const ref of levelRefs) await round(ref.side, q ? 600 : 2000);
      ctx.log(`ttfb-overhead: ${n} streams, ${rounds} rounds`);
      const r = await alternate(rounds, veer, (side) => round(side, params.roundSeconds * 1000), {
        references: levelRefs.map((ref) => ref.side),
        cpuOf: nginx ? { nginx: () => nginx.cpu().total } : {},
      });
      await Promise.all(Object.values(pools).map((p) => p.close()));
      const pooled = (side: Side) => Samples.pooled(r[side].map((x) => x.ttfb));
      const d = pooled('direct');
      const v = pooled('veer');
      const onNew = r.veer.reduce((a, x) => a + x.onNew, 0);
      const total = r.veer.reduce((a, x) => a + x.total, 0);
      const failed = [...r.direct, ...r.veer].reduce((a, x) => a + x.failed, 0);
      const share = (100 * onNew) / Math.max(1, total);
      const sigma = 100 * Math.sqrt((0.2 * 0.8) / Math.max(1, total));
      // The 200-stream targets were absolute (added ≤ 0.3 ms at p50, ≤ 1.5 ms at p99); they are now
      // relative to the bare forwarder in the same rounds (see relativeToBare) and shown as information.
      const former = (added: number, max: number) =>
        first ? `former target added ≤ ${max} ms: ${added <= max ? 'met' : 'not met'}` : undefined;
      figures.push(
        figure({
          key: `c${n}.ttfb_p50`,
          label: `${n} streams: TTFB p50`,
          unit: 'ms',
          direct: d.percentile(50),
          veer: v.percentile(50),
          note: former(v.percentile(50) - d.percentile(50), 0.3),
        }),
        figure({
          key: `c${n}.ttfb_p99`,
          label: `${n} streams: TTFB p99`,
          unit: 'ms',
          direct: d.percentile(99),
          veer: v.percentile(99),
          target: first ? undefined : { of: 'added', max: 8 },
          note: former(v.percentile(99) - d.percentile(99), 1.5),
        }),
        ...(first && r.bare.length > 0 ? relativeToBare(n, r) : []),
        ...(nginx ? versusNginx(n, v, pooled('nginx'), !first) : []),
        ...levelRefs.flatMap((ref) =>
          [50, 99].map((p) =>
            figure({
              key: `c${n}.${ref.side}_ttfb_p${p}`,
              label: `${n} streams: TTFB p${p}, reference: ${ref.label}`,
              unit: 'ms',
              direct: d.percentile(p),
              value: pooled(ref.side).percentile(p),
            }),
          ),
        ),
        figure({
          key: `c${n}.share_new`,
          label: `${n} streams: share on new (weight ${WEIGHT_PERCENT} %)`,
          unit: '%',
          value: share,
        }),
        figure({
          key: `c${n}.cpu_us_per_stream`,
          label: `${n} streams: proxy CPU per stream (${params.tokens + 2} events)`,
          unit: 'us',
          value: (r.veerCpuS * 1e6) / Math.max(1, r.veerOk),
        }),
      );
      const nginxCpu = r.refCpuUsPerOk.nginx;
      if (nginxCpu && nginxCpu.length > 0) {
        const veerCpu = (r.veerCpuS * 1e6) / Math.max(1, r.veerOk);
        const nginxUs = median(nginxCpu);
        figures.push(
          figure({
            key: `c${n}.nginx_cpu_us_per_stream`,
            label: `${n} streams: reference: NGINX, CPU per stream`,
            unit: 'us',
            value: nginxUs,
          }),
          figure({
            key: `c${n}.cpu_vs_nginx`,
            label: `${n} streams: CPU per stream, veer ÷ NGINX`,
            unit: 'x',
            value: veerCpu / nginxUs,
          }),
        );
      }
      const perRound = r.veer.map((x, i) => {
        const dd = r.direct[i]!.ttfb;
        return `${(x.ttfb.percentile(50) - dd.percentile(50)).toFixed(2)}/${(x.ttfb.percentile(99) - dd.percentile(99)).toFixed(2)}`;
      });
      const loops = r.veer.map((x) => x.loop!);
      const waits = [...r.direct, ...r.veer, ...r.bare, ...r.bare_copy, ...r.relay, ...r.nginx].map(
        (x) => x.clientWaitMsPerS,
      );
      if (first && r.bare_copy.length > 0) notes.push(controlNote(n, r));
      notes.push(
        `${n} streams, veer's event loop in each of its rounds: delay p99/max ${loops.map((l) => `${l.eldP99Ms.toFixed(1)}/${l.eldMaxMs.toFixed(1)}`).join(', ')} ms (beyond the ${ELD_RESOLUTION_S * 1000} ms sampling interval); GC ${loops.map((l) => l.gcMsPerS.toFixed(0)).join(', ')} ms/s; waiting for a CPU while runnable ${loops.map((l) => l.waitMsPerS.toFixed(0)).join(', ')} ms/s (the client, the mocks and anything else on the machine share the two cores); the bench client waited ${Math.min(...waits).toFixed(0)}–${Math.max(...waits).toFixed(0)} ms/s.`,
        `${n} streams: ${d.count} direct and ${v.count} veer TTFB samples; added p50/p99 per round (ms): ${perRound.join(', ')}; share on new ${share.toFixed(2)} % of ${total} streams (binomial σ ${sigma.toFixed(2)} points); failed ${failed}.`,
      );
    }
    notes.push(
      `Each of the N loops runs one stream after another (TTFB ${params.upstreamTtfbMs} ms, ${params.tokens} tokens ${params.tokenIntervalMs} ms apart, a new x-user-id each), over its own keep-alive connection; TTFB is request start to the first body byte (the first token event), measured in the client with process.hrtime.bigint. Direct goes to the legacy mock; through veer ${100 - WEIGHT_PERCENT}/${WEIGHT_PERCENT} to legacy/new, both in the same mock process.`,
      `NGINX (${nginx ? 'in this run' : 'not installed: no NGINX rows'}) runs as one unprivileged process without a master, on its own temporary prefix: split_clients on x-user-id at the same ${WEIGHT_PERCENT} % to new, keep-alive upstream pools, proxy_buffering off, an access line per request to a buffered file (bench/lib/nginx.ts).`,
      `Timer and scheduling jitter (the mock's 50 ms timer, and each process waiting for a CPU, as above) land on every side; they move p50 by a few tenths of a millisecond and p99 by several milliseconds from round to round, so read p99 with the per-round values and the reference rows. The bare forwarder is a Node HTTP proxy with none of veer's work; the TCP relay is a Node process that pipes bytes and parses nothing, so the gap between the two is the cost of Node's HTTP stacks (parsing, framing, streams) on this machine, and the relay's own figure is that of one more process hop.`,
    );
  } finally {
    await endScenario(notes, veer, references, mocks);
  }
  return run.result(params, figures, notes);
}

type Rounds = Record<'direct' | 'veer' | 'bare' | 'bare_copy', { ttfb: Samples }[]>;

/** A side's added TTFB at percentile p in each round, against that round's direct figure. */
function addedPerRound(r: Rounds, side: 'veer' | 'bare' | 'bare_copy', p: number): number[] {
  return r[side].map((x, i) => x.ttfb.percentile(p) - r.direct[i]!.ttfb.percentile(p));
}

/**
 * The 200-stream targets, relative to the bare undici forwarder measured in the same rounds: what veer
 * adds over direct at p50 may exceed what the forwarder adds by 0.1 ms, at p99 by 15 %. Each side's
 * added TTFB is taken per round (against that round's direct figure) and the median of rounds compared,
 * so one round disturbed by the machine's other work moves neither side much. Why relative: on this
 * host every Node HTTP hop pays several times its saturated cost at this load (idle vCPUs are halted at
 * once and woken per packet), so an absolute bound measures the machine as much as veer.
 */
function relativeToBare(n: number, r: Rounds): Figure[] {
  const added = (side: 'veer' | 'bare' | 'bare_copy', p: number) => median(addedPerRound(r, side, p));
  const bare50 = added('bare', 50);
  const bare99 = added('bare', 99);
  const control: Figure[] =
    r.bare_copy.length === 0
      ? []
      : [
          figure({
            key: `c${n}.aa_p50_difference`,
            label: `${n} streams: A/A control, a second bare forwarder process held to the p50 target: its added p50 minus the first's (the target allows 0.1 ms)`,
            unit: 'ms',
            value: added('bare_copy', 50) - bare50,
          }),
          figure({
            key: `c${n}.aa_p99_ratio`,
            label: `${n} streams: A/A control: its added p99 ÷ the first's (the target allows ×1.15)`,
            unit: 'x',
            value: added('bare_copy', 99) / bare99,
          }),
        ];
  return [
    figure({
      key: `c${n}.added_p50_vs_bare`,
      label: `${n} streams: added TTFB p50, median of rounds (bare forwarder's ${bare50.toFixed(3)} ms + 0.1 ms)`,
      unit: 'ms',
      value: added('veer', 50),
      target: { of: 'value', max: bare50 + 0.1 },
    }),
    figure({
      key: `c${n}.added_p99_vs_bare`,
      label: `${n} streams: added TTFB p99, median of rounds (bare forwarder's ${bare99.toFixed(3)} ms × 1.15)`,
      unit: 'ms',
      value: added('veer', 99),
      target: { of: 'value', max: bare99 * 1.15 },
    }),
    ...control,
  ];
}

/**
 * The per-round figures behind the 200-stream targets, with the A/A control's: two processes of the same
 * forwarder differ only by the measurement's noise, so where the control misses a target by more than veer
 * does, the run cannot tell veer's difference from noise.
 */
function controlNote(n: number, r: Rounds): string {
  const rounds = (side: 'veer' | 'bare' | 'bare_copy') =>
    addedPerRound(r, side, 50)
      .map((p50, i) => `${p50.toFixed(2)}/${addedPerRound(r, side, 99)[i]!.toFixed(2)}`)
      .join(', ');
  return `${n} streams, added TTFB p50/p99 per round (ms) for the sides the targets compare: veer ${rounds('veer')}; bare forwarder ${rounds('bare')}; its second process, the A/A control ${rounds('bare_copy')}. The two bare processes run the same code, so their difference is the noise of this run's figures.`;
}

/** veer against NGINX in the same rounds: the ratios, and at 1,000 streams the target p99 ≤ NGINX's + 5 ms. */
function versusNginx(n: number, veer: Samples, nginx: Samples, target: boolean): Figure[] {
  return [
    figure({
      key: `c${n}.ttfb_p50_vs_nginx`,
      label: `${n} streams: TTFB p50, veer ÷ NGINX`,
      unit: 'x',
      value: veer.percentile(50) / nginx.percentile(50),
    }),
    figure({
      key: `c${n}.ttfb_p99_vs_nginx`,
      label: `${n} streams: TTFB p99, veer ÷ NGINX`,
      unit: 'x',
      value: veer.percentile(99) / nginx.percentile(99),
    }),
    figure({
      key: `c${n}.ttfb_p99_minus_nginx`,
      label: `${n} streams: TTFB p99, veer minus NGINX`,
      unit: 'ms',
      value: veer.percentile(99) - nginx.percentile(99),
      target: target ? { of: 'value', max: 5 } : undefined,
    }),
  ];
}
