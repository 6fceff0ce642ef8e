// The upstream connection cap: the (cap+1)th stream is counted as waiting, then answered or refused as configured, never silently held.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Status } from '../../src/admin/api-types.js';
import { Veer } from '../../src/veer.js';
import { parseExposition, seriesValue } from '../helpers/prom-text.js';
import { memoryLogger, mustBuild, rawConfig, waitFor } from '../helpers/stack.js';

/** An SSE upstream that sends one event at once and holds every stream open until the test releases it. */
async function holdingUpstream() {
  const held: http.ServerResponse[] = [];
  let received = 0;
  const server = http.createServer((req, res) => {
    received++;
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: first\n\n');
    held.push(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received: () => received,
    /** Ends the oldest held stream: its connection goes back to veer's pool. */
    releaseOne() {
      held.shift()?.end('data: [DONE]\n\n');
    },
    async close() {
      for (const res of held) res.end();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

type Upstream = Awaited<ReturnType<typeof holdingUpstream>>;

let upstream: Upstream | undefined;
let veer: Veer | undefined;
const clients = new Agent({ connections: 16 });

afterEach(async () => {
  await veer?.close();
  await upstream?.close();
  veer = undefined;
  upstream = undefined;
});

/** veer with every key on legacy (weight 0), legacy capped at 2 connections, and the given upstream settings. */
async function start(legacy: Record<string, unknown>) {
  upstream = await holdingUpstream();
  const log = memoryLogger('info');
  const config = mustBuild(
    rawConfig(upstream.url, upstream.url, {
      rollout: { weight: 0 },
      upstreams: { legacy: { max_sockets: 2, ...legacy } },
      log: { level: 'info', access: true },
    }),
  );
  veer = await Veer.start({ config, logger: log.logger });
  const proxyUrl = `http://127.0.0.1:${veer.proxyAddress.port}`;
  const adminUrl = `http://127.0.0.1:${veer.adminAddress!.port}`;
  return {
    log,
    /** A streaming request through veer; resolves at its response head, the body left to read. */
    async open(user: string) {
      const startedAt = performance.now();
      const res = await request(`${proxyUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'x-user-id': user, 'content-type': 'application/json' },
        body: '{"stream":true}',
        dispatcher: clients,
      });
      return { res, headAfterMs: performance.now() - startedAt };
    },
    async pending(): Promise<number> {
      const text = await (await request(`${adminUrl}/metrics`)).body.text();
      return seriesValue(parseExposition(text), 'veer_upstream_pending_requests', { upstream: 'legacy' });
    },
    async saturated(): Promise<number> {
      const text = await (await request(`${adminUrl}/metrics`)).body.text();
      return seriesValue(parseExposition(text), 'veer_request_outcomes_total', {
        upstream: 'legacy',
        outcome: 'saturated',
      });
    },
    async status(): Promise<Status> {
      return (await (await request(`${adminUrl}/api/status`)).body.json()) as Status;
    },
  };
}

/** Waits (polling the metric, as an operator's dashboard would) until `n` requests wait for a connection. */
async function untilPending(read: () => Promise<number>, n: number): Promise<void> {
  let last = -1;
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    last = await read();
    if (last === n) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`veer_upstream_pending_requests stayed ${last}, expected ${n}`);
}

describe('the upstream connection cap (max_sockets 2)', () => {
  it('counts the third stream as pending, then serves it when a connection frees, its wait logged apart from its TTFB', async () => {
    const v = await start({});
    const first = await v.open('a');
    const second = await v.open('b');
    expect([first.res.statusCode, second.res.statusCode]).toEqual([200, 200]);
    const third = v.open('c');
    await untilPending(v.pending, 1);
    const status = await v.status();
    expect(status.upstreams.legacy).toMatchObject({ connected: 2, pending: 1, max_sockets: 2 });
    expect(upstream!.received()).toBe(2);

    await new Promise((r) => setTimeout(r, 300));
    upstream!.releaseOne();
    await first.res.body.text();
    const served = await third;
    expect(served.res.statusCode).toBe(200);
    expect(served.headAfterMs).toBeGreaterThanOrEqual(300);
    expect(await v.pending()).toBe(0);
    upstream!.releaseOne();
    upstream!.releaseOne();
    await Promise.all([second.res.body.text(), served.res.body.text()]);

    await waitFor(() => v.log.lines().filter((l) => l.msg === 'request').length === 3);
    const lines = v.log.lines().filter((l) => l.msg === 'request');
    const waited = lines.find((l) => (l.pool_wait_ms as number) >= 300);
    expect(waited, JSON.stringify(lines)).toBeDefined();
    // The upstream answered at once when it got the request: the 300 ms in veer's pool are not its TTFB.
    expect(waited!.ttfb_ms as number).toBeLessThan(200);
    expect((await v.status()).upstreams.legacy.ttfb_p99_ms!).toBeLessThan(200);
  });

  it('refuses the third stream at once with 503 upstream_saturated when max_pending is 0', async () => {
    const v = await start({ max_pending: 0 });
    const held = [await v.open('a'), await v.open('b')];
    const refused = await v.open('c');
    expect(refused.res.statusCode).toBe(503);
    expect(refused.res.headers['content-type']).toBe('application/json');
    const body = (await refused.res.body.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('upstream_saturated');
    expect(body.error.message).toContain('max_pending 0');
    expect(upstream!.received()).toBe(2);
    expect(await v.saturated()).toBe(1);
    // veer's own cap is not the upstream's error: the SLO window does not count it.
    const legacy = (await v.status()).upstreams.legacy;
    expect(legacy).toMatchObject({ errors: 0, pending: 0 });
    upstream!.releaseOne();
    upstream!.releaseOne();
    await Promise.all(held.map((h) => h.res.body.text()));
  });

  it('lets max_pending streams wait beyond the cap and refuses the next one at once (max_pending 1)', async () => {
    const v = await start({ max_pending: 1 });
    const held = [await v.open('a'), await v.open('b')];
    const waiting = v.open('c');
    await untilPending(v.pending, 1);
    const refused = await v.open('d');
    expect(refused.res.statusCode).toBe(503);
    expect(((await refused.res.body.json()) as { error: { message: string } }).error.message).toContain(
      '1 waiting for one (max_pending 1, max_sockets 2)',
    );
    upstream!.releaseOne();
    await held[0]!.res.body.text();
    const served = await waiting;
    expect(served.res.statusCode).toBe(200);
    expect(upstream!.received()).toBe(3);
    upstream!.releaseOne();
    upstream!.releaseOne();
    await Promise.all([held[1]!.res.body.text(), served.res.body.text()]);
  });

  it('answers a stream that waited pool_timeout with 503 upstream_saturated, and never sends it later', async () => {
    const v = await start({ pool_timeout: '300ms' });
    const held = [await v.open('a'), await v.open('b')];
    const waiting = v.open('c');
    await untilPending(v.pending, 1);
    const refused = await waiting;
    expect(refused.res.statusCode).toBe(503);
    expect(refused.headAfterMs).toBeGreaterThanOrEqual(250);
    const body = (await refused.res.body.json()) as { error: { code: string; message: string } };
    expect(body.error).toMatchObject({ code: 'upstream_saturated' });
    expect(body.error.message).toContain('pool_timeout (300 ms');
    expect(await v.saturated()).toBe(1);
    await waitFor(() => v.log.lines().some((l) => l.msg === 'request' && l.outcome === 'saturated'));
    const line = v.log.lines().find((l) => l.outcome === 'saturated')!;
    expect(line).toMatchObject({ status: 503, ttfb_ms: null });
    expect(line.pool_wait_ms as number).toBeGreaterThanOrEqual(250);

    // The refused request leaves undici's queue when a connection frees, without reaching the upstream.
    upstream!.releaseOne();
    await held[0]!.res.body.text();
    await untilPending(v.pending, 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(upstream!.received()).toBe(2);
    upstream!.releaseOne();
    await held[1]!.res.body.text();
  });
});
