import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import type { Outcome } from '../../src/measure/outcome.js';
import { Recorder, type StreamRecord } from '../../src/measure/recorder.js';
import { createMetrics } from '../../src/metrics/registry.js';
import { parseExposition, seriesValue } from '../helpers/prom-text.js';
import { memoryLogger, waitFor } from '../helpers/stack.js';

function setup(accessLog = true) {
  const metrics = createMetrics({ defaultMetrics: false });
  const log = memoryLogger('info');
  const clock = { now: 1_000 };
  const recorder = new Recorder({
    metrics,
    logger: log.logger,
    accessLog,
    windowMs: 60_000,
    slices: 6,
    clock: () => clock.now,
  });
  const scrape = async () => parseExposition(await metrics.registry.metrics());
  return { metrics, recorder, log, clock, scrape };
}

/** A stream that started at t=10,000 ms (monotonic) with the given timings relative to that start. */
function stream(
  over: Partial<StreamRecord> & { outcome: Outcome },
  rel: { headers?: number; firstByte?: number; end?: number } = {},
): StreamRecord {
  const startedAt = 10_000;
  return {
    upstream: 'new',
    reason: 'bucket',
    bucket: 42,
    method: 'POST',
    path: '/v1/chat/completions',
    protocol: 'h2',
    status: 200,
    startedAt,
    dispatchedAt: startedAt,
    headersAt: rel.headers === undefined ? 0 : startedAt + rel.headers,
    firstByteAt: rel.firstByte === undefined ? 0 : startedAt + rel.firstByte,
    endedAt: startedAt + (rel.end ?? 1_000),
    bytesOut: 100,
    fallback: false,
    ...over,
  };
}

