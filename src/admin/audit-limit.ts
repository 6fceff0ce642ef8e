// How many refused admin attempts from one source are written to the audit log, so a flood cannot push real entries out of view.

import { ResetBudget } from '../proxy/reset-budget.js';

/** Sources tracked at once; the oldest is forgotten first (an attacker cycling addresses gains a fresh burst, no more). */
const MAX_SOURCES = 1024;

/**
 * A token bucket per remote address: `burst` refused attempts audited at once, then `perMinute`. What goes
 * over is counted, and the next audited refusal from that source says how many were left out, so the log
 * still shows that a flood happened without holding every line of it.
 */
export class RefusalAuditLimit {
  private readonly sources = new Map<string, { budget: ResetBudget; skipped: number }>();

  constructor(
    private readonly clock: () => number,
    private readonly burst = 10,
    private readonly perMinute = 10,
  ) {}

  /** undefined: do not audit this one; otherwise how many before it from the same source were not audited. */
  admit(source: string): number | undefined {
    let entry = this.sources.get(source);
    if (entry === undefined) {
      if (this.sources.size >= MAX_SOURCES) this.sources.delete(this.sources.keys().next().value!);
      entry = { budget: new ResetBudget(this.burst, this.perMinute / 60, this.clock), skipped: 0 };
      this.sources.set(source, entry);
    }
    if (!entry.budget.spend()) {
      entry.skipped++;
      return undefined;
    }
    const skipped = entry.skipped;
    entry.skipped = 0;
    return skipped;
  }
}
