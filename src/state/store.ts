// The durable rollout state file: read at start-up, replaced atomically (temp file, fsync, rename) on every change.

import {
  accessSync,
  closeSync,
  constants,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ROLLOUT_STATES, type RolloutState } from '../rollout.js';

export const STATE_FORMAT = 1;

/** One audited change, as remembered in the state file and shown by the status route. */
export interface ChangeRecord {
  time: string;
  actor: string;
  action: string;
  reason: string;
}

/** Everything that must survive a restart; the file's JSON, field for field. */
export interface PersistedState {
  format: number;
  rollout_id: string;
  state: RolloutState;
  weight_bp: number;
  latched: boolean;
  kill_reason: string | null;
  /** Where a resume after a kill returns to. */
  before_kill: { state: RolloutState; weight_bp: number } | null;
  /** Keys pinned at runtime by operators (the config's own overrides are not stored here). */
  overrides: { new: string[]; legacy: string[] };
  /** Epoch ms of recent automatic changes, for the flap latch. */
  flips: number[];
  /** Epoch ms when the current weight took effect. */
  weight_since: number;
  last_change: ChangeRecord | null;
  version: number;
  /** Shadow share in basis points as an operator or the guard last set it (absent: the config's percent). */
  shadow_bp?: number;
  /**
   * Fleet mode: the shared store's version this sidecar last reconciled with, so that after a restart it
   * can tell its own unshared changes from the fleet's (absent outside fleet mode; never sent to the store).
   */
  fleet_version?: number;
  /** Fleet mode: the seeding of the store that `fleet_version` counts in (a store reset starts a new one). */
  fleet_epoch?: string;
}

export class StateFileError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(
      `state file ${path} ${detail}; veer will not start on a state it cannot read (a killed rollout must stay killed). ` +
        'Fix the file, or move it away to start this rollout afresh (see docs/slo-guard.md, "Start-up and recovering").',
    );
    this.name = 'StateFileError';
  }
}

function isStringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/** Checks a parsed file field by field; returns the first problem, or undefined. */
function problemOf(s: Record<string, unknown>): string | undefined {
  if (s.format !== STATE_FORMAT) return `format: expected ${STATE_FORMAT}, got ${JSON.stringify(s.format)}`;
  if (typeof s.rollout_id !== 'string' || s.rollout_id === '') return 'rollout_id: must be a non-empty string';
  if (!ROLLOUT_STATES.includes(s.state as RolloutState)) return `state: must be one of ${ROLLOUT_STATES.join(', ')}`;
  if (!Number.isInteger(s.weight_bp) || (s.weight_bp as number) < 0 || (s.weight_bp as number) > 10_000)
    return 'weight_bp: must be an integer 0..10000';
  if (typeof s.latched !== 'boolean') return 'latched: must be a boolean';
  if (s.kill_reason !== null && typeof s.kill_reason !== 'string') return 'kill_reason: must be a string or null';
  const o = s.overrides as Record<string, unknown> | undefined;
  if (!o || !isStringList(o.new) || !isStringList(o.legacy)) return 'overrides: must hold new and legacy key lists';
  if (!Array.isArray(s.flips) || !s.flips.every((x) => typeof x === 'number')) return 'flips: must be a number list';
  if (typeof s.weight_since !== 'number') return 'weight_since: must be a number';
  if (!Number.isInteger(s.version)) return 'version: must be an integer';
  if (
    s.shadow_bp !== undefined &&
    (!Number.isInteger(s.shadow_bp) || (s.shadow_bp as number) < 0 || (s.shadow_bp as number) > 10_000)
  )
    return 'shadow_bp: must be an integer 0..10000';
  return undefined;
}

export class StateStore {
  constructor(readonly path: string) {}

  /** The saved state, or undefined when there is no file yet. Anything else unreadable throws StateFileError. */
  load(): PersistedState | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      throw new StateFileError(this.path, `cannot be read (${code ?? (err as Error).message})`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new StateFileError(this.path, `is not valid JSON (${(err as Error).message})`);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new StateFileError(this.path, 'does not hold a JSON object');
    const problem = problemOf(parsed as Record<string, unknown>);
    if (problem) throw new StateFileError(this.path, `is invalid: ${problem}`);
    return parsed as PersistedState;
  }

  /**
   * Write to a temp file in the same directory, fsync it, rename it over the old file, fsync the
   * directory: a crash leaves either the old state or the new one, never half of either. Synchronous on
   * purpose: changes are rare, and nothing may observe a change before it is on disk.
   */
  save(state: PersistedState): void {
    const tmp = join(dirname(this.path), `.${basename(this.path)}.${process.pid}.tmp`);
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(state, null, 2)}\n`);
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      try {
        unlinkSync(tmp);
      } catch {}
      throw err;
    }
    closeSync(fd);
    try {
      renameSync(tmp, this.path);
    } catch (err) {
      // The old file stays as it was; the temp copy must not pile up next to it.
      try {
        unlinkSync(tmp);
      } catch {}
      throw err;
    }
    try {
      const dir = openSync(dirname(this.path), 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    } catch {
      // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
    }
  }

  /** For /readyz: can the next change be persisted? */
  writable(): boolean {
    try {
      accessSync(dirname(this.path), constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }
}
