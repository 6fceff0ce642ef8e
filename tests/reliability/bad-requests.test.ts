import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack, waitFor } from '../helpers/stack.js';
import { ERROR_CODE, FLAG, FRAME, frame, literal, RawH2 } from './h2-frames.js';

/**
 * Request smuggling and malformed requests. veer re-frames every body it forwards (undici writes its
 * own Content-Length or chunking), so what the upstream sees can only be ambiguous if veer accepts an
 * ambiguous request: each of these must be refused (400/431, connection closed) or, over HTTP/2, reset,
 * and no upstream may receive a complete request from it — nor the request smuggled inside it.
 */

interface Seen {
  method: string;
  url: string;
  complete: boolean;
  headers: http.IncomingHttpHeaders;
}

let stack: Stack;
let upstream: http.Server;
const seen: Seen[] = [];

beforeAll(async () => {
  // An upstream that records each request and whether its body arrived complete.
  upstream = http.createServer((req, res) => {
    const record: Seen = { method: req.method ?? '', url: req.url ?? '', complete: false, headers: req.headers };
    seen.push(record);
    req.resume();
    req.on('end', () => {
      record.complete = true;
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  stack = await startStack({
    config: { upstreams: { legacy: { url }, new: { url } }, listen: { max_header_size: 8192 } },
  });
});
afterAll(async () => {
  await stack.close();
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
});

/** Writes raw bytes on a fresh connection; resolves with what came back and whether veer closed it. */
function raw(payload: string): Promise<{ answer: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(Number(new URL(stack.url).port), '127.0.0.1');
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ answer, closed: false });
    }, 2000);
    socket.on('data', (d) => (answer += d));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ answer, closed: true });
    });
    socket.write(payload);
  });
}

const H = 'Host: veer.test\r\n';
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: veer.test\r\n\r\n';

const REFUSED: [string, string, number][] = [
  [
    'Content-Length and Transfer-Encoding together',
    `POST /a HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    400,
  ],
  [
    'two different Content-Lengths',
    `POST /a HTTP/1.1\r\n${H}Content-Length: 4\r\nContent-Length: 30\r\n\r\nabcd${SMUGGLED}`,
    400,
  ],
  ['two equal Content-Lengths', `POST /a HTTP/1.1\r\n${H}Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd`, 400],
  ['a Content-Length list', `POST /a HTTP/1.1\r\n${H}Content-Length: 4, 4\r\n\r\nabcd`, 400],
  ['a signed Content-Length', `POST /a HTTP/1.1\r\n${H}Content-Length: +4\r\n\r\nabcd`, 400],
  ['a negative Content-Length', `POST /a HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, 400],
  ['chunked not the last coding', `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`, 400],
  ['an unknown coding', `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, 400],
  [
    'Transfer-Encoding twice',
    `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    400,
  ],
  ['a space before the colon', `POST /a HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400],
  [
    'a chunk size that is not hex',
    `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`,
    400,
  ],
  [
    'a chunk size that overflows',
    `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n`,
    400,
  ],
  ['chunk lines ended by LF alone', `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n`, 400],
  [
    'a control character in a chunk extension',
    `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3;\x01\r\nabc\r\n0\r\n\r\n`,
    400,
  ],
  ['obs-fold (a folded header line)', `GET /a HTTP/1.1\r\n${H}X-A: one\r\n two\r\n\r\n`, 400],
  ['a space in a header name', `GET /a HTTP/1.1\r\n${H}X A: one\r\n\r\n`, 400],
  ['a separator in a header name', `GET /a HTTP/1.1\r\n${H}X(A): one\r\n\r\n`, 400],
  ['NUL in a header value', `GET /a HTTP/1.1\r\n${H}X-A: o\x00ne\r\n\r\n`, 400],
  ['a bare CR in a header value', `GET /a HTTP/1.1\r\n${H}X-A: o\rne\r\n\r\n`, 400],
  ['header lines ended by LF alone', `GET /a HTTP/1.1\n${H.replace('\r\n', '\n')}\n`, 400],
  ['an unknown HTTP version', `GET /a HTTP/9.9\r\n${H}\r\n`, 400],
  ['two Host headers', `GET /a HTTP/1.1\r\n${H}Host: other.test\r\n\r\n`, 400],
  ['an over-long request line', `GET /${'a'.repeat(10_000)} HTTP/1.1\r\n${H}\r\n`, 431],
  ['an over-long header block', `GET /a HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(10_000)}\r\n\r\n`, 431],
];

describe('HTTP/1.1: ambiguous or malformed requests are refused and never forwarded', () => {
  it.each(REFUSED)('%s → %i, connection closed', async (_name, payload, status) => {
    const before = seen.length;
    const { answer, closed } = await raw(payload);
    expect(answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(answer).toContain('"code":"bad_request"');
    expect(closed).toBe(true);
    expect(seen.slice(before)).toEqual([]);
  });

  it('a chunked body that turns malformed midway: 400, and the upstream never gets a complete request', async () => {
    const before = seen.length;
    const { answer, closed } = await raw(
      `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n${SMUGGLED}`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(closed).toBe(true);
    // The head may have gone on (veer streams bodies); the body never completes there.
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.slice(before).filter((s) => s.complete)).toEqual([]);
    expect(seen.some((s) => s.url === '/smuggled')).toBe(false);
  });

  it('counts what it refuses in veer_rejected_requests_total', async () => {
    const values = (await stack.veer.metrics.rejectedRequests.get()).values;
    const byReason = Object.fromEntries(values.map((v) => [v.labels.reason, v.value]));
    expect(byReason.bad_request).toBeGreaterThanOrEqual(REFUSED.filter(([, , s]) => s === 400).length);
    expect(byReason.header_too_large).toBeGreaterThanOrEqual(2);
  });

  it('a well-formed request on the same listener is forwarded, re-framed by veer', async () => {
    const before = seen.length;
    const { answer } = await raw(
      `POST /ok HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(seen.slice(before)).toMatchObject([{ method: 'POST', url: '/ok', complete: true }]);
  });
});

