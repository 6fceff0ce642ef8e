import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamName } from '../../src/config/types.js';
import { decide } from '../../src/routing/table.js';
import { type Family, parseExposition, samplesOf, seriesValue } from '../helpers/prom-text.js';
import { closedPort, memoryLogger, type Stack, serveHttp, startStack, waitFor } from '../helpers/stack.js';

type Scrape = Map<string, Family>;

/** GET /metrics on the admin listener, read by the strict text-format reader (any malformed line fails). */
async function scrape(stack: Stack): Promise<Scrape> {
  const res = await request(`${stack.adminUrl}/metrics`);
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parseExposition(await res.body.text());
}

/** Keys the current routing table sends to `upstream` by their bucket. */
function keysFor(stack: Stack, upstream: UpstreamName, n: number, prefix: string): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < n; i++) {
    const key = `${prefix}-${i}`;
    const d = decide(stack.veer.table, key, undefined);
    if (d.upstream === upstream && d.reason === 'bucket') keys.push(key);
  }
  return keys;
}

/** An SSE completion through veer over HTTP/1.1; resolves with the status, or 0 when the exchange failed or was cut. */
async function complete(stack: Stack, key: string | undefined, signal?: AbortSignal): Promise<number> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== undefined) headers['x-user-id'] = key;
  try {
    const res = await request(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers,
      body: '{"stream":true}',
      signal,
    });
    await res.body.text();
    return res.statusCode;
  } catch {
    return 0;
  }
}

/** Differences of a set of series between two scrapes. */
function delta(before: Scrape, after: Scrape, name: string, labels: Record<string, string>): number {
  return seriesValue(after, name, labels) - seriesValue(before, name, labels);
}

