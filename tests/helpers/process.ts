// Test fixture: veer as a real child process (`veer run`), with its JSON log lines parsed as they arrive.

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface VeerProcess {
  child: ChildProcess;
  /** Every JSON line veer wrote to stdout so far. */
  lines: Record<string, unknown>[];
  stderr: () => string;
  /** Resolves with the first log line for which `match` holds. */
  waitForLine: (
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ) => Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  proxyPort: () => number;
  adminPort: () => number;
  stop: () => Promise<void>;
}

/** Runs `veer <args>` from the TypeScript sources (node --import tsx), cwd = repo root unless given. */
export function spawnVeer(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): VeerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', `${REPO}src/cli/main.ts`, ...args], {
    cwd: options.cwd ?? REPO,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] =
    [];
  let partial = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString('utf8');
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const text of parts) {
      if (!text.trim()) continue;
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text);
      } catch {
        line = { msg: text };
      }
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.match(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString('utf8');
  });
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  const started = () => lines.find((l) => l.msg === 'veer started');
  const portOf = (field: 'proxy' | 'admin') => {
    const line = started();
    if (!line) throw new Error('veer has not started');
    return Number(String(line[field]).split(':').pop());
  };
  return {
    child,
    lines,
    stderr: () => err,
    exited,
    waitForLine(match, timeoutMs = 15_000) {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(`no matching log line within ${timeoutMs} ms; stderr: ${err}; lines: ${JSON.stringify(lines)}`),
            ),
          timeoutMs,
        );
        waiters.push({
          match,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`veer exited; stderr: ${err}`));
        });
      });
    },
    proxyPort: () => portOf('proxy'),
    adminPort: () => portOf('admin'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `veer <args>` run to its end as a child process, with a clean environment (none of the machine's
 * VEER_ADMIN, VEER_ADMIN_TOKEN or VEER_CONFIG leaks in) plus `env`; killed after 15 s. Asynchronous,
 * because the veer it talks to may run in this process.
 */
export function runVeerCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const clean = { ...process.env };
  delete clean.VEER_ADMIN;
  delete clean.VEER_ADMIN_TOKEN;
  delete clean.VEER_CONFIG;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `${REPO}src/cli/main.ts`, ...args], {
      cwd: REPO,
      env: { ...clean, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
