// The immutable RoutingTable snapshot and decide(): which upstream serves a request, and why.

import type { SegmentConfig, UpstreamName } from '../config/types.js';
import type { RolloutState } from '../rollout.js';
import type { HeaderBag } from './key.js';
import { murmur3, murmur3Prefixed, type PrefixState, prefixState } from './murmur3.js';
import { type RoutedSegment, routeSegments } from './segments.js';

export const BUCKETS = 10_000;

export type DecisionReason = 'killed' | 'override' | 'forced' | 'segment' | 'bucket' | 'random';

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
  /** Targeted cohorts, first match wins (empty: none configured). */
  readonly segments: readonly RoutedSegment[];
  /** Share of legacy-bound users mirrored to new, basis points (0: no shadow). */
  readonly shadowBp: number;
  /** murmur3 state after `salt#shadow:`: the shadow cohort is drawn independently of the split. */
  readonly shadowSaltState: PrefixState;
}

export interface Decision {
  upstream: UpstreamName;
  reason: DecisionReason;
  /** 0..9999, or -1 when the hash was not consulted. */
  bucket: number;
  /** The segment that decided, when one did. */
  segment?: string;
}

export function makeTable(
  fields: Omit<RoutingTable, 'overrides' | 'saltState' | 'segments' | 'shadowBp' | 'shadowSaltState'> & {
    overrides?: Iterable<[string, UpstreamName]>;
    segments?: readonly SegmentConfig[];
    shadowBp?: number;
  },
): RoutingTable {
  const { segments, ...rest } = fields;
  // A rollback or a latch sends every segment to legacy (a kill does, before segments are looked at).
  const towardLegacy = fields.state === 'rolled_back' || fields.state === 'latched';
  return Object.freeze({
    ...rest,
    overrides: new Map(fields.overrides ?? []),
    saltState: prefixState(`${fields.salt}:`),
    segments: routeSegments(segments ?? [], fields.weightBp, towardLegacy),
    shadowBp: fields.shadowBp ?? 0,
    shadowSaltState: prefixState(`${fields.salt}#shadow:`),
  });
}

/** The bucket of a key under a salt: murmur3_32(salt + ":" + key) mod 10000. */
export function bucketOf(salt: string, key: string): number {
  return murmur3(`${salt}:${key}`) % BUCKETS;
}

/**
 * Pure: kill beats everything, then key overrides, then the trusted force header, then the first segment
 * that matches (its side, or its own weight by the same hash), then the main weight. A request without a
 * key draws a random bucket (`random`), so keyless traffic still splits by weight.
 */
export function decide(
  table: RoutingTable,
  key: string | undefined,
  forced: string | undefined,
  random: () => number = Math.random,
  headers?: HeaderBag,
  path = '',
): Decision {
  if (table.state === 'killed') return { upstream: 'legacy', reason: 'killed', bucket: -1 };
  if (key !== undefined && table.overrides.size > 0) {
    const pinned = table.overrides.get(key);
    if (pinned !== undefined) return { upstream: pinned, reason: 'override', bucket: -1 };
  }
  if (forced === 'new' || forced === 'legacy') return { upstream: forced, reason: 'forced', bucket: -1 };
  const segments = table.segments;
  if (segments.length > 0 && headers !== undefined) {
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!;
      if (!segment.matches(headers, path)) continue;
      if (segment.side !== undefined)
        return { upstream: segment.side, reason: 'segment', bucket: -1, segment: segment.name };
      const bucket =
        key === undefined ? Math.floor(random() * BUCKETS) : murmur3Prefixed(table.saltState, key) % BUCKETS;
      return {
        upstream: bucket < segment.weightBp ? 'new' : 'legacy',
        reason: 'segment',
        bucket,
        segment: segment.name,
      };
    }
  }
  if (key === undefined) {
    const bucket = Math.floor(random() * BUCKETS);
    return { upstream: bucket < table.weightBp ? 'new' : 'legacy', reason: 'random', bucket };
  }
  const bucket = murmur3Prefixed(table.saltState, key) % BUCKETS;
  return { upstream: bucket < table.weightBp ? 'new' : 'legacy', reason: 'bucket', bucket };
}

/**
 * Pure: whether a legacy-bound request is mirrored to new. The shadow cohort is drawn by its own salt
 * (`salt#shadow:key`), so it is independent of the split: a user is shadowed or not, stably, whatever the
 * weight does. Keyless requests draw at random.
 */
export function shadowed(table: RoutingTable, key: string | undefined, random: () => number = Math.random): boolean {
  if (table.shadowBp <= 0) return false;
  const bucket =
    key === undefined ? Math.floor(random() * BUCKETS) : murmur3Prefixed(table.shadowSaltState, key) % BUCKETS;
  return bucket < table.shadowBp;
}
