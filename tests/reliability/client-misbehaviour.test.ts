import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { type Stack, startStack, waitFor } from '../helpers/stack.js';
import { errorCode, h1, h2 } from './clients.js';
import { backTo, openFds, outcomes, pooledFds } from './faults.js';

let stack: Stack | undefined;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0)) await fn();
  await stack?.close();
  stack = undefined;
});

/** An SSE upstream that writes `totalBytes` of 1 KiB events per request as fast as its socket takes them, and counts them. */
async function firehose(
  totalBytes: number,
): Promise<{ url: string; written: () => number; done: () => boolean; aborted: () => number }> {
  let written = 0;
  let finished = false;
  let aborted = 0;
  const event = Buffer.from(`data: ${'x'.repeat(1016)}\n\n`);
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    res.on('close', () => {
      if (!res.writableFinished) aborted++;
    });
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let sent = 0;
    const pump = () => {
      while (sent < totalBytes) {
        sent += event.length;
        written += event.length;
        if (!res.write(event)) return void res.once('drain', pump);
      }
      finished = true;
      res.end();
    };
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    written: () => written,
    done: () => finished,
    aborted: () => aborted,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** All of `promises`, or a failure after `ms` (rather than the test's own timeout). */
function within<T extends unknown[]>(ms: number, promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`connections still open after ${ms} ms`)), ms);
  });
  return Promise.race([Promise.all(promises) as Promise<T>, limit]).finally(() => clearTimeout(timer));
}

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Bytes held in Buffers (ArrayBuffers) after a full collection: what the process really keeps. */
async function buffersAfterGc(): Promise<number> {
  gc();
  await new Promise((r) => setImmediate(r));
  gc();
  return process.memoryUsage().arrayBuffers;
}

