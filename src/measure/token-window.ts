// The token side of an upstream's sliding window: per-stream TPOT and decode rate digests, merged ITL histograms, end-class counts.

import { TDigest } from 'tdigest';
import { type Centroid, quantileOf, totalCount } from './quantile.js';
import { SliceRing } from './slice-ring.js';
import {
  END_CLASS_INDEX,
  END_CLASSES,
  type EndClass,
  histogramQuantile,
  ITL_BUCKETS,
  type TokenSummary,
  tokensPerSecond,
  tpotMs,
} from './token-summary.js';

const DELTA = 0.01;
const K = 10;
/** Streams waiting to be digested together (as in window.ts); every read digests first. */
const PENDING_MAX = 256;

class TokenSlice {
  epoch = -1;
  readonly tpot = new TDigest(DELTA, K);
  readonly tps = new TDigest(DELTA, K);
  readonly itl = new Float64Array(ITL_BUCKETS);
  /** Streams whose gaps are in `itl` (an ITL rule's samples). */
  itlStreams = 0;
  readonly ends = new Float64Array(END_CLASSES.length);

  reset(epoch: number): void {
    this.epoch = epoch;
    this.tpot.reset();
    this.tps.reset();
    this.itl.fill(0);
    this.itlStreams = 0;
    this.ends.fill(0);
  }

  absorb(other: TokenSlice): void {
    this.tpot.push_centroid(other.tpot.toArray());
    this.tps.push_centroid(other.tps.toArray());
    for (let i = 0; i < ITL_BUCKETS; i++) this.itl[i]! += other.itl[i]!;
    this.itlStreams += other.itlStreams;
    for (let i = 0; i < this.ends.length; i++) this.ends[i]! += other.ends[i]!;
  }
}

/** A rate as its two counts, so a rule can judge the evidence behind it, not only the ratio. */
export interface RateCounts {
  failures: number;
  total: number;
}

/** What the token side of a window holds at one moment. */
export interface TokenView {
  /** Answers judged for the rates: every accounted answer but those the client cut. */
  answers: number;
  ends: Record<EndClass, number>;
  /** Truncated ÷ answers (an answer that ended without its terminal event, cleanly or cut mid-stream). */
  incomplete: RateCounts;
  inbandErrors: RateCounts;
  empty: RateCounts;
  /** Streams with a TPOT (two token events or more). */
  tpotSamples: number;
  itlStreams: number;
  itlGaps: number;
  tpotQuantile(q: number): number | undefined;
  tokensPerSecondQuantile(q: number): number | undefined;
  itlQuantile(q: number): number | undefined;
  /** What the view was built from (the fleet publishes and merges these). */
  parts(): TokenParts;
}

/** What a token view is built from: end counts, ITL bucket counts, and sorted TPOT and decode-rate centroids. */
export interface TokenParts {
  ends: Record<EndClass, number>;
  itl: Float64Array;
  itlStreams: number;
  tpot: Centroid[];
  tps: Centroid[];
}

/** A view over merged parts (one sidecar's live slices, or a fleet's published windows). */
export function tokenView(parts: TokenParts): TokenView {
  const { ends, itl, tpot, tps } = parts;
  const tpotTotal = totalCount(tpot);
  const tpsTotal = totalCount(tps);
  let itlGaps = 0;
  for (const c of itl) itlGaps += c;
  const answers = ends.complete + ends.truncated + ends.inband_error + ends.empty;
  return {
    answers,
    ends,
    incomplete: { failures: ends.truncated, total: answers },
    inbandErrors: { failures: ends.inband_error, total: answers },
    empty: { failures: ends.empty, total: answers },
    tpotSamples: tpotTotal,
    itlStreams: parts.itlStreams,
    itlGaps,
    tpotQuantile: (q) => quantileOf(tpot, q, tpotTotal),
    tokensPerSecondQuantile: (q) => quantileOf(tps, q, tpsTotal),
    itlQuantile: (q) => histogramQuantile(itl, q),
    parts: () => parts,
  };
}

/**
 * Same ring and epochs as the SlidingWindow it belongs to (slices of `sliceMs` on the same clock); a
 * stream lands whole in the slice of its end, with one digest insert per figure and 80 additions for
 * its gaps, so nothing here runs per event.
 */
export class TokenWindow {
  private readonly ring: SliceRing<TokenSlice>;
  private readonly pendingTpot: number[] = [];
  private readonly pendingTps: number[] = [];

  constructor(
    windowMs: number,
    slices: number,
    private readonly clock: () => number,
  ) {
    this.ring = new SliceRing(
      windowMs,
      slices,
      () => new TokenSlice(),
      () => this.digestPending(),
    );
  }

  record(t: TokenSummary): void {
    const s = this.ring.at(this.clock());
    s.ends[END_CLASS_INDEX[t.end]]! += 1;
    // Gaps of a stream the client cut or held back may be the client's doing: only its end class counts.
    if (t.end === 'client_abort' || t.heldBack) return;
    const tpot = tpotMs(t);
    if (tpot !== undefined) this.pendingTpot.push(tpot);
    const tps = tokensPerSecond(t);
    if (tps !== undefined) this.pendingTps.push(tps);
    const gaps = t.gaps;
    if (gaps !== undefined) {
      const itl = s.itl;
      for (let i = 0; i < ITL_BUCKETS; i++) itl[i]! += gaps[i]!;
      s.itlStreams++;
    }
    if (this.pendingTpot.length >= PENDING_MAX || this.pendingTps.length >= PENDING_MAX) this.digestPending();
  }

  private digestPending(): void {
    const s = this.ring.open;
    if (s === undefined) return;
    if (this.pendingTpot.length > 0) s.tpot.push(this.pendingTpot);
    if (this.pendingTps.length > 0) s.tps.push(this.pendingTps);
    this.pendingTpot.length = 0;
    this.pendingTps.length = 0;
  }

  snapshot(firstEpoch = Number.NEGATIVE_INFINITY): TokenView {
    this.digestPending();
    const live = this.ring.live(this.ring.epochOf(this.clock())).filter((s) => s.epoch >= firstEpoch);
    const ends = Object.fromEntries(END_CLASSES.map((c) => [c, 0])) as Record<EndClass, number>;
    const itl = new Float64Array(ITL_BUCKETS);
    let itlStreams = 0;
    let tpotCentroids: Centroid[] = [];
    let tpsCentroids: Centroid[] = [];
    for (const s of live) {
      END_CLASSES.forEach((c, i) => {
        ends[c] += s.ends[i]!;
      });
      for (let i = 0; i < ITL_BUCKETS; i++) itl[i]! += s.itl[i]!;
      itlStreams += s.itlStreams;
      tpotCentroids = tpotCentroids.concat(s.tpot.toArray());
      tpsCentroids = tpsCentroids.concat(s.tps.toArray());
    }
    const byMean = (a: { mean: number }, b: { mean: number }) => a.mean - b.mean;
    return tokenView({
      ends,
      itl,
      itlStreams,
      tpot: tpotCentroids.sort(byMean),
      tps: tpsCentroids.sort(byMean),
    });
  }

  /** A reload's new window shape, keeping the samples (see SliceRing.reshape). */
  reshape(windowMs: number, slices: number): void {
    this.digestPending();
    this.ring.reshape(windowMs, slices, this.clock());
  }
}
