// Durable rollout state across real process restarts: a kill survives, a corrupt file stops start-up, a new id starts afresh.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MockUpstream, startMockUpstream } from '../../bench/mock-upstream.js';
import { spawnVeer } from '../helpers/process.js';

const TOKEN = 'restart-operator-token-0123456789';

describe('veer restarts', () => {
  let legacy: MockUpstream;
  let next: MockUpstream;
  const dir = mkdtempSync(join(tmpdir(), 'veer-restart-'));
  const configPath = join(dir, 'veer.yaml');
  const statePath = join(dir, 'state.json');
  const auditPath = join(dir, 'audit.jsonl');

  const writeConfig = (id: string, weight: number) =>
    writeFileSync(
      configPath,
      [
        'listen: {host: 127.0.0.1, port: 0}',
        'admin: {host: 127.0.0.1, port: 0, tokens: [{name: oncall, env: VEER_TEST_TOKEN}]}',
        `upstreams: {legacy: {url: "${legacy.url}"}, new: {url: "${next.url}"}}`,
        `rollout: {id: ${id}, weight: ${weight}}`,
        `state: {path: "${statePath}", audit_path: "${auditPath}"}`,
        'log: {level: info, access: false}',
        'drain: {grace_period: 1s}',
      ].join('\n'),
    );
  const start = async () => {
    const p = spawnVeer(['run', '--config', configPath], { env: { VEER_TEST_TOKEN: TOKEN } });
    await p.waitForLine((l) => l.msg === 'veer started');
    return p;
  };
  const status = async (adminPort: number) => {
    const res = await request(`http://127.0.0.1:${adminPort}/api/status`);
    return (await res.body.json()) as { rollout: { id: string; state: string; weight_percent: number } };
  };
  const sideOf = async (proxyPort: number, key: string) => {
    const res = await request(`http://127.0.0.1:${proxyPort}/v1/completions`, {
      method: 'POST',
      headers: { 'x-user-id': key },
      body: '{}',
    });
    await res.body.dump();
    return String(res.headers['x-mock-upstream']);
  };
  const auditActions = () =>
    readFileSync(auditPath, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string; actor: string; rollout_id: string; reason: string });

  beforeAll(async () => {
    legacy = await startMockUpstream({ name: 'legacy', ttfb: 1, tokens: 2, tokenIntervalMs: 1 });
    next = await startMockUpstream({ name: 'new', ttfb: 1, tokens: 2, tokenIntervalMs: 1 });
  });
  afterAll(async () => {
    await Promise.all([legacy.close(), next.close()]);
  });

  it('keeps a killed rollout killed across a restart, over the config weight', async () => {
    writeConfig('r-restart', 100);
    const first = await start();
    expect(await sideOf(first.proxyPort(), 'u1')).toBe('new');
    const kill = await request(`http://127.0.0.1:${first.adminPort()}/api/kill`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'incident 7' }),
    });
    expect(kill.statusCode).toBe(200);
    await kill.body.dump();
    await first.stop();

    const second = await start();
    try {
      expect((await status(second.adminPort())).rollout).toMatchObject({ state: 'killed', weight_percent: 0 });
      for (const key of ['u1', 'u2', 'u3']) expect(await sideOf(second.proxyPort(), key)).toBe('legacy');
      expect(auditActions().at(-1)).toMatchObject({ action: 'restore', actor: 'config' });
    } finally {
      await second.stop();
    }
  });

  it('refuses to start on a corrupt state file, naming it, and leaves the file as it was', async () => {
    writeFileSync(statePath, '{"format": 1, "rollout_id": "r-rest');
    const p = spawnVeer(['run', '--config', configPath], { env: { VEER_TEST_TOKEN: TOKEN } });
    const { code } = await p.exited;
    expect(code).toBe(1);
    expect(p.stderr()).toContain(`veer: cannot start: state file ${statePath} is not valid JSON`);
    expect(readFileSync(statePath, 'utf8')).toBe('{"format": 1, "rollout_id": "r-rest');
  });

  it('starts a new rollout id afresh and says so in the audit log', async () => {
    // An empty file is as unreadable as a corrupt one: start-up refuses it too.
    writeConfig('r-restart', 100);
    writeFileSync(statePath, '');
    expect(await start().catch(() => 'refused')).toBe('refused');
    // A valid state of the previous rollout, killed.
    writeFileSync(
      statePath,
      JSON.stringify({
        format: 1,
        rollout_id: 'r-restart',
        state: 'killed',
        weight_bp: 0,
        latched: false,
        kill_reason: 'incident 7',
        before_kill: { state: 'promoted', weight_bp: 10_000 },
        overrides: { new: [], legacy: [] },
        flips: [],
        weight_since: 0,
        last_change: null,
        version: 5,
      }),
    );
    writeConfig('r-next', 25);
    const p = await start();
    try {
      expect((await status(p.adminPort())).rollout).toMatchObject({
        id: 'r-next',
        state: 'progressing',
        weight_percent: 25,
      });
      expect(auditActions().at(-1)).toMatchObject({
        action: 'new_rollout',
        rollout_id: 'r-next',
        reason: 'new rollout id r-next (was r-restart): starting afresh',
      });
    } finally {
      await p.stop();
    }
  });
});
