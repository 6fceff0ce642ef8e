// Admin API against a real veer and real mock upstreams: kill under load, auth, bad input, reload, status.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type MockUpstream, startMockUpstream } from '../../bench/mock-upstream.js';
import { TokenAuth } from '../../src/admin/auth.js';
import { loadConfigFile } from '../../src/config/load.js';
import { bucketOf } from '../../src/routing/table.js';
import { Veer } from '../../src/veer.js';
import { type Stack, silentLogger, startStack, stateFiles, waitFor } from '../helpers/stack.js';

const OPERATOR = 'operator-secret-0123456789';
const READER = 'reader-secret-0123456789ab';

function tokenFiles(): { name: string; file: string; role?: string }[] {
  const dir = mkdtempSync(join(tmpdir(), 'veer-tokens-'));
  writeFileSync(join(dir, 'op'), `${OPERATOR}\n`);
  writeFileSync(join(dir, 'ro'), `${READER}\n`);
  return [
    { name: 'alice', file: join(dir, 'op') },
    { name: 'viewer', file: join(dir, 'ro'), role: 'read' },
  ];
}

interface Reply {
  status: number;
  body: Record<string, any>;
}

async function api(base: string, method: string, path: string, body?: unknown, token: string | null = OPERATOR) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await request(`${base}${path}`, {
    method: method as 'GET',
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  return { status: res.statusCode, body: JSON.parse(text) } as Reply;
}

/** Keys the hash puts on new (bucket < weight) or on legacy, under a salt. */
function keysOn(side: 'new' | 'legacy', salt: string, weightBp: number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const k = `user-${i}`;
    if (bucketOf(salt, k) < weightBp === (side === 'new')) out.push(k);
  }
  return out;
}

