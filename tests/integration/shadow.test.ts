// Shadow traffic end to end: copies to new that never cost the user anything, and the shadow's own judgement.

import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { h2Request, type Stack, serveHttp, startStack, waitFor } from '../helpers/stack.js';
import { counter, faultUpstream } from '../reliability/faults.js';

const agent = new Agent({ connections: 32 });
let stack: Stack | undefined;
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  await stack?.close();
  stack = undefined;
  for (const c of cleanups.splice(0)) await c();
});

async function shadowResults(s: Stack): Promise<Record<string, number>> {
  const metric = await s.veer.metrics.shadowRequests.get();
  const out: Record<string, number> = {};
  for (const v of metric.values) out[String(v.labels.result)] = v.value;
  return out;
}

async function post(s: Stack, path: string, key: string, body: string | Buffer) {
  const started = performance.now();
  const res = await request(`${s.url}${path}`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'x-user-id': key, 'content-type': 'application/json' },
    body,
  });
  const chunks: Buffer[] = [];
  let ttfbMs = 0;
  for await (const chunk of res.body) {
    if (ttfbMs === 0) ttfbMs = performance.now() - started;
    chunks.push(chunk as Buffer);
  }
  return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), ttfbMs };
}

const chat = JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] });

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

describe('shadow traffic', () => {
  it("gives the shadowed user legacy's answer byte for byte, no slower, while new hangs", async () => {
    const hang = await faultUpstream('hang');
    cleanups.push(() => hang.close());
    stack = await startStack({
      legacy: { ttfb: 15, tokens: 3, tokenIntervalMs: 1 },
      config: {
        upstreams: { new: { url: hang.url } },
        rollout: {
          id: 'shadow-hang',
          weight: 0,
          shadow: { percent: 100, max_inflight: 8, paths: ['/v1/*', '/_mock/*'] },
        },
      },
    });
    const s = stack;
    // A 300 KB upload, echoed by legacy: what the user gets is what legacy sent, whether mirrored or not.
    const upload = Buffer.alloc(300_000, 'abcdefghij');
    s.veer.controller.setShadow('test', 0, 'off');
    const plain = await post(s, '/_mock/echo', 'user-1', upload);
    s.veer.controller.setShadow('test', 10_000, 'on');
    const mirrored = await post(s, '/_mock/echo', 'user-1', upload);
    expect(mirrored.status).toBe(200);
    expect(mirrored.body.equals(upload)).toBe(true);
    expect(mirrored.body.equals(plain.body)).toBe(true);
    expect(mirrored.headers['x-echo-headers']).toBe(plain.headers['x-echo-headers']);
    expect(JSON.parse(Buffer.from(String(mirrored.headers['x-echo-headers']), 'base64').toString())).not.toHaveProperty(
      'x-veer-shadow',
    );
    await waitFor(() => hang.requests >= 1);
    // A client cannot pass its own request off as a copy.
    const forged = await request(`${s.url}/_mock/echo`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'x-user-id': 'user-2', 'x-veer-shadow': '1' },
      body: 'x',
    });
    await forged.body.text();
    expect(JSON.parse(Buffer.from(String(forged.headers['x-echo-headers']), 'base64').toString())).not.toHaveProperty(
      'x-veer-shadow',
    );

    // TTFB with and without shadow in the same run, interleaved in rounds, while every copy hangs.
    const off: number[] = [];
    const on: number[] = [];
    for (let round = 0; round < 6; round++) {
      for (const [bp, into] of [
        [0, off],
        [10_000, on],
      ] as const) {
        s.veer.controller.setShadow('test', bp, 'round');
        for (let i = 0; i < 8; i++) into.push((await post(s, '/v1/chat/completions', `u-${round}-${i}`, chat)).ttfbMs);
      }
    }
    // The copies pile up at max_inflight and the rest are dropped, never queued behind the user.
    expect(s.veer.shadow.inflight).toBeLessThanOrEqual(8);
    expect((await shadowResults(s)).dropped_saturated).toBeGreaterThan(0);
    const p50 = (v: number[]) => quantile(v, 0.5);
    const p90 = (v: number[]) => quantile(v, 0.9);
    // Generous bounds for a loaded machine: a copy that held the user up would cost new's whole hang (seconds).
    expect(p50(on)).toBeLessThan(p50(off) * 1.5 + 10);
    expect(p90(on)).toBeLessThan(p90(off) * 2 + 25);
  });

  it('drops copies at max_inflight (counted), and ends each copy at its timeout', async () => {
    const hang = await faultUpstream('hang');
    cleanups.push(() => hang.close());
    stack = await startStack({
      config: {
        upstreams: { new: { url: hang.url } },
        rollout: { id: 'shadow-cap', weight: 0, shadow: { percent: 100, max_inflight: 4, timeout: '400ms' } },
      },
    });
    const s = stack;
    for (let i = 0; i < 10; i++) expect((await post(s, '/v1/chat/completions', `k-${i}`, chat)).status).toBe(200);
    await waitFor(() => hang.requests === 4);
    expect(s.veer.shadow.inflight).toBe(4);
    expect(await shadowResults(s)).toMatchObject({ dropped_saturated: 6 });
    // The hanging copies end at rollout.shadow.timeout, as timeouts in the shadow window.
    await waitFor(() => s.veer.shadow.inflight === 0, 5000);
    expect((await shadowResults(s)).timeout).toBe(4);
    expect(s.veer.recorder.shadowWindow.snapshot().outcomes.timeout).toBe(4);
    expect(hang.requests).toBe(4);
  });

  it('marks each copy, sends its whole body, skips bodies over max_body, and outlives a user who leaves', async () => {
    const seen: { headers: IncomingMessage['headers']; body: Buffer; at: number }[] = [];
    const next = await serveHttp((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        seen.push({ headers: req.headers, body: Buffer.concat(parts), at: performance.now() });
        // Answers late: after the user has left.
        setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('new says hi'), 150);
      });
    });
    cleanups.push(() => next.close());
    stack = await startStack({
      legacy: { ttfb: 200 },
      config: {
        upstreams: { new: { url: next.url } },
        rollout: { id: 'shadow-copy', weight: 0, shadow: { percent: 100, max_body: '64KiB' } },
      },
    });
    const s = stack;
    const small = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(10_000) }] });
    // The user leaves before legacy's first byte (200 ms): the copy goes on and is judged whole.
    const controller = new AbortController();
    const pending = request(`${s.url}/v1/chat/completions`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'x-user-id': 'leaver', 'content-type': 'application/json' },
      body: small,
      signal: controller.signal,
    }).catch(() => undefined);
    await waitFor(() => seen.length === 1);
    controller.abort();
    await pending;
    expect(seen[0]!.headers['x-veer-shadow']).toBe('1');
    expect(seen[0]!.headers['content-length']).toBe(String(Buffer.byteLength(small)));
    expect(seen[0]!.body.toString()).toBe(small);
    await waitFor(() => s.veer.recorder.shadowWindow.snapshot().outcomes.ok === 1, 3000);

    // A body over max_body is not mirrored; the user's upload is untouched.
    const big = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'y'.repeat(100_000) }] });
    const res = await post(s, '/v1/chat/completions', 'big', big);
    expect(res.status).toBe(200);
    expect((await shadowResults(s)).dropped_body_too_large).toBe(1);
    // Over HTTP/2 the same: the user's answer from legacy, a marked copy with the whole body to new.
    const session = http2.connect(s.url);
    cleanups.push(async () => session.close());
    const viaH2 = await h2Request(
      session,
      {
        ':method': 'POST',
        ':path': '/v1/chat/completions',
        'x-user-id': 'h2-user',
        'content-type': 'application/json',
      },
      small,
    );
    expect(viaH2.status).toBe(200);
    expect(viaH2.headers['x-veer-upstream']).toBe('legacy');
    await waitFor(() => seen.length === 2);
    expect(seen[1]!.headers['x-veer-shadow']).toBe('1');
    expect(seen[1]!.body.toString()).toBe(small);
    // GET is not among the mirrored methods.
    await request(`${s.url}/v1/models`, { dispatcher: agent, headers: { 'x-user-id': 'g' } }).then((r) =>
      r.body.text(),
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.length).toBe(2);
  });

  it('lets go of a copy whose body is still coming at the shadow timeout, while the user goes on uploading', async () => {
    stack = await startStack({
      config: { rollout: { id: 'shadow-slow-body', weight: 0, shadow: { percent: 100, timeout: '300ms' } } },
    });
    const s = stack;
    const socket = net.connect(s.veer.proxyAddress.port, '127.0.0.1');
    cleanups.push(async () => socket.destroy());
    await new Promise((r) => socket.once('connect', r));
    socket.write(
      'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-user-id: slow\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"model":',
    );
    await waitFor(() => s.veer.shadow.inflight === 1);
    await waitFor(() => s.veer.shadow.inflight === 0, 3000);
    expect((await shadowResults(s)).dropped_body_incomplete).toBe(1);
    expect(socket.destroyed).toBe(false);
  });

  it('drops copies while new refuses connections, and counts why', async () => {
    stack = await startStack({
      config: {
        upstreams: { new: { url: 'http://127.0.0.1:1' } },
        rollout: { id: 'shadow-down', weight: 0, shadow: { percent: 100 } },
      },
    });
    const s = stack;
    for (let i = 0; i < 10; i++) expect((await post(s, '/v1/chat/completions', `d-${i}`, chat)).status).toBe(200);
    await waitFor(() => s.veer.shadow.inflight === 0);
    const results = await shadowResults(s);
    expect(results.connect_error).toBeGreaterThanOrEqual(3);
    expect(results.dropped_new_failing).toBeGreaterThan(0);
    expect(results.connect_error! + results.dropped_new_failing!).toBe(10);
  });
});

