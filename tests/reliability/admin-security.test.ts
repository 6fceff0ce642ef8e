import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { memoryLogger, rawConfig, type Stack, startStack } from '../helpers/stack.js';
import { h1 } from './clients.js';
import { backTo, openFds, pooledFds } from './faults.js';

/**
 * The admin plane under attack: loopback by default, tokens never in a log line or audit entry, every
 * refused attempt audited, bodies capped, and the listener still answering after a flood of bad input.
 */

const OPERATOR = 'operator-token-a1b2c3d4e5f6';
const WRONG = 'wrong-token-z9y8x7w6v5u4t3';
let stack: Stack;
let log: ReturnType<typeof memoryLogger>;
let auditPath: string;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'veer-admin-sec-'));
  writeFileSync(join(dir, 'token'), OPERATOR);
  auditPath = join(dir, 'audit.jsonl');
  log = memoryLogger('debug');
  stack = await startStack({
    logger: log.logger,
    config: {
      admin: { tokens: [{ name: 'op', file: join(dir, 'token') }], max_body_bytes: 4096 },
      state: { path: join(dir, 'state.json'), audit_path: auditPath },
      log: { level: 'debug' },
    },
  });
});
afterAll(() => stack.close());

function admin(
  path: string,
  init: { method?: string; token?: string | null; body?: string; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...init.headers };
  const token = init.token === undefined ? OPERATOR : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  return fetch(`${stack.adminUrl}${path}`, { method: init.method ?? 'GET', headers, body: init.body });
}

interface AuditEntry {
  action: string;
  actor: string;
}

function audit(): AuditEntry[] {
  return readFileSync(auditPath, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditEntry);
}

describe('admin security', () => {
  it('binds to loopback unless told otherwise, and refuses a public bind without an operator token', () => {
    const r = buildConfig(rawConfig('http://a', 'http://b', { admin: {} }));
    if (!r.ok) throw new Error(r.problems.join());
    // rawConfig sets 127.0.0.1 itself; the default must be the same when nothing is said.
    const bare = buildConfig({
      upstreams: { legacy: { url: 'http://a' }, new: { url: 'http://b' } },
      rollout: { id: 'r' },
    });
    expect(bare.ok && bare.config.admin.host).toBe('127.0.0.1');
    expect(stack.veer.adminAddress?.address).toBe('127.0.0.1');
    const open = buildConfig(rawConfig('http://a', 'http://b', { admin: { host: '0.0.0.0' } }));
    expect(open.ok).toBe(false);
  });

  it('audits every refused attempt, and writes no token to the logs or the audit log', async () => {
    const refusedBefore = audit().filter((e) => e.action === 'refused').length;
    expect((await admin('/api/kill', { method: 'POST', token: null, body: '{"reason":"x"}' })).status).toBe(401);
    expect((await admin('/api/kill', { method: 'POST', token: WRONG, body: '{"reason":"x"}' })).status).toBe(401);
    expect((await admin('/api/weight', { method: 'PUT', token: `${OPERATOR}x`, body: '{"percent":1}' })).status).toBe(
      401,
    );
    const ok = await admin('/api/weight', { method: 'PUT', body: JSON.stringify({ percent: 20, reason: 'step' }) });
    expect(ok.status).toBe(200);
    expect(audit().filter((e) => e.action === 'refused').length).toBe(refusedBefore + 3);
    const everything = JSON.stringify(log.lines()) + readFileSync(auditPath, 'utf8');
    expect(everything).not.toContain(OPERATOR);
    expect(everything).not.toContain(WRONG);
  });

  it('caps request bodies: 413 on a declared or a streamed body over admin.max_body_bytes, nothing changes', async () => {
    const version = stack.veer.controller.snapshot.version;
    const big = JSON.stringify({ reason: 'x'.repeat(100_000) });
    const declared = await admin('/api/kill', { method: 'POST', body: big });
    expect(declared.status).toBe(413);
    // Chunked, with no length to refuse it early.
    const streamed = await fetch(`${stack.adminUrl}/api/kill`, {
      method: 'POST',
      headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 50; i++) c.enqueue(new TextEncoder().encode('x'.repeat(10_000)));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(stack.veer.controller.snapshot.version).toBe(version);
  });

  it('closes the connection after a 413 instead of reading the rest of the body', async () => {
    const port = Number(new URL(stack.adminUrl).port);
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d: Buffer) => {
      answer += d.toString('utf8');
    });
    const closed = new Promise<number>((resolve) => {
      const t0 = Date.now();
      socket.on('close', () => resolve(Date.now() - t0));
    });
    // Declares 10 MB, sends 1 KB, then waits: the answer and the close must not wait for the rest.
    socket.write(
      `POST /api/kill HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${OPERATOR}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n${'x'.repeat(1024)}`,
    );
    const timer = setTimeout(() => socket.destroy(), 5_000);
    const ms = await closed;
    clearTimeout(timer);
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer.toLowerCase()).toContain('connection: close');
    expect(ms).toBeLessThan(2_000);
  });

  it('keeps answering through a flood of bad requests, and lets go of every connection', async () => {
    const port = Number(new URL(stack.adminUrl).port);
    const fds = openFds() - pooledFds(stack.veer);
    const garbage = [
      'GARBAGE\r\n\r\n',
      'GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
      `GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      'POST /api/kill HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{"bad":',
      'GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
      'DELETE /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
      `POST /api/kill HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${WRONG}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
    ];
    const one = (payload: string) =>
      new Promise<void>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.end(payload));
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
        socket.resume();
        setTimeout(() => socket.destroy(), 3000).unref();
      });
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 1400 }, (_, i) => one(garbage[i % garbage.length]!)));
    expect(Date.now() - t0).toBeLessThan(10_000);
    // On fresh connections: a pooled one may have been closed by the 413s above.
    expect((await h1(stack.adminUrl, '/healthz')).status).toBe(200);
    expect((await h1(stack.adminUrl, '/api/status', { headers: { authorization: `Bearer ${OPERATOR}` } })).status).toBe(
      200,
    );
    await backTo(() => openFds() - pooledFds(stack.veer), fds, 4);
  });
});
