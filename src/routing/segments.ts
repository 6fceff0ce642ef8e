// Segments compiled for the request path: a reader and a test per configured cohort, in config order.

import type { SegmentConfig, UpstreamName } from '../config/types.js';
import { type HeaderBag, requestValue } from './key.js';

/** A segment as a routing table holds it: its matcher, and its side or weight as the rollout's state allows. */
export interface RoutedSegment {
  readonly name: string;
  /** True when the request belongs to the segment. */
  readonly matches: (headers: HeaderBag, path: string) => boolean;
  /** A fixed side, or undefined when the weight decides. */
  readonly side: UpstreamName | undefined;
  /** Basis points on new, after the cap at the main weight (unused with a fixed side). */
  readonly weightBp: number;
}

function tester(segment: SegmentConfig): (value: string) => boolean {
  const test = segment.test;
  switch (test.kind) {
    case 'equals': {
      const expected = test.value;
      return (value) => value === expected;
    }
    case 'in': {
      const values = new Set(test.values);
      return (value) => values.has(value);
    }
    case 'prefix': {
      const prefix = test.value;
      return (value) => value.startsWith(prefix);
    }
    case 'regex': {
      const regex = test.regex;
      return (value) => regex.test(value);
    }
  }
}

/**
 * The segments for one routing table. `towardLegacy` (a rollback or a latch) sends every segment to legacy;
 * a segment's own weight is capped at the main weight when it asks to be.
 */
export function routeSegments(
  segments: readonly SegmentConfig[],
  mainWeightBp: number,
  towardLegacy: boolean,
): readonly RoutedSegment[] {
  return Object.freeze(
    segments.map((segment): RoutedSegment => {
      const { kind, name } = segment.source;
      const test = tester(segment);
      // Headers are read straight off the header object (the common, cheapest case).
      const matches =
        kind === 'header'
          ? (headers: HeaderBag, path: string) => {
              if (headers[name] === undefined) return false;
              const value = requestValue(kind, name, headers, path);
              return value !== undefined && test(value);
            }
          : (headers: HeaderBag, path: string) => {
              const value = requestValue(kind, name, headers, path);
              return value !== undefined && test(value);
            };
      const weightBp =
        segment.weightBp === undefined
          ? 0
          : segment.capAtWeight
            ? Math.min(segment.weightBp, mainWeightBp)
            : segment.weightBp;
      return Object.freeze({
        name: segment.name,
        matches,
        side: towardLegacy ? 'legacy' : segment.side,
        weightBp,
      });
    }),
  );
}
