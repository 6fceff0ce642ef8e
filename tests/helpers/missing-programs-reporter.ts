// A vitest reporter that ends the run with one line naming each system program a suite skipped for, and the command that installs them.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Reporter } from 'vitest/reporters';
import { INSTALL_COMMAND, MISSING_LOG_ENV } from './programs.js';

/** The summary line for the log's `program\tsuite` lines; undefined when nothing was skipped. */
export function missingProgramsLine(log: string): string | undefined {
  const suites = new Map<string, Set<string>>();
  for (const line of log.split('\n')) {
    const [program, suite] = line.split('\t');
    if (!program || !suite) continue;
    const set = suites.get(program) ?? new Set<string>();
    set.add(suite);
    suites.set(program, set);
  }
  if (suites.size === 0) return undefined;
  const named = [...suites]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([program, set]) => `${program} (${[...set].sort().join(', ')})`);
  return `skipped for missing system programs: ${named.join('; ')}; install them with: ${INSTALL_COMMAND}`;
}

export default class MissingProgramsReporter implements Reporter {
  private dir: string | undefined;
  private log: string | undefined;

  onInit(): void {
    // Set before any worker starts, so every forked worker inherits it.
    this.dir = mkdtempSync(join(tmpdir(), 'veer-missing-programs-'));
    this.log = join(this.dir, 'missing.tsv');
    process.env[MISSING_LOG_ENV] = this.log;
  }

  onTestRunEnd(): void {
    if (!this.log || !this.dir) return;
    let text = '';
    try {
      text = readFileSync(this.log, 'utf8');
    } catch {}
    rmSync(this.dir, { recursive: true, force: true });
    const line = missingProgramsLine(text);
    if (line) process.stdout.write(`\n${line}\n`);
  }
}
