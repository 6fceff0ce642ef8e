import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, serveHttp, startStack } from '../helpers/stack.js';

/**
 * An upstream may answer before it has read the request body (413 for a prompt too large, 401, 429).
 * The client, still uploading, must get that answer and not be left blocked on flow control or a socket
 * nobody reads: HTTP/2 gets RST_STREAM(NO_ERROR) after the response (RFC 9113 §8.1); over HTTP/1.1 veer
 * reads and drops the rest of the body, and the connection goes on serving.
 */

const UPLOAD = 20 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

describe.each([
  // Answers at once, then reads and drops the rest (node's default): veer relays the 413 itself.
  ['reads the rest and drops it', false, [413]],
  // Answers at once and closes, resetting the upload: veer may see the reset before the answer (502).
  ['closes at once', true, [413, 502]],
] as const)('an upstream that answers before the request body is in, and %s', (_name, close, statuses) => {
  let upstream: Awaited<ReturnType<typeof serveHttp>>;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await serveHttp((_req, res) => {
      res.writeHead(413, { 'content-type': 'application/json', ...(close ? { connection: 'close' } : {}) });
      res.end('{"error":{"message":"prompt too large"}}');
    });
    stack = await startStack({ config: { upstreams: { legacy: { url: upstream.url } }, rollout: { weight: 0 } } });
  });
  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
  });

  it('gives an HTTP/2 client the answer and an RST_STREAM(NO_ERROR), so it stops uploading', async () => {
    const session = http2.connect(stack.url);
    try {
      const result = await new Promise<{ status: number; body: string; rst: number; sent: number }>((resolve) => {
        const req = session.request({ ':method': 'POST', ':path': '/v1/chat/completions' });
        let status = 0;
        let body = '';
        let sent = 0;
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('data', (d) => (body += d));
        req.on('error', () => {});
        req.on('close', () => resolve({ status, body, rst: req.rstCode, sent }));
        const pump = () => {
          while (sent < UPLOAD && !req.destroyed) {
            sent += CHUNK.length;
            if (!req.write(CHUNK)) return void req.once('drain', pump);
          }
          if (!req.destroyed) req.end();
        };
        pump();
      });
      expect(statuses).toContain(result.status);
      if (result.status === 413) expect(result.body).toContain('prompt too large');
      expect(result.rst).toBe(http2.constants.NGHTTP2_NO_ERROR);
      expect(result.sent).toBeLessThan(UPLOAD);
    } finally {
      session.close();
    }
  }, 10_000);

  it('gives an HTTP/1.1 client the answer, and does not leave it writing into a connection nobody reads', async () => {
    // A raw client: it sends the whole declared body whatever comes back, then a second request.
    const port = Number(new URL(stack.url).port);
    const result = await new Promise<{ first: number; after: string }>((resolve) => {
      let received = '';
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: ${UPLOAD}\r\n\r\n`);
        let sent = 0;
        const pump = () => {
          while (sent < UPLOAD && !socket.destroyed) {
            sent += CHUNK.length;
            if (!socket.write(CHUNK)) return void socket.once('drain', pump);
          }
          if (!socket.destroyed) socket.write('GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n');
        };
        pump();
      });
      const first = () => Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0);
      socket.on('data', (d: Buffer) => {
        received += d.toString('latin1');
        if ((received.match(/HTTP\/1\.1 \d{3}/g) ?? []).length >= 2) {
          socket.destroy();
          resolve({ first: first(), after: 'answered the next request on the same connection' });
        }
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve({ first: first(), after: 'closed' }));
    });
    expect(statuses).toContain(result.first);
    // Either the rest of the body was read and dropped (the connection still serves), or it was closed.
    expect(['answered the next request on the same connection', 'closed']).toContain(result.after);
    if (result.first === 413) expect(result.after).toBe('answered the next request on the same connection');
  }, 10_000);
});
