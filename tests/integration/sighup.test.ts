// SIGHUP on a real `veer run` process: a valid file is applied, an invalid one is refused and the old config serves.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MockUpstream, startMockUpstream } from '../../bench/mock-upstream.js';
import { spawnVeer, type VeerProcess } from '../helpers/process.js';

describe('veer run + SIGHUP', () => {
  let a: MockUpstream;
  let b: MockUpstream;
  let veer: VeerProcess;
  const dir = mkdtempSync(join(tmpdir(), 'veer-hup-'));
  const path = join(dir, 'veer.yaml');
  const doc = (newUrl: string, weight = 100) =>
    [
      'listen: {host: 127.0.0.1, port: 0}',
      'admin: {host: 127.0.0.1, port: 0}',
      `upstreams: {legacy: {url: "${a.url}"}, new: {url: "${newUrl}"}}`,
      `rollout: {id: hup, weight: ${weight}}`,
      `state: {path: "${join(dir, 'state.json')}", audit_path: "${join(dir, 'audit.jsonl')}"}`,
      'log: {level: info, access: false}',
    ].join('\n');
  const send = async () => {
    const res = await request(`http://127.0.0.1:${veer.proxyPort()}/v1/completions`, {
      method: 'POST',
      headers: { 'x-user-id': 'u' },
      body: '{}',
    });
    await res.body.dump();
    return res.statusCode;
  };

  beforeAll(async () => {
    a = await startMockUpstream({ name: 'a', ttfb: 1, tokens: 2, tokenIntervalMs: 1 });
    b = await startMockUpstream({ name: 'b', ttfb: 1, tokens: 2, tokenIntervalMs: 1 });
    writeFileSync(path, doc(a.url));
    veer = spawnVeer(['run', '--config', path]);
    await veer.waitForLine((l) => l.msg === 'veer started');
  });
  afterAll(async () => {
    await veer.stop();
    await Promise.all([a.close(), b.close()]);
  });

  it('applies a valid file on SIGHUP without restarting the listener', async () => {
    const port = veer.proxyPort();
    expect(await send()).toBe(200);
    const onA = a.stats.requests;
    writeFileSync(path, doc(b.url));
    veer.child.kill('SIGHUP');
    const line = await veer.waitForLine((l) => l.msg === 'config reloaded');
    expect(line.changed).toEqual(['upstreams.new.url']);
    expect(await send()).toBe(200);
    expect(b.stats.requests).toBe(1);
    expect(a.stats.requests).toBe(onA);
    expect(veer.proxyPort()).toBe(port);
    const audit = readFileSync(join(dir, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(audit.at(-1)).toMatchObject({
      actor: 'config:sighup',
      action: 'reload',
      detail: { changed: ['upstreams.new.url'] },
    });
  });

  it('refuses an invalid file on SIGHUP, logs the field, keeps serving the old config', async () => {
    writeFileSync(path, doc('not a url'));
    veer.child.kill('SIGHUP');
    const line = await veer.waitForLine((l) => l.msg === 'config reload refused: the running config keeps serving');
    expect(line.problems).toEqual(['upstreams.new.url: must be an http(s) URL without query or fragment']);
    const before = b.stats.requests;
    expect(await send()).toBe(200);
    expect(b.stats.requests).toBe(before + 1);
    expect(veer.child.exitCode).toBeNull();
  });
});
