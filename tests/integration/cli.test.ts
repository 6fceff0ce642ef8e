import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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
});

describe('veer usage, help and version', () => {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };

  it('prints the version of package.json for --version, -V and version', () => {
    for (const flag of ['--version', '-V', 'version']) {
      const r = veer([flag]);
      expect(r.status, flag).toBe(0);
      expect(r.stdout).toBe(`veer ${pkg.version}\n`);
    }
  });

  it('exits 2 (usage error) with the usage on an unknown command, no command, or an unknown option', () => {
    const unknown = veer(['frobnicate']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('veer: unknown command "frobnicate"\nusage: veer <command> [options]');
    const none = veer([]);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('usage: veer <command> [options]');
    for (const args of [
      ['run', '--frobnicate'],
      ['demo', '--port', '1'],
      ['check-config', 'a.yaml', 'b.yaml'],
    ]) {
      const r = veer(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(`usage: veer ${args[0]} `);
    }
  });

  it('explains one command with veer help COMMAND, and exits 2 for a command it does not have', () => {
    const demo = veer(['help', 'demo']);
    expect(demo.status).toBe(0);
    expect(demo.stdout).toContain('usage: veer demo [--config PATH] [--state-dir DIR]');
    const kill = veer(['help', 'kill']);
    expect(kill.status).toBe(0);
    expect(kill.stdout).toMatch(/^usage: veer kill --reason R /);
    expect(kill.stdout).toContain('kill switch: all traffic to legacy');
    expect(kill.stdout).not.toContain('weight PERCENT');
    const overrides = veer(['help', 'overrides']);
    expect(overrides.stdout).toContain('usage: veer overrides set [--new KEY...]');
    expect(overrides.stdout).toContain('usage: veer overrides rm KEY...');
    expect(veer(['kill', '--help']).stdout).toBe(kill.stdout);
    const nope = veer(['help', 'frobnicate']);
    expect(nope.status).toBe(2);
    expect(nope.stderr).toContain('no help for "frobnicate"');
    const all = veer(['help']);
    expect(all.status).toBe(0);
    expect(all.stdout).toContain('help [COMMAND]');
    expect(all.stdout).toContain('overrides rm KEY... --reason R');
  });
});
