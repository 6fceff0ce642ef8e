// The rule for suites whose system program is absent, run for real: a child vitest with a PATH holding only node skips them and names them in one closing line, or fails them under CI.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/process.js';

const VITEST = join(REPO, 'node_modules', 'vitest', 'vitest.mjs');
const CONFIG = join(REPO, 'tests', 'fixtures', 'missing-programs', 'vitest.config.ts');
const SUMMARY = /^skipped for missing system programs: .*$/m;

let bin: string;

/** Runs the fixture project with PATH = a directory holding only `node`, CI set or not. */
function runFixtures(ci: boolean): Promise<{ code: number; out: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: bin, NO_COLOR: '1' };
  delete env.CI;
  delete env.VEER_TEST_MISSING_PROGRAMS_LOG;
  if (ci) env.CI = '1';
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [VITEST, 'run', '--config', CONFIG],
      { cwd: REPO, env, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, out: stdout + stderr });
      },
    );
  });
}

beforeAll(() => {
  bin = mkdtempSync(join(tmpdir(), 'veer-bare-path-'));
  symlinkSync(process.execPath, join(bin, 'node'));
});
afterAll(() => rmSync(bin, { recursive: true, force: true }));

describe('a suite whose system program is absent', () => {
  it('is skipped, and the run ends green with one line naming each program, its suites and the install command', async () => {
    const { code, out } = await runFixtures(false);
    expect(code, out).toBe(0);
    expect(out).not.toMatch(/ENOENT|Error:/);
    const lines = out.match(new RegExp(SUMMARY.source, 'gm')) ?? [];
    expect(lines, out).toEqual([
      'skipped for missing system programs: chromium (needs-chromium.fixture.ts); helm (needs-redis.fixture.ts); ' +
        'redis-server (needs-redis.fixture.ts); install them with: sudo scripts/install-system-deps.sh',
    ]);
    // The summary is the run's last word, after vitest's own totals.
    expect(out.trimEnd().split('\n').at(-1)).toBe(lines[0]);
    expect(out).toMatch(/1 passed \| 2 skipped/);
  });

  it('fails the run under CI, naming the program, instead of skipping', async () => {
    const { code, out } = await runFixtures(true);
    expect(code, out).toBe(1);
    expect(out).toContain('redis-server, helm not found on PATH; CI runs every suite');
    expect(out).toContain('chromium not found on PATH');
    expect(out).not.toMatch(SUMMARY);
  });
});
