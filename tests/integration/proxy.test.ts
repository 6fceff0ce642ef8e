import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decide } from '../../src/routing/table.js';
import { closedPort, h2Request, type Stack, serveHttp, startStack, waitFor } from '../helpers/stack.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const echoHeaders = (h: string | string[] | undefined) => JSON.parse(Buffer.from(String(h), 'base64').toString('utf8'));

describe('proxying over HTTP/1.1 and HTTP/2 on one port', () => {
  let stack: Stack;
  let h2: http2.ClientHttp2Session;

  beforeAll(async () => {
    stack = await startStack({
      next: { tokens: 5, tokenIntervalMs: 120, ttfb: 5 },
      legacy: { tokens: 5, tokenIntervalMs: 120, ttfb: 5 },
    });
    h2 = http2.connect(stack.url);
  });
  afterAll(async () => {
    h2.close();
    await stack.close();
  });

  it('answers an HTTP/2 expect: 100-continue itself, so the client sends its body at once', async () => {
    const req = h2.request({ ':method': 'POST', ':path': '/_mock/echo', expect: '100-continue' });
    const t0 = performance.now();
    // The client holds its body until the 100 (or until it gives up: 1 s here, as curl does).
    const continued = await Promise.race([
      new Promise<boolean>((resolve) => req.once('continue', () => resolve(true))),
      new Promise<boolean>((resolve) => setTimeout(resolve, 1000, false)),
    ]);
    expect(continued).toBe(true);
    expect(performance.now() - t0).toBeLessThan(500);
    req.end('the body');
    let body = '';
    req.on('data', (d) => (body += d));
    await new Promise((r) => req.on('end', r));
    expect(body).toBe('the body');
  });

  it('sends each key to the side its bucket picks, over both protocols', async () => {
    for (let i = 0; i < 40; i++) {
      const key = `user-${i}`;
      const expected = decide(stack.veer.table, key, undefined).upstream;
      const viaH1 = await request(`${stack.url}/v1/models`, { headers: { 'x-user-id': key } });
      await viaH1.body.dump();
      expect(viaH1.headers['x-veer-upstream']).toBe(expected);
      const viaH2 = await h2Request(h2, { ':path': '/v1/models', 'x-user-id': key });
      expect(viaH2.status).toBe(200);
      expect(viaH2.headers['x-veer-upstream']).toBe(expected);
      expect(JSON.parse(viaH2.body.toString()).data[0].id).toBe(`mock-${expected}`);
    }
  });

  it('forwards end-to-end headers, drops hop-by-hop ones and sets x-forwarded-*', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request(`${stack.url}/_mock/echo?x=1`, {
        method: 'POST',
        headers: {
          'x-user-id': 'hdr-user',
          traceparent,
          'x-custom': 'kept',
          connection: 'keep-alive, x-hop',
          'x-hop': 'dropped',
          'keep-alive': 'timeout=5',
          'content-type': 'text/plain',
        },
      });
      req.on('response', resolve).on('error', reject);
      req.end('hello');
    });
    const body = await new Promise<string>((r) => {
      let s = '';
      res.on('data', (d) => (s += d)).on('end', () => r(s));
    });
    const seen = echoHeaders(res.headers['x-echo-headers']);
    expect(body).toBe('hello');
    expect(seen.traceparent).toBe(traceparent);
    expect(seen['x-custom']).toBe('kept');
    expect(seen['x-user-id']).toBe('hdr-user');
    expect(seen['x-hop']).toBeUndefined();
    expect(seen['keep-alive']).toBeUndefined();
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe(new URL(stack.url).host);
    const side = res.headers['x-veer-upstream'] as 'legacy' | 'new';
    expect(seen.host).toBe(new URL(side === 'new' ? stack.next.url : stack.legacy.url).host);
    expect(res.headers['x-echo-method']).toBe('POST');
  });

  it('drops hop-by-hop response headers, and those the upstream lists in Connection, keeping the rest', async () => {
    const upstream = await serveHttp((_req, res) => {
      res.writeHead(200, {
        connection: 'keep-alive, X-Private',
        'keep-alive': 'timeout=5',
        'proxy-connection': 'keep-alive',
        'x-private': 'per-hop',
        'x-request-id': 'abc',
        'content-type': 'text/plain',
        'content-length': '2',
      });
      res.end('ok');
    });
    const local = await startStack({
      config: { upstreams: { legacy: { url: upstream.url } }, rollout: { weight: 0 } },
    });
    try {
      const res = await request(`${local.url}/v1/models`);
      expect(await res.body.text()).toBe('ok');
      expect(res.headers['x-request-id']).toBe('abc');
      expect(res.headers['content-type']).toBe('text/plain');
      expect(res.headers['x-private']).toBeUndefined();
      expect(res.headers['proxy-connection']).toBeUndefined();
      // undici's client answers keep-alive itself; what it shows is veer's own hop, not the upstream's.
      expect(res.headers['keep-alive']).not.toBe('timeout=5');
      const session = http2.connect(local.url);
      const over2 = await h2Request(session, { ':path': '/v1/models' });
      session.close();
      expect(over2.headers['x-request-id']).toBe('abc');
      expect(over2.headers['x-private']).toBeUndefined();
      expect(over2.headers.connection).toBeUndefined();
    } finally {
      await local.close();
      await upstream.close();
    }
  });

  it("over HTTP/1.1, sends a stream's headers at once when its first token is late", async () => {
    // A raw client, to see when the head arrives.
    const late = await startStack({ legacy: { ttfb: 400, headersFirst: true }, config: { rollout: { weight: 0 } } });
    try {
      const first = await new Promise<{ text: string; at: number }>((resolve, reject) => {
        const t0 = performance.now();
        const socket = net.connect(Number(new URL(late.url).port), '127.0.0.1');
        socket.once('data', (d) => {
          resolve({ text: d.toString('latin1'), at: performance.now() - t0 });
          socket.destroy();
        });
        socket.on('error', reject);
        socket.write(
          'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{"stream":true}',
        );
      });
      expect(first.text).toMatch(/^HTTP\/1\.1 200 /);
      expect(first.text).toContain('content-type: text/event-stream');
      expect(first.text).not.toContain('data: {');
      expect(first.at).toBeLessThan(300);
    } finally {
      await late.close();
    }
  });

  it('replaces a client x-forwarded-for (forwarding.trust_client: false) and maps :authority to x-forwarded-host over HTTP/2', async () => {
    const res = await h2Request(
      h2,
      { ':method': 'POST', ':path': '/_mock/echo', ':authority': 'api.example', 'x-forwarded-for': '203.0.113.9' },
      'x',
    );
    const seen = echoHeaders(res.headers['x-echo-headers']);
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-host']).toBe('api.example');
  });

  it('round-trips a 10 MB upload and download byte for byte over HTTP/1.1', async () => {
    const payload = randomBytes(10 * 1024 * 1024);
    const up = await request(`${stack.url}/_mock/echo`, {
      method: 'PUT',
      body: payload,
      headers: { 'x-user-id': 'big-1' },
    });
    const echoed = Buffer.from(await up.body.arrayBuffer());
    expect(up.headers['x-echo-length']).toBe(String(payload.length));
    expect(sha(echoed)).toBe(sha(payload));
    const down = await request(`${stack.url}/_mock/bytes?n=${10 * 1024 * 1024}`, { headers: { 'x-user-id': 'big-1' } });
    const got = Buffer.from(await down.body.arrayBuffer());
    expect(got.length).toBe(10 * 1024 * 1024);
    expect(sha(got)).toBe(sha(Buffer.alloc(10 * 1024 * 1024, 0x61)));
  });

  it('round-trips a 10 MB upload byte for byte over HTTP/2', async () => {
    const payload = randomBytes(10 * 1024 * 1024);
    const res = await h2Request(h2, { ':method': 'POST', ':path': '/_mock/echo', 'x-user-id': 'big-2' }, payload);
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(payload.length);
    expect(sha(res.body)).toBe(sha(payload));
  });

  it('streams a chunked upload of unknown length', async () => {
    const parts = [randomBytes(70_000), randomBytes(5), randomBytes(300_000)];
    const res = await request(`${stack.url}/_mock/echo`, {
      method: 'POST',
      body: Readable.from(
        (async function* () {
          for (const p of parts) yield p;
        })(),
      ),
    });
    expect(sha(Buffer.from(await res.body.arrayBuffer()))).toBe(sha(Buffer.concat(parts)));
  });

  it('delivers the body of a GET that carries one (http2-proxy drops it)', async () => {
    const res = await request(`${stack.url}/_mock/echo`, {
      method: 'GET',
      body: 'query-in-body',
      headers: { 'content-length': '13' },
    });
    expect(res.headers['x-echo-method']).toBe('GET');
    expect(await res.body.text()).toBe('query-in-body');
    const viaH2 = await h2Request(h2, { ':method': 'GET', ':path': '/_mock/echo' }, 'h2-get-body');
    expect(viaH2.body.toString()).toBe('h2-get-body');
  });

  it('relays SSE events one by one with the upstream spacing, over HTTP/1.1', async () => {
    const arrivals: number[] = [];
    const res = await request(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-id': 'sse-1' },
      body: JSON.stringify({ stream: true }),
    });
    expect(res.headers['content-type']).toBe('text/event-stream');
    for await (const chunk of res.body) {
      const events = String(chunk).split('\n\n').filter(Boolean).length;
      for (let i = 0; i < events; i++) arrivals.push(performance.now());
    }
    expectSpaced(arrivals, 120);
  });

  it('relays SSE events one by one with the upstream spacing, over HTTP/2', async () => {
    const arrivals: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const req = h2.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'x-user-id': 'sse-2' });
      req.on('data', (chunk: Buffer) => {
        const events = String(chunk).split('\n\n').filter(Boolean).length;
        for (let i = 0; i < events; i++) arrivals.push(performance.now());
      });
      req.on('end', resolve).on('error', reject);
      req.end(JSON.stringify({ stream: true }));
    });
    expectSpaced(arrivals, 120);
  });

  it('cancels the upstream request when an HTTP/2 client resets its stream', async () => {
    stack.next.set({ tokens: 50, tokenIntervalMs: 200 });
    stack.legacy.set({ tokens: 50, tokenIntervalMs: 200 });
    const before = stack.legacy.stats.aborted + stack.next.stats.aborted;
    let resetAt = 0;
    await new Promise<void>((resolve) => {
      const req = h2.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'x-user-id': 'abort-h2' });
      req.once('data', () => {
        resetAt = performance.now();
        req.close(http2.constants.NGHTTP2_CANCEL);
        resolve();
      });
      req.on('error', () => {});
      req.end(JSON.stringify({ stream: true }));
    });
    await waitFor(() => stack.legacy.stats.aborted + stack.next.stats.aborted > before, 2000, 2);
    const lastAbort = Math.max(stack.legacy.stats.lastAbortAt, stack.next.stats.lastAbortAt);
    expect(lastAbort - resetAt).toBeLessThan(100);
  });

  it('cancels the upstream request when an HTTP/1.1 client goes away', async () => {
    const before = stack.legacy.stats.aborted + stack.next.stats.aborted;
    await new Promise<void>((resolve, reject) => {
      const req = http.request(`${stack.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'x-user-id': 'abort-h1' },
      });
      req.on('response', (res) =>
        res.once('data', () => {
          req.destroy();
          resolve();
        }),
      );
      req.on('error', (err) => (err.message === 'socket hang up' ? undefined : reject(err)));
      req.end(JSON.stringify({ stream: true }));
    });
    await waitFor(() => stack.legacy.stats.aborted + stack.next.stats.aborted > before, 2000, 2);
    stack.next.set({ tokens: 5, tokenIntervalMs: 120 });
    stack.legacy.set({ tokens: 5, tokenIntervalMs: 120 });
  });

  it('passes upstream statuses and bodies through, 4xx and 5xx alike', async () => {
    const res = await request(`${stack.url}/no/such/route`);
    expect(res.statusCode).toBe(404);
    expect(await res.body.json()).toEqual({ error: { message: 'not found' } });
  });

  it('rejects a request target that is not a path with a 400 JSON error', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: new URL(stack.url).port,
        path: 'http://elsewhere.example/x',
      });
      req.on('response', (r) => {
        let body = '';
        r.on('data', (d) => (body += d)).on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      });
      req.on('error', reject).end();
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error.code).toBe('bad_request');
  });
});

function expectSpaced(arrivals: number[], intervalMs: number): void {
  // 5 tokens, a finish chunk and [DONE]: the first five arrive one per interval, never batched.
  expect(arrivals.length).toBeGreaterThanOrEqual(6);
  const gaps = arrivals.slice(1, 5).map((t, i) => t - arrivals[i]!);
  for (const gap of gaps) {
    expect(gap).toBeGreaterThan(intervalMs * 0.6);
    expect(gap).toBeLessThan(intervalMs * 1.8);
  }
}

/** An upstream that misbehaves in one precise way. */
function faultyUpstream(kind: 'reset-before-headers' | 'reset-mid-stream' | 'bad-header') {
  return serveHttp((req, res) => {
    req.resume();
    if (kind === 'reset-before-headers') req.socket.destroy();
    else if (kind === 'bad-header') {
      req.socket.end('HTTP/1.1 200 OK\r\nx-bad: a\u0001b\r\ncontent-length: 2\r\n\r\nok');
    } else {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n');
      setTimeout(() => req.socket.destroy(), 50);
    }
  });
}

describe('upstream timeouts', () => {
  it('waits ttfb_timeout, not idle_timeout, for the first token after early headers; idle_timeout bounds the gaps after it', async () => {
    const upstream = await serveHttp((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      // The first token after 3 x idle_timeout (well inside ttfb_timeout), then a gap of 3 x idle_timeout.
      // (undici's own timers tick every ~0.5 s, so shorter spans would not show its body timer firing.)
      setTimeout(() => res.write('data: first\n\n'), 1500);
      setTimeout(() => res.end('data: late\n\n'), 3000);
    });
    const stack = await startStack({
      config: {
        upstreams: { legacy: { url: upstream.url, ttfb_timeout: '4s', idle_timeout: '500ms' } },
        rollout: { weight: 0 },
      },
    });
    try {
      const t0 = performance.now();
      const res = await request(`${stack.url}/v1/chat/completions`, { method: 'POST', body: '{"stream":true}' });
      expect(res.statusCode).toBe(200);
      let text = '';
      await expect(
        (async () => {
          for await (const chunk of res.body) text += chunk;
        })(),
      ).rejects.toThrow();
      expect(text).toBe('data: first\n\n');
      await waitFor(() => stack.veer.recorder.windows.legacy.snapshot().requests === 1);
      const window = stack.veer.recorder.windows.legacy.snapshot();
      expect(window.outcomes).toMatchObject({ timeout: 1 });
      // The first byte was measured (1.5 s): the cut came in the gap after it (at ~2 s), not before it.
      expect(window.ttfbSamples).toBe(1);
      expect(window.ttfbQuantile(0.5)).toBeGreaterThanOrEqual(1490);
      expect(performance.now() - t0).toBeLessThan(2900);
    } finally {
      await stack.close();
      await upstream.close();
    }
  });
});

describe('upstream idle timeout and slow clients', () => {
  it('does not count as upstream silence the time veer holds the upstream back for a client that stopped reading', async () => {
    const SIZE = 24 * 1024 * 1024;
    const upstream = await serveHttp((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) });
      const chunk = Buffer.alloc(64 * 1024, 'y');
      let sent = 0;
      const pump = () => {
        while (sent < SIZE) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const stack = await startStack({
      config: {
        upstreams: { legacy: { url: upstream.url, idle_timeout: '300ms' } },
        rollout: { weight: 0 },
      },
    });
    try {
      const port = Number(new URL(stack.url).port);
      const received = await new Promise<number>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.write('GET /big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
          // Reads nothing for 4 x idle_timeout: buffers fill and veer pauses the upstream.
          socket.pause();
          setTimeout(() => socket.resume(), 1200);
        });
        let n = 0;
        socket.on('data', (d: Buffer) => (n += d.length));
        socket.on('end', () => resolve(n));
        socket.on('error', reject);
      });
      expect(received).toBeGreaterThan(SIZE);
      await waitFor(() => stack.veer.recorder.windows.legacy.snapshot().requests === 1);
      expect(stack.veer.recorder.windows.legacy.snapshot().outcomes.ok).toBe(1);
    } finally {
      await stack.close();
      await upstream.close();
    }
  });
});

describe('failures become JSON errors', () => {
  it('answers 503 upstream_unavailable when the upstream refuses connections', async () => {
    const url = await closedPort();
    const stack = await startStack({ config: { upstreams: { legacy: { url } }, rollout: { weight: 0 } } });
    try {
      const res = await request(`${stack.url}/v1/models`);
      expect(res.statusCode).toBe(503);
      expect(res.headers['content-type']).toBe('application/json');
      const body = (await res.body.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('upstream_unavailable');
      expect(body.error.message).toContain('ECONNREFUSED');
      const viaH2 = await (async () => {
        const s = http2.connect(stack.url);
        const r = await h2Request(s, { ':path': '/v1/models' });
        s.close();
        return r;
      })();
      expect(viaH2.status).toBe(503);
      expect(JSON.parse(viaH2.body.toString()).error.code).toBe('upstream_unavailable');
    } finally {
      await stack.close();
    }
  });

  it('serves the request from legacy when new refuses the connection', async () => {
    const url = await closedPort();
    const stack = await startStack({ config: { upstreams: { new: { url } }, rollout: { weight: 100 } } });
    try {
      const res = await request(`${stack.url}/_mock/echo`, {
        method: 'POST',
        body: 'once',
        headers: { 'x-user-id': 'u' },
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-veer-upstream']).toBe('legacy');
      expect(await res.body.text()).toBe('once');
      const metrics = await stack.veer.metrics.registry.getSingleMetricAsString('veer_fallbacks_total');
      expect(metrics).toContain('veer_fallbacks_total 1');
    } finally {
      await stack.close();
    }
  });

  it('answers 504 upstream_timeout when no first byte arrives within ttfb_timeout', async () => {
    const stack = await startStack({
      legacy: { hangRate: 1 },
      config: { upstreams: { legacy: { ttfb_timeout: '300ms' } }, rollout: { weight: 0 } },
    });
    try {
      const t0 = performance.now();
      const res = await request(`${stack.url}/v1/chat/completions`, { method: 'POST', body: '{"stream":true}' });
      expect(res.statusCode).toBe(504);
      expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('upstream_timeout');
      expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
      await waitFor(() => stack.legacy.stats.aborted === 1, 2000);
    } finally {
      await stack.close();
    }
  });

  it('answers 502 upstream_reset when the upstream resets before its headers', async () => {
    const faulty = await faultyUpstream('reset-before-headers');
    const stack = await startStack({ config: { upstreams: { legacy: { url: faulty.url } }, rollout: { weight: 0 } } });
    try {
      const res = await request(`${stack.url}/v1/models`);
      expect(res.statusCode).toBe(502);
      expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('upstream_reset');
    } finally {
      await stack.close();
      await faulty.close();
    }
  });

  it('cuts the client stream, without a clean end, when the upstream dies mid-stream', async () => {
    const faulty = await faultyUpstream('reset-mid-stream');
    const stack = await startStack({ config: { upstreams: { legacy: { url: faulty.url } }, rollout: { weight: 0 } } });
    const session = http2.connect(stack.url);
    try {
      const result = await new Promise<{ data: string; code: number | undefined }>((resolve) => {
        const req = session.request({ ':path': '/stream' });
        let data = '';
        req.on('data', (d) => (data += d));
        req.on('error', () => {});
        req.on('close', () => resolve({ data, code: req.rstCode }));
        req.end();
      });
      expect(result.data).toBe('data: first\n\n');
      expect(result.code).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
      const viaH1 = await request(`${stack.url}/stream`);
      await expect(viaH1.body.text()).rejects.toThrow();
    } finally {
      session.close();
      await stack.close();
      await faulty.close();
    }
  });
});

describe('TLS on the same port', () => {
  it('serves h2 and http/1.1 over TLS by ALPN, next to plaintext h2c and HTTP/1.1', async () => {
    const fixtures = fileURLToPath(new URL('../fixtures/tls/', import.meta.url));
    const stack = await startStack({
      config: { listen: { tls: { cert: `${fixtures}cert.pem`, key: `${fixtures}key.pem` } } },
    });
    const tlsUrl = stack.url.replace('http:', 'https:');
    try {
      const s = http2.connect(tlsUrl, { rejectUnauthorized: false });
      const viaH2 = await h2Request(s, { ':path': '/_mock/echo', 'x-user-id': 'tls-user' });
      s.close();
      expect(viaH2.status).toBe(200);
      expect(echoHeaders(viaH2.headers['x-echo-headers'])['x-forwarded-proto']).toBe('https');
      const agent = new Agent({ connect: { rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] } });
      const viaH1 = await request(`${tlsUrl}/_mock/echo`, { dispatcher: agent, headers: { 'x-user-id': 'tls-user' } });
      expect(viaH1.statusCode).toBe(200);
      expect(echoHeaders(viaH1.headers['x-echo-headers'])['x-forwarded-proto']).toBe('https');
      await agent.close();
      const plain = await request(`${stack.url}/v1/models`);
      expect(plain.statusCode).toBe(200);
      await plain.body.dump();
      expect(stack.veer.front.connections).toMatchObject({ h2: 0 });
    } finally {
      await stack.close();
    }
  });
});
