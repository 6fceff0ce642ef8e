import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { rawConfig } from '../helpers/stack.js';
import { h2 } from './clients.js';
import { type RecordedRequest, type RecordedStack, rawExchange, startRecordedStack } from './recording-upstream.js';

/**
 * What the upstream is told about the client, as the exact bytes it receives: forwarding headers are
 * veer's unless the client is trusted, they are decided after hop-by-hop removal, header names with `_`
 * never reach an upstream that might fold them into framing, and veer routes on the key the upstream sees.
 */

let edge: RecordedStack;
let trusting: RecordedStack;
let rejecting: RecordedStack;
let passing: RecordedStack;

beforeAll(async () => {
  [edge, trusting, rejecting, passing] = await Promise.all([
    startRecordedStack(),
    startRecordedStack({ forwarding: { trust_client: true } }),
    startRecordedStack({ routing: { underscore_headers: 'reject' } }),
    startRecordedStack({ routing: { underscore_headers: 'pass' } }),
  ]);
});
afterAll(() => Promise.all([edge, trusting, rejecting, passing].map((s) => s.close())));

const H = 'Host: api.veer.test:8443\r\n';

/** Sends one raw request and returns what the upstream that served it recorded. */
async function through(stack: RecordedStack, payload: string): Promise<{ answer: string; got: RecordedRequest }> {
  const before = stack.all().length;
  const { answer } = await rawExchange(stack.port, payload);
  const got = stack.all().slice(before);
  expect(got).toHaveLength(1);
  return { answer, got: got[0]! };
}

describe('forwarding headers', () => {
  const FORGED =
    `GET /a HTTP/1.1\r\n${H}X-Forwarded-Proto: https\r\nX-Forwarded-Host: bank.example\r\n` +
    'X-Forwarded-For: 10.9.9.9\r\nForwarded: for=10.9.9.9;proto=https\r\nConnection: close\r\n\r\n';

  it('replaces what a client claims with what veer saw (forwarding.trust_client: false, the default)', async () => {
    const { got } = await through(edge, FORGED);
    expect(got.fields.get('x-forwarded-proto')).toEqual(['http']);
    expect(got.fields.get('x-forwarded-host')).toEqual(['api.veer.test:8443']);
    expect(got.fields.get('x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(got.fields.get('forwarded')).toBeUndefined();
  });

  it('keeps and appends to them behind a trusted proxy (trust_client: true)', async () => {
    const { got } = await through(trusting, FORGED);
    expect(got.fields.get('x-forwarded-proto')).toEqual(['https']);
    expect(got.fields.get('x-forwarded-host')).toEqual(['bank.example']);
    expect(got.fields.get('x-forwarded-for')).toEqual(['10.9.9.9, 127.0.0.1']);
    expect(got.fields.get('forwarded')).toEqual(['for=10.9.9.9;proto=https']);
  });

  it.each([
    ['the default', () => edge],
    ['trust_client: true', () => trusting],
  ])('still sets its own when the client lists them in Connection (%s)', async (_name, stack) => {
    const { got } = await through(
      stack(),
      `GET /a HTTP/1.1\r\n${H}X-Forwarded-Proto: https\r\nX-Forwarded-Host: x.example\r\n` +
        'Connection: close, x-forwarded-proto, x-forwarded-host, x-forwarded-for\r\n\r\n',
    );
    expect(got.fields.get('x-forwarded-proto')).toEqual(['http']);
    expect(got.fields.get('x-forwarded-host')).toEqual(['api.veer.test:8443']);
    expect(got.fields.get('x-forwarded-for')).toEqual(['127.0.0.1']);
  });
});

describe('header names with "_" (routing.underscore_headers)', () => {
  // An upstream stack that folds `_` into `-` (CGI/WSGI environ names) would read a second framing.
  const SMUGGLE =
    `POST /a HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer_Encoding: chunked\r\nX_Api_Key: k\r\nConnection: close\r\n\r\n` +
    '0\r\n\r\n';

  it('drops them by default: the upstream gets one framing and no "_" name', async () => {
    const { answer, got } = await through(edge, SMUGGLE);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(got.head).not.toMatch(/_/);
    expect(got.fields.get('content-length')).toEqual(['5']);
    expect(got.fields.has('transfer-encoding')).toBe(false);
    expect(got.body).toBe('0\r\n\r\n');
  });

  it('drops them over HTTP/2 too', async () => {
    const before = edge.all().length;
    const reply = await h2(edge.url, '/a', { headers: { transfer_encoding: 'chunked', 'x-ok': '1' } });
    expect(reply.status).toBe(200);
    const [got] = edge.all().slice(before);
    expect(got!.fields.get('x-ok')).toEqual(['1']);
    expect(got!.head).not.toMatch(/_/);
  });

  it('refuses the request with 400 under reject, and forwards nothing', async () => {
    const before = rejecting.all().length;
    const { answer, closed } = await rawExchange(rejecting.port, SMUGGLE);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain('Transfer_Encoding');
    expect(closed).toBe(true);
    expect(rejecting.all().length).toBe(before);
    const reply = await h2(rejecting.url, '/a', { headers: { x_api_key: 'k' } });
    expect(reply.status).toBe(400);
    expect(rejecting.all().length).toBe(before);
  });

  it('passes them on under pass', async () => {
    const { got } = await through(passing, SMUGGLE);
    expect(got.fields.get('transfer_encoding')).toEqual(['chunked']);
  });

  it('refuses a config whose key header would be dropped', () => {
    const r = buildConfig(rawConfig('http://a', 'http://b', { routing: { keys: [{ header: 'x_user' }] } }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.join('\n')).toContain('routing.keys[0].header');
    const passes = buildConfig(
      rawConfig('http://a', 'http://b', { routing: { keys: [{ header: 'x_user' }], underscore_headers: 'pass' } }),
    );
    expect(passes.ok).toBe(true);
  });
});

describe('the routing key is the one the upstream sees', () => {
  it('routes a pinned key to new', async () => {
    const before = edge.next.requests.length;
    const { answer } = await rawExchange(
      edge.port,
      `GET /a HTTP/1.1\r\n${H}X-User-Id: pinned\r\nConnection: close\r\n\r\n`,
    );
    expect(answer).toContain('x-veer-upstream: new');
    expect(edge.next.requests.slice(before)[0]!.fields.get('x-user-id')).toEqual(['pinned']);
  });

  it('does not route on a key header the client lists in Connection (the upstream never gets it)', async () => {
    const before = edge.legacy.requests.length;
    const { answer } = await rawExchange(
      edge.port,
      `GET /a HTTP/1.1\r\n${H}X-User-Id: pinned\r\nConnection: close, x-user-id\r\n\r\n`,
    );
    // Keyless at weight 0: legacy, as the upstream's view (no key) says.
    expect(answer).toContain('x-veer-upstream: legacy');
    expect(edge.legacy.requests.slice(before)[0]!.fields.has('x-user-id')).toBe(false);
  });

  it('routes a one-line key with a comma on the whole line, as the upstream reads it', async () => {
    const before = edge.legacy.requests.length;
    const { answer } = await rawExchange(
      edge.port,
      `GET /a HTTP/1.1\r\n${H}X-User-Id: pinned, other\r\nConnection: close\r\n\r\n`,
    );
    // "pinned, other" is not the pinned key "pinned".
    expect(answer).toContain('x-veer-upstream: legacy');
    expect(edge.legacy.requests.slice(before)[0]!.fields.get('x-user-id')).toEqual(['pinned, other']);
  });
});
