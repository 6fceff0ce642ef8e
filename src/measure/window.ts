// A sliding window per upstream: a ring of sub-window t-digests (TTFB, duration) and outcome counters.

import { TDigest } from 'tdigest';
import { OUTCOME_INDEX, OUTCOMES, type Outcome } from './outcome.js';
import { type Centroid, mergeSorted, quantileOf, totalCount } from './quantile.js';
import { SliceRing } from './slice-ring.js';
import type { TokenSummary } from './token-summary.js';
import { type TokenView, TokenWindow } from './token-window.js';

export type Clock = () => number;

// K=10 recompresses a digest past 1,000 centroids (npm's default, 25, lets it grow to 2,500), which keeps
// reads cheap at little cost to inserts.
const DELTA = 0.01;
const K = 10;
/** Samples waiting to be digested together; also digested whenever the window is read. */
const PENDING_MAX = 256;

class Slice {
  epoch = -1;
  readonly ttfb = new TDigest(DELTA, K);
  readonly duration = new TDigest(DELTA, K);
  readonly counts = new Float64Array(OUTCOMES.length);
  /** Answers relayed whole (outcome ok) whose bytes said they failed: truncated, or an in-band error. */
  answerErrors = 0;
  /** Sorted centroids, copied once after the slice closed (its digest no longer changes). */
  closed: { ttfb: Centroid[]; duration: Centroid[] } | undefined;

  reset(epoch: number): void {
    this.epoch = epoch;
    this.ttfb.reset();
    this.duration.reset();
    this.counts.fill(0);
    this.answerErrors = 0;
    this.closed = undefined;
  }

  /** Adds another slice's samples to this one (a reshape folds old slices into new ones). */
  absorb(other: Slice): void {
    this.ttfb.push_centroid(other.ttfb.toArray());
    this.duration.push_centroid(other.duration.toArray());
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
    this.answerErrors += other.answerErrors;
    this.closed = undefined;
  }

  close(): { ttfb: Centroid[]; duration: Centroid[] } {
    if (!this.closed) {
      this.closed = { ttfb: this.ttfb.toArray(), duration: this.duration.toArray() };
    }
    return this.closed;
  }
}

/** What a window holds at one moment; quantiles come from merged digests, computed once per snapshot. */
export interface WindowSnapshot {
  /** Requests judged for error rate: every outcome but client_abort and saturated. */
  requests: number;
  /** Outcome errors, plus answers relayed whole that were truncated or carried an in-band error. */
  errors: number;
  errorRate: number;
  outcomes: Record<Outcome, number>;
  /** TTFB samples (responses whose first byte arrived). */
  ttfbSamples: number;
  durationSamples: number;
  ttfbQuantile(q: number): number | undefined;
  durationQuantile(q: number): number | undefined;
  ttfbCentroids(): Centroid[];
  durationCentroids(): Centroid[];
  /**
   * The same window restricted to the slices that began at or after `at` (a step's start): no sample taken
   * before `at` is in it; samples of the slice open at `at` are left out too (they cannot be told apart).
   */
  since(at: number): WindowSnapshot;
  /** Token accounting's figures for the same window. */
  tokens: TokenView;
}

export interface WindowOptions {
  windowMs: number;
  slices: number;
  clock: Clock;
}

/**
 * Samples land in the slice of their time; a slice older than the window is reset when its ring
 * position is reused, so expiry costs nothing per sample. The closed slices' merge is cached until the
 * next rotation, and a snapshot merges only that cache with the open slice.
 */
export class SlidingWindow {
  private readonly ring: SliceRing<Slice>;
  private readonly clock: Clock;
  private closedCache: { epoch: number; ttfb: Centroid[]; duration: Centroid[] } | undefined;
  private snapshotCache: { epoch: number; total: number; snapshot: WindowSnapshot } | undefined;
  /** Samples of the open slice not yet in its digests (see digestPending). */
  private readonly pendingTtfb: number[] = [];
  private readonly pendingDuration: number[] = [];
  readonly tokens: TokenWindow;

  constructor(options: WindowOptions) {
    this.clock = options.clock;
    // Samples still waiting belong to the slice that was open when they came: digested before a rotation.
    this.ring = new SliceRing(
      options.windowMs,
      options.slices,
      () => new Slice(),
      () => this.digestPending(),
    );
    this.tokens = new TokenWindow(options.windowMs, options.slices, options.clock);
  }

  /** window ÷ slices; changes only in reshape(). */
  get sliceMs(): number {
    return this.ring.sliceMs;
  }

  /**
   * ttfbMs/durationMs undefined when not measured (no first byte, or the stream did not complete);
   * `answer` is token accounting's summary, when the answer was scanned.
   */
  record(outcome: Outcome, ttfbMs: number | undefined, durationMs: number | undefined, answer?: TokenSummary): void {
    const s = this.ring.at(this.clock());
    s.counts[OUTCOME_INDEX[outcome]]! += 1;
    if (answer !== undefined) {
      this.tokens.record(answer);
      if (outcome === 'ok' && (answer.end === 'truncated' || answer.end === 'inband_error')) s.answerErrors++;
    }
    if (ttfbMs !== undefined) this.pendingTtfb.push(ttfbMs);
    if (durationMs !== undefined) this.pendingDuration.push(durationMs);
    if (this.pendingTtfb.length >= PENDING_MAX || this.pendingDuration.length >= PENDING_MAX) this.digestPending();
  }