describe('judging the shadow', () => {
  const rules = { interval: '1h', min_samples: 5, rules: ['error_rate <= 1%', 'ttfb_p95 <= 2000ms'] };

  it('records and audits a breach in the shadow, stops the shadow, and rolls back nothing', async () => {
    // new fails the copies only: its real traffic stays healthy, so whatever moves comes from the shadow.
    const next = await serveHttp((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.headers['x-veer-shadow'] === '1') res.writeHead(500).end('copy failed');
        else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
    });
    cleanups.push(() => next.close());
    stack = await startStack({
      config: {
        upstreams: { new: { url: next.url } },
        rollout: { id: 'shadow-breach', weight: 20, shadow: { percent: 100 } },
        slo: rules,
      },
    });
    const s = stack;
    // Keys that stay on legacy at 20 %: all of them are shadowed (100 %).
    let sent = 0;
    for (let i = 0; sent < 10; i++) {
      const r = await post(s, '/v1/chat/completions', `b-${i}`, chat);
      if (r.headers['x-veer-upstream'] === 'legacy') sent++;
    }
    await waitFor(() => s.veer.recorder.shadowWindow.snapshot().requests >= 10);
    s.veer.controller.tick();
    expect(s.veer.controller.snapshot).toMatchObject({ state: 'progressing', weight_bp: 2000, shadow_bp: 0 });
    expect(s.veer.table.weightBp).toBe(2000);
    expect(s.veer.table.shadowBp).toBe(0);
    const audit = readFileSync(s.veer.config.state.auditPath, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const entry = audit.find((e) => e.action === 'shadow_stop');
    expect(entry).toMatchObject({ actor: 'slo-guard', before: { weight_percent: 20 }, after: { weight_percent: 20 } });
    expect(entry.reason).toMatch(/SLO breach in the shadow: error_rate .*real traffic unchanged/);
    expect(entry.rules.find((r: { name: string }) => r.name === 'error_rate').status).toBe('breach');
    expect(await counter(s.veer, 'veer_rollbacks_total')).toBe(0);
  });

  it('opens the first step from shadowing once the shadow passed every rule for step_min_duration', async () => {
    let now = 1_000_000;
    stack = await startStack({
      clock: () => now,
      config: {
        rollout: {
          id: 'shadow-first',
          weight: undefined,
          steps: [5, 25],
          step_min_duration: '10s',
          shadow: { percent: 100 },
        },
        slo: rules,
      },
    });
    const s = stack;
    expect(s.veer.controller.snapshot).toMatchObject({ state: 'shadowing', weight_bp: 0 });
    for (let i = 0; i < 10; i++)
      expect((await post(s, '/v1/chat/completions', `h-${i}`, chat)).headers['x-veer-upstream']).toBe('legacy');
    await waitFor(() => s.veer.recorder.shadowWindow.snapshot().requests >= 10);
    s.veer.controller.tick();
    expect(s.veer.controller.snapshot.state).toBe('shadowing');
    expect(s.veer.controller.lastShadowVerdict?.eligibleAt).toBe(now + 10_000);
    now += 5_000;
    s.veer.controller.tick();
    expect(s.veer.controller.snapshot.state).toBe('shadowing');
    now += 5_000;
    s.veer.controller.tick();
    expect(s.veer.controller.snapshot).toMatchObject({ state: 'progressing', weight_bp: 500 });
    expect(s.veer.controller.snapshot.last_change?.reason).toMatch(/the shadow passed every rule for 10s/);
  });
});
