// Segments and the shadow through a running veer: routing by segment, kill, hot reload, status, metrics, CLI, audit.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MockUpstream, startMockUpstream } from '../../bench/mock-upstream.js';
import type { Status } from '../../src/admin/api-types.js';
import { loadConfigFile } from '../../src/config/load.js';
import { Veer } from '../../src/veer.js';
import { runVeerCli } from '../helpers/process.js';
import { silentLogger } from '../helpers/stack.js';

const TOKEN = 'shadow-operator-0123456789';

const cli = (args: string[]) => runVeerCli(args, { VEER_ADMIN_TOKEN: TOKEN });

describe('segments and shadow, operated', () => {
  let legacy: MockUpstream;
  let next: MockUpstream;
  let veer: Veer;
  let dir: string;
  let configPath: string;
  let proxy: string;
  let admin: string;

  const yaml = (segments: string, shadowPercent: number) => `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, tokens: [{ name: ops, env: SHADOW_TEST_TOKEN }] }
upstreams: { legacy: { url: ${legacy.url} }, new: { url: ${next.url} } }
rollout: { id: seg-admin, weight: 0, shadow: { percent: ${shadowPercent} } }
routing:
  segments:
${segments}
slo: { interval: 1h }
log: { level: silent }
state: { path: ${join(dir, 'state.json')}, audit_path: ${join(dir, 'audit.jsonl')} }
`;
  const STAFF = `    - { name: staff, match: { header: x-tenant, in: [internal, qa] }, side: new }
    - { name: free-tier, match: { header: x-plan, equals: free }, weight: 100 }`;

  beforeAll(async () => {
    process.env.SHADOW_TEST_TOKEN = TOKEN;
    legacy = await startMockUpstream({ name: 'legacy', ttfb: 1, tokens: 2, tokenIntervalMs: 1 });
    next = await startMockUpstream({ name: 'new', ttfb: 1, tokens: 2, tokenIntervalMs: 1 });
    dir = mkdtempSync(join(tmpdir(), 'veer-seg-'));
    configPath = join(dir, 'veer.yaml');
    writeFileSync(configPath, yaml(STAFF, 0));
    veer = await Veer.start({ config: await loadConfigFile(configPath), logger: silentLogger() });
    proxy = `http://127.0.0.1:${veer.proxyAddress.port}`;
    admin = `http://127.0.0.1:${veer.adminAddress!.port}`;
  });
  afterAll(async () => {
    await veer.close();
    await Promise.all([legacy.close(), next.close()]);
    delete process.env.SHADOW_TEST_TOKEN;
  });

  async function upstreamFor(headers: Record<string, string>): Promise<string> {
    const res = await request(`${proxy}/v1/models`, { headers: { 'x-user-id': 'u-1', ...headers } });
    await res.body.text();
    return String(res.headers['x-veer-upstream']);
  }

  async function status() {
    const res = await request(`${admin}/api/status`);
    return (await res.body.json()) as Status;
  }

  it('routes by segment, counts per segment in status and metrics, and sends every segment to legacy on a kill', async () => {
    expect(await upstreamFor({ 'x-tenant': 'qa' })).toBe('new');
    expect(await upstreamFor({ 'x-plan': 'free' })).toBe('new');
    expect(await upstreamFor({ 'x-tenant': 'other' })).toBe('legacy');
    const s = await status();
    expect(s.segments).toEqual([
      { name: 'staff', side: 'new', weight_percent: null, requests: { new: 1, legacy: 0 } },
      { name: 'free-tier', side: null, weight_percent: 100, requests: { new: 1, legacy: 0 } },
    ]);
    const metrics = await (await request(`${admin}/metrics`)).body.text();
    expect(metrics).toContain('veer_segment_requests_total{segment="staff",upstream="new"} 1');

    veer.controller.kill('admin:test', 'drill');
    expect(await upstreamFor({ 'x-tenant': 'qa' })).toBe('legacy');
    expect(await upstreamFor({ 'x-plan': 'free' })).toBe('legacy');
    veer.controller.resume('admin:test', 'drill over');
    expect(await upstreamFor({ 'x-tenant': 'qa' })).toBe('new');
  });

  it('hot-reloads segments, and refuses a bad one naming the field while the old ones keep serving', async () => {
    writeFileSync(
      configPath,
      yaml(`    - { name: staff, match: { header: x-tenant, prefix: intern }, side: legacy }`, 0),
    );
    let res = await request(`${admin}/api/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { changed: string[] }).changed).toContain('routing.segments');
    expect(await upstreamFor({ 'x-tenant': 'internal' })).toBe('legacy');

    writeFileSync(configPath, yaml(`    - { name: staff, match: { header: x-tenant, regex: "(" }, side: new }`, 0));
    res = await request(`${admin}/api/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.statusCode).toBe(400);
    expect(await res.body.text()).toContain('routing.segments[0].match.regex: not a valid regular expression');
    expect(await upstreamFor({ 'x-tenant': 'internal' })).toBe('legacy');
  });

  it('turns the shadow on and off with `veer shadow`, audited, in status and metrics', async () => {
    let run = await cli(['shadow', '7.5', '--reason', 'dark launch', '--admin', admin]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/shadow\s+7\.5% of legacy-bound users mirrored to new/);
    let s = await status();
    expect(s.shadow).toMatchObject({ percent: 7.5, set_percent: 7.5, max_inflight: 64, max_body_bytes: 1048576 });
    expect(veer.table.shadowBp).toBe(750);
    const metrics = await (await request(`${admin}/metrics`)).body.text();
    expect(metrics).toContain('veer_shadow_ratio 0.075');

    run = await cli(['shadow', 'off', '--admin', admin]);
    expect(run.code).toBe(0);
    expect(veer.table.shadowBp).toBe(0);
    run = await cli(['shadow', 'on', '--admin', admin]);
    expect(run.code).toBe(0);
    // `on` with a config percent of 0 turns on 5 %.
    expect(veer.table.shadowBp).toBe(500);
    run = await cli(['shadow', 'lots', '--admin', admin]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('expected on, off or a PERCENT');

    const bad = await request(`${admin}/api/shadow`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ percent: 101 }),
    });
    expect(bad.statusCode).toBe(400);
    expect(((await bad.body.json()) as { error: { code: string } }).error.code).toBe('bad_request');
    const anonymous = await request(`${admin}/api/shadow`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ on: false }),
    });
    expect(anonymous.statusCode).toBe(401);
    await anonymous.body.text();

    const audit = readFileSync(join(dir, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const shadowEntries = audit.filter((e) => e.action === 'shadow');
    expect(shadowEntries.map((e) => e.detail.shadow_percent)).toEqual([7.5, 0, 5]);
    expect(shadowEntries[0]).toMatchObject({ actor: 'admin:ops', reason: 'dark launch' });
    s = await status();
    expect(s.rollout.weight_percent).toBe(0);
  });

  it('applies a reloaded rollout.shadow.percent and its limits, and refuses a bad one naming the field', async () => {
    const reload = async () => {
      const res = await request(`${admin}/api/reload`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: '{}',
      });
      return { status: res.statusCode, text: await res.body.text() };
    };
    writeFileSync(
      configPath,
      yaml(STAFF, 3).replace('shadow: { percent: 3 }', 'shadow: { percent: 3, max_inflight: 7 }'),
    );
    const ok = await reload();
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.text).changed).toEqual(
      expect.arrayContaining(['rollout.shadow.percent', 'rollout.shadow.max_inflight']),
    );
    expect(veer.table.shadowBp).toBe(300);
    expect((await status()).shadow).toMatchObject({ percent: 3, max_inflight: 7 });

    writeFileSync(
      configPath,
      yaml(STAFF, 3).replace('shadow: { percent: 3 }', 'shadow: { percent: 3, max_body: lots }'),
    );
    const refused = await reload();
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('rollout.shadow.max_body: must be a size');
    expect(veer.table.shadowBp).toBe(300);
  });
});
