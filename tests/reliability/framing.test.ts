import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/stack.js';
import { errorCode, h2 } from './clients.js';
import { ERROR_CODE, FLAG, FRAME, frame, literal, RawH2 } from './h2-frames.js';
import { type RecordedStack, rawExchange, rejectedByReason, startRecordedStack } from './recording-upstream.js';

/**
 * Findings of an outside probe on request framing, each replayed as raw bytes against veer with upstreams
 * that record the exact bytes they receive: what veer refuses must reach no upstream at all, and what it
 * accepts must reach it framed one way only.
 */

let stack: RecordedStack;

beforeAll(async () => {
  stack = await startRecordedStack();
});
afterAll(() => stack.close());

const H = 'Host: veer.test\r\n';
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: veer.test\r\n\r\n';

function statusLine(answer: string): string {
  return answer.slice(0, answer.indexOf('\r\n'));
}

function jsonCode(answer: string): string | undefined {
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  try {
    return (JSON.parse(body) as { error: { code: string } }).error.code;
  } catch {
    return undefined;
  }
}

describe('HTTP/1.1 framing veer does not forward', () => {
  const REFUSED: [string, string, string, string][] = [
    [
      'Transfer-Encoding: gzip, chunked (the gzip would be dropped on re-framing)',
      `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n${SMUGGLED}`,
      'HTTP/1.1 501 Not Implemented',
      'unsupported_transfer_encoding',
    ],
    [
      'Transfer-Encoding: identity, chunked',
      `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n`,
      'HTTP/1.1 501 Not Implemented',
      'unsupported_transfer_encoding',
    ],
    [
      'a coding that does not end in chunked',
      `POST /a HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      'HTTP/1.1 400 Bad Request',
      'bad_request',
    ],
    [
      'Transfer-Encoding in an HTTP/1.0 request',
      `POST /a HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
      'HTTP/1.1 400 Bad Request',
      'bad_request',
    ],
    ['an HTTP/1.1 request without Host', 'GET /a HTTP/1.1\r\n\r\n', 'HTTP/1.1 400 Bad Request', 'bad_request'],
    ['HTTP/2.0 on the HTTP/1.1 parser', `GET /a HTTP/2.0\r\n${H}\r\n`, 'HTTP/1.1 400 Bad Request', 'bad_request'],
    ['an HTTP/0.9 request line (no version)', 'GET /a\r\n\r\n', 'HTTP/1.1 400 Bad Request', 'bad_request'],
    [
      'CONNECT',
      'CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n',
      'HTTP/1.1 400 Bad Request',
      'bad_request',
    ],
    [
      'a Host that is not host[:port]',
      'GET /a HTTP/1.1\r\nHost: a@evil.example:80/x?y\r\n\r\n',
      'HTTP/1.1 400 Bad Request',
      'bad_request',
    ],
    ['an empty Host', 'GET /a HTTP/1.1\r\nHost: \r\n\r\n', 'HTTP/1.1 400 Bad Request', 'bad_request'],
    [
      'the routing key header twice (node would join it as "a, b")',
      `GET /a HTTP/1.1\r\n${H}X-User-Id: pinned\r\nX-User-Id: someone\r\n\r\n`,
      'HTTP/1.1 400 Bad Request',
      'bad_request',
    ],
  ];

  it.each(REFUSED)('%s: answered, connection closed, no upstream gets a byte', async (_name, payload, line, code) => {
    const before = stack.all().length;
    const { answer, closed } = await rawExchange(stack.port, payload);
    expect(statusLine(answer)).toBe(line);
    expect(jsonCode(answer)).toBe(code);
    expect(closed).toBe(true);
    expect(stack.all().length).toBe(before);
  });

  it('counts them in veer_rejected_requests_total, the 501s under their own reason', async () => {
    const byReason = await rejectedByReason(stack.veer);
    expect(byReason.unsupported_transfer_encoding).toBeGreaterThanOrEqual(2);
    expect(byReason.bad_request).toBeGreaterThanOrEqual(REFUSED.length - 2);
  });

  it('takes chunked in any case, and forwards the body re-framed with the upstream seeing one framing', async () => {
    const before = stack.legacy.requests.length;
    const { answer } = await rawExchange(
      stack.port,
      `POST /ok HTTP/1.1\r\n${H}Transfer-Encoding: Chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    );
    expect(statusLine(answer)).toBe('HTTP/1.1 200 OK');
    const [got] = stack.legacy.requests.slice(before);
    expect(got!.head.startsWith('POST /ok HTTP/1.1\r\n')).toBe(true);
    const framing = [...got!.fields.keys()].filter((n) => n === 'content-length' || n === 'transfer-encoding');
    expect(framing).toHaveLength(1);
    expect(got!.body.replace(/\r\n/g, '|')).toMatch(/^(3\|abc\|0\|\||abc)$/);
  });

  it('serves an HTTP/1.0 request without Host (1.0 does not require one)', async () => {
    const { answer } = await rawExchange(stack.port, 'GET /old HTTP/1.0\r\n\r\n');
    expect(statusLine(answer)).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe('HTTP/1.1 pipelining', () => {
  it('answers a malformed request after the response to the valid one before it, never in its place', async () => {
    const before = stack.legacy.requests.length;
    const { answer, closed } = await rawExchange(
      stack.port,
      `POST /first HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabc` + `GET /second HTTP/1.1\r\n${H}X A: bad\r\n\r\n`,
    );
    expect(closed).toBe(true);
    // The POST ran upstream once; its client sees its 200 first, then the 400 for what followed.
    expect(stack.legacy.requests.slice(before).map((r) => r.head.split(' ')[1])).toEqual(['/first']);
    const first = answer.indexOf('HTTP/1.1 200 OK');
    const second = answer.indexOf('HTTP/1.1 400 Bad Request');
    expect(first).toBe(0);
    expect(second).toBeGreaterThan(first);
    expect(answer.slice(first, second)).toContain('\r\n\r\nok');
  });

  it('does the same for a follow-up refused by veer rather than by the parser', async () => {
    const before = stack.legacy.requests.length;
    const { answer, closed } = await rawExchange(
      stack.port,
      `GET /one HTTP/1.1\r\n${H}\r\n` + `POST /two HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
    );
    expect(closed).toBe(true);
    expect(stack.legacy.requests.slice(before).map((r) => r.head.split(' ')[1])).toEqual(['/one']);
    expect(statusLine(answer)).toBe('HTTP/1.1 200 OK');
    expect(answer.indexOf('HTTP/1.1 501 Not Implemented')).toBeGreaterThan(0);
  });
});

