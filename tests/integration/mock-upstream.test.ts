// The bundled mock upstream's fault knobs do what the tests built on them assume.

import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { startMockUpstream } from '../../bench/mock-upstream.js';
import { scannerFor } from '../../src/measure/token-scanner.js';

describe('mock upstream', () => {
  it('resetRate cuts a stream after its first token has been sent, not before', async () => {
    const mock = await startMockUpstream({ name: 'm', ttfb: 1, tokens: 5, tokenIntervalMs: 5, resetRate: 1 });
    try {
      const got = await new Promise<{ body: string; aborted: boolean }>((resolve) => {
        const req = http.request(`${mock.url}/v1/chat/completions`, { method: 'POST' }, (res) => {
          let body = '';
          let aborted = false;
          res.on('data', (d: Buffer) => {
            body += d.toString('utf8');
          });
          res.on('aborted', () => {
            aborted = true;
          });
          res.on('error', () => {});
          res.on('close', () => resolve({ body, aborted }));
        });
        req.on('error', () => resolve({ body: '', aborted: true }));
        req.end(JSON.stringify({ stream: true }));
      });
      expect(got.aborted).toBe(true);
      expect(got.body).toMatch(/^data: \{/);
      expect(got.body).not.toContain('[DONE]');
      expect(mock.stats.resets).toBe(1);
    } finally {
      await mock.close();
    }
  });
});

describe('mock upstream token faults, read back by the SSE scanner', () => {
  const paths = ['/v1/chat/completions', '/v1/completions', '/v1/responses', '/v1/messages'];

  async function answer(
    url: string,
    path: string,
    stream: boolean,
  ): Promise<{ end: string; tokenEvents: number; outputTokens: number }> {
    const res = await fetch(`${url}${path}`, {
      method: 'POST',
      body: JSON.stringify({ stream, stream_options: { include_usage: true } }),
    });
    const scanner = scannerFor('auto', path, res.status, res.headers.get('content-type') ?? undefined)!;
    for await (const chunk of res.body!) scanner.feed(Buffer.from(chunk), performance.now());
    scanner.finish('upstream_end');
    return { end: scanner.end, tokenEvents: scanner.tokenEvents, outputTokens: scanner.outputTokens };
  }

  it('answers complete, truncated, in-band error and empty in every format, streaming and not', async () => {
    const mock = await startMockUpstream({ name: 'm', ttfb: 0, tokens: 6, tokenIntervalMs: 1 });
    try {
      for (const path of paths) {
        mock.set({ truncateRate: 0, inbandErrorRate: 0, emptyRate: 0 });
        expect(await answer(mock.url, path, true)).toEqual({ end: 'complete', tokenEvents: 6, outputTokens: 6 });
        expect(await answer(mock.url, path, false)).toMatchObject({ end: 'complete', outputTokens: 6 });
        // Set at run time, as over PUT /_mock/behavior.
        await fetch(`${mock.url}/_mock/behavior`, { method: 'PUT', body: JSON.stringify({ truncateRate: 1 }) });
        expect(await answer(mock.url, path, true)).toMatchObject({ end: 'truncated', tokenEvents: 3 });
        mock.set({ truncateRate: 0, inbandErrorRate: 1 });
        expect(await answer(mock.url, path, true)).toMatchObject({ end: 'inband_error', tokenEvents: 3 });
        expect((await answer(mock.url, path, false)).end).toBe('inband_error');
        mock.set({ inbandErrorRate: 0, emptyRate: 1 });
        expect(await answer(mock.url, path, true)).toMatchObject({ end: 'empty', tokenEvents: 0 });
        expect((await answer(mock.url, path, false)).end).toBe('empty');
      }
      expect(mock.stats).toMatchObject({ truncated: 4, inbandErrors: 8, empty: 8 });
    } finally {
      await mock.close();
    }
  });

  it('decodes at tokenIntervalMs and stalls once for stallMs', async () => {
    const mock = await startMockUpstream({
      name: 'm',
      ttfb: 0,
      tokens: 6,
      tokenIntervalMs: 20,
      stallRate: 1,
      stallMs: 200,
    });
    try {
      const res = await fetch(`${mock.url}/v1/chat/completions`, { method: 'POST', body: '{"stream":true}' });
      const scanner = scannerFor('auto', '/v1/chat/completions', 200, 'text/event-stream')!;
      for await (const chunk of res.body!) scanner.feed(Buffer.from(chunk), performance.now());
      scanner.finish('upstream_end');
      expect(scanner.end).toBe('complete');
      expect(scanner.maxGapMs).toBeGreaterThanOrEqual(215);
      expect(scanner.lastTokenAt - scanner.firstTokenAt).toBeGreaterThanOrEqual(5 * 20 + 200 - 5);
      expect(mock.stats.stalls).toBe(1);
    } finally {
      await mock.close();
    }
  });
});
