// micro: ns per bucketing decision (with and without five segments), per t-digest insert, and per 60 s window read.

import { Bench } from 'tinybench';
import { buildConfig } from '../../src/config/load.js';
import { SseScanner } from '../../src/measure/sse-scan.js';
import { SlidingWindow } from '../../src/measure/window.js';
import { decide, makeTable } from '../../src/routing/table.js';
import type { ScenarioContext } from '../lib/context.js';
import { figure, type ScenarioResult } from '../lib/results.js';

/** Draws of a lognormal around 300 ms: TTFB-like values, so digests grow the way they do in service. */
function ttfbValues(n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const z = Math.sqrt(-2 * Math.log(Math.random() || 1e-12)) * Math.cos(2 * Math.PI * Math.random());
    out[i] = 300 * Math.exp(0.5 * z);
  }
  return out;
}

export async function micro(ctx: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const time = ctx.quick ? 150 : 1500;
  // Timer reads cost ~30–50 ns: inner batches keep them out of per-operation figures.
  const BATCH = 1000;
  const bench = new Bench({ time, warmupTime: ctx.quick ? 50 : 300, iterations: 5 });

  // The table the bucketing rows route with; the segment rows add five segments to the same one.
  const tableSpec = {
    rolloutId: 'bench',
    salt: 'bench-2026',
    weightBp: 2000,
    state: 'progressing',
    overrides: [['tester-1', 'new']],
    forceHeader: undefined,
    version: 1,
  } satisfies Parameters<typeof makeTable>[0];
  const table = makeTable(tableSpec);
  const keys = Array.from({ length: 4096 }, (_, i) => `user-${(i * 7919) % 1_000_003}-${i}`);
  let k = 0;
  let sink = 0;
  const batched = (op: () => void) => () => {
    const t0 = bench.now();
    for (let i = 0; i < BATCH; i++) op();
    const elapsed = bench.now() - t0;
    return { overriddenDuration: elapsed / BATCH, overriddenIterationCost: elapsed };
  };
  bench.add(
    'bucketing',
    batched(() => {
      sink += decide(table, keys[k++ & 4095], undefined).bucket;
    }),
  );

  // Five segments (three headers, a cookie, a query value) that a typical request does not match: every
  // test runs, then the main weight decides — the most segment matching costs a request.
  const segmentDoc = buildConfig({
    upstreams: { legacy: { url: 'http://127.0.0.1:1' }, new: { url: 'http://127.0.0.1:2' } },
    rollout: { id: 'bench' },
    routing: {
      segments: [
        { name: 'staff', match: { header: 'x-tenant', in: ['internal', 'qa'] }, side: 'new' },
        { name: 'free', match: { header: 'x-plan', equals: 'free' }, weight: 50 },
        { name: 'acme', match: { header: 'x-org', prefix: 'acme-' }, weight: 10, cap_at_weight: true },
        { name: 'trial', match: { cookie: 'plan', equals: 'trial' }, weight: 5 },
        { name: 'beta', match: { query: 'beta', regex: '^(1|yes)$' }, side: 'new' },
      ],
    },
  });
  if (!segmentDoc.ok) throw new Error(segmentDoc.problems.join('\n'));
  const segmented = makeTable({ ...tableSpec, segments: segmentDoc.config.routing.segments });
  const requestHeaders = {
    host: 'veer.local',
    'content-type': 'application/json',
    authorization: 'Bearer sk-0123456789',
    'user-agent': 'bench/1.0',
    accept: 'text/event-stream',
    'content-length': '512',
    cookie: 'session=abc123; theme=dark',
    'x-user-id': 'user-1',
  };
  bench.add(
    'bucketing, 5 segments',
    batched(() => {
      sink += decide(
        segmented,
        keys[k++ & 4095],
        undefined,
        Math.random,
        requestHeaders,
        '/v1/chat/completions',
      ).bucket;
    }),
  );

  // One insert as the recorder makes it: the sample lands in the open slice's TTFB digest.
  let now = 1_000_000;
  const clock = () => now;
  const values = ttfbValues(1 << 16);
  let v = 0;
  const insertWindow = new SlidingWindow({ windowMs: 60_000, slices: 6, clock });
  bench.add(
    'digest insert',
    batched(() => {
      insertWindow.record('ok', values[v++ & 0xffff], undefined);
    }),
  );

  // A 60 s window at 1,000 samples/s in every one of its 6 slices, read as the guard reads it.
  const rate = 1000;
  const readWindow = new SlidingWindow({ windowMs: 60_000, slices: 6, clock });
  const fill = (ms: number) => {
    for (let t = 0; t < ms; t += 1000 / rate) {
      now += 1000 / rate;
      readWindow.record('ok', values[v++ & 0xffff], values[v & 0xffff]! * 2);
    }
  };
  fill(60_000);
  const read = () => {
    const s = readWindow.snapshot();
    sink += (s.ttfbQuantile(0.95) ?? 0) + (s.ttfbQuantile(0.99) ?? 0) + (s.durationQuantile(0.95) ?? 0);
  };
  // Warm: one new sample since the last read, so the open slice is merged again with the cached closed ones.
  bench.add('window read (warm)', read, {
    beforeEach() {
      readWindow.record('ok', values[v++ & 0xffff], undefined);
    },
  });

  // Token accounting per relayed event: one chunk holding one event, as the mock (and most servers) send
  // them, with the clock read the exchange makes per chunk. A fresh scanner every 100 events, as per stream.
  const openaiEvent = Buffer.from(
    `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1700000000, model: 'mock-new', choices: [{ index: 0, delta: { content: 'tok12 ' }, finish_reason: null }], t: 1764680000000.123 })}\n\n`,
  );
  const anthropicEvent = Buffer.from(
    `event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'tok12 ' } })}\n\n`,
  );
  const scanTask = (path: string, event: Buffer) => {
    let scanner = new SseScanner('auto', path);
    let n = 0;
    return batched(() => {
      if (++n % 100 === 0) scanner = new SseScanner('auto', path);
      scanner.feed(event, performance.now());
    });
  };
  bench.add('sse scan (openai chat event)', scanTask('/v1/chat/completions', openaiEvent));
  bench.add('sse scan (anthropic event)', scanTask('/v1/messages', anthropicEvent));
  // A stream's end: its summary into the window (TPOT and rate digests, 80 gap buckets, end class).
  const tokenWindow = new SlidingWindow({ windowMs: 60_000, slices: 6, clock });
  const ended = new SseScanner('openai', '/v1/chat/completions');
  for (let i = 0; i < 100; i++) ended.feed(openaiEvent, i * 20 + (values[i]! % 7));
  ended.feed(Buffer.from('data: [DONE]\n\n'), 2000);
  ended.finish('upstream_end');
  bench.add(
    'token stream end',
    batched(() => {
      tokenWindow.record('ok', 20, 2000, ended);
    }),
  );

  ctx.log(`micro: ${bench.tasks.length} tasks, ${time} ms each`);
  await bench.run();

  // Cold: the ring rotated, so every closed slice is merged afresh (the first read of each slice
  // period). Refilling a slice between reads takes far longer than the read, so this is timed by hand.
  const coldReads: number[] = [];
  for (let i = 0; i < (ctx.quick ? 4 : 30); i++) {
    fill(10_000);
    const t0 = performance.now();
    read();
    coldReads.push(performance.now() - t0);
  }
  coldReads.sort((a, b) => a - b);
  if (sink === 42) ctx.log('');

  const mean = (name: string) => {
    const r = bench.getTask(name)?.result;
    if (!r || !('latency' in r)) throw new Error(`micro: task ${name} did not complete`);
    return { p50: r.latency.p50, mean: r.latency.mean, samples: r.latency.samplesCount };
  };
  const ns = (ms: number) => ms * 1e6;
  const bucketing = mean('bucketing');
  const withSegments = mean('bucketing, 5 segments');
  const insert = mean('digest insert');
  const warm = mean('window read (warm)');
  const scanOpenai = mean('sse scan (openai chat event)');
  const scanAnthropic = mean('sse scan (anthropic event)');
  const streamEnd = mean('token stream end');
  const cold = { p50: coldReads[coldReads.length >> 1]!, samples: coldReads.length, max: coldReads.at(-1)! };
  return {
    name: 'micro',
    startedAt,
    seconds: (performance.now() - started) / 1000,
    quick: ctx.quick,
    params: { timePerTaskMs: time, batch: BATCH, window: '60s / 6 slices, 1,000 samples/s' },
    figures: [
      figure({
        key: 'bucketing.ns',
        label: 'bucketing decision (decide with a key), median',
        unit: 'ns',
        value: ns(bucketing.p50),
        target: { of: 'value', max: 150 },
      }),
      figure({
        key: 'segment_matching.ns',
        label: 'added by five segments none of which match (decide with segments minus without), median',
        unit: 'ns',
        value: ns(withSegments.p50 - bucketing.p50),
        target: { of: 'value', max: 200 },
      }),
      figure({
        key: 'digest_insert.ns',
        label: 't-digest insert (window.record), median',
        unit: 'ns',
        value: ns(insert.p50),
        target: { of: 'value', max: 300 },
      }),
      figure({
        key: 'window_read_cold.ms',
        label: '60 s window quantile read after rotation (p95, p99, duration p95), median',
        unit: 'ms',
        value: cold.p50,
        target: { of: 'value', max: 2 },
      }),
      figure({
        key: 'window_read_warm.ms',
        label: '60 s window quantile read, closed slices cached, median',
        unit: 'ms',
        value: warm.p50,
        target: { of: 'value', max: 2 },
      }),
      figure({
        key: 'token_scan_openai.ns',
        label: 'token accounting per relayed event (SSE scan of an OpenAI chat chunk, clock read included), median',
        unit: 'ns',
        value: ns(scanOpenai.p50),
        target: { of: 'value', max: 2000 },
      }),
      figure({
        key: 'token_scan_anthropic.ns',
        label: 'token accounting per relayed event (SSE scan of an Anthropic content_block_delta), median',
        unit: 'ns',
        value: ns(scanAnthropic.p50),
      }),
      figure({
        key: 'token_stream_end.ns',
        label: "token accounting per stream end (summary into the window's token side), median",
        unit: 'ns',
        value: ns(streamEnd.p50),
      }),
    ],
    notes: [
      `Token accounting: ${ns(scanOpenai.mean).toFixed(0)} ns mean per OpenAI event, ${ns(scanAnthropic.mean).toFixed(0)} ns per Anthropic event, ${ns(streamEnd.mean).toFixed(0)} ns per stream end (spread over a stream's events: ${(ns(streamEnd.mean) / 100).toFixed(0)} ns per event at 100 tokens).`,
      `Medians of ${bucketing.samples}/${insert.samples} batches of ${BATCH} calls (bucketing/insert); means ${ns(bucketing.mean).toFixed(0)} ns / ${ns(insert.mean).toFixed(0)} ns (an insert's mean includes the periodic digest compression).`,
      `Window reads: ${cold.samples} cold (slowest ${cold.max.toFixed(2)} ms) and ${warm.samples} warm samples; a cold read merges the 5 closed slices' centroids afresh, a warm one merges only the open slice into the cached rest.`,
    ],
  };
}
