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
        upstreams: { legacy: { keep_alive_timeout: '300ms' }, new: { keep_alive_timeout: '300ms' } },
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
});
