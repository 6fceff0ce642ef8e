// streams: 9,000 concurrent long SSE streams held through veer — success count, RSS per stream, event-loop delay.

import type { ChildProcess } from 'node:child_process';
import { forkEntry, stopChild } from '../lib/children.js';
import type { ScenarioContext } from '../lib/context.js';
import { call } from '../lib/ipc.js';
import { sleep } from '../lib/load.js';
import { startMockHost } from '../lib/mocks.js';
import { startNginx } from '../lib/nginx.js';
import { fdLimit } from '../lib/proc.js';
import { type Figure, figure, type ScenarioResult, scenarioRun } from '../lib/results.js';
import type { HolderCounts } from '../lib/stream-holder.js';
import { ELD_RESOLUTION_S, metricValue, noteGuard, startVeer, type VeerProcess } from '../lib/veer-process.js';

/** Streams per client process: each holds one socket per stream, well inside a 20,000-fd limit. */
const PER_WORKER = 4500;

function sum(list: HolderCounts[]): HolderCounts {
  const out: HolderCounts = { opened: 0, ok: 0, live: 0, ended: 0, failed: 0, events: 0, errors: {} };
  for (const c of list) {
    out.opened += c.opened;
    out.ok += c.ok;
    out.live += c.live;
    out.ended += c.ended;
    out.failed += c.failed;
    out.events += c.events;
    for (const [k, v] of Object.entries(c.errors)) out.errors[k] = (out.errors[k] ?? 0) + v;
  }
  return out;
}

export async function streams(ctx: ScenarioContext): Promise<ScenarioResult> {
  const run = scenarioRun('streams', ctx.quick);
  const q = ctx.quick;
  const wanted = q ? 600 : 9000;
  // veer holds two sockets per proxied HTTP/1.1 stream (client and upstream), plus its own few dozen.
  const limit = fdLimit();
  const fitting = Math.floor((limit - 300) / 2);
  const count = Math.min(wanted, fitting);
  const workersN = Math.max(2, Math.ceil(count / PER_WORKER));
  const params = {
    streams: count,
    clientProcesses: workersN,
    openRatePerS: q ? 600 : 1000,
    holdSeconds: q ? 3 : 20,
    directHoldSeconds: q ? 2 : 5,
    tokenIntervalMs: 1000,
    fdLimit: limit,
  };
  const notes: string[] = [];
  if (count < wanted) {
    notes.push(
      `The open-files limit (${limit}) fits ${count} proxied streams, not ${wanted}: raise \`ulimit -n\` to ${wanted * 2 + 300} to run the full count.`,
    );
  }
  const mocks = await startMockHost({ ttfb: 20, tokens: 1_000_000, tokenIntervalMs: params.tokenIntervalMs });
  const veer = await startVeer(mocks.legacy.url, mocks.new.url);
  const workers: ChildProcess[] = Array.from({ length: workersN }, () => forkEntry('bench/lib/stream-holder'));
  const figures: Figure[] = [];
  const all = <T>(type: string, payload: (i: number) => unknown = () => undefined, timeoutMs = 180_000) =>
    Promise.all(workers.map((w, i) => call<T>(w, type, payload(i), timeoutMs)));
  const openAll = (url: string, n: number, prefix: string) => {
    const per = Math.ceil(n / workersN);
    return all<HolderCounts>('open', (i) => ({
      url,
      count: Math.max(0, Math.min(per, n - i * per)),
      ratePerS: params.openRatePerS / workersN,
      keyPrefix: `${prefix}-${i}`,
      waitMs: 30_000,
    }));
  };
  try {
    // Warm veer's code paths, then let it settle before its baseline RSS.
    ctx.log('streams: warm-up through veer');
    await openAll(veer.url, Math.min(400, count), 'warm');
    await sleep(1500);
    await all('close');
    await sleep(2000);

    ctx.log(`streams: ${count} streams directly to the mock`);
    const t0 = performance.now();
    const directOpen = sum(await openAll(mocks.legacy.url, count, 'direct'));
    const directRampS = (performance.now() - t0) / 1000;
    await sleep(params.directHoldSeconds * 1000);
    const direct = sum(await all<HolderCounts>('close'));
    await sleep(2000);

    const baseRss = veer.rss();
    ctx.log(`streams: ${count} streams through veer (baseline RSS ${(baseRss / 2 ** 20).toFixed(1)} MiB)`);
    const t1 = performance.now();
    const veerOpen = sum(await openAll(veer.url, count, 'veer'));
    const veerRampS = (performance.now() - t1) / 1000;
    const hold = await holdThrough(veer, all, params.holdSeconds, ctx);
    const through = sum(await all<HolderCounts>('close'));
    const extraRss = hold.rss - baseRss;
    figures.push(
      figure({
        key: 'streams.held',
        label: `streams held for ${params.holdSeconds} s (200, events flowing, still open)`,
        unit: 'count',
        direct: direct.ok,
        veer: through.ok,
        target: { of: 'veer', min: wanted },
      }),
      figure({
        key: 'streams.rss_kib_per_stream',
        label: 'veer RSS per extra stream',
        unit: 'KiB',
        value: extraRss / 1024 / Math.max(1, through.ok),
        target: { of: 'value', max: 32 },
      }),
      figure({
        key: 'streams.eld_p99_ms',
        label: 'veer event-loop delay p99 while holding',
        unit: 'ms',
        value: hold.eldP99Ms,
        target: { of: 'value', max: 20 },
      }),
      figure({
        key: 'streams.cpu_us_per_event',
        label: 'proxy CPU per relayed SSE event while holding',
        unit: 'us',
        value: hold.cpuUsPerEvent,
      }),
    );
    notes.push(
      `Opening took ${directRampS.toFixed(1)} s direct and ${veerRampS.toFixed(1)} s through veer (target rate ${params.openRatePerS}/s, ${workersN} client processes); at the end of opening ${directOpen.ok}/${veerOpen.ok} (direct/veer) streams had their first event.`,
      `veer RSS: ${(baseRss / 2 ** 20).toFixed(1)} MiB after warm-up, ${(hold.rss / 2 ** 20).toFixed(1)} MiB at the end of the hold (peak ${(hold.peakRss / 2 ** 20).toFixed(1)} MiB); per stream = (end − baseline) / streams held. RSS includes garbage not yet collected, so it varies by a few KiB per stream between runs.`,
      `Event-loop delay is veer's own veer_nodejs_eventloop_lag_p99_seconds over the hold (${(hold.eldRawS * 1000).toFixed(1)} ms) minus its ${ELD_RESOLUTION_S * 1000} ms sampling interval, which the histogram includes.`,
      `While holding: ${hold.events} events relayed in ${hold.seconds.toFixed(1)} s, ${hold.liveAtEnd} streams had an event in the last 2.5 s; failures through veer ${through.failed} ${JSON.stringify(through.errors)}, direct ${direct.failed} ${JSON.stringify(direct.errors)}.`,
    );
    await sleep(2000);
    await nginxReference(mocks, count, params.directHoldSeconds, extraRss / Math.max(1, through.ok), {
      openAll,
      all,
      figures,
      notes,
      ctx,
    });
  } finally {
    await noteGuard(veer, notes);
    await Promise.all(workers.map((w) => stopChild(w, 5000)));
    await veer.stop();
    await mocks.stop();
  }
  return run.result(params, figures, notes);
}

