import { afterEach, describe, expect, it } from 'vitest';
import { closedPort, type Stack, startStack } from '../helpers/stack.js';
import { errorCode, h1, h2 } from './clients.js';
import { blackhole, counter, type FaultUpstream, faultUpstream, outcomes } from './faults.js';

/**
 * Canary fallback: a request bound for new, where new refused the connection so that not one byte of
 * the request left veer, is served by legacy once, whatever its method. It counts as a fallback and as
 * a connect error of new (the SLO must see new failing). Anything that reached new is never retried.
 */

let stack: Stack | undefined;
let fault: FaultUpstream | undefined;
afterEach(async () => {
  await stack?.close();
  await fault?.close();
  stack = undefined;
  fault = undefined;
});

async function stackWithNew(newUrl: string, extra: Record<string, unknown> = {}): Promise<Stack> {
  stack = await startStack({
    config: {
      upstreams: { new: { url: newUrl, ttfb_timeout: '300ms' } },
      rollout: { weight: 100 },
      ...extra,
    },
  });
  return stack;
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

describe('canary fallback timing', () => {
  it("times legacy's first byte from legacy's own start: new's connect timeout is not charged to legacy", async () => {
    const hole = await blackhole();
    try {
      const s = await stackWithNew(hole.url, { upstreams: { new: { url: hole.url, connect_timeout: '400ms' } } });
      const t0 = performance.now();
      const reply = await h1(s.url, '/v1/models', { headers: { 'x-user-id': 'u1' } });
      // The client waited for new's connect to time out, then legacy answered.
      expect(performance.now() - t0).toBeGreaterThanOrEqual(390);
      expect(reply.status).toBe(200);
      expect(reply.headers['x-veer-upstream']).toBe('legacy');
      expect(await outcomes(s.veer)).toEqual({ 'new/connect_error': 1, 'legacy/ok': 1 });
      const legacy = s.veer.recorder.windows.legacy.snapshot();
      expect(legacy.ttfbSamples).toBe(1);
      expect(legacy.ttfbQuantile(0.5)).toBeLessThan(200);
    } finally {
      await hole.close();
    }
  });
});

describe('canary fallback to legacy', () => {
  it('serves every method from legacy, body intact, when new refuses the connection (h1 and h2)', async () => {
    const s = await stackWithNew(await closedPort());
    for (const method of METHODS) {
      for (const send of [h1, h2]) {
        const body = method === 'GET' ? undefined : `payload of a ${method}`;
        const reply = await send(s.url, '/_mock/echo', { method, body, headers: { 'x-user-id': 'u1' } });
        expect(reply.status).toBe(200);
        expect(reply.headers['x-veer-upstream']).toBe('legacy');
        expect(reply.headers['x-echo-method']).toBe(method);
        expect(reply.body).toBe(body ?? '');
      }
    }
    const n = METHODS.length * 2;
    expect(await counter(s.veer, 'veer_fallbacks_total')).toBe(n);
    // Served once, by legacy, and new is charged with a connect error for each.
    expect(s.legacy.stats.requests).toBe(n);
    expect(await outcomes(s.veer)).toEqual({ 'new/connect_error': n, 'legacy/ok': n });
    const window = s.veer.recorder.windows.new.snapshot();
    expect(window.errorRate).toBe(1);
    const requests = await s.veer.metrics.requests.get();
    const fallbackServed = requests.values.find(
      (v) => v.labels.reason === 'fallback' && v.labels.upstream === 'legacy',
    );
    expect(fallbackServed?.value).toBe(n);
  });

  it('falls back when new does not resolve (DNS failure)', async () => {
    const s = await stackWithNew('http://nothing.invalid:8080');
    const reply = await h1(s.url, '/_mock/echo', { method: 'POST', body: 'x', headers: { 'x-user-id': 'u1' } });
    expect(reply.status).toBe(200);
    expect(reply.headers['x-veer-upstream']).toBe('legacy');
    expect(await counter(s.veer, 'veer_fallbacks_total')).toBe(1);
  });

  it('never retries a request that reached new: a reset after the request was sent is a 502, legacy sees nothing', async () => {
    fault = await faultUpstream('reset-before-headers');
    const s = await stackWithNew(fault.url);
    for (const send of [h1, h2]) {
      const reply = await send(s.url, '/v1/chat/completions', {
        method: 'POST',
        body: '{"stream":true}',
        headers: { 'x-user-id': 'u1' },
      });
      expect(reply.status).toBe(502);
      expect(errorCode(reply)).toBe('upstream_reset');
      expect(reply.headers['x-veer-upstream']).toBe('new');
    }
    expect(fault.requests).toBe(2);
    expect(s.legacy.stats.requests).toBe(0);
    expect(await counter(s.veer, 'veer_fallbacks_total')).toBe(0);
    expect(await outcomes(s.veer)).toEqual({ 'new/reset': 2 });
  });

  it('never retries a request new accepted and left unanswered: 504, legacy sees nothing', async () => {
    fault = await faultUpstream('hang');
    const s = await stackWithNew(fault.url);
    const reply = await h1(s.url, '/_mock/echo', { method: 'POST', body: 'once', headers: { 'x-user-id': 'u1' } });
    expect(reply.status).toBe(504);
    expect(fault.requests).toBe(1);
    expect(s.legacy.stats.requests).toBe(0);
    expect(await counter(s.veer, 'veer_fallbacks_total')).toBe(0);
  });

  it('is off with routing.fallback_on_connect_error: false — the client gets 503 upstream_unavailable from new', async () => {
    const s = await stackWithNew(await closedPort(), { routing: { fallback_on_connect_error: false } });
    const reply = await h2(s.url, '/_mock/echo', { method: 'POST', body: 'x', headers: { 'x-user-id': 'u1' } });
    expect(reply.status).toBe(503);
    expect(errorCode(reply)).toBe('upstream_unavailable');
    expect(reply.headers['x-veer-upstream']).toBe('new');
    expect(s.legacy.stats.requests).toBe(0);
    expect(await counter(s.veer, 'veer_fallbacks_total')).toBe(0);
  });

  it('retries once only: when legacy refuses too, the client gets 503 from legacy; legacy is never retried on new', async () => {
    const refused = await closedPort();
    stack = await startStack({
      config: { upstreams: { new: { url: refused }, legacy: { url: refused } }, rollout: { weight: 100 } },
    });
    const viaNew = await h1(stack.url, '/v1/models', { headers: { 'x-user-id': 'u1' } });
    expect(viaNew.status).toBe(503);
    expect(viaNew.headers['x-veer-upstream']).toBe('legacy');
    expect(await counter(stack.veer, 'veer_fallbacks_total')).toBe(1);
    expect(await outcomes(stack.veer)).toEqual({ 'new/connect_error': 1, 'legacy/connect_error': 1 });
  });
});