  /**
   * Puts the samples waiting in `pending*` into the open slice's digests. A digest insert one at a time,
   * between requests, costs ~1.4 µs in the proxy (the digest's tree is out of the CPU caches by then);
   * in a run of a few hundred it costs what the micro-benchmark says, ~0.25 µs. Every read digests first.
   */
  private digestPending(): void {
    if (this.pendingTtfb.length === 0 && this.pendingDuration.length === 0) return;
    const s = this.ring.open!;
    if (this.pendingTtfb.length > 0) s.ttfb.push(this.pendingTtfb);
    if (this.pendingDuration.length > 0) s.duration.push(this.pendingDuration);
    this.pendingTtfb.length = 0;
    this.pendingDuration.length = 0;
  }

  snapshot(): WindowSnapshot {
    this.digestPending();
    const epoch = this.ring.epochOf(this.clock());
    const live = this.ring.live(epoch);
    const open = live.find((s) => s.epoch === epoch);
    let total = 0;
    for (const s of live) for (const c of s.counts) total += c;
    // Same epoch and no new sample since the last snapshot: the answer cannot have changed.
    if (this.snapshotCache && this.snapshotCache.epoch === epoch && this.snapshotCache.total === total) {
      return this.snapshotCache.snapshot;
    }
    if (!this.closedCache || this.closedCache.epoch !== epoch) {
      let ttfbClosed: Centroid[] = [];
      let durationClosed: Centroid[] = [];
      for (const s of live) {
        if (s === open) continue;
        const c = s.close();
        ttfbClosed = mergeSorted(ttfbClosed, c.ttfb);
        durationClosed = mergeSorted(durationClosed, c.duration);
      }
      this.closedCache = { epoch, ttfb: ttfbClosed, duration: durationClosed };
    }
    const ttfb = open ? mergeSorted(this.closedCache.ttfb, open.ttfb.toArray()) : this.closedCache.ttfb;
    const duration = open ? mergeSorted(this.closedCache.duration, open.duration.toArray()) : this.closedCache.duration;
    const outcomes = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
    let answerErrors = 0;
    for (const s of live) {
      answerErrors += s.answerErrors;
      OUTCOMES.forEach((o, i) => {
        outcomes[o] += s.counts[i]!;
      });
    }
    const snapshot = this.view(outcomes, total, ttfb, duration, answerErrors, this.tokens.snapshot());
    this.snapshotCache = { epoch, total, snapshot };
    return snapshot;
  }

  private view(
    outcomes: Record<Outcome, number>,
    total: number,
    ttfb: Centroid[],
    duration: Centroid[],
    answerErrors: number,
    tokens: TokenView,
  ): WindowSnapshot {
    // Neither a client that left nor a request veer refused for its own connection cap is the upstream's to answer.
    const requests = total - outcomes.client_abort - outcomes.saturated;
    const errors = outcomes.upstream_5xx + outcomes.connect_error + outcomes.timeout + outcomes.reset + answerErrors;
    const ttfbTotal = totalCount(ttfb);
    const durationTotal = totalCount(duration);
    return {
      requests,
      errors,
      errorRate: requests > 0 ? errors / requests : 0,
      outcomes,
      ttfbSamples: ttfbTotal,
      durationSamples: durationTotal,
      ttfbQuantile: (q) => quantileOf(ttfb, q, ttfbTotal),
      durationQuantile: (q) => quantileOf(duration, q, durationTotal),
      ttfbCentroids: () => ttfb,
      durationCentroids: () => duration,
      since: (at) => this.snapshotSince(at),
      tokens,
    };
  }

  /** See WindowSnapshot.since: merged on each call (once per evaluation), not cached. */
  snapshotSince(at: number): WindowSnapshot {
    this.digestPending();
    const epoch = this.ring.epochOf(this.clock());
    const live = this.ring.live(epoch);
    const first = Math.ceil(at / this.sliceMs);
    if (live.every((s) => s.epoch >= first)) return this.snapshot();
    let ttfb: Centroid[] = [];
    let duration: Centroid[] = [];
    let total = 0;
    const outcomes = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
    let answerErrors = 0;
    for (const s of live) {
      if (s.epoch < first) continue;
      answerErrors += s.answerErrors;
      const open = s.epoch === epoch;
      ttfb = mergeSorted(ttfb, open ? s.ttfb.toArray() : s.close().ttfb);
      duration = mergeSorted(duration, open ? s.duration.toArray() : s.close().duration);
      OUTCOMES.forEach((o, i) => {
        outcomes[o] += s.counts[i]!;
        total += s.counts[i]!;
      });
    }
    return this.view(outcomes, total, ttfb, duration, answerErrors, this.tokens.snapshot(first));
  }

  /** A reload's new window length and slice count, keeping the samples (see SliceRing.reshape). */
  reshape(windowMs: number, slices: number): void {
    this.digestPending();
    const now = this.clock();
    this.ring.reshape(windowMs, slices, now);
    this.tokens.reshape(windowMs, slices);
    this.closedCache = undefined;
    this.snapshotCache = undefined;
  }

  /** Centroids in the live window across all slices, for memory checks. */
  centroidCount(): number {
    this.digestPending();
    let n = 0;
    for (const s of this.ring.all) n += s.ttfb.size() + s.duration.size();
    return n;
  }
}
