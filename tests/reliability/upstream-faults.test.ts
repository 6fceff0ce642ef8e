import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import type { Outcome } from '../../src/measure/outcome.js';
import { closedPort, type Stack, startStack } from '../helpers/stack.js';
import { errorCode, h1, h2, type Reply } from './clients.js';
import { backTo, type FaultUpstream, faultUpstream, openFds, outcomes } from './faults.js';

/**
 * Every upstream fault, sent in a burst over HTTP/1.1 and HTTP/2 at once. Each must give the client the
 * documented answer, land in the documented outcome class on the faulty side, leave veer serving, and
 * leave no socket behind: the process' fd count, veer's client connections, its in-flight streams and
 * the faulty upstream's open connections all return to where they were.
 */

const BURST = 24; // half over HTTP/1.1, half over HTTP/2
const HEALTHY = { 'x-user-id': 'healthy' };

let stack: Stack | undefined;
let fault: FaultUpstream | undefined;
afterEach(async () => {
  await stack?.close();
  await fault?.close();
  stack = undefined;
  fault = undefined;
});

/** veer with `legacyUrl` as the only upstream for ordinary traffic; the key `healthy` goes to the healthy mock. */
async function stackWith(legacyUrl: string): Promise<Stack> {
  stack = await startStack({
    config: {
      upstreams: {
        legacy: { url: legacyUrl, ttfb_timeout: '300ms', idle_timeout: '300ms', keep_alive_timeout: '100ms' },
        new: { keep_alive_timeout: '100ms' },
      },
      rollout: { weight: 0 },
      routing: { overrides: { new: ['healthy'] } },
    },
  });
  return stack;
}

async function burst(s: Stack, path: string, method = 'GET', body?: string): Promise<{ h1: Reply[]; h2: Reply[] }> {
  const n = BURST / 2;
  const [a, b] = await Promise.all([
    Promise.all(Array.from({ length: n }, () => h1(s.url, path, { method, body }))),
    Promise.all(Array.from({ length: n }, () => h2(s.url, path, { method, body }))),
  ]);
  return { h1: a, h2: b };
}

/** The checks every fault shares: classified on legacy, nothing left open, veer still serving. */
async function expectClassifiedAndClean(s: Stack, outcome: Outcome, fdBaseline: number): Promise<void> {
  const counts = await outcomes(s.veer);
  expect(counts[`legacy/${outcome}`]).toBe(BURST);
  expect(Object.keys(counts).filter((k) => !k.endsWith(`/${outcome}`))).toEqual([]);
  expect(s.veer.recorder.inflight).toEqual({ legacy: 0, new: 0 });
  await backTo(() => Object.values(s.veer.front.connections).reduce((a, b) => a + b, 0), 0);
  if (fault) await backTo(() => fault!.open(), 0);
  await backTo(openFds, fdBaseline, 2);
  const healthy = await h1(s.url, '/v1/models', { headers: HEALTHY });
  expect(healthy.status).toBe(200);
  expect(healthy.headers['x-veer-upstream']).toBe('new');
}

