// The immutable RoutingTable snapshot and decide(): which upstream serves a request, and why.

import type { UpstreamName } from '../config/types.js';
import type { RolloutState } from '../rollout.js';
import { murmur3, murmur3Prefixed, type PrefixState, prefixState } from './murmur3.js';

export const BUCKETS = 10_000;

export type DecisionReason = 'killed' | 'override' | 'forced' | 'bucket' | 'random';

export interface RoutingTable {
  readonly rolloutId: string;
  readonly salt: string;
  /** Share of buckets on new, in basis points (0..10000). */
  readonly weightBp: number;
  readonly state: RolloutState;
  /** Keys pinned to a side, ahead of the hash. */
  readonly overrides: ReadonlyMap<string, UpstreamName>;
  /** Lower-case name of a trusted header that forces a side, when enabled. */
  readonly forceHeader: string | undefined;
  /** Bumped on every swap; lets logs and tests tell snapshots apart. */
  readonly version: number;
  /** murmur3 state after `salt:`, computed once per table rather than per request. */
  readonly saltState: PrefixState;
}

export interface Decision {
  upstream: UpstreamName;
  reason: DecisionReason;
  /** 0..9999, or -1 when the hash was not consulted. */
  bucket: number;
}

export function makeTable(
  fields: Omit<RoutingTable, 'overrides' | 'saltState'> & { overrides?: Iterable<[string, UpstreamName]> },
): RoutingTable {
  return Object.freeze({
    ...fields,
    overrides: new Map(fields.overrides ?? []),
    saltState: prefixState(`${fields.salt}:`),
  });
}

/** The bucket of a key under a salt: murmur3_32(salt + ":" + key) mod 10000. */
export function bucketOf(salt: string, key: string): number {
  return murmur3(`${salt}:${key}`) % BUCKETS;
}

/**
 * Pure: kill beats everything, then key overrides, then the trusted force header, then the hash.
 * A request without a key draws a random bucket (`random`), so keyless traffic still splits by weight.
 */
export function decide(
  table: RoutingTable,
  key: string | undefined,
  forced: string | undefined,
  random = Math.random,
): Decision {
  if (table.state === 'killed') return { upstream: 'legacy', reason: 'killed', bucket: -1 };
  if (key !== undefined && table.overrides.size > 0) {
    const pinned = table.overrides.get(key);
    if (pinned !== undefined) return { upstream: pinned, reason: 'override', bucket: -1 };
  }
  if (forced === 'new' || forced === 'legacy') return { upstream: forced, reason: 'forced', bucket: -1 };
  if (key === undefined) {
    const bucket = Math.floor(random() * BUCKETS);
    return { upstream: bucket < table.weightBp ? 'new' : 'legacy', reason: 'random', bucket };
  }
  const bucket = murmur3Prefixed(table.saltState, key) % BUCKETS;
  return { upstream: bucket < table.weightBp ? 'new' : 'legacy', reason: 'bucket', bucket };
}
