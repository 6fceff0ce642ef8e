// `npm start`, the README's first command: the demo comes up fresh in its own state directory, shows the split and stops cleanly on Ctrl-C.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/process.js';
import { closedPort } from '../helpers/stack.js';

/** Runs what `npm start` runs (from package.json; npm itself would sit between the signal and the demo), plus `extra`, until its first split line; then Ctrl-C. */
async function runDemo(extra: string[], env: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'veer-demo-test-'));
  const config = join(dir, 'veer.yaml');
  const [legacy, next] = [await closedPort(), await closedPort()];
  const configState = join(dir, 'config-state.json');
  writeFileSync(
    config,
    [
      'listen: {host: 127.0.0.1, port: 0}',
      'admin: {host: 127.0.0.1, port: 0}',
      `upstreams: {legacy: {url: "${legacy}"}, new: {url: "${next}"}}`,
      'rollout: {id: demo-test, weight: 20}',
      `state: {path: "${configState}", audit_path: "${join(dir, 'config-audit.jsonl')}"}`,
    ].join('\n'),
  );
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const [bin, ...args] = pkg.scripts.start.split(' ');
  expect(bin).toBe('node');
  const env1: NodeJS.ProcessEnv = { ...process.env, VEER_CONFIG: config, ...env };
  if (!('VEER_ADMIN_TOKEN' in env)) delete env1.VEER_ADMIN_TOKEN;
  const child = spawn(process.execPath, [...args, ...extra], {
    cwd: REPO,
    env: env1,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString('utf8');
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString('utf8');
  });
  const exited = once(child, 'exit');
  let running = '';
  try {
    const deadline = Date.now() + 20_000;
    while (!/requests legacy +\d+ +new +\d+/.test(out) && Date.now() < deadline && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 100));
    }
    running = out;
  } finally {
    // Ctrl-C: the demo stops its traffic, drains and exits 0.
    child.kill('SIGINT');
  }
  const [code] = await exited;
  return { code: code as number, running, out, legacy, next, configState };
}

describe('npm start', () => {
  it('runs veer between two mock upstreams in a fresh temporary state directory, prints a token that says it is one, and exits 0 on SIGINT', async () => {
    const { code, running, out, legacy, next, configState } = await runDemo([]);
    expect(running).toMatch(/veer demo: proxy http:\/\/127\.0\.0\.1:\d+ {2}admin http:\/\/127\.0\.0\.1:\d+/);
    expect(running).toContain(`legacy mock ${legacy}, new mock ${next}, rollout "demo-test" at 20% on new`);
    expect(running).toMatch(/export VEER_ADMIN_TOKEN=veer-demo-token-[0-9a-f]{24}; npm run veer -- status/);
    const [, onLegacy, onNew] = /requests legacy +(\d+) +new +(\d+)/.exec(running) ?? [];
    expect(Number(onLegacy) + Number(onNew)).toBeGreaterThan(0);
    const [, stateDir] =
      /state and audit log: (\S+) \(fresh, removed on exit; --state-dir DIR keeps them\)/.exec(running) ?? [];
    expect(stateDir, running).toBeDefined();
    expect(stateDir!.startsWith(tmpdir())).toBe(true);
    expect(code, out).toBe(0);
    // Nothing written where the config file points, and the temporary directory is gone.
    expect(existsSync(configState)).toBe(false);
    expect(existsSync(stateDir!)).toBe(false);
  }, 40_000);

  it('keeps its state in --state-dir DIR across runs, and uses an operator token given in VEER_ADMIN_TOKEN', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'veer-demo-keep-')), 'state');
    const { code, running, out } = await runDemo(['--state-dir', dir], {
      VEER_ADMIN_TOKEN: 'demo-test-token-0123456789',
    });
    expect(running).toContain(`state and audit log: ${dir}\n`);
    expect(running).toContain('export VEER_ADMIN_TOKEN=demo-test-token-0123456789');
    expect(code, out).toBe(0);
    const state = JSON.parse(readFileSync(join(dir, 'veer-state.json'), 'utf8'));
    expect(state).toMatchObject({ rollout_id: 'demo-test' });
  }, 40_000);
});