async function holdThrough(
  veer: VeerProcess,
  all: <T>(type: string) => Promise<T[]>,
  seconds: number,
  ctx: ScenarioContext,
) {
  await veer.metrics(); // resets the event-loop delay histogram: what follows covers the hold only
  const cpu0 = veer.cpu().total;
  const events0 = sum(await all<HolderCounts>('counts')).events;
  const t0 = performance.now();
  let peakRss = 0;
  for (let s = 0; s < seconds; s++) {
    await sleep(1000);
    peakRss = Math.max(peakRss, veer.rss());
  }
  const rss = veer.rss();
  const cpu1 = veer.cpu().total;
  const end = sum(await all<HolderCounts>('counts'));
  const held = (performance.now() - t0) / 1000;
  const eldRawS = metricValue(await veer.metrics(), 'veer_nodejs_eventloop_lag_p99_seconds') ?? Number.NaN;
  const events = end.events - events0;
  ctx.log(`streams: held ${end.ok} (live ${end.live}), ${events} events in ${held.toFixed(1)} s`);
  return {
    rss,
    peakRss: Math.max(peakRss, rss),
    seconds: held,
    events,
    liveAtEnd: end.live,
    cpuUsPerEvent: ((cpu1 - cpu0) * 1e6) / Math.max(1, events),
    eldRawS,
    eldP99Ms: Math.max(0, eldRawS - ELD_RESOLUTION_S) * 1000,
  };
}

/**
 * The same streams through NGINX (when installed), held for the direct phase's time: its RSS per stream
 * (single process, from its own baseline) and veer's ÷ it. NGINX's split sends 20 % to new, as veer's.
 */
async function nginxReference(
  mocks: { legacy: { url: string }; new: { url: string } },
  count: number,
  holdSeconds: number,
  veerRssPerStream: number,
  io: {
    openAll: (url: string, n: number, prefix: string) => Promise<HolderCounts[]>;
    all: <T>(type: string) => Promise<T[]>;
    figures: Figure[];
    notes: string[];
    ctx: ScenarioContext;
  },
): Promise<void> {
  const nginx = await startNginx(mocks.legacy.url, mocks.new.url, 20);
  if (!nginx) {
    io.notes.push('NGINX is not installed: no NGINX rows (scripts/install-system-deps.sh installs it).');
    return;
  }
  try {
    await sleep(500);
    const baseRss = nginx.rss();
    io.ctx.log(`streams: ${count} streams through NGINX (baseline RSS ${(baseRss / 2 ** 20).toFixed(1)} MiB)`);
    await io.openAll(nginx.url, count, 'nginx');
    await sleep(holdSeconds * 1000);
    const rss = nginx.rss();
    const held = sum(await io.all<HolderCounts>('close'));
    const perStream = (rss - baseRss) / Math.max(1, held.ok);
    io.figures.push(
      figure({
        key: 'streams.nginx_held',
        label: `reference: NGINX, streams held for ${holdSeconds} s`,
        unit: 'count',
        value: held.ok,
      }),
      figure({
        key: 'streams.nginx_rss_kib_per_stream',
        label: 'reference: NGINX RSS per extra stream',
        unit: 'KiB',
        value: perStream / 1024,
      }),
      figure({
        key: 'streams.rss_per_stream_vs_nginx',
        label: 'RSS per stream, veer ÷ NGINX',
        unit: 'x',
        value: veerRssPerStream / perStream,
      }),
    );
    io.notes.push(
      `NGINX (one process, no master, keep-alive upstreams, proxy_buffering off): RSS ${(baseRss / 2 ** 20).toFixed(1)} → ${(rss / 2 ** 20).toFixed(1)} MiB holding ${held.ok} streams for ${holdSeconds} s; failures ${held.failed} ${JSON.stringify(held.errors)}.`,
    );
  } finally {
    await nginx.stop();
  }
}
