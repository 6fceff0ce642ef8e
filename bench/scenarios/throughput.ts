// throughput: small non-streaming requests at upstream TTFB 0 — req/s, latency and veer's CPU time per request.

import autocannon from 'autocannon';
import type { Pool } from 'undici';
import type { ScenarioContext } from '../lib/context.js';
import { benchPool, chatRequest, timedRequest } from '../lib/h1-client.js';
import { h2Sessions, h2Timed } from '../lib/h2-client.js';
import { closedLoop, fixedRate, type Side } from '../lib/load.js';
import { startMockHost } from '../lib/mocks.js';
import { startNginx } from '../lib/nginx.js';
import { type Figure, figure, type ScenarioResult, scenarioRun } from '../lib/results.js';
import { alternate } from '../lib/rounds.js';
import { median, Samples, usSince } from '../lib/samples.js';
import { endScenario, startReference, startVeer } from '../lib/veer-process.js';

const BODY = JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: 'hi' }] });

export async function throughput(ctx: ScenarioContext): Promise<ScenarioResult> {
  const run = scenarioRun('throughput', ctx.quick);
  const q = ctx.quick;
  const params = {
    rounds: q ? 1 : 3,
    roundSeconds: q ? 0.75 : 4,
    autocannonConnections: 32,
    h2Sessions: 2,
    h2Concurrency: 32,
    fixedRatePerS: q ? 500 : 1000,
    fixedRateConnections: 16,
    upstreamTtfbMs: 0,
  };
  const roundMs = params.roundSeconds * 1000;
  const mocks = await startMockHost({ ttfb: 0, tokens: 8 }, { h2: true });
  const veer = await startVeer(mocks.legacy.url, mocks.new.url);
  // References measured in the same run (not in quick mode): see 1b.
  const bare = q ? undefined : await startReference('bare', mocks.legacy.url);
  const nginx = q ? undefined : await startNginx(mocks.legacy.url, mocks.new.url, 20);
  const figures: Figure[] = [];
  const notes: string[] = [];
  try {
    const url = (side: Side) => (side === 'veer' ? veer.url : side === 'bare' ? bare!.url : mocks.legacy.url);

    // 1. autocannon, HTTP/1.1 keep-alive, closed loop: how many req/s and at what CPU cost.
    const cannon = async (base: string, seconds: number) => {
      const r = await autocannon({
        url: `${base}/v1/chat/completions`,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-user-id': '[<id>]' },
        idReplacement: true,
        body: BODY,
        connections: params.autocannonConnections,
        pipelining: 1,
        duration: seconds,
      });
      return {
        ok: r['2xx'],
        failed: r.non2xx + r.errors,
        rps: r['2xx'] / r.duration,
        p50: r.latency.p50,
        p99: r.latency.p99,
      };
    };
    ctx.log('throughput: warm-up');
    await cannon(url('direct'), q ? 0.4 : 1);
    await cannon(url('veer'), q ? 0.4 : 1);
    ctx.log('throughput: autocannon HTTP/1.1');
    const ac = await alternate(params.rounds, veer, (side) => cannon(url(side), params.roundSeconds));
    const acSide = (side: Side) => ({
      rps: median(ac[side].map((r) => r.rps)),
      p50: median(ac[side].map((r) => r.p50)),
      p99: median(ac[side].map((r) => r.p99)),
      failed: ac[side].reduce((n, r) => n + r.failed, 0),
    });
    const acD = acSide('direct');
    const acV = acSide('veer');
    // The median round, not the pooled ratio: one round disturbed by a neighbour's job moves it less.
    const acCpu = median(ac.veerCpuUsPerOk);
    figures.push(
      figure({ key: 'h1.rps', label: 'HTTP/1.1 (autocannon) req/s', unit: 'req/s', direct: acD.rps, veer: acV.rps }),
      figure({ key: 'h1.p50', label: 'HTTP/1.1 (autocannon) latency p50', unit: 'ms', direct: acD.p50, veer: acV.p50 }),
      figure({ key: 'h1.p99', label: 'HTTP/1.1 (autocannon) latency p99', unit: 'ms', direct: acD.p99, veer: acV.p99 }),
      figure({
        key: 'h1.cpu_us_per_req',
        label: 'proxy CPU per request, HTTP/1.1 at saturation',
        unit: 'us',
        value: acCpu,
        target: { of: 'value', max: 90 },
      }),
    );
    notes.push(
      `veer CPU per request by autocannon round: ${ac.veerCpuUsPerOk.map((v) => v.toFixed(1)).join(', ')} µs (the figure is the median round), ${((100 * ac.veerUserS) / ac.veerCpuS).toFixed(0)} % of it user time; user+sys time of the veer process from /proc/PID/stat (10 ms ticks) over its own rounds, divided by 2xx answers.`,
    );

    // 1b. The same load on references measured in the same run: veer without its access log, and a bare
    // undici forwarder. They tell how much of veer's cost is its own work and how fast this machine is today.
    if (bare) {
      ctx.log(`throughput: references (access log off, bare undici forwarder${nginx ? ', NGINX' : ''})`);
      const quiet = await startVeer(mocks.legacy.url, mocks.new.url, {
        extra: { log: { level: 'info', access: false } },
      });
      try {
        const refs = [
          { name: 'quiet', url: quiet.url, cpu: () => quiet.cpu().total, perRound: [] as number[] },
          { name: 'bare', url: bare.url, cpu: () => bare.cpu().total, perRound: [] as number[] },
          ...(nginx ? [{ name: 'nginx', url: nginx.url, cpu: () => nginx.cpu().total, perRound: [] as number[] }] : []),
        ];
        for (const ref of refs) await cannon(ref.url, 1);
        for (let round = 0; round < params.rounds; round++) {
          for (const ref of round % 2 ? [...refs].reverse() : refs) {
            const c0 = ref.cpu();
            const r = await cannon(ref.url, params.roundSeconds);
            ref.perRound.push(((ref.cpu() - c0) * 1e6) / r.ok);
          }
        }
        figures.push(
          figure({
            key: 'h1.cpu_us_per_req_no_access_log',
            label: 'proxy CPU per request, HTTP/1.1 at saturation, access log off',
            unit: 'us',
            value: median(refs[0]!.perRound),
          }),
          figure({
            key: 'h1.cpu_us_per_req_bare_undici',
            label: 'reference: bare undici forwarder (bench/lib/bare-forwarder.ts), same load',
            unit: 'us',
            value: median(refs[1]!.perRound),
          }),
        );
        if (nginx) {
          const nginxUs = median(refs[2]!.perRound);
          figures.push(
            figure({
              key: 'h1.cpu_us_per_req_nginx',
              label: 'reference: NGINX (bench/lib/nginx.ts), same load',
              unit: 'us',
              value: nginxUs,
            }),
            figure({
              key: 'h1.cpu_per_req_vs_nginx',
              label: 'proxy CPU per request at saturation, veer ÷ NGINX',
              unit: 'x',
              value: acCpu / nginxUs,
              target: { of: 'value', max: 3.5 },
            }),
          );
          notes.push(
            `NGINX CPU per request by round: ${refs[2]!.perRound.map((v) => v.toFixed(1)).join(', ')} µs; one process without a master, split_clients on x-user-id, keep-alive upstreams, proxy_buffering off, access lines to a buffered file.`,
          );
        }
      } finally {
        await quiet.stop();
      }
    }

    // 2. HTTP/2: one request per stream, 32 in flight over 2 sessions (direct: h2c to the mock).
    type H2Side = 'direct' | 'veer';
    const h2Url = (side: H2Side) => (side === 'veer' ? veer.url : mocks.legacy.h2Url!);
    const sessions = {
      direct: await h2Sessions(h2Url('direct'), params.h2Sessions),
      veer: await h2Sessions(h2Url('veer'), params.h2Sessions),
    };
    let h2Key = 0;
    const h2Round = async (side: H2Side, ms: number) => {
      const lat = new Samples();
      let failed = 0;
      const t0 = performance.now();
      await closedLoop(params.h2Concurrency, ms, async (slot) => {
        const r = await h2Timed(
          sessions[side][slot % params.h2Sessions]!,
          {
            ':method': 'POST',
            ':path': '/v1/chat/completions',
            'content-type': 'application/json',
            'x-user-id': `h2-${h2Key++}`,
          },
          BODY,
        );
        if (r.status === 200 && !r.error) lat.add(r.us);
        else failed++;
      });
      return { ok: lat.count, failed, lat, rps: lat.count / ((performance.now() - t0) / 1000) };
    };
    ctx.log('throughput: HTTP/2');
    await h2Round('direct', q ? 250 : 1000);
    await h2Round('veer', q ? 250 : 1000);
    const h2 = await alternate(params.rounds, veer, (side) => h2Round(side as H2Side, roundMs));
    for (const s of Object.values(sessions).flat()) s.close();
    const h2Side = (side: H2Side) => ({
      rps: median(h2[side].map((r) => r.rps)),
      lat: Samples.pooled(h2[side].map((r) => r.lat)),
      failed: h2[side].reduce((n, r) => n + r.failed, 0),
    });
    const h2D = h2Side('direct');
    const h2V = h2Side('veer');
    figures.push(
      figure({ key: 'h2.rps', label: 'HTTP/2 (32 streams) req/s', unit: 'req/s', direct: h2D.rps, veer: h2V.rps }),
      figure({
        key: 'h2.p50',
        label: 'HTTP/2 latency p50',
        unit: 'us',
        direct: h2D.lat.percentile(50),
        veer: h2V.lat.percentile(50),
      }),
      figure({
        key: 'h2.p99',
        label: 'HTTP/2 latency p99',
        unit: 'us',
        direct: h2D.lat.percentile(99),
        veer: h2V.lat.percentile(99),
      }),
      figure({
        key: 'h2.cpu_us_per_req',
        label: 'proxy CPU per request, HTTP/2 at saturation',
        unit: 'us',
        value: median(h2.veerCpuUsPerOk),
      }),
    );

    // 3. A fixed rate well below saturation: sub-millisecond latency added per request, in µs.
    // No TCP relay here: its rows would say nothing for requests this small that the bare forwarder's do not.
    const pools: Partial<Record<Side, Pool>> = {
      direct: benchPool(url('direct'), params.fixedRateConnections),
      veer: benchPool(url('veer'), params.fixedRateConnections),
      bare: benchPool(bare ? url('bare') : url('direct'), params.fixedRateConnections),
    };
    let frKey = 0;
    const frRound = async (side: Side, ms: number) => {
      const lat = new Samples();
      let failed = 0;
      const { skipped } = await fixedRate(
        params.fixedRatePerS,
        ms,
        async () => {
          const t = await timedRequest(pools[side]!, chatRequest(`fr-${frKey++}`, false));
          if (t.status === 200 && !t.error) lat.add(usSince(t.startNs, t.endNs));
          else failed++;
        },
        2000,
      );
      return { ok: lat.count, failed: failed + skipped, lat };
    };
    ctx.log('throughput: fixed rate HTTP/1.1');
    await frRound('direct', q ? 250 : 1000);
    await frRound('veer', q ? 250 : 1000);
    if (bare) await frRound('bare', 1000);
    const fr = await alternate(params.rounds, veer, (side) => frRound(side, roundMs), {
      references: bare ? ['bare'] : [],
    });
    await Promise.all(Object.values(pools).map((p) => p.close()));
    const frSide = (side: Side) => ({
      lat: Samples.pooled(fr[side].map((r) => r.lat)),
      failed: fr[side].reduce((n, r) => n + r.failed, 0),
    });
    const frD = frSide('direct');
    const frV = frSide('veer');
    const frB = frSide('bare');
    figures.push(
      figure({
        key: 'fixed.p50',
        label: `HTTP/1.1 at ${params.fixedRatePerS} req/s, latency p50`,
        unit: 'us',
        direct: frD.lat.percentile(50),
        veer: frV.lat.percentile(50),
      }),
      figure({
        key: 'fixed.p99',
        label: `HTTP/1.1 at ${params.fixedRatePerS} req/s, latency p99`,
        unit: 'us',
        direct: frD.lat.percentile(99),
        veer: frV.lat.percentile(99),
      }),
      ...(bare
        ? [50, 99].map((p) =>
            figure({
              key: `fixed.bare_p${p}`,
              label: `HTTP/1.1 at ${params.fixedRatePerS} req/s, latency p${p}, reference: bare undici forwarder`,
              unit: 'us',
              direct: frD.lat.percentile(p),
              value: frB.lat.percentile(p),
            }),
          )
        : []),
      figure({
        key: 'fixed.cpu_us_per_req',
        label: `proxy CPU per request, HTTP/1.1 at ${params.fixedRatePerS} req/s`,
        unit: 'us',
        value: median(fr.veerCpuUsPerOk),
      }),
    );

    const failed = acD.failed + acV.failed + h2D.failed + h2V.failed + frD.failed + frV.failed;
    notes.push(
      `Failed or non-2xx requests over all rounds: ${failed}. autocannon latencies are whole milliseconds; the HTTP/2 and fixed-rate figures come from the bench's own client (process.hrtime.bigint).`,
      `Client, veer and the mock upstreams share the machine's ${'2'} cores, so req/s through veer is bounded by the CPU veer takes from the others, not only by veer's own cost.`,
    );
  } finally {
    await endScenario(notes, veer, [...(bare ? [bare] : []), ...(nginx ? [nginx] : [])], mocks);
  }
  return run.result(params, figures, notes);
}
