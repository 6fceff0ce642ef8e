// The append-only audit log: one JSON line per change or refused attempt, newest read first.

import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import type { RuleJson } from '../rollout.js';

/** The part of the rollout an audit entry shows before and after a change. */
export interface RolloutSummary {
  rollout_id: string;
  state: string;
  weight_percent: number;
  latched: boolean;
  kill_reason: string | null;
}

export interface AuditEntry {
  time: string;
  /** `slo-guard`, `admin:<token name>`, `config`, or `anonymous` for refused attempts. */
  actor: string;
  action: string;
  reason: string;
  rollout_id: string;
  before: RolloutSummary | null;
  after: RolloutSummary | null;
  /** Rule results that caused an automatic change. */
  rules?: RuleJson[];
  /** Extra facts: refused route, changed fields, persistence failures. */
  detail?: Record<string, unknown>;
}

/** How far back a read looks; a long log is read from its end. */
const TAIL_BYTES = 4 * 1024 * 1024;

export class AuditLog {
  constructor(readonly path: string) {}

  /** Appends one line with O_APPEND, so concurrent writers never interleave within a line. */
  append(entry: AuditEntry): void {
    const fd = openSync(this.path, 'a', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(entry)}\n`);
    } finally {
      closeSync(fd);
    }
  }

  /** Up to `limit` entries, newest first; lines that do not parse are skipped. */
  read(limit: number): AuditEntry[] {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    let text: string;
    try {
      const size = fstatSync(fd).size;
      const start = Math.max(0, size - TAIL_BYTES);
      const buf = Buffer.alloc(size - start);
      let off = 0;
      while (off < buf.length) {
        const n = readSync(fd, buf, off, buf.length - off, start + off);
        if (n === 0) break;
        off += n;
      }
      text = buf.subarray(0, off).toString('utf8');
      // A read from the middle starts inside a line: drop that partial line.
      if (start > 0) text = text.slice(text.indexOf('\n') + 1);
    } finally {
      closeSync(fd);
    }
    const lines = text.split('\n');
    const out: AuditEntry[] = [];
    for (let i = lines.length - 1; i >= 0 && out.length < limit; i--) {
      const line = lines[i]!;
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as AuditEntry);
      } catch {}
    }
    return out;
  }
}