describe('client misbehaviour', () => {
  it('a slow reader pauses the upstream (backpressure), nothing piles up in veer, and gets every byte in the end', async () => {
    const total = 64 * 2 ** 20;
    const up = await firehose(total);
    stack = await startStack({ config: { upstreams: { legacy: { url: up.url } }, rollout: { weight: 0 } } });
    for (const protocol of ['http/1.1', 'h2'] as const) {
      const before = up.written();
      const buffers0 = await buffersAfterGc();
      let received = 0;
      let resume: () => void = () => {};
      const finished = new Promise<void>((resolve, reject) => {
        if (protocol === 'http/1.1') {
          const req = http.request(`${stack!.url}/stream`, { agent: false }, (res) => {
            res.on('data', (d: Buffer) => (received += d.length));
            res.on('end', resolve);
            res.on('error', reject);
            res.pause();
            resume = () => res.resume();
          });
          req.on('error', reject).end();
        } else {
          const session = http2.connect(stack!.url);
          const req = session.request({ ':path': '/stream' }, { endStream: true });
          req.on('data', (d: Buffer) => (received += d.length));
          req.on('end', () => {
            session.close();
            resolve();
          });
          req.on('error', reject);
          req.pause();
          resume = () => req.resume();
        }
      });
      // The client reads nothing: the upstream must stall after a few socket buffers' worth.
      await sleep(600);
      const stalledAt = up.written() - before;
      expect(stalledAt).toBeGreaterThan(0);
      await sleep(400);
      const stillAt = up.written() - before;
      // What the upstream managed to write sits in kernel socket buffers, not in this process.
      const heldMb = ((await buffersAfterGc()) - buffers0) / 2 ** 20;
      expect(stalledAt).toBeLessThan(16 * 2 ** 20);
      expect(stillAt).toBe(stalledAt);
      expect(heldMb).toBeLessThan(6);
      const resumedAt = performance.now();
      resume();
      await finished;
      expect(received).toBe(total);
      // Backpressure must not cost throughput: 64 MiB in 1 KiB events flows at once when the client reads.
      expect(performance.now() - resumedAt).toBeLessThan(5000);
    }
    expect(await outcomes(stack.veer)).toEqual({ 'legacy/ok': 2 });
  });

  it('a stream waiting longer than listen.idle_timeout for its first token is not idle: it completes (h1 and h2)', async () => {
    stack = await startStack({
      legacy: { ttfb: 1200, tokens: 3, tokenIntervalMs: 1 },
      config: { listen: { idle_timeout: '400ms' }, rollout: { weight: 0 } },
    });
    const [viaH2, viaH1] = await Promise.all([
      h2(stack.url, '/v1/chat/completions', { method: 'POST', body: '{"stream":true}' }),
      h1(stack.url, '/v1/chat/completions', { method: 'POST', body: '{"stream":true}' }),
    ]);
    for (const reply of [viaH2, viaH1]) {
      expect(reply.status).toBe(200);
      expect(reply.error).toBeUndefined();
      expect(reply.body).toContain('data: [DONE]');
    }
    expect(await outcomes(stack.veer)).toEqual({ 'legacy/ok': 2 });
  });

  it('a client that stops reading for good is cut after listen.idle_timeout, and the upstream request with it', async () => {
    const up = await firehose(256 * 2 ** 20);
    stack = await startStack({
      config: { listen: { idle_timeout: '500ms' }, upstreams: { legacy: { url: up.url } }, rollout: { weight: 0 } },
    });
    const s = stack;
    const session = http2.connect(s.url);
    session.on('error', () => {});
    const goaways: number[] = [];
    session.on('goaway', (code: number) => goaways.push(code));
    cleanup.push(() => session.destroy());
    const t0 = Date.now();
    const h2Closed = new Promise<number>((resolve) => {
      const req = session.request({ ':path': '/stream' }, { endStream: true });
      req.on('error', () => {});
      req.on('close', () => resolve(req.rstCode));
      req.pause();
    });
    // The HTTP/1.1 client pauses its socket too, so it would not even see the close; veer's side shows it.
    const h1Socket = await new Promise<net.Socket>((resolve) => {
      const req = http.request(`${s.url}/stream`, { agent: false }, (res) => {
        res.on('error', () => {});
        res.pause();
        resolve(res.socket);
      });
      req.on('error', () => {});
      req.end();
    });
    cleanup.push(() => h1Socket.destroy());
    expect(await h2Closed).toBe(http2.constants.NGHTTP2_CANCEL);
    // Only the stream is cut; the session is not torn down with an error (it may idle out in its turn).
    expect(goaways.filter((code) => code !== http2.constants.NGHTTP2_NO_ERROR)).toEqual([]);
    await waitFor(() => up.aborted() === 2 && s.veer.front.connections['http/1.1'] === 0, 3000);
    expect(Date.now() - t0).toBeLessThan(3000);
    // Cut for not reading is the client's doing: never the upstream's error.
    await waitFor(() => s.veer.recorder.inflight.legacy === 0);
    expect(Object.keys(await outcomes(s.veer))).toEqual(['legacy/client_abort']);
  });

  it('a client that goes away mid-stream cancels the upstream request within 100 ms (h1 and h2)', async () => {
    stack = await startStack({
      legacy: { tokens: 1000, tokenIntervalMs: 20, ttfb: 1 },
      config: { rollout: { weight: 0 } },
    });
    const s = stack;
    const lastAbort = () => s.legacy.stats.lastAbortAt;
    // HTTP/1.1: the client closes its connection after the first event.
    let cutAt = 0;
    await new Promise<void>((resolve) => {
      const req = http.request(`${s.url}/v1/chat/completions`, { method: 'POST', agent: false }, (res) => {
        res.once('data', () => {
          cutAt = performance.now();
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      req.end('{"stream":true}');
    });
    await waitFor(() => s.legacy.stats.aborted === 1, 2000, 1);
    expect(lastAbort() - cutAt).toBeLessThan(100);
    // HTTP/2: the client resets its stream after the first event; the session stays.
    const session = http2.connect(s.url);
    await new Promise<void>((resolve) => {
      const req = session.request({ ':method': 'POST', ':path': '/v1/chat/completions' });
      req.on('error', () => {});
      req.once('data', () => {
        cutAt = performance.now();
        req.close(http2.constants.NGHTTP2_CANCEL);
        resolve();
      });
      req.end('{"stream":true}');
    });
    await waitFor(() => s.legacy.stats.aborted === 2, 2000, 1);
    expect(lastAbort() - cutAt).toBeLessThan(100);
    session.close();
    // A client leaving is not the upstream's error.
    expect(await outcomes(s.veer)).toEqual({ 'legacy/client_abort': 2 });
    expect(s.veer.recorder.windows.legacy.snapshot().errorRate).toBe(0);
  });

  it('a client that never finishes its request body gets 408 request_timeout, and the upstream is not blamed', async () => {
    stack = await startStack({
      config: { upstreams: { legacy: { ttfb_timeout: '300ms' } }, rollout: { weight: 0 } },
    });
    const s = stack;
    // HTTP/1.1: a content-length of 100, then 10 bytes, then nothing.
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(new URL(s.url).port), '127.0.0.1');
      let data = '';
      socket.on('data', (d) => (data += d));
      socket.on('close', () => resolve(data));
      socket.on('error', () => {});
      socket.write('POST /_mock/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789');
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toMatch(/connection: close/i);
    expect(answer).toContain('"code":"request_timeout"');
    // HTTP/2: DATA without END_STREAM, then nothing.
    const session = http2.connect(s.url);
    const reply = await new Promise<{ status: number; body: string }>((resolve) => {
      const req = session.request({ ':method': 'POST', ':path': '/_mock/echo' }, { endStream: false });
      let status = 0;
      let body = '';
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (d) => (body += d));
      req.on('close', () => resolve({ status, body }));
      req.on('error', () => {});
      req.write('0123456789');
    });
    session.close();
    expect(reply.status).toBe(408);
    expect(errorCode({ status: reply.status, headers: {}, body: reply.body })).toBe('request_timeout');
    expect(await outcomes(s.veer)).toEqual({ 'legacy/client_abort': 2 });
    expect(s.veer.recorder.windows.legacy.snapshot().errorRate).toBe(0);
    // An upstream that is slow with a complete request is still the upstream's timeout.
    s.legacy.set({ hangRate: 1 });
    const slow = await h1(s.url, '/v1/chat/completions', { method: 'POST', body: '{"stream":true}' });
    expect(slow.status).toBe(504);
    expect((await outcomes(s.veer))['legacy/timeout']).toBe(1);
  });

  it('thousands of idle connections are closed by the timeouts, and the fd count returns to baseline', async () => {
    stack = await startStack({
      config: {
        listen: { headers_timeout: '400ms', idle_timeout: '600ms' },
        rollout: { weight: 0 },
      },
    });
    const s = stack;
    const port = Number(new URL(s.url).port);
    const fds = openFds();
    const total = () => Object.values(s.veer.front.connections).reduce((a, b) => a + b, 0);
    /** Opens a connection, runs `then` on it, resolves with ms from its last activity to its close. */
    const idleLife = (then: (socket: net.Socket, active: () => void) => void) =>
      new Promise<number>((resolve) => {
        // From before the connect: veer's timer starts at its accept, which in a burst of 2,200 connections
        // can come tens of ms before this process sees the connect callback.
        let last = Date.now();
        const socket = net.connect(port, '127.0.0.1', () => then(socket, () => (last = Date.now())));
        socket.on('error', () => {});
        socket.on('close', () => resolve(Date.now() - last));
        cleanup.push(() => socket.destroy());
      });
    // Opened all at once: more than node's default listen backlog (511) would leave some unaccepted.
    const [silent, keptAlive, sessions] = await within(10_000, [
      // 1500 connections that say nothing at all: headers_timeout.
      Promise.all(Array.from({ length: 1500 }, () => idleLife(() => {}))),
      // 500 HTTP/1.1 keep-alive connections left idle after one request: idle_timeout.
      Promise.all(
        Array.from({ length: 500 }, () =>
          idleLife((socket, active) => {
            socket.on('data', active);
            socket.write('GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n');
          }),
        ),
      ),
      // 200 HTTP/2 sessions left idle after one request: idle_timeout.
      Promise.all(
        Array.from(
          { length: 200 },
          () =>
            new Promise<number>((resolve) => {
              const session = http2.connect(s.url);
              session.on('error', () => {});
              let last = Date.now();
              const req = session.request({ ':path': '/v1/models' });
              req.on('data', () => {}).on('end', () => (last = Date.now()));
              req.end();
              session.on('close', () => resolve(Date.now() - last));
              cleanup.push(() => session.destroy());
            }),
        ),
      ),
    ]);
    // Each closed by its timeout (not at once), within a checking interval or two of it.
    expect(Math.min(...silent)).toBeGreaterThanOrEqual(350);
    expect(Math.max(...silent)).toBeLessThan(3000);
    expect(Math.min(...keptAlive)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...keptAlive)).toBeLessThan(4000);
    expect(Math.min(...sessions)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...sessions)).toBeLessThan(4000);
    await backTo(total, 0);
    await backTo(() => openFds() - pooledFds(s.veer), fds, 2);
  });

  it('connections over listen.max_connections are refused; the ones held keep being served', async () => {
    stack = await startStack({ config: { listen: { max_connections: 100 }, rollout: { weight: 0 } } });
    const s = stack;
    const port = Number(new URL(s.url).port);
    const held: net.Socket[] = [];
    for (let i = 0; i < 100; i++) {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      await new Promise((r) => socket.once('connect', r));
      held.push(socket);
    }
    cleanup.push(() => {
      for (const socket of held) socket.destroy();
    });
    await waitFor(() => Object.values(s.veer.front.connections).length > 0);
    // The 101st is accepted by the kernel and closed by veer at once.
    const extra = net.connect(port, '127.0.0.1');
    extra.on('error', () => {});
    const closedAfter = await new Promise<number>((resolve) => {
      const t0 = Date.now();
      extra.on('close', () => resolve(Date.now() - t0));
      extra.resume();
    });
    expect(closedAfter).toBeLessThan(1000);
    // One of the held connections asks, and is answered.
    const answer = await new Promise<string>((resolve) => {
      held[0]!.once('data', (d) => resolve(String(d)));
      held[0]!.write('GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n');
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    // Once some leave, new ones are let in.
    for (const socket of held.splice(0, 10)) socket.destroy();
    await sleep(50);
    const later = await h1(s.url, '/v1/models');
    expect(later.status).toBe(200);
  });
});
