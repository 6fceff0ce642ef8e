// The bundled mock upstream's fault knobs do what the tests built on them assume.

import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { startMockUpstream } from '../../bench/mock-upstream.js';

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
