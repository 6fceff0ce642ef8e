// The bench's child processes: where their entry files are, forking them, and killing exactly those PIDs on exit.

import { type ChildProcess, fork, type SpawnOptions, spawn } from 'node:child_process';
import { dirname, extname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(import.meta.url);
/** '.ts' when run from source with tsx, '.js' when run from dist/. */
export const EXT = extname(here);
/** The repository root (or dist/ when built); child entry paths are relative to it. */
export const ROOT = resolve(dirname(here), '../..');
/** Node flags a child needs to run the same kind of files as this process. */
export const NODE_ARGS = EXT === '.ts' ? ['--import', 'tsx'] : [];
/** The repository root, whether run from source or from dist/. */
export const REPO = EXT === '.ts' ? ROOT : resolve(ROOT, '..');
/** The working directory children start in, so `--import tsx` resolves from the project's node_modules. */
export const CWD = REPO;

export function entry(relativeWithoutExt: string): string {
  return resolve(ROOT, `${relativeWithoutExt}${EXT}`);
}

const children = new Set<ChildProcess>();
/** Every PID this run started, for the report (and the smoke test's check that none outlived it). */
export const startedPids: number[] = [];

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  if (child.pid !== undefined) startedPids.push(child.pid);
  child.once('exit', () => children.delete(child));
  return child;
}

/** A Node child with an IPC channel, running one of the bench's own entry files. */
export function forkEntry(relativeWithoutExt: string, args: string[] = [], nodeArgs: string[] = []): ChildProcess {
  return track(
    fork(entry(relativeWithoutExt), args, {
      cwd: CWD,
      execArgv: [...NODE_ARGS, ...nodeArgs],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
}

export function spawnNode(args: string[], options: SpawnOptions): ChildProcess {
  return track(spawn(process.execPath, args, { cwd: CWD, ...options }));
}

/** Another program as a child (nginx), killed with the rest if the run is interrupted. */
export function spawnProgram(command: string, args: string[], options: SpawnOptions): ChildProcess {
  return track(spawn(command, args, { cwd: CWD, ...options }));
}

/** Resolves when the child has exited; sends SIGTERM, then SIGKILL after `graceMs`. */
export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Kills what is still running, by the PIDs this process started (never by name). */
export function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}

let installed = false;
/** The run may be interrupted or fail at any point: its children must not outlive it. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killChildren);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      killChildren();
      process.exit(130);
    });
  }
}
