import http from 'node:http';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, serveHttp, startStack } from '../helpers/stack.js';

/** What of an upstream's response head reaches the client, over HTTP/1.1 and HTTP/2 (RFC 9110 §7.6.1, §15.2). */
describe('response heads', () => {
  let upstream: Awaited<ReturnType<typeof serveHttp>>;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await serveHttp((req, res) => {
      req.resume();
      if (req.url === '/connection-lines') {
        // Two Connection lines, the second naming a field that must not travel on.
        res.setHeader('connection', ['keep-alive', 'x-hop']);
        res.setHeader('x-hop', 'secret');
        res.setHeader('x-kept', 'yes');
        res.end('ok');
      } else if (req.url === '/connection-specific') {
        // Fields HTTP/2 forbids, and a trailer announced (veer relays no trailers).
        res.setHeader('te', 'trailers');
        res.setHeader('http2-settings', 'AAMAAABkAAQAAP__');
        res.setHeader('trailer', 'x-sum');
        res.end('ok');
      } else if (req.url === '/bad-header') {
        // A control character in a header value: not valid HTTP/1.1.
        req.socket.end('HTTP/1.1 200 OK\r\nx-bad: a\u0001b\r\ncontent-length: 2\r\n\r\nok');
      } else if (req.url === '/early-hints') {
        res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
        setTimeout(() => res.end('ok'), 20);
      }
    });
    stack = await startStack({ config: { upstreams: { legacy: { url: upstream.url } }, rollout: { weight: 0 } } });
  });
  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
  });

  function viaH1(path: string) {
    return new Promise<{ status: number; headers: http.IncomingHttpHeaders; hints: string[] }>((resolve, reject) => {
      const hints: string[] = [];
      const req = http.get(`${stack.url}${path}`, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, hints }));
      });
      req.on('information', (info) => hints.push(`${info.statusCode} ${info.headers.link}`));
      req.on('error', reject);
    });
  }

  async function viaH2(path: string) {
    const session = http2.connect(stack.url);
    try {
      const hints: string[] = [];
      const req = session.request({ ':path': path });
      req.on('headers', (h) => hints.push(`${h[':status']} ${h.link}`));
      req.end();
      const [headers] = (await new Promise((resolve, reject) => {
        req.on('response', (h) => resolve([h]));
        req.on('error', reject);
      })) as [http2.IncomingHttpHeaders];
      req.resume();
      await new Promise((r) => req.on('close', r));
      return { status: Number(headers[':status']), headers, hints };
    } finally {
      session.close();
    }
  }

  it('drops every field a Connection header names, when Connection comes on several lines', async () => {
    for (const reply of [await viaH1('/connection-lines'), await viaH2('/connection-lines')]) {
      expect(reply.status).toBe(200);
      expect(reply.headers['x-hop']).toBeUndefined();
      expect(reply.headers['x-kept']).toBe('yes');
    }
  });

  it('relays a response carrying te, http2-settings and trailer to an HTTP/2 client, without them', async () => {
    for (const reply of [await viaH1('/connection-specific'), await viaH2('/connection-specific')]) {
      expect(reply.status).toBe(200);
      expect(reply.headers.te).toBeUndefined();
      expect(reply.headers['http2-settings']).toBeUndefined();
      expect(reply.headers.trailer).toBeUndefined();
    }
    expect(stack.veer.recorder.windows.legacy.snapshot().outcomes.reset).toBe(0);
  });

  it('forwards 103 Early Hints before the response', async () => {
    for (const reply of [await viaH1('/early-hints'), await viaH2('/early-hints')]) {
      expect(reply.status).toBe(200);
      expect(reply.hints).toEqual(['103 </style.css>; rel=preload; as=style']);
    }
  });

  it('answers 502 bad_gateway, counted as reset, for a response head that is not valid HTTP', async () => {
    const session = http2.connect(stack.url);
    try {
      const req = session.request({ ':path': '/bad-header' });
      req.end();
      let body = '';
      req.on('data', (d) => (body += d));
      const [headers] = (await new Promise((resolve) => req.on('response', (h) => resolve([h])))) as [
        http2.IncomingHttpHeaders,
      ];
      await new Promise((r) => req.on('close', r));
      expect(headers[':status']).toBe(502);
      expect(JSON.parse(body).error.code).toBe('bad_gateway');
      expect(stack.veer.recorder.windows.legacy.snapshot().outcomes.reset).toBe(1);
    } finally {
      session.close();
    }
  });
});
