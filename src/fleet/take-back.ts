// A change toward new that was answered 503 but may have reached the store: found on the next read, and
// put back to what the store held before, since the operator was told nothing changed.

import type { Logger } from '../log.js';
import type { PersistedState } from '../state/store.js';
import type { RedisLink } from './link.js';
import type { StoreRecord } from './reconcile.js';
import type { FleetReport } from './report.js';

export interface TakeBackOptions {
  link: RedisLink;
  keys: () => { state: string; channel: string };
  clock: () => number;
  logger: Logger;
  memberId: string;
  report: FleetReport;
}

export class UnconfirmedWrite {
  /** The write whose answer did not come in time: the store position it was made on, before and after. */
  private write: { epoch: string; prev: PersistedState; next: PersistedState } | undefined;

  constructor(private readonly options: TakeBackOptions) {}

  /** A write toward new timed out: Redis may have run it before its deadline, with the answer on its way. */
  note(epoch: string, prev: PersistedState, next: PersistedState): void {
    this.write = { epoch, prev, next };
  }

  /**
   * Called with the next read (Redis answers in order on one connection, so the read tells): when the
   * unconfirmed write is what the store holds, writes back the state before it. True when the store was
   * touched (or moved), and the caller reads again.
   */
  async takeBack(remote: StoreRecord | undefined): Promise<boolean> {
    const u = this.write;
    this.write = undefined;
    if (!u || !remote || remote.epoch !== u.epoch || remote.version !== u.next.version) return false;
    const landed = remote.state.last_change;
    if (!landed || JSON.stringify(landed) !== JSON.stringify(u.next.last_change)) return false;
    const back: PersistedState = {
      ...u.prev,
      version: remote.version + 1,
      last_change: {
        time: new Date(this.options.clock()).toISOString(),
        actor: 'fleet',
        action: 'unconfirmed_taken_back',
        reason: `${landed.action} by ${landed.actor} was answered 503 but reached the store late; taken back`,
      },
    };
    const written = await this.options.link.write(this.options.keys(), remote, {
      state: back,
      epoch: remote.epoch,
      provisional: false,
    });
    if (written === 'written') {
      const reason = back.last_change!.reason;
      this.options.logger.warn({ member: this.options.memberId, action: landed.action }, `fleet: ${reason}`);
      this.options.report.audit('fleet_unconfirmed_taken_back', reason, back, { version: back.version });
    }
    return true;
  }
}
