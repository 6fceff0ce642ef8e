import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MockUpstream, startMockUpstream } from '../../bench/mock-upstream.js';
import { spawnVeer, type VeerProcess } from '../helpers/process.js';
import { startStack, waitFor } from '../helpers/stack.js';

describe('graceful drain on SIGTERM', () => {
  let mock: MockUpstream;
  let veer: VeerProcess;
  const dir = mkdtempSync(join(tmpdir(), 'veer-drain-'));

  beforeAll(async () => {
    mock = await startMockUpstream({ name: 'both', ttfb: 5, tokens: 8, tokenIntervalMs: 150 });
    const config = {
      listen: { port: 0 },
      admin: { port: 0 },
      upstreams: { legacy: { url: mock.url }, new: { url: mock.url } },
      rollout: { id: 'drain' },
      state: { path: join(dir, 'state.json'), audit_path: join(dir, 'audit.jsonl') },
      drain: { grace_period: '10s' },
    };
    writeFileSync(join(dir, 'veer.json'), JSON.stringify(config));
    veer = spawnVeer(['run', '--config', join(dir, 'veer.json')]);
    await veer.waitForLine((l) => l.msg === 'veer started');
  });
  afterAll(async () => {
    await veer.stop();
    await mock.close();
  });

  it('lets streams in flight finish (HTTP/1.1 and HTTP/2), refuses new connections, sends GOAWAY, and exits 0', async () => {
    const port = veer.proxyPort();
    // An HTTP/2 stream already running when the drain begins.
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    const h2Events: string[] = [];
    const h2Stream = new Promise<number>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/v1/chat/completions' });
      let status = 0;
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (d: Buffer) => h2Events.push(...String(d).split('\n\n').filter(Boolean)));
      req.on('end', () => resolve(status));
      req.on('error', reject);
      req.end(JSON.stringify({ stream: true }));
    });
    await new Promise<void>((resolve) => {
      const wait = () => (h2Events.length > 0 ? resolve() : setTimeout(wait, 10));
      wait();
    });
    const events: string[] = [];
    let signalled = false;
    const stream = new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions' });
      req.on('response', (res) => {
        res.on('data', (d: Buffer) => {
          events.push(...String(d).split('\n\n').filter(Boolean));
          // Once, on the first chunk (which may carry more than one event on a slow machine).
          if (!signalled && events.length >= 1) {
            signalled = true;
            veer.child.kill('SIGTERM');
          }
        });
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(JSON.stringify({ stream: true }));
    });
    await veer.waitForLine((l) => l.msg === 'draining');
    await expect(request(`http://127.0.0.1:${port}/v1/models`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(await stream).toBe(200);
    expect(events.at(-1)).toBe('data: [DONE]');
    expect(events).toHaveLength(10);
    // The HTTP/2 client was told to open no new stream on this connection, and its stream completed.
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(await h2Stream).toBe(200);
    expect(h2Events.at(-1)).toBe('data: [DONE]');
    expect(() => session.request({ ':path': '/v1/models' })).toThrow(/GOAWAY|destroyed|closed/i);
    session.destroy();
    expect(await veer.exited).toEqual({ code: 0, signal: null });
    expect(veer.lines.some((l) => l.msg === 'veer stopped' && l.forced === 0)).toBe(true);
  });
});

describe('the end of a drain', () => {
  it('counts the streams it cuts at the end of the grace period as cut by veer, not as upstream resets', async () => {
    const stack = await startStack({
      legacy: { ttfb: 5, tokens: 50, tokenIntervalMs: 100 },
      config: { rollout: { weight: 0 } },
    });
    const session = http2.connect(stack.url);
    session.on('error', () => {});
    try {
      const seen = { h1: 0, h2: 0 };
      const h1 = http.request(`${stack.url}/v1/chat/completions`, { method: 'POST', agent: false }, (res) => {
        res.on('data', () => seen.h1++);
        res.on('error', () => {});
      });
      h1.on('error', () => {});
      h1.end(JSON.stringify({ stream: true }));
      const h2 = session.request({ ':method': 'POST', ':path': '/v1/chat/completions' });
      h2.on('data', () => seen.h2++);
      h2.on('error', () => {});
      h2.end(JSON.stringify({ stream: true }));
      await waitFor(() => seen.h1 > 0 && seen.h2 > 0);
      const { forced } = await stack.veer.shutdown(300);
      expect(forced).toBeGreaterThan(0);
      await waitFor(() => stack.veer.recorder.inflight.legacy === 0);
      const outcomes = stack.veer.recorder.windows.legacy.snapshot().outcomes;
      expect(outcomes.reset).toBe(0);
      expect(outcomes.client_abort).toBe(2);
    } finally {
      session.destroy();
      await stack.close();
    }
  });
});
