import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from '../helpers/stack.js';
import { rawExchange } from './recording-upstream.js';

/**
 * Findings of an outside probe on the admin port: it answered any Host (a DNS-rebinding page read the
 * API), cross-site pages could fill the audit log, routing keys were readable without a token, answers
 * lacked nosniff, and reasons and keys could carry terminal control sequences. Raw requests on real
 * sockets, as a browser or an attacker would send them.
 */

const OPERATOR = 'operator-token-origin-0123456789';
const READER = 'reader-token-origin-0123456789';
let stack: Stack;
let port: number;
let auditPath: string;
/** Added to the wall clock veer reads, so the audit limit's refill is stepped, not waited for. */
let offsetMs = 0;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'veer-admin-origin-'));
  writeFileSync(join(dir, 'op'), OPERATOR);
  writeFileSync(join(dir, 'read'), READER);
  auditPath = join(dir, 'audit.jsonl');
  stack = await startStack({
    clock: () => Date.now() + offsetMs,
    config: {
      admin: {
        tokens: [
          { name: 'op', file: join(dir, 'op') },
          { name: 'viewer', file: join(dir, 'read'), role: 'read' },
        ],
        allowed_hosts: ['veer-admin.ops.svc'],
      },
      routing: { overrides: { new: ['alice@example.com'] } },
      state: { path: join(dir, 'state.json'), audit_path: auditPath },
    },
  });
  port = Number(new URL(stack.adminUrl).port);
});
afterAll(() => stack.close());