describe('HTTP/1.1 pipelining, CONNECT', () => {
  it("answers a CONNECT pipelined behind a GET after the GET's response", async () => {
    const before = stack.legacy.requests.length;
    const { answer, closed } = await rawExchange(
      stack.port,
      `GET /before-connect HTTP/1.1\r\n${H}\r\nCONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n`,
    );
    expect(closed).toBe(true);
    expect(stack.legacy.requests.slice(before).map((r) => r.head.split(' ')[1])).toEqual(['/before-connect']);
    expect(statusLine(answer)).toBe('HTTP/1.1 200 OK');
    expect(answer.indexOf('HTTP/1.1 400 Bad Request')).toBeGreaterThan(answer.indexOf('\r\n\r\nok'));
  });
});

describe('HTTP/2 requests checked as HTTP/1.1 ones are', () => {
  it.each([
    ['get', 'a lower-case method'],
    ['FOO', 'an unknown method'],
  ])(':method %s (%s) is refused with 400 and not forwarded', async (method) => {
    const before = stack.all().length;
    const reply = await h2(stack.url, '/a', { method });
    expect(reply.status).toBe(400);
    expect(errorCode(reply)).toBe('bad_request');
    expect(stack.all().length).toBe(before);
  });

  it('refuses an :authority that is not host[:port]', async () => {
    const before = stack.all().length;
    const reply = await h2(stack.url, '/a', { headers: { ':authority': 'a@evil.example:80' } });
    expect(reply.status).toBe(400);
    expect(stack.all().length).toBe(before);
  });

  it('refuses the routing key header sent twice', async () => {
    const before = stack.all().length;
    const conn = new RawH2(stack.port);
    await conn.open();
    conn.ack();
    const block = Buffer.concat([
      literal(':method', 'GET'),
      literal(':scheme', 'http'),
      literal(':path', '/a'),
      literal(':authority', 'veer.test'),
      literal('x-user-id', 'pinned'),
      literal('x-user-id', 'someone'),
    ]);
    conn.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, block));
    await waitFor(() => conn.responseHeaders(1) !== undefined, 2000);
    // 0x8c: `:status 400` from HPACK's static table.
    expect(conn.responseHeaders(1)![0]).toBe(0x8c);
    conn.destroy();
    expect(stack.all().length).toBe(before);
  });

  it('counts the streams nghttp2 resets itself in veer_rejected_requests_total{reason="stream_refused"}', async () => {
    const before = (await rejectedByReason(stack.veer)).stream_refused ?? 0;
    const conn = new RawH2(stack.port);
    await conn.open();
    conn.ack();
    const base = [
      literal(':method', 'GET'),
      literal(':scheme', 'http'),
      literal(':path', '/a'),
      literal(':authority', 'veer.test'),
    ];
    const bad = (id: number, extra: Buffer) =>
      frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, Buffer.concat([...base, extra]));
    conn.write(bad(1, literal('connection', 'keep-alive')));
    conn.write(bad(3, literal('upgrade', 'h2c')));
    conn.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 5, Buffer.concat(base)));
    conn.write(bad(7, literal('transfer-encoding', 'chunked')));
    await waitFor(() => conn.count(FRAME.RST_STREAM) >= 3 && conn.responseHeaders(5) !== undefined, 2000);
    expect(conn.frames.filter((f) => f.type === FRAME.RST_STREAM).map((f) => f.payload.readUInt32BE(0))).toEqual([
      ERROR_CODE.PROTOCOL_ERROR,
      ERROR_CODE.PROTOCOL_ERROR,
      ERROR_CODE.PROTOCOL_ERROR,
    ]);
    // Streams 1 and 3 are counted when stream 5 arrives; 7 when the connection ends.
    conn.socket.end();
    await conn.done;
    await waitFor(() => true);
    const after = (await rejectedByReason(stack.veer)).stream_refused ?? 0;
    expect(after - before).toBe(3);
  });

  it('still serves a well-formed HTTP/2 request', async () => {
    const session = http2.connect(stack.url);
    session.on('error', () => {});
    const reply = await h2(stack.url, '/fine');
    session.close();
    expect(reply.status).toBe(200);
    expect(reply.headers['x-veer-upstream']).toBe('legacy');
  });
});
