// `npm start`, the README's first command: the demo comes up, shows the split and stops cleanly on Ctrl-C.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/process.js';
import { closedPort } from '../helpers/stack.js';

describe('npm start', () => {
  it('runs veer between two mock upstreams, prints the split every 2 s and exits 0 on SIGINT', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'veer-demo-'));
    const config = join(dir, 'veer.yaml');
    const [legacy, next] = [await closedPort(), await closedPort()];
    writeFileSync(
      config,
      [
        'listen: {host: 127.0.0.1, port: 0}',
        'admin: {host: 127.0.0.1, port: 0}',
        `upstreams: {legacy: {url: "${legacy}"}, new: {url: "${next}"}}`,
        'rollout: {id: demo-test, weight: 20}',
        `state: {path: "${join(dir, 'state.json')}", audit_path: "${join(dir, 'audit.jsonl')}"}`,
      ].join('\n'),
    );
    // What `npm start` runs, taken from package.json (npm itself would sit between the signal and the demo).
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: { start: string } };
    const [bin, ...args] = pkg.scripts.start.split(' ');
    expect(bin).toBe('node');
    const child = spawn(process.execPath, args, {
      cwd: REPO,
      env: { ...process.env, VEER_CONFIG: config, VEER_ADMIN_TOKEN: 'demo-test-token-0123456789' },
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
    try {
      const deadline = Date.now() + 20_000;
      while (!/requests legacy +\d+ +new +\d+/.test(out) && Date.now() < deadline && child.exitCode === null) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(out).toMatch(/veer demo: proxy http:\/\/127\.0\.0\.1:\d+ {2}admin http:\/\/127\.0\.0\.1:\d+/);
      expect(out).toContain(`legacy mock ${legacy}, new mock ${next}, rollout "demo-test" at 20% on new`);
      expect(out).toContain('export VEER_ADMIN_TOKEN=demo-test-token-0123456789');
      const [, onLegacy, onNew] = /requests legacy +(\d+) +new +(\d+)/.exec(out) ?? [];
      expect(Number(onLegacy) + Number(onNew)).toBeGreaterThan(0);
    } finally {
      // Ctrl-C: the demo stops its traffic, drains and exits 0.
      child.kill('SIGINT');
    }
    const [code] = await exited;
    expect(code, out).toBe(0);
  }, 40_000);
});