describe('upstream faults: the client gets the documented answer, the outcome is classified, nothing leaks', () => {
  it('connection refused → 503 upstream_unavailable, connect_error', async () => {
    const s = await stackWith(await closedPort());
    const fds = openFds();
    const r = await burst(s, '/v1/models');
    for (const reply of [...r.h1, ...r.h2]) {
      expect(reply.status).toBe(503);
      expect(errorCode(reply)).toBe('upstream_unavailable');
      expect(reply.headers['x-veer-upstream']).toBe('legacy');
    }
    expect(JSON.parse(r.h1[0]!.body).error.message).toContain('ECONNREFUSED');
    await expectClassifiedAndClean(s, 'connect_error', fds);
  });

  it('DNS failure (an .invalid host) → 503 upstream_unavailable, connect_error', async () => {
    const s = await stackWith('http://nothing.invalid:8080');
    const fds = openFds();
    const r = await burst(s, '/v1/models');
    for (const reply of [...r.h1, ...r.h2]) {
      expect(reply.status).toBe(503);
      expect(errorCode(reply)).toBe('upstream_unavailable');
    }
    expect(JSON.parse(r.h1[0]!.body).error.message).toMatch(/ENOTFOUND|EAI_AGAIN/);
    await expectClassifiedAndClean(s, 'connect_error', fds);
  });

  it('accept, then silence → 504 upstream_timeout after ttfb_timeout; the upstream request is cancelled', async () => {
    fault = await faultUpstream('hang');
    const s = await stackWith(fault.url);
    const fds = openFds();
    const t0 = Date.now();
    const r = await burst(s, '/v1/chat/completions', 'POST', '{"stream":true}');
    const ms = Date.now() - t0;
    for (const reply of [...r.h1, ...r.h2]) {
      expect(reply.status).toBe(504);
      expect(errorCode(reply)).toBe('upstream_timeout');
    }
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(3000);
    expect(fault.requests).toBe(BURST);
    await expectClassifiedAndClean(s, 'timeout', fds);
  });

  it('reset before the response headers → 502 upstream_reset, reset', async () => {
    fault = await faultUpstream('reset-before-headers');
    const s = await stackWith(fault.url);
    const fds = openFds();
    const r = await burst(s, '/v1/models');
    for (const reply of [...r.h1, ...r.h2]) {
      expect(reply.status).toBe(502);
      expect(errorCode(reply)).toBe('upstream_reset');
    }
    await expectClassifiedAndClean(s, 'reset', fds);
  });

  it('reset mid-stream → the client stream is cut, never a clean end (h2 RST_STREAM, h1 truncated), reset', async () => {
    fault = await faultUpstream('reset-mid-stream');
    const s = await stackWith(fault.url);
    const fds = openFds();
    const r = await burst(s, '/v1/chat/completions', 'POST', '{"stream":true}');
    for (const reply of [...r.h1, ...r.h2]) {
      expect(reply.status).toBe(200);
      expect(reply.body).toBe('data: first\n\n');
      expect(reply.error).toBeDefined();
    }
    for (const reply of r.h2) expect(reply.rstCode).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
    await expectClassifiedAndClean(s, 'reset', fds);
  });

  it('headers, then silence → the stream is cut after ttfb_timeout (no first body byte), timeout', async () => {
    fault = await faultUpstream('headers-then-hang');
    const s = await stackWith(fault.url);
    const fds = openFds();
    const r = await burst(s, '/v1/chat/completions', 'POST', '{"stream":true}');
    for (const reply of [...r.h1, ...r.h2]) {
      expect(reply.status).toBe(200);
      expect(reply.body).toBe('');
      expect(reply.error).toBeDefined();
    }
    await expectClassifiedAndClean(s, 'timeout', fds);
  });

  it('a slow drip (a gap longer than idle_timeout) → the stream is cut after the gap, timeout', async () => {
    fault = await faultUpstream('drip', { dripMs: 5000 });
    const s = await stackWith(fault.url);
    const fds = openFds();
    const t0 = Date.now();
    const r = await burst(s, '/v1/chat/completions', 'POST', '{"stream":true}');
    expect(Date.now() - t0).toBeLessThan(2500);
    for (const reply of [...r.h1, ...r.h2]) {
      expect(reply.status).toBe(200);
      expect(reply.body).toBe('data: first\n\n');
      expect(reply.error).toBeDefined();
    }
    await expectClassifiedAndClean(s, 'timeout', fds);
  });

  it("a 5xx storm passes the upstream's own answer through, upstream_5xx, and fills the error window", async () => {
    fault = await faultUpstream('5xx');
    const s = await stackWith(fault.url);
    const fds = openFds();
    for (let round = 0; round < 4; round++) {
      const r = await burst(s, '/v1/models');
      for (const reply of [...r.h1, ...r.h2]) {
        expect(reply.status).toBe(503);
        expect(reply.body).toBe('{"error":{"message":"overloaded"}}');
      }
    }
    const counts = await outcomes(s.veer);
    expect(counts['legacy/upstream_5xx']).toBe(BURST * 4);
    expect(s.veer.recorder.windows.legacy.snapshot().errorRate).toBe(1);
    // Keep-alive connections to the upstream are reused, then closed after keep_alive_timeout.
    expect(fault.accepted).toBeLessThan(BURST * 4);
    await backTo(() => fault!.open(), 0);
    await backTo(openFds, fds, 2);
  });
});
