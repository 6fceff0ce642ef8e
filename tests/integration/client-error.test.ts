// answerClientError on a real http.Server: a JSON 408 for a request too slow to arrive, and nothing
// written into a response that is already streaming.

import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerClientError } from '../../src/proxy/errors.js';

describe('answerClientError', () => {
  let server: http.Server;
  let port: number;
  const reasons: (string | undefined)[] = [];

  beforeAll(async () => {
    server = http.createServer({ requestTimeout: 400, connectionsCheckingInterval: 100 }, (req, res) => {
      // Answers at once without reading the body: the response streams while the body never completes.
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: first\n\n');
      }
    });
    server.on('clientError', (err, socket) => reasons.push(answerClientError(err, socket)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  /** Sends a request whose body never completes; resolves with all the client read until the close. */
  const slowBody = (path: string) =>
    new Promise<string>((resolve) => {
      let text = '';
      const socket = net.connect(port, '127.0.0.1', () =>
        socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\ncontent-length: 100\r\n\r\n{"partial":`),
      );
      socket.on('data', (d) => (text += d));
      socket.on('close', () => resolve(text));
      socket.on('error', () => {});
    });

  it('answers a request whose body is too slow with a JSON 408 and closes', async () => {
    reasons.length = 0;
    const text = await slowBody('/wait');
    expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toEqual({
      error: { code: 'request_timeout', message: 'ERR_HTTP_REQUEST_TIMEOUT' },
    });
    expect(reasons).toEqual(['request_timeout']);
  });

  it('writes nothing into a response already under way: the connection is only closed', async () => {
    reasons.length = 0;
    const text = await slowBody('/stream');
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toContain('data: first');
    expect(text).not.toContain('408');
    expect(reasons.length).toBeGreaterThan(0);
    expect(reasons.every((r) => r === undefined)).toBe(true);
  });
});
