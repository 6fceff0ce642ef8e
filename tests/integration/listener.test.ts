import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSilentSocket } from '../../src/proxy/server.js';
import { h2Request, type Stack, startStack } from '../helpers/stack.js';

describe('front listener hardening', () => {
  let stack: Stack;
  let port: number;

  beforeAll(async () => {
    stack = await startStack({
      config: {
        listen: { headers_timeout: '300ms', max_concurrent_streams: 8, max_header_size: 4096, idle_timeout: '1s' },
      },
    });
    port = Number(new URL(stack.url).port);
  });
  afterAll(() => stack.close());

  const closedWithin = (socket: net.Socket) =>
    new Promise<number>((resolve) => {
      const t0 = Date.now();
      socket.on('close', () => resolve(Date.now() - t0));
      socket.on('error', () => {});
      // Read whatever veer answers, so its FIN is seen and the socket can close.
      socket.resume();
    });

  it('closes a connection that never says anything after headers_timeout', async () => {
    const socket = net.connect(port, '127.0.0.1');
    const ms = await closedWithin(socket);
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(2000);
  });

  it('closes an HTTP/1.1 client that sends its headers too slowly', async () => {
    const socket = net.connect(port, '127.0.0.1');
    const closed = closedWithin(socket);
    let answer = '';
    socket.on('data', (d) => (answer += d));
    socket.write('GET / HTTP/1.1\r\n');
    const drip = setInterval(() => socket.writable && socket.write('x-slow: 1\r\n'), 100);
    const ms = await closed;
    clearInterval(drip);
    expect(ms).toBeLessThan(3000);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('waits for the rest of a split HTTP/2 preface', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    socket.write('PRI * HTTP/2.0\r\n');
    await new Promise((r) => setTimeout(r, 50));
    socket.write('\r\nSM\r\n\r\n');
    // A SETTINGS frame back proves the http2 server got the whole preface.
    const frame = await new Promise<Buffer>((r) => socket.once('data', r));
    expect(frame[3]).toBe(0x4); // frame type SETTINGS
    socket.destroy();
  });

  it('advertises and enforces the per-session stream limit', async () => {
    const session = http2.connect(stack.url);
    await new Promise((r) => session.once('remoteSettings', r));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(8);
    session.close();
  });

  it('answers an over-long HTTP/1.1 header block with 431 and HTTP/2 with a refused stream', async () => {
    const res = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/v1/models', headers: { 'x-big': 'a'.repeat(8000) } });
      req.on('response', (r) => resolve(r.statusCode ?? 0)).on('error', reject);
      req.end();
    });
    expect(res).toBe(431);
    const session = http2.connect(stack.url);
    session.on('error', () => {});
    // veer's SETTINGS apply once the client has acknowledged them; a ping round trip makes sure.
    await new Promise((r) => session.once('remoteSettings', r));
    await new Promise((r) => session.ping(r));
    await expect(h2Request(session, { ':path': '/v1/models', 'x-big': 'a'.repeat(8000) })).rejects.toThrow();
    session.destroy();
    // The listener is unharmed.
    const ok = await request(`${stack.url}/v1/models`);
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
  });

  it('closes an idle HTTP/2 session after idle_timeout', async () => {
    const session = http2.connect(stack.url);
    session.on('error', () => {});
    await h2Request(session, { ':path': '/v1/models' });
    const t0 = Date.now();
    await new Promise((r) => session.once('close', r));
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('drops its silence timer and its listener when it hands a socket over, so nothing of the sniffer stays per connection', async () => {
    const serverSide = (localPort: number | undefined) => {
      const sockets = (stack.veer.front as unknown as { sockets: Set<net.Socket> }).sockets;
      return [...sockets].find((s) => s.remotePort === localPort);
    };
    // HTTP/1.1, kept alive.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let clientPort: number | undefined;
    const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http
        .get(`${stack.url}/v1/models`, { agent }, resolve)
        .on('socket', (s) => s.once('connect', () => (clientPort = s.localPort)))
        .on('error', reject),
    );
    res.resume();
    await new Promise((r) => res.on('end', r));
    const h1 = serverSide(clientPort);
    expect(h1).toBeDefined();
    // node's http server keeps one listener of its own (its socketOnTimeout); the sniffer's is gone.
    expect(h1!.listeners('timeout')).not.toContain(closeSilentSocket);
    expect(h1!.listenerCount('timeout')).toBe(1);
    agent.destroy();
    // h2c.
    const session = http2.connect(stack.url);
    await h2Request(session, { ':path': '/v1/models' });
    const h2 = serverSide(session.socket.localPort);
    expect(h2).toBeDefined();
    expect(h2!.listenerCount('timeout')).toBe(0);
    session.close();
  });

  it('counts connections per protocol for the metrics', async () => {
    const session = http2.connect(stack.url);
    await h2Request(session, { ':path': '/v1/models' });
    expect(stack.veer.front.connections.h2c).toBeGreaterThanOrEqual(1);
    session.close();
  });
});
