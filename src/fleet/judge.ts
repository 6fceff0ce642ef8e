// The fleet's judge: the lease (one holder at a time, deadline-checked by Redis) and the merged windows its holder judges.

import type { Config, UpstreamName } from '../config/types.js';
import type { WindowView } from '../guard/evaluate.js';
import type { Logger } from '../log.js';
import type { Clock, WindowSnapshot } from '../measure/window.js';
import type { Metrics } from '../metrics/registry.js';
import type { RedisLink } from './link.js';
import { mergeWindows, toWire, type WindowWire } from './merge.js';

export interface JudgeOptions {
  link: RedisLink;
  memberId: string;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  fleet: () => Config['fleet'];
  key: (name: string) => string;
  localWindows: () => Record<UpstreamName, WindowSnapshot>;
  /** In sync with the store: only then may this sidecar hold the lease. */
  connected: () => boolean;
  /** A command failed: the sidecar is out of the fleet at once. */
  failed: (what: string, err: Error) => void;
}

export class Judge {
  /** This sidecar holds the lease. */
  leader = false;
  /** The lease holder as last seen. */
  holder: string | null = null;
  private merged: { at: number; view: Record<UpstreamName, WindowView>; members: number } | undefined;

  constructor(private readonly options: JudgeOptions) {}

  /** Windows the guard judges: the fleet's merge while this sidecar leads and the merge is fresh. */
  windows(): Record<UpstreamName, WindowView> | undefined {
    if (!this.leader || !this.merged) return undefined;
    if (this.options.clock() - this.merged.at > 3 * this.options.fleet().publishIntervalMs) return undefined;
    return this.merged.view;
  }

  /** Out of the fleet: no lease, whatever Redis still holds (a later call finds out). */
  drop(): void {
    this.leader = false;
    this.options.metrics.fleetLeader.set(0);
  }

  async release(): Promise<void> {
    if (this.leader) await this.options.link.release(this.options.key('lease'), this.options.memberId).catch(() => {});
    this.drop();
  }

  /** Publishes this sidecar's window; the lease holder also reads and merges everyone's. */
  async publish(): Promise<void> {
    const { link, memberId, key } = this.options;
    if (!link.ready) return;
    const now = this.options.clock();
    const ttl = 3 * this.options.fleet().publishIntervalMs;
    const own = toWire(memberId, now, this.options.localWindows());
    try {
      const r = await link.commands
        .multi()
        .set(key(`window:${memberId}`), JSON.stringify(own), 'PX', ttl)
        .zadd(key('members'), now, memberId)
        .zremrangebyscore(key('members'), '-inf', now - ttl)
        .zrange(key('members'), '0', '-1')
        .exec();
      const members = (r?.[3]?.[1] as string[] | undefined) ?? [memberId];
      this.options.metrics.fleetMembers.set(members.length);
      if (!this.leader) return;
      const others = members.filter((m) => m !== memberId);
      const raw = others.length ? await link.commands.mget(others.map((m) => key(`window:${m}`))) : [];
      const wires: WindowWire[] = [own];
      for (const text of raw) if (text) wires.push(JSON.parse(text) as WindowWire);
      this.merged = { at: now, view: mergeWindows(wires), members: wires.length };
    } catch (err) {
      this.options.failed('window publish', err as Error);
    }
  }

  /**
   * Takes or renews the lease. The call carries a deadline Redis checks, so a call that waited in a hung
   * Redis past it does nothing (no lease held by a sidecar that thinks it has none); a holder whose answer
   * was lost finds itself holder on its next call and judges again.
   */
  async hold(): Promise<void> {
    const { link, memberId } = this.options;
    if (!link.ready || !this.options.connected()) return;
    const was = this.leader;
    try {
      const deadline = await link.deadline(this.options.fleet().commandTimeoutMs);
      const holder = await link.lease(this.options.key('lease'), memberId, this.options.fleet().leaseTtlMs, deadline);
      if (holder === '') throw new Error('the lease call reached Redis after its deadline');
      this.holder = holder;
      this.leader = this.options.connected() && holder === memberId;
    } catch (err) {
      return this.options.failed('lease', err as Error);
    }
    this.options.metrics.fleetLeader.set(this.leader ? 1 : 0);
    if (this.leader === was) return;
    if (this.leader) {
      this.options.logger.info({ member: memberId }, 'fleet: took the lease; judging the fleet');
      void this.publish();
    } else {
      this.options.logger.warn({ member: memberId, holder: this.holder }, 'fleet: lost the lease');
    }
  }
}
