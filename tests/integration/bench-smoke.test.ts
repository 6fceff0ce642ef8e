// The bench keeps working: micro and a quick throughput pass run end to end, write results of the expected shape, and leave no process behind.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Figure, Report } from '../../bench/lib/results.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], {
      cwd: REPO,
      env: { ...process.env, BENCH_QUICK: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`bench did not finish in ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const byKey = (figures: Figure[], key: string): Figure => {
  const f = figures.find((x) => x.key === key);
  if (!f) throw new Error(`no figure ${key} in ${figures.map((x) => x.key).join(', ')}`);
  return f;
};

describe('npm run bench', () => {
  const out = mkdtempSync(join(tmpdir(), 'veer-bench-smoke-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs micro and a quick throughput pass, writes the table and the JSON, and stops every process it started', async () => {
    const r = await runBench(['micro', 'throughput', '--quick', '--out', out], 50_000);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'quick.json'), 'utf8')) as Report;
    expect(report.quick).toBe(true);
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(Object.keys(report.scenarios).sort()).toEqual(['micro', 'throughput']);

    const micro = report.scenarios.micro!.figures;
    for (const key of ['bucketing.ns', 'digest_insert.ns', 'window_read_cold.ms', 'window_read_warm.ms']) {
      const f = byKey(micro, key);
      expect(f.value).toBeGreaterThan(0);
      expect(Number.isFinite(f.value)).toBe(true);
      expect(f.target?.max).toBeGreaterThan(0);
      expect(typeof f.pass).toBe('boolean');
    }

    const tp = report.scenarios.throughput!.figures;
    for (const key of ['h1.rps', 'h2.rps']) {
      const f = byKey(tp, key);
      expect(f.direct).toBeGreaterThan(0);
      expect(f.veer).toBeGreaterThan(0);
      expect(f.ratio).toBeCloseTo(f.veer! / f.direct!, 6);
    }
    const fixed = byKey(tp, 'fixed.p50');
    expect(fixed.added).toBeCloseTo(fixed.veer! - fixed.direct!, 6);
    const cpu = byKey(tp, 'h1.cpu_us_per_req');
    expect(cpu.value).toBeGreaterThan(1);
    expect(cpu.target).toEqual({ of: 'value', max: 90 });
    expect(cpu.pass).toBe(cpu.value! <= 90);

    // The table printed and written: one row per figure, each checked one with its verdict.
    const md = readFileSync(join(out, 'quick.md'), 'utf8');
    expect(r.stdout).toBe(md);
    expect(md).toContain('| Scenario | Measure | Direct | Through veer | veer vs direct | Target | Result |');
    const rows = md.split('\n').filter((l) => l.startsWith('| micro') || l.startsWith('| throughput'));
    expect(rows).toHaveLength(micro.length + tp.length);
    for (const row of rows.filter((l) => l.includes('≤'))) expect(row).toMatch(/PASS|FAIL/);

    // veer, the mock host and anything else the run started are gone.
    const pids = report.scenarios.throughput!.params.pids as number[];
    expect(pids.length).toBeGreaterThanOrEqual(2);
    for (const pid of pids) expect(alive(pid)).toBe(false);
  }, 60_000);

  it('refuses an unknown scenario with its usage and exit code 2', async () => {
    const r = await runBench(['nope'], 15_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown scenario nope');
    expect(r.stderr).toContain('throughput');
  });
});