describe('admin API', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      next: { ttfb: 5, tokens: 6, tokenIntervalMs: 40 },
      legacy: { ttfb: 5, tokens: 6, tokenIntervalMs: 40 },
      config: {
        admin: { tokens: tokenFiles() },
        rollout: { id: 'admin-test', weight: 50, steps: [10, 50, 100] },
        slo: { rules: ['ttfb_p95 <= 550ms', 'error_rate <= 1%', 'ttfb_p95 <= 1.5 x legacy'] },
        routing: { overrides: { new: ['pinned-in-file'] } },
      },
    });
  });
  afterAll(async () => stack.close());
  afterEach(async () => {
    // Each test starts from a progressing rollout at 50 %.
    const s = stack.veer.controller.snapshot;
    if (s.state === 'killed' || s.state === 'rolled_back' || s.state === 'latched')
      stack.veer.controller.resume('admin:test', 'reset');
    if (stack.veer.controller.snapshot.weight_bp !== 5000) stack.veer.controller.setWeight('admin:test', 5000, 'reset');
  });

  it('kill under load: the first request that starts after the 200 goes to legacy; streams on new finish', async () => {
    const keys = keysOn('new', 'admin-test', 5000, 16);
    type Done = { startedAt: number; upstream: string; complete: boolean };
    const done: Done[] = [];
    let running = true;
    const client = async (key: string) => {
      while (running) {
        const startedAt = performance.now();
        const res = await request(`${stack.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-user-id': key },
          body: JSON.stringify({ stream: true }),
        });
        const text = await res.body.text();
        done.push({
          startedAt,
          upstream: String(res.headers['x-veer-upstream']),
          complete: res.statusCode === 200 && text.includes('data: [DONE]'),
        });
      }
    };
    const clients = keys.map(client);
    // Let traffic reach new and some streams be in flight there.
    await new Promise((r) => setTimeout(r, 400));
    expect(stack.next.stats.active).toBeGreaterThan(0);
    const before = stack.next.stats.requests;
    const r = await api(stack.adminUrl, 'POST', '/api/kill', { reason: 'pager: new is bad' });
    const acknowledgedAt = performance.now();
    // Every request veer had sent on its way to new when the 200 came (some may still be on the wire to
    // the mock): the mock must never see more than these.
    const routedToNew = stack.veer.recorder.finishedTotal.new + stack.veer.recorder.inflight.new;
    expect(r.status).toBe(200);
    expect(r.body.rollout).toMatchObject({ state: 'killed', weight_percent: 0, kill_reason: 'pager: new is bad' });
    await waitFor(() => done.filter((d) => d.startedAt > acknowledgedAt).length > 20, 10_000);
    running = false;
    await Promise.all(clients);

    const after = done.filter((d) => d.startedAt > acknowledgedAt);
    const beforeKill = done.filter((d) => d.startedAt < acknowledgedAt);
    expect(after.filter((d) => d.upstream !== 'legacy')).toEqual([]);
    // Zero requests reached new after the 200.
    expect(stack.next.stats.requests).toBe(routedToNew);
    expect(routedToNew).toBeGreaterThan(before - 1);
    // Everything that had started on new (including the streams in flight at the kill) completed in full.
    const onNew = beforeKill.filter((d) => d.upstream === 'new');
    expect(onNew.length).toBeGreaterThan(10);
    expect(onNew.every((d) => d.complete)).toBe(true);
    expect(done.every((d) => d.complete)).toBe(true);
    // Persisted before the reply: the state file already says killed.
    const file = JSON.parse(readFileSync(stack.veer.config.state.path, 'utf8'));
    expect(file).toMatchObject({ state: 'killed', weight_bp: 0, kill_reason: 'pager: new is bad' });
  });

  it('kill wins over overrides to new until resume, and resume restores the weight', async () => {
    await api(stack.adminUrl, 'PUT', '/api/overrides', { keys: { vip: 'new' }, reason: 'beta tester' });
    const send = async () => {
      const res = await request(`${stack.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-user-id': 'vip' },
        body: '{}',
      });
      await res.body.dump();
      return res.headers['x-veer-upstream'];
    };
    expect(await send()).toBe('new');
    expect((await api(stack.adminUrl, 'POST', '/api/kill', { reason: 'stop' })).status).toBe(200);
    expect(await send()).toBe('legacy');
    const resumed = await api(stack.adminUrl, 'POST', '/api/resume', {});
    expect(resumed.body.rollout).toMatchObject({ state: 'progressing', weight_percent: 50, kill_reason: null });
    expect(await send()).toBe('new');
    await api(stack.adminUrl, 'DELETE', '/api/overrides', { keys: ['vip'], reason: 'done' });
  });

  it('refuses to unpin a key the config file pins (409, nothing removed); a runtime pin over it can be removed', async () => {
    const pins = () => api(stack.adminUrl, 'GET', '/api/overrides');
    expect((await pins()).body).toEqual({ new: ['pinned-in-file'], legacy: [] });
    await api(stack.adminUrl, 'PUT', '/api/overrides', { keys: { 'runtime-1': 'new' }, reason: 'qa' });
    const version = stack.veer.controller.snapshot.version;
    const refused = await api(stack.adminUrl, 'DELETE', '/api/overrides', {
      keys: ['runtime-1', 'pinned-in-file'],
      reason: 'unpin',
    });
    expect(refused).toMatchObject({ status: 409, body: { error: { code: 'override_in_config' } } });
    expect(refused.body.error.message).toMatch(
      /"pinned-in-file" \(routing\.overrides\.new\) pinned by the config file/,
    );
    // All or nothing: the runtime key named in the same call is still pinned, and no change was recorded.
    expect(stack.veer.controller.snapshot.version).toBe(version);
    expect((await pins()).body).toEqual({ new: ['pinned-in-file', 'runtime-1'], legacy: [] });
    // The way out the error names: a runtime pin to the other side wins over the file's, and removing it
    // gives the key back to the file.
    await api(stack.adminUrl, 'PUT', '/api/overrides', { keys: { 'pinned-in-file': 'legacy' }, reason: 'move' });
    expect((await pins()).body).toEqual({ new: ['runtime-1'], legacy: ['pinned-in-file'] });
    const removed = await api(stack.adminUrl, 'DELETE', '/api/overrides', {
      keys: ['pinned-in-file', 'runtime-1'],
      reason: 'done',
    });
    expect(removed).toMatchObject({ status: 200, body: { new: ['pinned-in-file'], legacy: [] } });
  });

  it('answers a malformed or over-long HTTP request with a JSON 400/431, not a silent close', async () => {
    const { hostname, port } = new URL(stack.adminUrl);
    const raw = (text: string) =>
      new Promise<string>((resolve, reject) => {
        let answer = '';
        const socket = net.connect(Number(port), hostname, () => socket.write(text));
        socket.on('data', (d) => (answer += d));
        socket.on('end', () => resolve(answer));
        socket.on('error', reject);
      });
    const garbled = await raw('GET /api/status HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n');
    expect(garbled).toMatch(/^HTTP\/1\.1 400 /);
    expect(garbled).toMatch(/content-type: application\/json/);
    expect(JSON.parse(garbled.slice(garbled.indexOf('\r\n\r\n') + 4))).toMatchObject({
      error: { code: 'bad_request', message: 'HPE_INVALID_HEADER_TOKEN' },
    });
    const huge = await raw(`GET /api/status HTTP/1.1\r\nHost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(huge).toMatch(/^HTTP\/1\.1 431 /);
    // The server is still there.
    expect((await api(stack.adminUrl, 'GET', '/api/status', undefined, null)).status).toBe(200);
  });

  it('GET /api/status reports rollout, upstream windows and rule results', async () => {
    for (let i = 0; i < 20; i++) {
      const res = await request(`${stack.url}/v1/completions`, {
        method: 'POST',
        headers: { 'x-user-id': `s-${i}` },
        body: '{}',
      });
      await res.body.dump();
    }
    stack.veer.controller.tick();
    const r = await api(stack.adminUrl, 'GET', '/api/status', undefined, null);
    expect(r.status).toBe(200);
    expect(r.body.rollout).toMatchObject({ id: 'admin-test', state: 'progressing', weight_percent: 50, step: 1 });
    expect(r.body.rollout.steps).toEqual([10, 50, 100]);
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(r.body.version).toBe(pkg.version);
    const up = r.body.upstreams;
    expect(up.legacy.requests_total + up.new.requests_total).toBeGreaterThanOrEqual(20);
    expect(up.new.url).toBe(stack.next.url);
    for (const side of [up.legacy, up.new]) {
      expect(side.samples).toBeGreaterThan(0);
      expect(side.ttfb_p50_ms).toBeGreaterThan(0);
      expect(side.ttfb_p95_ms).toBeGreaterThanOrEqual(side.ttfb_p50_ms);
      expect(side.inflight).toBe(0);
    }
    expect(r.body.slo.rules.map((x: { name: string }) => x.name)).toEqual([
      'ttfb_p95',
      'error_rate',
      'ttfb_p95_vs_legacy',
    ]);
    expect(r.body.slo.evaluated_at).not.toBeNull();
    for (const rule of r.body.slo.rules) expect(['pass', 'breach', 'inconclusive']).toContain(rule.status);
  });

  it('refuses a missing, unknown or read-only token with 401/403, audits each attempt, changes nothing', async () => {
    const version = stack.veer.controller.snapshot.version;
    const none = await api(stack.adminUrl, 'POST', '/api/kill', { reason: 'x' }, null);
    expect(none).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
    const wrong = await api(stack.adminUrl, 'POST', '/api/kill', { reason: 'x' }, 'not-a-real-token-at-all');
    expect(wrong).toMatchObject({ status: 401, body: { error: { code: 'unauthorized', message: 'unknown token' } } });
    const reader = await api(stack.adminUrl, 'PUT', '/api/weight', { percent: 100, reason: 'x' }, READER);
    expect(reader).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    // A read token still reads.
    expect((await api(stack.adminUrl, 'GET', '/api/status', undefined, READER)).status).toBe(200);
    expect(stack.veer.controller.snapshot.version).toBe(version);
    const audit = await api(stack.adminUrl, 'GET', '/api/audit?limit=3');
    expect(audit.body.entries.map((e: any) => [e.actor, e.action, e.detail.status, e.detail.attempted])).toEqual([
      ['admin:viewer', 'refused', 403, 'weight'],
      ['anonymous', 'refused', 401, 'kill'],
      ['anonymous', 'refused', 401, 'kill'],
    ]);
  });

  it('answers every bad input with a 4xx JSON error naming the field, and the state does not change', async () => {
    const version = stack.veer.controller.snapshot.version;
    const cases: [string, string, unknown, number, string, RegExp][] = [
      ['POST', '/api/kill', {}, 400, 'bad_request', /^reason: required/],
      ['POST', '/api/kill', { reason: 5 }, 400, 'bad_request', /^reason: must be a string/],
      ['POST', '/api/kill', { reason: '   ' }, 400, 'bad_request', /^reason: must not be empty/],
      ['POST', '/api/kill', { reason: 'x'.repeat(501) }, 400, 'bad_request', /^reason: must be at most 500/],
      ['POST', '/api/kill', { reason: 'x', force: true }, 400, 'bad_request', /^force: unknown field/],
      ['POST', '/api/kill', [1], 400, 'bad_request', /^body: must be a JSON object/],
      ['POST', '/api/kill', '{"reason":', 400, 'bad_json', /not valid JSON/],
      ['PUT', '/api/weight', { reason: 'x' }, 400, 'bad_request', /^percent: required/],
      ['PUT', '/api/weight', { percent: '5', reason: 'x' }, 400, 'bad_request', /^percent: must be a number/],
      ['PUT', '/api/weight', { percent: 101, reason: 'x' }, 400, 'bad_request', /^percent: must be between 0 and 100/],
      ['PUT', '/api/weight', { percent: -1, reason: 'x' }, 400, 'bad_request', /^percent: must be between/],
      ['PUT', '/api/weight', { percent: 1.234, reason: 'x' }, 400, 'bad_request', /^percent: at most two decimals/],
      ['PUT', '/api/weight', { percent: 5 }, 400, 'bad_request', /^reason: required/],
      ['POST', '/api/rollback', {}, 400, 'bad_request', /^reason: required/],
      ['POST', '/api/promote', { reason: 7 }, 400, 'bad_request', /^reason: must be a string/],
      ['POST', '/api/resume', {}, 409, 'conflict', /nothing to resume/],
      ['PUT', '/api/overrides', { reason: 'x' }, 400, 'bad_request', /^keys: required/],
      ['PUT', '/api/overrides', { keys: ['a'], reason: 'x' }, 400, 'bad_request', /^keys: must be an object/],
      ['PUT', '/api/overrides', { keys: {}, reason: 'x' }, 400, 'bad_request', /^keys: must name at least one/],
      [
        'PUT',
        '/api/overrides',
        { keys: { a: 'middle' }, reason: 'x' },
        400,
        'bad_request',
        /^keys\["a"\]: must be "new" or "legacy"/,
      ],
      ['PUT', '/api/overrides', { keys: { a: 'new' } }, 400, 'bad_request', /^reason: required/],
      ['DELETE', '/api/overrides', { keys: 'a', reason: 'x' }, 400, 'bad_request', /^keys: must be a non-empty list/],
      [
        'DELETE',
        '/api/overrides',
        { keys: [3], reason: 'x' },
        400,
        'bad_request',
        /^keys\[0\]: must be a non-empty string/,
      ],
      ['GET', '/api/audit?limit=abc', undefined, 400, 'bad_request', /^limit: must be an integer between 1 and 1000/],
      ['GET', '/api/audit?limit=1001', undefined, 400, 'bad_request', /^limit:/],
      ['GET', '/api/nothing', undefined, 404, 'not_found', /\/api\/nothing/],
      ['DELETE', '/api/kill', undefined, 405, 'method_not_allowed', /DELETE is not allowed/],
      ['POST', '/api/reload', { reason: 1 }, 400, 'bad_request', /^reason:/],
    ];
    for (const [method, path, body, status, code, message] of cases) {
      const r = await api(stack.adminUrl, method, path, body);
      expect({ method, path, status: r.status, code: r.body.error?.code }).toEqual({ method, path, status, code });
      expect(r.body.error.message).toMatch(message);
    }
    // A body over 64 KiB: 413, also when sent chunked without a length.
    const huge = JSON.stringify({ reason: 'x'.repeat(70_000) });
    expect(await api(stack.adminUrl, 'POST', '/api/kill', huge)).toMatchObject({
      status: 413,
      body: { error: { code: 'payload_too_large' } },
    });
    const chunked = await request(`${stack.adminUrl}/api/kill`, {
      method: 'POST',
      headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' },
      body: Readable.from(
        (function* () {
          for (let i = 0; i < 20; i++) yield Buffer.alloc(8192, 0x20);
        })(),
      ),
    });
    expect(chunked.statusCode).toBe(413);
    await chunked.body.dump();
    const plain = await request(`${stack.adminUrl}/api/kill`, {
      method: 'POST',
      headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'text/plain' },
      body: 'reason=x',
    });
    expect(plain.statusCode).toBe(415);
    await plain.body.dump();
    expect(stack.veer.controller.snapshot.version).toBe(version);
    expect(stack.veer.controller.snapshot.state).toBe('progressing');
  });

  it('weight, promote and rollback move the rollout and say so in the audit log', async () => {
    const w = await api(stack.adminUrl, 'PUT', '/api/weight', { percent: 10, reason: 'start small' });
    expect(w.body.rollout).toMatchObject({ weight_percent: 10, step: 0, state: 'progressing' });
    // The reply's gate follows the new weight; the guard has not judged it yet, so no eligibility time.
    expect(w.body.rollout.gate).toEqual({
      next_percent: 50,
      waiting_for_approval: false,
      eligible_at: null,
      manual: false,
      min_duration_ms: 300_000,
    });
    const p = await api(stack.adminUrl, 'POST', '/api/promote', { reason: 'looks good' });
    expect(p.body.rollout).toMatchObject({ weight_percent: 50, step: 1 });
    expect(p.body.rollout.gate).toMatchObject({ next_percent: 100, waiting_for_approval: false, eligible_at: null });
    const p2 = await api(stack.adminUrl, 'POST', '/api/promote', {});
    expect(p2.body.rollout).toMatchObject({ weight_percent: 100, state: 'promoted', gate: null });
    expect((await api(stack.adminUrl, 'POST', '/api/promote', {})).status).toBe(409);
    const rb = await api(stack.adminUrl, 'POST', '/api/rollback', { reason: 'customer complaints' });
    expect(rb.body.rollout).toMatchObject({ weight_percent: 0, state: 'rolled_back' });
    expect((await api(stack.adminUrl, 'POST', '/api/promote', {})).status).toBe(409);
    const audit = await api(stack.adminUrl, 'GET', '/api/audit?limit=4');
    expect(
      audit.body.entries.map((e: any) => [e.actor, e.action, e.before.weight_percent, e.after.weight_percent]),
    ).toEqual([
      ['admin:alice', 'rollback', 100, 0],
      ['admin:alice', 'promote', 50, 100],
      ['admin:alice', 'promote', 10, 50],
      ['admin:alice', 'weight', 50, 10],
    ]);
    expect(audit.body.entries[0].reason).toBe('customer complaints');
  });

  it('serves /healthz and /readyz', async () => {
    expect(await api(stack.adminUrl, 'GET', '/healthz', undefined, null)).toMatchObject({
      status: 200,
      body: { status: 'ok' },
    });
    expect(await api(stack.adminUrl, 'GET', '/readyz', undefined, null)).toMatchObject({
      status: 200,
      body: { ready: true, state_writable: true },
    });
  });
});

describe('constant-time token check', () => {
  it('takes as long for a near miss as for a far miss (digests compared with timingSafeEqual)', () => {
    const auth = new TokenAuth([{ name: 'a', role: 'operator', secret: OPERATOR }]);
    const near = `Bearer ${OPERATOR.slice(0, -1)}X`;
    const far = `Bearer ${'Z'.repeat(OPERATOR.length)}`;
    const batch = (h: string) => {
      const t = process.hrtime.bigint();
      for (let i = 0; i < 200; i++) auth.authenticate(h);
      return Number(process.hrtime.bigint() - t);
    };
    // The fastest of many interleaved batches: other load on the machine only ever adds time, so the
    // minimum is what the comparison itself costs.
    let a = Number.POSITIVE_INFINITY;
    let b = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 150; i++) {
      a = Math.min(a, batch(near));
      b = Math.min(b, batch(far));
    }
    const ratio = a / b;
    expect(ratio).toBeGreaterThan(0.67);
    expect(ratio).toBeLessThan(1.5);
    expect(auth.authenticate(`Bearer ${OPERATOR}`)).toEqual({ ok: true, principal: { name: 'a', role: 'operator' } });
    expect(auth.authenticate(near)).toEqual({ ok: false, reason: 'unknown' });
  });

  it('refuses tokens of any length without throwing (lengths never reach the comparison)', () => {
    const auth = new TokenAuth([{ name: 'a', role: 'operator', secret: OPERATOR }]);
    for (const t of ['x', OPERATOR.slice(0, 5), `${OPERATOR}${OPERATOR}`, 'y'.repeat(4096)]) {
      expect(auth.authenticate(`Bearer ${t}`)).toEqual({ ok: false, reason: 'unknown' });
    }
  });
});

describe('hot reload', () => {
  let legacy: MockUpstream;
  let oldNew: MockUpstream;
  let newNew: MockUpstream;
  let veer: Veer;
  let adminUrl: string;
  let proxyUrl: string;
  let dir: string;
  const state = stateFiles();
  const doc = (newUrl: string, extra = '') =>
    [
      'listen: {host: 127.0.0.1, port: 0}',
      'admin: {host: 127.0.0.1, port: 0}',
      `upstreams: {legacy: {url: "${legacy.url}"}, new: {url: "${newUrl}"}}`,
      'rollout: {id: reload-test, weight: 100}',
      `state: ${JSON.stringify(state)}`,
      'log: {level: silent}',
      extra,
    ].join('\n');

  beforeAll(async () => {
    legacy = await startMockUpstream({ name: 'legacy', ttfb: 1, tokens: 2, tokenIntervalMs: 1 });
    oldNew = await startMockUpstream({ name: 'new-a', ttfb: 1, tokens: 10, tokenIntervalMs: 100 });
    newNew = await startMockUpstream({ name: 'new-b', ttfb: 1, tokens: 2, tokenIntervalMs: 1 });
    dir = mkdtempSync(join(tmpdir(), 'veer-reload-'));
    writeFileSync(join(dir, 'veer.yaml'), doc(oldNew.url));
    veer = await Veer.start({ config: await loadConfigFile(join(dir, 'veer.yaml')), logger: silentLogger() });
    adminUrl = `http://127.0.0.1:${veer.adminAddress!.port}`;
    proxyUrl = `http://127.0.0.1:${veer.proxyAddress.port}`;
  });
  afterAll(async () => {
    await veer.close();
    await Promise.all([legacy.close(), oldNew.close(), newNew.close()]);
  });

  it('a valid reload moves new traffic to the new upstream while a stream in flight completes on the old one', async () => {
    writeFileSync(join(dir, 'tokens'), `${OPERATOR}\n`);
    // The stream takes ~1 s (10 tokens, 100 ms apart); the reload lands in its middle.
    const inflight = request(`${proxyUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'x-user-id': 'u1' },
      body: JSON.stringify({ stream: true }),
    }).then(async (res) => ({ text: await res.body.text() }));
    await new Promise((r) => setTimeout(r, 250));
    expect(oldNew.stats.active).toBe(1);
    writeFileSync(
      join(dir, 'veer.yaml'),
      doc(newNew.url, `slo: {rules: ["ttfb_p95 <= 400ms"]}`).replace(
        'admin: {host: 127.0.0.1, port: 0}',
        `admin: {host: 127.0.0.1, port: 0, tokens: [{name: ops, file: "${join(dir, 'tokens')}"}]}`,
      ),
    );
    // No token was configured before this reload, so it is triggered in-process (as SIGHUP does).
    const first = await veer.reload('admin:test');
    expect(first.changed).toEqual(expect.arrayContaining(['admin.tokens', 'slo.rules', 'upstreams.new.url']));
    expect(first.restartRequired).toEqual([]);
    const done = await inflight;
    expect(done.text).toContain('data: [DONE]');
    expect(oldNew.stats.completed).toBe(1);
    const res = await request(`${proxyUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'x-user-id': 'u2' },
      body: '{}',
    });
    await res.body.dump();
    expect(res.headers['x-veer-upstream']).toBe('new');
    expect(newNew.stats.requests).toBe(1);
    expect(veer.config.slo.rules.map((r) => r.text)).toEqual(['ttfb_p95 <= 400ms']);
    // The reloaded token now works on the API.
    const again = await api(adminUrl, 'POST', '/api/reload', {});
    expect(again).toMatchObject({ status: 200, body: { reloaded: true, rollout_id: 'reload-test', changed: [] } });
  });

  it('an invalid file leaves the old config serving and answers 400 with the field path', async () => {
    const good = readFileSync(join(dir, 'veer.yaml'), 'utf8');
    writeFileSync(
      join(dir, 'veer.yaml'),
      good.replace(newNew.url, 'ftp://nowhere').replace('weight: 100', 'weight: 250'),
    );
    const r = await api(adminUrl, 'POST', '/api/reload', {});
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('bad_config');
    expect(r.body.error.problems).toEqual([
      'upstreams.new.url: must be an http(s) URL without query or fragment',
      'rollout.weight: must be <= 100',
    ]);
    const res = await request(`${proxyUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'x-user-id': 'u3' },
      body: '{}',
    });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(newNew.stats.requests).toBe(2);
    expect(veer.config.upstreams.new.url).toBe(newNew.url);
    writeFileSync(join(dir, 'veer.yaml'), good);
  });

  it('a new slo.window and slo.slices apply at once, and the windows keep the samples they hold', async () => {
    const samples = () => ({
      legacy: veer.recorder.windows.legacy.snapshot().ttfbSamples,
      new: veer.recorder.windows.new.snapshot().ttfbSamples,
    });
    const before = samples();
    expect(before.new).toBeGreaterThan(0);
    const good = readFileSync(join(dir, 'veer.yaml'), 'utf8');
    expect(good).toContain('slo: {rules: ["ttfb_p95 <= 400ms"]}');
    writeFileSync(
      join(dir, 'veer.yaml'),
      good.replace('slo: {rules: ["ttfb_p95 <= 400ms"]}', 'slo: {rules: ["ttfb_p95 <= 400ms"], window: 2m, slices: 4}'),
    );
    const r = await api(adminUrl, 'POST', '/api/reload', {});
    expect(r.status).toBe(200);
    expect(r.body.changed).toEqual(['slo.slices', 'slo.window']);
    expect(r.body.restart_required).toEqual([]);
    expect(veer.recorder.windows.new.sliceMs).toBe(30_000);
    expect(samples()).toEqual(before);
    const status = await api(adminUrl, 'GET', '/api/status');
    expect(status.body.slo.window_ms).toBe(120_000);
    writeFileSync(join(dir, 'veer.yaml'), good);
    const back = await api(adminUrl, 'POST', '/api/reload', {});
    expect(back.body.restart_required).toEqual([]);
    expect(veer.recorder.windows.new.sliceMs).toBe(10_000);
    expect(samples()).toEqual(before);
  });

  it('a new rollout id starts a new rollout, audited', async () => {
    const good = readFileSync(join(dir, 'veer.yaml'), 'utf8');
    writeFileSync(join(dir, 'veer.yaml'), good.replace('id: reload-test, weight: 100', 'id: reload-two, weight: 5'));
    const r = await api(adminUrl, 'POST', '/api/reload', {});
    expect(r.body).toMatchObject({ reloaded: true, rollout_id: 'reload-two' });
    expect(veer.controller.snapshot).toMatchObject({ rollout_id: 'reload-two', weight_bp: 500, state: 'progressing' });
    const audit = await api(adminUrl, 'GET', '/api/audit?limit=1');
    expect(audit.body.entries[0]).toMatchObject({
      actor: 'admin:ops',
      action: 'new_rollout',
      before: { rollout_id: 'reload-test' },
      after: { rollout_id: 'reload-two', weight_percent: 5 },
    });
  });

  it('writes the operator reason into the audit entry, and "config reloaded" without one', async () => {
    const given = await api(adminUrl, 'POST', '/api/reload', { reason: 'tighter p95 after INC-42' });
    expect(given.status).toBe(200);
    let audit = await api(adminUrl, 'GET', '/api/audit?limit=1');
    expect(audit.body.entries[0]).toMatchObject({
      actor: 'admin:ops',
      action: 'reload',
      reason: 'tighter p95 after INC-42',
    });
    await api(adminUrl, 'POST', '/api/reload', {});
    audit = await api(adminUrl, 'GET', '/api/audit?limit=1');
    expect(audit.body.entries[0]).toMatchObject({ action: 'reload', reason: 'config reloaded' });
  });

  it('turns the file watch on and off with reload.watch, without a restart', async () => {
    const file = join(dir, 'veer.yaml');
    const good = readFileSync(file, 'utf8');
    expect(good).toContain('ttfb_p95 <= 400ms');
    const rules = () => veer.config.slo.rules.map((r) => r.text);
    writeFileSync(file, `${good}\nreload: {watch: true}\n`);
    const on = await api(adminUrl, 'POST', '/api/reload', {});
    expect(on.body).toMatchObject({ changed: ['reload.watch'], restart_required: [] });
    // Watched: an edit of the file applies by itself.
    writeFileSync(file, `${good.replace('ttfb_p95 <= 400ms', 'ttfb_p95 <= 450ms')}\nreload: {watch: true}\n`);
    await waitFor(() => rules()[0] === 'ttfb_p95 <= 450ms', 5000);
    // The watch itself turned off by an edit: later edits wait for a reload.
    writeFileSync(file, `${good}\nreload: {watch: false}\n`);
    await waitFor(() => rules()[0] === 'ttfb_p95 <= 400ms' && !veer.config.reload.watch, 5000);
    writeFileSync(file, `${good.replace('ttfb_p95 <= 400ms', 'ttfb_p95 <= 480ms')}\nreload: {watch: false}\n`);
    await new Promise((r) => setTimeout(r, 750));
    expect(rules()[0]).toBe('ttfb_p95 <= 400ms');
    writeFileSync(file, good);
    await api(adminUrl, 'POST', '/api/reload', {});
    expect(veer.config.reload.watch).toBe(false);
  });
});
