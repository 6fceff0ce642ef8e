// Pooled upstream connections: keep_alive_timeout is the operator's ceiling, whatever the upstream's Keep-Alive hint says.

import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { Veer } from '../../src/veer.js';
import { mustBuild, rawConfig, silentLogger } from '../helpers/stack.js';

describe('upstream connection pool', () => {
  it('closes an idle upstream connection after keep_alive_timeout even when the upstream allows 10 minutes', async () => {
    const sockets: Socket[] = [];
    const closedAt: number[] = [];
    const upstream = http.createServer({ keepAliveTimeout: 600_000 }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'keep-alive': 'timeout=600' });
      res.end('{}');
    });
    upstream.on('connection', (s: Socket) => {
      sockets.push(s);
      s.on('close', () => closedAt.push(Date.now()));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const config = mustBuild(
      rawConfig(url, url, {
        upstreams: {
          legacy: { keep_alive_timeout: '300ms', preconnect: 0 },
          new: { keep_alive_timeout: '300ms', preconnect: 0 },
        },
      }),
    );
    const veer = await Veer.start({ config, logger: silentLogger() });
    try {
      const res = await request(`http://127.0.0.1:${veer.proxyAddress.port}/v1/completions`, {
        method: 'POST',
        headers: { 'x-user-id': 'u' },
        body: '{}',
      });
      await res.body.dump();
      const answeredAt = Date.now();
      expect(res.statusCode).toBe(200);
      expect(sockets).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 1_500));
      expect(closedAt).toHaveLength(1);
      expect(closedAt[0]! - answeredAt).toBeLessThan(1_200);
    } finally {
      await veer.close();
      upstream.closeAllConnections();
      await new Promise((r) => upstream.close(r));
    }
  });

  it('opens preconnect connections at start, serves the first request on one, and closes the unused after keep_alive_timeout', async () => {
    const opened: number[] = [];
    const closed: number[] = [];
    let served = 0;
    const upstream = http.createServer((_req, res) => {
      served++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    upstream.on('connection', (s: Socket) => {
      opened.push(Date.now());
      s.on('close', () => closed.push(Date.now()));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const config = mustBuild(
      rawConfig(url, 'http://127.0.0.1:9', {
        rollout: { weight: 0 },
        upstreams: { legacy: { keep_alive_timeout: '400ms', preconnect: 3 }, new: { preconnect: 0 } },
      }),
    );
    const startedAt = Date.now();
    const veer = await Veer.start({ config, logger: silentLogger() });
    try {
      const deadline = Date.now() + 2_000;
      while (opened.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(opened).toHaveLength(3);
      expect(served).toBe(0);
      const res = await request(`http://127.0.0.1:${veer.proxyAddress.port}/v1/completions`, {
        method: 'POST',
        body: '{}',
      });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
      // The request went over a connection opened at start: none was opened for it.
      expect(opened).toHaveLength(3);
      await new Promise((r) => setTimeout(r, 1_000));
      // The two never used are closed once keep_alive_timeout has passed since start; the used one idles out too.
      expect(closed).toHaveLength(3);
      expect(Math.min(...closed) - startedAt).toBeGreaterThanOrEqual(350);
    } finally {
      await veer.close();
      upstream.closeAllConnections();
      await new Promise((r) => upstream.close(r));
    }
  });
});
