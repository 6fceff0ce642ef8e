// A window's token side on the fleet's wire (compressed centroids, sparse gap buckets, end counts) and the merge of many.

import type { Centroid } from './quantile.js';
import { mergeSorted } from './quantile.js';
import { END_CLASSES, type EndClass, ITL_BUCKETS } from './token-summary.js';
import { type TokenView, tokenView } from './token-window.js';

/** One sidecar's token side: end counts (END_CLASSES order), [bucket, count] gaps, ITL streams, TPOT and rate centroids. */
export interface TokenWire {
  e: number[];
  g: [number, number][];
  s: number;
  p: [number, number][];
  r: [number, number][];
}

export function tokensToWire(v: TokenView, compress: (c: readonly Centroid[]) => [number, number][]): TokenWire {
  const parts = v.parts();
  const g: [number, number][] = [];
  parts.itl.forEach((n, i) => {
    if (n > 0) g.push([i, n]);
  });
  return {
    e: END_CLASSES.map((c) => parts.ends[c]),
    g,
    s: parts.itlStreams,
    p: compress(parts.tpot),
    r: compress(parts.tps),
  };
}

const sorted = (list: [number, number][]): Centroid[] =>
  list.map(([mean, n]) => ({ mean, n })).sort((a, b) => a.mean - b.mean);

/**
 * The fleet's token side: counts add up and digests merge centroid by centroid, as for TTFB. Undefined
 * when no member published one (a fleet of older sidecars): token rules are then inconclusive.
 */
export function mergeTokenWires(wires: readonly (TokenWire | undefined)[]): TokenView | undefined {
  const present = wires.filter((w): w is TokenWire => w !== undefined);
  if (present.length === 0) return undefined;
  const ends = Object.fromEntries(END_CLASSES.map((c) => [c, 0])) as Record<EndClass, number>;
  const itl = new Float64Array(ITL_BUCKETS);
  let itlStreams = 0;
  let tpot: Centroid[] = [];
  let tps: Centroid[] = [];
  for (const w of present) {
    END_CLASSES.forEach((c, i) => {
      ends[c] += w.e[i] ?? 0;
    });
    for (const [i, n] of w.g) if (i >= 0 && i < ITL_BUCKETS) itl[i]! += n;
    itlStreams += w.s;
    tpot = mergeSorted(tpot, sorted(w.p));
    tps = mergeSorted(tps, sorted(w.r));
  }
  return tokenView({ ends, itl, itlStreams, tpot, tps });
}
