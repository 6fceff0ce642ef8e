// Fleet windows on the wire: a sidecar's window as compressed t-digest centroids and outcome counts, and their merge.

import { TDigest } from 'tdigest';
import type { UpstreamName } from '../config/types.js';
import type { WindowView } from '../guard/evaluate.js';
import { OUTCOMES } from '../measure/outcome.js';
import type { Centroid } from '../measure/quantile.js';
import { mergeSorted, quantileOf, totalCount } from '../measure/quantile.js';
import { mergeTokenWires, type TokenWire, tokensToWire } from '../measure/token-wire.js';
import type { WindowSnapshot } from '../measure/window.js';

/** One upstream's window: outcome counts (in OUTCOMES order) and [mean, n] centroids. */
export interface SideWire {
  o: number[];
  t: [number, number][];
  d: [number, number][];
  /** Answers relayed whole that token accounting found truncated or with an in-band error (errors too). */
  a?: number;
  /** Token accounting's side of the window; absent from sidecars without it. */
  k?: TokenWire;
}

export interface WindowWire {
  member: string;
  at: number;
  legacy: SideWire;
  new: SideWire;
}

/** Re-digests a merged window's centroids so the payload stays a few hundred centroids. */
function compress(centroids: readonly Centroid[]): [number, number][] {
  if (centroids.length <= 200) return centroids.map((c) => [round(c.mean), c.n]);
  const d = new TDigest(0.01, 10);
  for (const c of centroids) d.push(c.mean, c.n);
  d.compress();
  return d.toArray().map((c) => [round(c.mean), c.n]);
}

const round = (x: number) => Math.round(x * 1000) / 1000;

const WIRE_OUTCOMES = OUTCOMES.filter((o) => o !== 'saturated');

export function sideToWire(s: WindowSnapshot): SideWire {
  const outcomeErrors = s.outcomes.upstream_5xx + s.outcomes.connect_error + s.outcomes.timeout + s.outcomes.reset;
  return {
    // Without `saturated` (the last): a sidecar of an earlier version sums the list by index into its own
    // shorter one, and saturated requests count in no fleet figure.
    o: WIRE_OUTCOMES.map((o) => s.outcomes[o]),
    t: compress(s.ttfbCentroids()),
    d: compress(s.durationCentroids()),
    a: s.errors - outcomeErrors,
    k: tokensToWire(s.tokens, compress),
  };
}

export function toWire(member: string, at: number, windows: Record<UpstreamName, WindowSnapshot>): WindowWire {
  return { member, at, legacy: sideToWire(windows.legacy), new: sideToWire(windows.new) };
}

const sorted = (list: [number, number][]): Centroid[] =>
  list.map(([mean, n]) => ({ mean, n })).sort((a, b) => a.mean - b.mean);

/**
 * The fleet's window for one upstream: counts add up, and digests merge centroid by centroid (the fleet's
 * p95 is the p95 of everyone's samples pooled, not an average of p95s).
 */
export function mergeSides(sides: readonly SideWire[]): WindowView {
  const counts = OUTCOMES.map(() => 0);
  let answerErrors = 0;
  let ttfb: Centroid[] = [];
  let duration: Centroid[] = [];
  for (const s of sides) {
    s.o.forEach((n, i) => {
      counts[i]! += n;
    });
    answerErrors += s.a ?? 0;
    ttfb = mergeSorted(ttfb, sorted(s.t));
    duration = mergeSorted(duration, sorted(s.d));
  }
  const at = (o: (typeof OUTCOMES)[number]) => counts[OUTCOMES.indexOf(o)]!;
  const requests = counts.reduce((a, b) => a + b, 0) - at('client_abort');
  const errors = at('upstream_5xx') + at('connect_error') + at('timeout') + at('reset') + answerErrors;
  const ttfbTotal = totalCount(ttfb);
  const durationTotal = totalCount(duration);
  return {
    requests,
    errorRate: requests > 0 ? errors / requests : 0,
    ttfbSamples: ttfbTotal,
    durationSamples: durationTotal,
    ttfbQuantile: (q) => quantileOf(ttfb, q, ttfbTotal),
    durationQuantile: (q) => quantileOf(duration, q, durationTotal),
    tokens: mergeTokenWires(sides.map((s) => s.k)),
  };
}

export function mergeWindows(wires: readonly WindowWire[]): Record<UpstreamName, WindowView> {
  return { legacy: mergeSides(wires.map((w) => w.legacy)), new: mergeSides(wires.map((w) => w.new)) };
}