/** One raw request to the admin port; the answer's status, headers (lower-case) and body. */
async function admin(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  if (body !== undefined)
    lines.push(`content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`);
  // rawExchange writes latin1, one byte per character: the UTF-8 bytes of the request, as such characters.
  const request = `${method} ${path} HTTP/1.1\r\n${lines.join('')}connection: close\r\n\r\n${body ?? ''}`;
  const { answer } = await rawExchange(port, Buffer.from(request, 'utf8').toString('latin1'));
  const head = answer.slice(0, answer.indexOf('\r\n\r\n')).split('\r\n');
  const parsed: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const colon = line.indexOf(':');
    parsed[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return {
    status: Number(head[0]!.split(' ')[1]),
    headers: parsed,
    body: Buffer.from(answer.slice(answer.indexOf('\r\n\r\n') + 4), 'latin1').toString('utf8'),
  };
}

const refusedLines = () =>
  readFileSync(auditPath, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { action: string; detail?: Record<string, unknown> })
    .filter((e) => e.action === 'refused');

describe('the admin listener answers only to its own names', () => {
  it.each(['/api/status', '/api/overrides', '/api/audit', '/metrics', '/', '/healthz'])(
    'answers 421 to Host: evil.example:PORT on %s, and reads nothing',
    async (path) => {
      const reply = await admin('GET', path, { host: `evil.example:${port}`, authorization: `Bearer ${OPERATOR}` });
      expect(reply.status).toBe(421);
      expect(JSON.parse(reply.body).error.code).toBe('misdirected_request');
      expect(reply.body).not.toContain('alice');
      expect(reply.body).not.toContain('veer_');
    },
  );

  it.each([
    `127.0.0.1:${0}`,
    'localhost:8081',
    'LOCALHOST',
    '[::1]:8081',
    '10.1.2.3:9090',
    'veer-admin.ops.svc:8081',
    'veer-admin.ops.svc.',
  ])('answers Host %s (an IP literal, localhost or a name in admin.allowed_hosts)', async (host) => {
    const reply = await admin('GET', '/healthz', { host: host.replace(':0', `:${port}`) });
    expect(reply.status).toBe(200);
  });

  it.each(['veer-admin.ops.svc.evil.example', 'localhost.evil.example', '127.0.0.1.nip.io', 'a:b:c'])(
    'answers 421 to the look-alike %s',
    async (host) => {
      expect((await admin('GET', '/healthz', { host })).status).toBe(421);
    },
  );
});

describe('cross-site requests', () => {
  const kill = JSON.stringify({ reason: 'from a page elsewhere' });

  it('refuses a cross-site POST with 403 before it is authenticated or audited', async () => {
    const before = refusedLines().length;
    const version = stack.veer.controller.snapshot.version;
    for (const headers of <Record<string, string>[]>[
      { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors', origin: 'http://evil.example' },
      { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'cors' },
      { origin: 'http://evil.example' },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' },
    ]) {
      const reply = await admin('POST', '/api/kill', { host: `127.0.0.1:${port}`, ...headers }, kill);
      expect(reply.status).toBe(403);
      expect(JSON.parse(reply.body).error.code).toBe('cross_site');
    }
    // Even with a valid token: a page elsewhere never acts through the operator's browser.
    const withToken = await admin(
      'POST',
      '/api/kill',
      { host: `127.0.0.1:${port}`, origin: 'http://evil.example', authorization: `Bearer ${OPERATOR}` },
      kill,
    );
    expect(withToken.status).toBe(403);
    expect(refusedLines().length).toBe(before);
    expect(stack.veer.controller.snapshot.version).toBe(version);
  });

  it('serves same-origin requests, typed URLs, and a link followed to the dashboard', async () => {
    const host = `127.0.0.1:${port}`;
    const same = await admin('GET', '/api/status', {
      host,
      'sec-fetch-site': 'same-origin',
      origin: `http://${host}`,
    });
    expect(same.status).toBe(200);
    expect((await admin('GET', '/api/status', { host, 'sec-fetch-site': 'none' })).status).toBe(200);
    const link = await admin('GET', '/', { host, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' });
    expect(link.status).toBe(200);
  });

  it('writes at most a burst of refused lines per source, then says how many it left out', async () => {
    const before = refusedLines().length;
    for (let i = 0; i < 40; i++) {
      await admin('POST', '/api/kill', { host: `127.0.0.1:${port}` }, kill);
    }
    const written = refusedLines().slice(before);
    expect(written.length).toBeGreaterThan(0);
    expect(written.length).toBeLessThanOrEqual(12);
    // A minute later the source may be audited again, and the line counts what was left out.
    offsetMs += 60_000;
    await admin('POST', '/api/kill', { host: `127.0.0.1:${port}` }, kill);
    const next = refusedLines().slice(before + written.length);
    expect(next).toHaveLength(1);
    expect(next[0]!.detail?.not_audited_before).toBe(40 - written.length);
  });
});

describe('routing keys need a token', () => {
  it('GET /api/overrides answers 401 without a token even though reads are open', async () => {
    const reply = await admin('GET', '/api/overrides', { host: `127.0.0.1:${port}` });
    expect(reply.status).toBe(401);
    expect(reply.body).not.toContain('alice');
  });

  it('GET /api/status leaves the overrides out without a token, and shows them to a read-only token', async () => {
    const open = await admin('GET', '/api/status', { host: `127.0.0.1:${port}` });
    expect(open.status).toBe(200);
    expect(JSON.parse(open.body).overrides).toBeUndefined();
    expect(open.body).not.toContain('alice');
    const reader = await admin('GET', '/api/status', { host: `127.0.0.1:${port}`, authorization: `Bearer ${READER}` });
    expect(JSON.parse(reader.body).overrides).toEqual({ new: ['alice@example.com'], legacy: [] });
    const overrides = await admin('GET', '/api/overrides', {
      host: `127.0.0.1:${port}`,
      authorization: `Bearer ${READER}`,
    });
    expect(overrides.status).toBe(200);
  });
});

describe('every admin answer says nosniff', () => {
  it.each([
    ['GET', '/api/status', 200],
    ['GET', '/nope', 404],
    ['DELETE', '/api/status', 405],
    ['POST', '/api/kill', 401],
    ['GET', '/', 200],
    ['GET', '/metrics', 200],
  ])('%s %s → %i with x-content-type-options: nosniff', async (method, path, status) => {
    const reply = await admin(method, path, { host: `127.0.0.1:${port}` }, method === 'POST' ? '{}' : undefined);
    expect(reply.status).toBe(status);
    expect(reply.headers['x-content-type-options']).toBe('nosniff');
  });

  it('also on a 421 and on a request the parser refuses', async () => {
    expect((await admin('GET', '/', { host: 'evil.example' })).headers['x-content-type-options']).toBe('nosniff');
    const { answer } = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX A: b\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer.toLowerCase()).toContain('x-content-type-options: nosniff');
  });
});

describe('reasons and keys with control characters', () => {
  const host = () => `127.0.0.1:${port}`;
  const auth = { authorization: `Bearer ${OPERATOR}` };

  it.each([
    ['a CR/LF that would forge an audit row', 'oops\r\n2026-01-01T00:00:00Z  admin:oncall  kill'],
    ['an ESC sequence', 'x\u001b]0;pwned\u0007'],
    ['a C1 CSI', 'x\u009b2J'],
    ['a bidi override', 'abc\u202edcba'],
  ])('refuses a reason with %s (400, nothing changes)', async (_name, reason) => {
    const version = stack.veer.controller.snapshot.version;
    const reply = await admin('PUT', '/api/weight', { host: host(), ...auth }, JSON.stringify({ percent: 5, reason }));
    expect(reply.status).toBe(400);
    expect(JSON.parse(reply.body).error.message).toMatch(/^reason: must not contain control characters \(found U\+/);
    expect(stack.veer.controller.snapshot.version).toBe(version);
  });

  it('refuses a key with a control character, and takes a reason with a TAB', async () => {
    const key = await admin(
      'PUT',
      '/api/overrides',
      { host: host(), ...auth },
      JSON.stringify({ keys: { 'user\u001b[31m': 'new' }, reason: 'qa' }),
    );
    expect(key.status).toBe(400);
    expect(JSON.parse(key.body).error.message).toMatch(/must not contain control characters \(found U\+001B/);
    const tab = await admin(
      'PUT',
      '/api/weight',
      { host: host(), ...auth },
      JSON.stringify({ percent: 5, reason: 'step\tone' }),
    );
    expect(tab.status).toBe(200);
  });
});