describe('Recorder', () => {
  it('takes TTFB at the first body byte, not at the response headers', async () => {
    const { recorder, scrape } = setup();
    recorder.started('new');
    recorder.finished(stream({ outcome: 'ok' }, { headers: 3, firstByte: 250, end: 900 }));
    const w = recorder.windows.new.snapshot();
    expect(w.ttfbQuantile(0.5)).toBe(250);
    expect(w.durationQuantile(0.5)).toBe(900);
    const m = await scrape();
    expect(seriesValue(m, 'veer_ttfb_seconds_bucket', { upstream: 'new', le: '0.2' })).toBe(0);
    expect(seriesValue(m, 'veer_ttfb_seconds_bucket', { upstream: 'new', le: '0.3' })).toBe(1);
    expect(seriesValue(m, 'veer_ttfb_seconds_sum', { upstream: 'new' })).toBeCloseTo(0.25, 9);
    expect(seriesValue(m, 'veer_request_duration_seconds_sum', { upstream: 'new' })).toBeCloseTo(0.9, 9);
  });

  it('uses the headers time as TTFB for a response without a body', () => {
    const { recorder } = setup();
    recorder.started('legacy');
    recorder.finished(stream({ upstream: 'legacy', outcome: 'ok', status: 204 }, { headers: 40, end: 41 }));
    expect(recorder.windows.legacy.snapshot().ttfbQuantile(0.5)).toBe(40);
  });

  it('records TTFB only when the upstream answered: not for 5xx, connect errors or timeouts; yes for a reset or a client that left after the first byte', () => {
    const { recorder } = setup();
    const cases: [Outcome, number | undefined][] = [
      ['upstream_5xx', 30],
      ['connect_error', undefined],
      ['timeout', undefined],
      ['reset', 60],
      ['client_abort', 70],
      ['client_abort', undefined],
    ];
    for (const [outcome, firstByte] of cases) {
      recorder.started('new');
      recorder.finished(stream({ outcome, status: outcome === 'upstream_5xx' ? 500 : 200 }, { headers: 2, firstByte }));
    }
    const w = recorder.windows.new.snapshot();
    expect(w.ttfbSamples).toBe(2);
    expect(w.ttfbQuantile(0)).toBe(60);
    expect(w.ttfbQuantile(1)).toBe(70);
    // Duration is for completed responses only.
    expect(w.durationSamples).toBe(0);
    expect(w.errors).toBe(4);
    expect(w.requests).toBe(4);
  });

  it('labels requests by the status class the client saw (none when nothing was sent) and the routing reason, fallback first', async () => {
    const { recorder, scrape } = setup();
    const finish = (r: StreamRecord) => {
      recorder.started(r.upstream);
      recorder.finished(r);
    };
    finish(stream({ outcome: 'ok', status: 200 }, { firstByte: 5 }));
    finish(stream({ outcome: 'ok', status: 404, reason: 'override' }, { firstByte: 5 }));
    finish(stream({ outcome: 'upstream_5xx', status: 503 }));
    finish(stream({ outcome: 'timeout', status: 504 }));
    finish(stream({ outcome: 'client_abort', status: 0 }));
    finish(
      stream({ upstream: 'legacy', outcome: 'ok', status: 200, reason: 'bucket', fallback: true }, { firstByte: 5 }),
    );
    const m = await scrape();
    expect(seriesValue(m, 'veer_requests_total', { upstream: 'new', code_class: '2xx', reason: 'bucket' })).toBe(1);
    expect(seriesValue(m, 'veer_requests_total', { upstream: 'new', code_class: '4xx', reason: 'override' })).toBe(1);
    expect(seriesValue(m, 'veer_requests_total', { upstream: 'new', code_class: '5xx', reason: 'bucket' })).toBe(2);
    expect(seriesValue(m, 'veer_requests_total', { upstream: 'new', code_class: 'none', reason: 'bucket' })).toBe(1);
    expect(seriesValue(m, 'veer_requests_total', { upstream: 'legacy', code_class: '2xx', reason: 'fallback' })).toBe(
      1,
    );
    expect(seriesValue(m, 'veer_request_outcomes_total', { upstream: 'new', outcome: 'ok' })).toBe(2);
    expect(seriesValue(m, 'veer_request_outcomes_total', { upstream: 'new', outcome: 'upstream_5xx' })).toBe(1);
    expect(seriesValue(m, 'veer_request_outcomes_total', { upstream: 'new', outcome: 'timeout' })).toBe(1);
    expect(seriesValue(m, 'veer_request_outcomes_total', { upstream: 'new', outcome: 'client_abort' })).toBe(1);
    expect(seriesValue(m, 'veer_request_outcomes_total', { upstream: 'legacy', outcome: 'ok' })).toBe(1);
    expect(recorder.finishedTotal).toEqual({ new: 5, legacy: 1 });
  });

  it('counts streams in flight per upstream from start to finish', async () => {
    const { recorder, scrape } = setup();
    recorder.started('new');
    recorder.started('new');
    recorder.started('legacy');
    let m = await scrape();
    expect(seriesValue(m, 'veer_inflight_streams', { upstream: 'new' })).toBe(2);
    expect(seriesValue(m, 'veer_inflight_streams', { upstream: 'legacy' })).toBe(1);
    recorder.finished(stream({ outcome: 'ok' }, { firstByte: 1 }));
    recorder.finished(stream({ upstream: 'legacy', outcome: 'client_abort', status: 0 }));
    m = await scrape();
    expect(seriesValue(m, 'veer_inflight_streams', { upstream: 'new' })).toBe(1);
    expect(seriesValue(m, 'veer_inflight_streams', { upstream: 'legacy' })).toBe(0);
  });

  it("publishes the window's TTFB quantiles in seconds as a summary, with samples and error ratio per upstream", async () => {
    const { recorder, scrape, clock } = setup();
    for (let i = 1; i <= 100; i++) {
      recorder.started('new');
      recorder.finished(stream({ outcome: 'ok' }, { firstByte: i * 10 }));
    }
    for (let i = 0; i < 25; i++) {
      recorder.started('new');
      recorder.finished(stream({ outcome: i < 20 ? 'upstream_5xx' : 'client_abort', status: i < 20 ? 500 : 0 }));
    }
    let m = await scrape();
    expect(m.get('veer_ttfb_window_seconds')?.type).toBe('summary');
    const p50 = seriesValue(m, 'veer_ttfb_window_seconds', { upstream: 'new', quantile: '0.5' });
    const p99 = seriesValue(m, 'veer_ttfb_window_seconds', { upstream: 'new', quantile: '0.99' });
    expect(p50).toBeGreaterThan(0.49);
    expect(p50).toBeLessThan(0.51);
    expect(p99).toBeGreaterThan(0.98);
    expect(p99).toBeLessThanOrEqual(1);
    expect(seriesValue(m, 'veer_window_samples', { upstream: 'new' })).toBe(100);
    expect(seriesValue(m, 'veer_window_error_ratio', { upstream: 'new' })).toBeCloseTo(20 / 120, 12);
    // An upstream with no TTFB in the window has no quantile series at all, rather than a made-up 0.
    expect(m.get('veer_ttfb_window_seconds')!.samples.some((s) => s.labels.upstream === 'legacy')).toBe(false);
    clock.now += 60_000;
    m = await scrape();
    expect(m.get('veer_ttfb_window_seconds')!.samples).toHaveLength(0);
    expect(seriesValue(m, 'veer_window_samples', { upstream: 'new' })).toBe(0);
  });

  it('writes TTFB, headers time, duration and outcome into the access log line', () => {
    const { recorder, log } = setup(true);
    recorder.started('new');
    recorder.finished(stream({ outcome: 'ok' }, { headers: 2.5, firstByte: 180.25, end: 640 }));
    recorder.started('new');
    recorder.finished(stream({ outcome: 'timeout', status: 504 }, { end: 30_000 }));
    const lines = log.lines().filter((l) => l.msg === 'request');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      upstream: 'new',
      reason: 'bucket',
      status: 200,
      outcome: 'ok',
      ttfb_ms: 180.25,
      headers_ms: 2.5,
      duration_ms: 640,
      bytes: 100,
    });
    expect(lines[1]).toMatchObject({ outcome: 'timeout', status: 504, ttfb_ms: null, headers_ms: null });
  });

  it('writes the access line as pino would (level, time, service), escaping what the client sent', () => {
    const { recorder, log } = setup(true);
    const path = '/v1/"odd"\\path/ключ\n';
    recorder.started('legacy');
    recorder.finished(
      stream({ outcome: 'client_abort', upstream: 'legacy', path: `${path}?key=u1`, method: 'GET', status: 0 }),
    );
    const [line] = log.lines().filter((l) => l.msg === 'request');
    // The query string (keys, tokens) is left out.
    expect(line).toMatchObject({ level: 'info', service: 'veer', upstream: 'legacy', path, method: 'GET', status: 0 });
    expect(Date.parse(String(line!.time))).toBeGreaterThan(0);
    // Other log lines carry the same base fields.
    log.logger.info('hello');
    expect(log.lines().at(-1)).toMatchObject({ level: 'info', service: 'veer', msg: 'hello' });
  });

  it('meters a batch by itself: at 256 finished streams at once, and the rest shortly after, without a scrape or flush', async () => {
    const chunks: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        chunks.push(String(chunk));
        cb();
      },
    });
    const metrics = createMetrics({ defaultMetrics: false });
    const logger = createLogger({ level: 'info', destination: sink });
    const recorder = new Recorder({
      metrics,
      logger,
      accessLog: true,
      windowMs: 60_000,
      slices: 6,
      clock: () => 1_000,
    });
    const written = () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.includes('"msg":"request"')).length;
    const finish = (n: number) => {
      for (let i = 0; i < n; i++) {
        recorder.started('new');
        recorder.finished(stream({ outcome: 'ok' }, { firstByte: 10 }));
      }
    };
    finish(255);
    expect(written()).toBe(0);
    // The window does not wait for the batch.
    expect(recorder.windows.new.snapshot().ttfbSamples).toBe(255);
    finish(1);
    expect(written()).toBe(256);
    finish(1);
    expect(written()).toBe(256);
    await waitFor(() => written() === 257, 2_000, 2);
  });

  it('honours the log level for access lines', () => {
    const { recorder, log } = setup(true);
    log.logger.level = 'warn';
    recorder.started('new');
    recorder.finished(stream({ outcome: 'ok' }, { firstByte: 10 }));
    expect(log.lines().filter((l) => l.msg === 'request')).toHaveLength(0);
  });

  it('writes no access log line when the access log is off', () => {
    const { recorder, log } = setup(false);
    recorder.started('new');
    recorder.finished(stream({ outcome: 'ok' }, { firstByte: 10 }));
    expect(log.lines().filter((l) => l.msg === 'request')).toHaveLength(0);
  });
});
