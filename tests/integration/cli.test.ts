import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/process.js';

const veer = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', `${REPO}src/cli/main.ts`, ...args], {
    cwd: REPO,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 20_000,
  });

describe('veer check-config and run with a bad config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veer-cli-'));
  const bad = join(dir, 'bad.yaml');
  writeFileSync(
    bad,
    'upstreams:\n  legacy: {url: "ftp://legacy"}\n  new: {url: "http://new", idle_timeout: soon}\nrollout: {id: r1, weight: 150}\n',
  );

  it('accepts the bundled default config', () => {
    const r = veer(['check-config', 'config/veer.yaml']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/config\/veer\.yaml: ok/);
  });

  it('prints one line per problem, naming the field, and exits 2', () => {
    const r = veer(['check-config', bad]);
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('  '))).toEqual([
      '  upstreams.legacy.url: must be an http(s) URL without query or fragment',
      '  upstreams.new.idle_timeout: must be a duration such as 250ms, 2s or 1m',
      '  rollout.weight: must be <= 100',
    ]);
  });

  it('refuses to start on a bad config with the same lines and exit code 2, also via VEER_CONFIG', () => {
    const r = veer(['run'], { VEER_CONFIG: bad });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('rollout.weight: must be <= 100');
  });

  it('names a missing config file', () => {
    const r = veer(['run', '--config', join(dir, 'nope.yaml')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/cannot read .*nope\.yaml \(ENOENT\)/);
  });

  it('exits 1 with usage on an unknown command', () => {
    const r = veer(['frobnicate']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('unknown command "frobnicate"');
  });
});
