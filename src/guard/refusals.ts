// Refused admin attempts in the audit log, rate-limited: who tried is remembered, a flood of bad tokens cannot fill the disk.

import type { Clock } from '../measure/window.js';
import type { AuditEntry } from '../state/audit.js';

/** Refused admin attempts audited one by one per minute; beyond it they are counted in one entry. */
export const REFUSED_PER_MINUTE = 100;

export class RefusalAudit {
  private minute = { since: Number.NEGATIVE_INFINITY, count: 0, suppressed: 0 };

  constructor(
    private readonly clock: Clock,
    private readonly append: (entry: AuditEntry) => void,
  ) {}

  /**
   * Nothing changes, but the audit log remembers who tried. At most REFUSED_PER_MINUTE entries a minute;
   * the rest are counted and summed up in one entry when the minute is over.
   */
  refused(rolloutId: string, actor: string, action: string, reason: string, detail: Record<string, unknown>): void {
    const now = this.clock();
    if (now - this.minute.since >= 60_000) {
      this.flushSuppressed(rolloutId, now);
      this.minute = { since: now, count: 0, suppressed: 0 };
    }
    if (++this.minute.count > REFUSED_PER_MINUTE) {
      this.minute.suppressed++;
      return;
    }
    this.append({
      time: new Date(now).toISOString(),
      actor,
      action,
      reason,
      rollout_id: rolloutId,
      before: null,
      after: null,
      detail,
    });
  }

  private flushSuppressed(rolloutId: string, now: number): void {
    const { suppressed, since } = this.minute;
    if (suppressed === 0) return;
    this.append({
      time: new Date(now).toISOString(),
      actor: 'admin',
      action: 'refused_suppressed',
      reason: `${suppressed} more refused admin attempts within a minute were not audited one by one (limit ${REFUSED_PER_MINUTE} a minute)`,
      rollout_id: rolloutId,
      before: null,
      after: null,
      detail: { suppressed, since: new Date(since).toISOString() },
    });
  }
}