describe('metrics on the admin listener, from real traffic through veer', () => {
  let stack: Stack;
  const log = memoryLogger('info');

  beforeAll(async () => {
    stack = await startStack({
      legacy: { ttfb: 20, tokens: 3, tokenIntervalMs: 2 },
      // SSE headers go out at once; the first token comes 200 ms later.
      next: { ttfb: 200, tokens: 3, tokenIntervalMs: 5, headersFirst: true },
      config: {
        rollout: { weight: 75 },
        routing: { overrides: { legacy: ['pinned-to-legacy'] } },
        upstreams: { new: { ttfb_timeout: '700ms' } },
        log: { access: true },
      },
      logger: log.logger,
    });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('measures an upstream with a 200 ms first token at a window p50 of 200 ± 15 ms, from the first body byte', async () => {
    // Legacy first, which also warms up veer's request path. A stream the client saw end within 100 ms had
    // its first byte within 100 ms at veer too (the first one, or one on a loaded machine, may take longer).
    let legacyUnder100ms = 0;
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      expect(await complete(stack, 'pinned-to-legacy')).toBe(200);
      if (performance.now() - t0 < 100) legacyUnder100ms++;
    }
    // Four at a time: enough to overlap streams, few enough that the mock's timers fire on time.
    const keys = keysFor(stack, 'new', 40, 'ttfb');
    const seenByClient: number[] = [];
    for (let wave = 0; wave < 10; wave++) {
      await Promise.all(
        keys.slice(wave * 4, wave * 4 + 4).map(async (key) => {
          const t0 = performance.now();
          const res = await request(`${stack.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'x-user-id': key },
            body: '{"stream":true}',
          });
          expect(res.statusCode).toBe(200);
          let first = 0;
          for await (const _ of res.body) if (first === 0) first = performance.now();
          seenByClient.push(first - t0);
        }),
      );
    }
    seenByClient.sort((a, b) => a - b);
    const clientP50 = (seenByClient[19]! + seenByClient[20]!) / 2 / 1000;

    const m = await scrape(stack);
    const p50 = seriesValue(m, 'veer_ttfb_window_seconds', { upstream: 'new', quantile: '0.5' });
    expect(p50).toBeGreaterThanOrEqual(0.185);
    expect(p50).toBeLessThanOrEqual(0.215);
    // veer's span lies inside the client's (request sent → first chunk read), and close to it.
    expect(p50).toBeLessThanOrEqual(clientP50);
    expect(clientP50 - p50).toBeLessThan(0.015);
    expect(seriesValue(m, 'veer_ttfb_window_seconds', { upstream: 'legacy', quantile: '0.5' })).toBeLessThan(0.1);
    expect(seriesValue(m, 'veer_window_samples', { upstream: 'new' })).toBe(40);
    expect(seriesValue(m, 'veer_window_samples', { upstream: 'legacy' })).toBe(10);
    // The histogram counts the same 40 streams, none under 100 ms although their headers came at once.
    expect(seriesValue(m, 'veer_ttfb_seconds_count', { upstream: 'new' })).toBe(40);
    expect(seriesValue(m, 'veer_ttfb_seconds_bucket', { upstream: 'new', le: '0.1' })).toBe(0);
    expect(legacyUnder100ms).toBeGreaterThan(0);
    expect(seriesValue(m, 'veer_ttfb_seconds_bucket', { upstream: 'legacy', le: '0.1' })).toBeGreaterThanOrEqual(
      legacyUnder100ms,
    );
    expect(seriesValue(m, 'veer_ttfb_seconds_count', { upstream: 'legacy' })).toBe(10);
    expect(seriesValue(m, 'veer_request_duration_seconds_count', { upstream: 'new' })).toBe(40);
    expect(seriesValue(m, 'veer_requests_total', { upstream: 'new', code_class: '2xx', reason: 'bucket' })).toBe(40);
    expect(seriesValue(m, 'veer_requests_total', { upstream: 'legacy', code_class: '2xx', reason: 'override' })).toBe(
      10,
    );
    expect(seriesValue(m, 'veer_request_outcomes_total', { upstream: 'new', outcome: 'ok' })).toBe(40);
    expect(seriesValue(m, 'veer_request_outcomes_total', { upstream: 'legacy', outcome: 'ok' })).toBe(10);
    expect(seriesValue(m, 'veer_routing_weight_ratio')).toBe(0.75);
    expect(seriesValue(m, 'veer_inflight_streams', { upstream: 'new' })).toBe(0);
    expect(seriesValue(m, 'veer_window_error_ratio', { upstream: 'new' })).toBe(0);

    // The access log carries the same measurement per request.
    const lines = log.lines().filter((l) => l.msg === 'request' && l.upstream === 'new');
    expect(lines).toHaveLength(40);
    for (const l of lines) {
      expect(l.outcome).toBe('ok');
      expect(l.ttfb_ms as number).toBeGreaterThanOrEqual(199);
      expect(l.headers_ms as number).toBeLessThan(l.ttfb_ms as number);
      expect(l.duration_ms as number).toBeGreaterThanOrEqual(l.ttfb_ms as number);
    }
  });

  it('logs the path of each request without its query string, where keys and tokens travel', async () => {
    const res = await request(`${stack.url}/v1/models?api_key=SECRET123&user=bob`, {
      headers: { 'x-user-id': 'pinned-to-legacy' },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    await waitFor(() => log.lines().some((l) => l.msg === 'request' && l.method === 'GET'));
    const line = log.lines().find((l) => l.msg === 'request' && l.method === 'GET')!;
    expect(line.path).toBe('/v1/models');
    expect(JSON.stringify(log.lines())).not.toContain('SECRET123');
  });

  it('exposes every documented family with its type and label names, all prefixed veer_', async () => {
    const m = await scrape(stack);
    const expected: [string, string, string[]][] = [
      ['veer_requests_total', 'counter', ['code_class', 'reason', 'upstream']],
      ['veer_request_outcomes_total', 'counter', ['outcome', 'upstream']],
      ['veer_ttfb_seconds', 'histogram', ['le', 'upstream']],
      ['veer_request_duration_seconds', 'histogram', ['le', 'upstream']],
      ['veer_ttfb_window_seconds', 'summary', ['quantile', 'upstream']],
      ['veer_window_samples', 'gauge', ['upstream']],
      ['veer_window_error_ratio', 'gauge', ['upstream']],
      ['veer_inflight_streams', 'gauge', ['upstream']],
      ['veer_routing_weight_ratio', 'gauge', []],
      ['veer_keyless_requests_total', 'counter', []],
      ['veer_process_cpu_seconds_total', 'counter', []],
      ['veer_process_resident_memory_bytes', 'gauge', []],
      ['veer_nodejs_eventloop_lag_p99_seconds', 'gauge', []],
    ];
    for (const [name, type, labels] of expected) {
      const family = m.get(name);
      expect(family, name).toBeDefined();
      expect(family!.type, name).toBe(type);
      expect(family!.samples.length, name).toBeGreaterThan(0);
      for (const s of family!.samples) {
        // Only a histogram's _bucket series carry le.
        const want = s.name.endsWith('_sum') || s.name.endsWith('_count') ? labels.filter((l) => l !== 'le') : labels;
        expect(Object.keys(s.labels).sort(), s.name).toEqual(want);
      }
    }
    const quantiles = samplesOf(m, 'veer_ttfb_window_seconds', { upstream: 'new' }).map((s) => s.labels.quantile);
    expect(quantiles.sort()).toEqual(['0.5', '0.9', '0.95', '0.99']);
    const buckets = samplesOf(m, 'veer_ttfb_seconds_bucket', { upstream: 'new' }).map((s) => s.labels.le);
    expect(buckets[0]).toBe('0.005');
    expect(buckets).toContain('30');
    for (const name of m.keys()) expect(name.startsWith('veer_'), name).toBe(true);
  });

  it('counts a 500 from the upstream as upstream_5xx and code_class 5xx, with no TTFB sample', async () => {
    const before = await scrape(stack);
    stack.next.set({ errorRate: 1, ttfb: 5 });
    try {
      for (const key of keysFor(stack, 'new', 5, 'err')) expect(await complete(stack, key)).toBe(500);
    } finally {
      stack.next.set({ errorRate: 0, ttfb: 200 });
    }
    const after = await scrape(stack);
    expect(delta(before, after, 'veer_request_outcomes_total', { upstream: 'new', outcome: 'upstream_5xx' })).toBe(5);
    expect(delta(before, after, 'veer_requests_total', { upstream: 'new', code_class: '5xx', reason: 'bucket' })).toBe(
      5,
    );
    expect(delta(before, after, 'veer_ttfb_seconds_count', { upstream: 'new' })).toBe(0);
    expect(delta(before, after, 'veer_window_samples', { upstream: 'new' })).toBe(0);
  });

  it('counts an upstream that sends no first byte within ttfb_timeout as timeout, answered 504', async () => {
    const before = await scrape(stack);
    stack.next.set({ hangRate: 1 });
    try {
      const statuses = await Promise.all(keysFor(stack, 'new', 3, 'hang').map((k) => complete(stack, k)));
      expect(statuses).toEqual([504, 504, 504]);
    } finally {
      stack.next.set({ hangRate: 0 });
    }
    const after = await scrape(stack);
    expect(delta(before, after, 'veer_request_outcomes_total', { upstream: 'new', outcome: 'timeout' })).toBe(3);
    expect(delta(before, after, 'veer_requests_total', { upstream: 'new', code_class: '5xx', reason: 'bucket' })).toBe(
      3,
    );
    expect(delta(before, after, 'veer_ttfb_seconds_count', { upstream: 'new' })).toBe(0);
  });

  it('counts a client that leaves as client_abort, never as an upstream error, and frees its in-flight slot', async () => {
    const errorsBefore = stack.veer.recorder.windows.new.snapshot();
    const before = await scrape(stack);

    // Three HTTP/1.1 clients give up while the upstream is still thinking: no status was ever sent.
    stack.next.set({ hangRate: 1 });
    const abort = new AbortController();
    const waiting = keysFor(stack, 'new', 3, 'leave').map((k) => complete(stack, k, abort.signal));
    await waitFor(() => stack.veer.recorder.inflight.new === 3);
    const during = await scrape(stack);
    expect(seriesValue(during, 'veer_inflight_streams', { upstream: 'new' })).toBe(3);
    abort.abort();
    expect(await Promise.all(waiting)).toEqual([0, 0, 0]);
    await waitFor(() => stack.veer.recorder.inflight.new === 0);
    stack.next.set({ hangRate: 0 });

    // An HTTP/2 client cancels its stream after the first token.
    stack.next.set({ ttfb: 10, tokens: 50, tokenIntervalMs: 50 });
    const session = http2.connect(stack.url);
    try {
      const [key] = keysFor(stack, 'new', 1, 'h2-leave');
      await new Promise<void>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'x-user-id': key! });
        req.on('data', () => req.close(http2.constants.NGHTTP2_CANCEL));
        req.on('close', () => resolve());
        req.on('error', reject);
        req.end('{"stream":true}');
      });
      await waitFor(() => stack.veer.recorder.inflight.new === 0);
    } finally {
      session.close();
      stack.next.set({ ttfb: 200, tokens: 3, tokenIntervalMs: 5 });
    }

    const after = await scrape(stack);
    expect(delta(before, after, 'veer_request_outcomes_total', { upstream: 'new', outcome: 'client_abort' })).toBe(4);
    expect(delta(before, after, 'veer_requests_total', { upstream: 'new', code_class: 'none', reason: 'bucket' })).toBe(
      3,
    );
    expect(delta(before, after, 'veer_requests_total', { upstream: 'new', code_class: '2xx', reason: 'bucket' })).toBe(
      1,
    );
    expect(seriesValue(after, 'veer_inflight_streams', { upstream: 'new' })).toBe(0);
    // The one that saw a token left a TTFB sample; nobody's leaving counts against the upstream.
    expect(delta(before, after, 'veer_ttfb_seconds_count', { upstream: 'new' })).toBe(1);
    const errorsAfter = stack.veer.recorder.windows.new.snapshot();
    expect(errorsAfter.errors).toBe(errorsBefore.errors);
    expect(errorsAfter.requests).toBe(errorsBefore.requests);
    expect(errorsAfter.outcomes.client_abort - errorsBefore.outcomes.client_abort).toBe(4);
  });

  it('counts requests without a key and buckets them at random', async () => {
    const before = await scrape(stack);
    stack.next.set({ ttfb: 5 });
    try {
      for (let i = 0; i < 8; i++) expect(await complete(stack, undefined)).toBe(200);
    } finally {
      stack.next.set({ ttfb: 200 });
    }
    const after = await scrape(stack);
    expect(delta(before, after, 'veer_keyless_requests_total', {})).toBe(8);
    const random = (m: Scrape) =>
      samplesOf(m, 'veer_requests_total', { reason: 'random' }).reduce((sum, s) => sum + s.value, 0);
    expect(random(after) - random(before)).toBe(8);
  });

  it("publishes new's window error ratio as its upstream errors over its requests, client aborts left out", async () => {
    const m = await scrape(stack);
    const outcome = (o: string) => seriesValue(m, 'veer_request_outcomes_total', { upstream: 'new', outcome: o });
    const errors = outcome('upstream_5xx') + outcome('timeout') + outcome('reset') + outcome('connect_error');
    const requests = errors + outcome('ok');
    expect(errors).toBe(8); // 5 upstream_5xx + 3 timeouts
    expect(outcome('client_abort')).toBe(4);
    expect(seriesValue(m, 'veer_window_error_ratio', { upstream: 'new' })).toBeCloseTo(errors / requests, 12);
    expect(seriesValue(m, 'veer_window_error_ratio', { upstream: 'legacy' })).toBe(0);
  });
});

/** An SSE upstream that sends its headers, one token after 40 ms, then destroys the connection 30 ms later. */
function dyingUpstream() {
  return serveHttp((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.flushHeaders();
    setTimeout(() => {
      res.write('data: {"choices":[{"delta":{"content":"tok0"}}]}\n\n');
      setTimeout(() => req.socket.destroy(), 30);
    }, 40);
  });
}

describe('metrics when an upstream fails', () => {
  it('counts an upstream that dies mid-stream as reset, keeping the TTFB of the token it did send', async () => {
    const dying = await dyingUpstream();
    const stack = await startStack({ config: { upstreams: { new: { url: dying.url } }, rollout: { weight: 100 } } });
    try {
      const statuses = await Promise.all([0, 1, 2, 3].map((i) => complete(stack, `dies-${i}`)));
      expect(statuses).toEqual([0, 0, 0, 0]); // every stream cut, none ends cleanly
      const m = await scrape(stack);
      expect(seriesValue(m, 'veer_request_outcomes_total', { upstream: 'new', outcome: 'reset' })).toBe(4);
      expect(seriesValue(m, 'veer_request_outcomes_total', { upstream: 'new', outcome: 'ok' })).toBe(0);
      // The clients had their 200 and the first token before the cut.
      expect(seriesValue(m, 'veer_requests_total', { upstream: 'new', code_class: '2xx', reason: 'bucket' })).toBe(4);
      expect(seriesValue(m, 'veer_ttfb_seconds_count', { upstream: 'new' })).toBe(4);
      const p50 = seriesValue(m, 'veer_ttfb_window_seconds', { upstream: 'new', quantile: '0.5' });
      expect(p50).toBeGreaterThanOrEqual(0.039);
      expect(p50).toBeLessThan(0.07);
      expect(seriesValue(m, 'veer_request_duration_seconds_count', { upstream: 'new' })).toBe(0);
      expect(seriesValue(m, 'veer_window_error_ratio', { upstream: 'new' })).toBe(1);
    } finally {
      await stack.close();
      await dying.close();
    }
  });

  it('counts a refused connection as connect_error, answered 503', async () => {
    const stack = await startStack({
      config: {
        upstreams: { new: { url: await closedPort() } },
        rollout: { weight: 100 },
        routing: { fallback_on_connect_error: false },
      },
    });
    try {
      for (let i = 0; i < 3; i++) expect(await complete(stack, `refused-${i}`)).toBe(503);
      const m = await scrape(stack);
      expect(seriesValue(m, 'veer_request_outcomes_total', { upstream: 'new', outcome: 'connect_error' })).toBe(3);
      expect(seriesValue(m, 'veer_requests_total', { upstream: 'new', code_class: '5xx', reason: 'bucket' })).toBe(3);
      expect(seriesValue(m, 'veer_window_error_ratio', { upstream: 'new' })).toBe(1);
      expect(seriesValue(m, 'veer_window_samples', { upstream: 'new' })).toBe(0);
      expect(samplesOf(m, 'veer_ttfb_window_seconds', { upstream: 'new' })).toHaveLength(0);
    } finally {
      await stack.close();
    }
  });

  it('counts the refusal against new and the retried request on legacy as a fallback', async () => {
    const stack = await startStack({
      config: { upstreams: { new: { url: await closedPort() } }, rollout: { weight: 100 } },
    });
    try {
      expect(await complete(stack, 'retried')).toBe(200);
      const m = await scrape(stack);
      expect(seriesValue(m, 'veer_request_outcomes_total', { upstream: 'new', outcome: 'connect_error' })).toBe(1);
      expect(seriesValue(m, 'veer_request_outcomes_total', { upstream: 'legacy', outcome: 'ok' })).toBe(1);
      expect(seriesValue(m, 'veer_requests_total', { upstream: 'legacy', code_class: '2xx', reason: 'fallback' })).toBe(
        1,
      );
      expect(seriesValue(m, 'veer_fallbacks_total')).toBe(1);
      expect(seriesValue(m, 'veer_inflight_streams', { upstream: 'new' })).toBe(0);
      expect(seriesValue(m, 'veer_inflight_streams', { upstream: 'legacy' })).toBe(0);
    } finally {
      await stack.close();
    }
  });
});
