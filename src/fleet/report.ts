// What the fleet tells operators: store seeds and resets, dropped changes (audited, logged at warn), and its refusals.

import { VeerError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Clock } from '../measure/window.js';
import type { AuditLog } from '../state/audit.js';
import type { PersistedState } from '../state/store.js';
import type { Plan, Seen, StoreRecord } from './reconcile.js';

export interface ReportOptions {
  memberId: string;
  logger: Logger;
  clock: Clock;
  audit?: AuditLog;
  seedHoldMs: () => number;
}

export class FleetReport {
  constructor(private readonly options: ReportOptions) {}

  /** Store resets and merges that replaced or dropped something are audited and logged at warn. */
  wrote(
    plan: Extract<Plan, { kind: 'write' }>,
    record: StoreRecord,
    remote: StoreRecord | undefined,
    seen: Seen | undefined,
  ): void {
    if (plan.why !== 'reseed' && plan.why !== 'seed' && plan.why !== 'confirm_seed') return;
    const reason =
      plan.why === 'confirm_seed'
        ? `store seeded from config confirmed after ${this.options.seedHoldMs()} ms without a sidecar that remembers the fleet`
        : plan.why === 'seed'
          ? plan.provisional
            ? 'empty store seeded provisionally from config (served once confirmed)'
            : 'empty store seeded with this sidecar state'
          : remote
            ? `store reset (epoch ${remote.epoch} v${remote.version}${remote.provisional ? ', provisional' : ''}; this sidecar had seen ${seen ? `${seen.epoch} v${seen.version}` : 'none'}): re-seeded with this sidecar's state, stops carried over`
            : `store empty (this sidecar had seen ${seen?.epoch} v${seen?.version}): re-seeded with this sidecar's state`;
    const level = plan.why === 'reseed' ? 'warn' : 'info';
    this.options.logger[level](
      {
        member: this.options.memberId,
        state: record.state.state,
        weight_percent: record.state.weight_bp / 100,
        epoch: record.epoch,
        version: record.version,
      },
      `fleet: ${reason}`,
    );
    this.audit(`fleet_${plan.why}`, reason, record.state, { epoch: record.epoch, version: record.version });
  }

  dropped(actions: string[], record: StoreRecord): void {
    if (actions.length === 0) return;
    const reason = `another sidecar changed the rollout at the same time; its state wins over: ${actions.join(', ')}`;
    this.options.logger.warn(
      { member: this.options.memberId, dropped: actions, fleet_version: record.version },
      `fleet: ${reason}`,
    );
    this.audit('fleet_merge_dropped', reason, record.state, { dropped: actions, version: record.version });
  }

  audit(action: string, reason: string, after: PersistedState, detail: Record<string, unknown>): void {
    try {
      this.options.audit?.append({
        time: new Date(this.options.clock()).toISOString(),
        actor: 'fleet',
        action,
        reason,
        rollout_id: after.rollout_id,
        before: null,
        after: {
          rollout_id: after.rollout_id,
          state: after.state,
          weight_percent: after.weight_bp / 100,
          latched: after.latched,
          kill_reason: after.kill_reason,
        },
        detail,
      });
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message, action }, 'audit log not writable');
    }
  }
}

export function unavailable(action: string): VeerError {
  return new VeerError(
    'fleet_unavailable',
    `${action} refused: the fleet store did not confirm it in time, and nothing moves traffic toward new on unconfirmed state; kill and rollback still work`,
  );
}

export function conflict(action: string): VeerError {
  return new VeerError(
    'conflict',
    `${action} refused: the rollout changed in the fleet meanwhile; nothing changed, look and retry`,
  );
}

export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'invalid url';
  }
}