const base = (method = 'GET', path = '/h2') => [
  literal(':method', method),
  literal(':scheme', 'http'),
  literal(':path', path),
  literal(':authority', 'veer.test'),
];

/** One HEADERS (and maybe a DATA) on a fresh raw h2c connection; resolves with how stream 1 ended. */
async function h2Raw(block: Buffer[], data?: Buffer): Promise<{ status: 'answered' | 'reset'; rstCode?: number }> {
  const conn = new RawH2(Number(new URL(stack.url).port));
  await conn.open();
  conn.ack();
  conn.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | (data ? 0 : FLAG.END_STREAM), 1, Buffer.concat(block)));
  if (data) conn.write(frame(FRAME.DATA, FLAG.END_STREAM, 1, data));
  await waitFor(
    () => conn.frames.some((f) => f.streamId === 1 && (f.type === FRAME.RST_STREAM || f.type === FRAME.DATA)),
    2000,
  );
  const rst = conn.frames.find((f) => f.type === FRAME.RST_STREAM && f.streamId === 1);
  conn.destroy();
  return rst ? { status: 'reset', rstCode: rst.payload.readUInt32BE(0) } : { status: 'answered' };
}

describe('HTTP/2: malformed requests are reset and never forwarded', () => {
  const RESET: [string, Buffer[], Buffer?][] = [
    ['connection', [...base(), literal('connection', 'keep-alive')]],
    ['keep-alive', [...base(), literal('keep-alive', '5')]],
    ['proxy-connection', [...base(), literal('proxy-connection', 'keep-alive')]],
    ['transfer-encoding', [...base(), literal('transfer-encoding', 'chunked')]],
    ['upgrade', [...base(), literal('upgrade', 'websocket')]],
    ['te other than trailers', [...base(), literal('te', 'gzip')]],
    ['an upper-case header name', [...base(), literal('X-Upper', '1')]],
    [
      'a pseudo-header after a regular one',
      [literal(':method', 'GET'), literal('x-a', '1'), literal(':scheme', 'http'), literal(':path', '/h2')],
    ],
    ['no :path', [literal(':method', 'GET'), literal(':scheme', 'http'), literal(':authority', 'veer.test')]],
    ['two :path', [...base(), literal(':path', '/other')]],
    ['an unknown pseudo-header', [...base(), literal(':smuggle', '1')]],
    [
      'a space in :path',
      [
        literal(':method', 'GET'),
        literal(':scheme', 'http'),
        literal(':path', '/a HTTP/1.1\r\nx: y'),
        literal(':authority', 'veer.test'),
      ],
    ],
    ['content-length larger than the body', [...base('POST'), literal('content-length', '10')], Buffer.from('abc')],
    ['content-length smaller than the body', [...base('POST'), literal('content-length', '2')], Buffer.from('abc')],
  ];

  it.each(RESET)('a request with %s is reset (PROTOCOL_ERROR)', async (_name, block, data) => {
    const before = seen.length;
    const result = await h2Raw(block, data);
    expect(result).toEqual({ status: 'reset', rstCode: ERROR_CODE.PROTOCOL_ERROR });
    expect(seen.slice(before).filter((s) => s.complete)).toEqual([]);
  });

  it('invalid header names and values (CR, LF, NUL, spaces) never reach the upstream', async () => {
    const before = seen.length;
    const result = await h2Raw([
      ...base(),
      literal('x-crlf', 'a\r\nx-injected: 1'),
      literal('x-lf', 'a\nx-injected: 2'),
      literal('x-nul', 'a\x00b'),
      literal('x bad', '1'),
      literal('x-ok', 'fine'),
    ]);
    // nghttp2 drops each invalid field; what is left is well-formed and goes on.
    expect(result.status).toBe('answered');
    const got = seen.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]!.headers['x-ok']).toBe('fine');
    expect(got[0]!.headers['x-injected']).toBeUndefined();
    for (const name of ['x-crlf', 'x-lf', 'x-nul', 'x bad']) expect(got[0]!.headers[name]).toBeUndefined();
  });

  it('te: trailers is allowed, and not forwarded (hop-by-hop)', async () => {
    const before = seen.length;
    const result = await h2Raw([...base(), literal('te', 'trailers')]);
    expect(result.status).toBe('answered');
    expect(seen.slice(before)[0]!.headers.te).toBeUndefined();
  });
});
