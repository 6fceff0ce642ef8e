import { TDigest } from 'tdigest';
import { describe, expect, it } from 'vitest';
import { OUTCOMES, type Outcome } from '../../src/measure/outcome.js';
import { quantileOf } from '../../src/measure/quantile.js';
import { SlidingWindow } from '../../src/measure/window.js';
import { seededRandom as random } from '../helpers/random.js';

/** Lognormal TTFBs in ms (median 200 ms, sigma 1: a long right tail, p99 near 2 s). */
function lognormal(n: number, seed: number, median = 200, sigma = 1): Float64Array {
  const rand = random(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u1 = rand() || Number.MIN_VALUE;
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * rand());
    out[i] = median * Math.exp(sigma * z);
  }
  return out;
}

/** Share of the sorted samples strictly below v: v's rank in the exact distribution. */
function rankOf(sorted: Float64Array, v: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo / sorted.length;
}

function steppedClock(start = 0) {
  const clock = { now: start, read: () => clock.now };
  return clock;
}

const MINUTE = 60_000;

describe('window quantiles', () => {
  it('reads p50, p95 and p99 of 1,000,000 lognormal samples spread over the window within 1 % rank error', () => {
    const n = 1_000_000;
    const samples = lognormal(n, 42);
    const clock = steppedClock();
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: clock.read });
    // Spread over all six slices, so the read merges five closed slices with the open one.
    for (let i = 0; i < n; i++) {
      clock.now = Math.floor((i / n) * 59_999);
      window.record('ok', samples[i], undefined);
    }
    const exact = samples.slice().sort();
    const snapshot = window.snapshot();
    expect(snapshot.ttfbSamples).toBe(n);
    for (const q of [0.5, 0.95, 0.99]) {
      const estimate = snapshot.ttfbQuantile(q)!;
      expect(Math.abs(rankOf(exact, estimate) - q), `p${q * 100}: ${estimate} ms`).toBeLessThanOrEqual(0.01);
    }
    // The tail is where t-digest is built to be sharpest; hold p99.9 to a tenth of that budget.
    expect(Math.abs(rankOf(exact, snapshot.ttfbQuantile(0.999)!) - 0.999)).toBeLessThanOrEqual(0.001);
  });

  it('reads the same quantile from merged centroids as npm tdigest reads from the digest itself', () => {
    const digest = new TDigest(0.01, 10);
    for (const x of lognormal(50_000, 7)) digest.push(x);
    const centroids = digest.toArray();
    for (const q of [0, 0.001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1]) {
      expect(quantileOf(centroids, q)).toBeCloseTo(digest.percentile(q), 9);
    }
    expect(quantileOf([], 0.5)).toBeUndefined();
  });

  it('keeps TTFB and duration in separate digests', () => {
    const clock = steppedClock();
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: clock.read });
    for (let i = 1; i <= 100; i++) window.record('ok', i, 1000 + i);
    window.record('client_abort', 5, undefined);
    const s = window.snapshot();
    expect(s.ttfbSamples).toBe(101);
    expect(s.durationSamples).toBe(100);
    expect(s.ttfbQuantile(0.5)).toBeGreaterThan(40);
    expect(s.ttfbQuantile(0.5)).toBeLessThan(60);
    expect(s.durationQuantile(0.5)).toBeGreaterThan(1040);
    expect(s.durationQuantile(0.5)).toBeLessThan(1060);
  });

  it('has no quantile, no samples and an error rate of 0 when empty', () => {
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: () => 0 });
    const s = window.snapshot();
    expect(s.ttfbQuantile(0.95)).toBeUndefined();
    expect(s.durationQuantile(0.95)).toBeUndefined();
    expect(s.ttfbSamples).toBe(0);
    expect(s.requests).toBe(0);
    expect(s.errorRate).toBe(0);
  });
});

describe('window rotation (injected clock)', () => {
  it('counts a sample until a full window has passed since its slice began, then drops it', () => {
    const clock = steppedClock(9_999); // the last millisecond of slice 0 (slices are 10 s)
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: clock.read });
    window.record('ok', 100, 200);
    clock.now = 59_999;
    expect(window.snapshot().ttfbSamples).toBe(1);
    expect(window.snapshot().requests).toBe(1);
    clock.now = 60_000;
    expect(window.snapshot().ttfbSamples).toBe(0);
    expect(window.snapshot().durationSamples).toBe(0);
    expect(window.snapshot().requests).toBe(0);
    expect(window.snapshot().ttfbQuantile(0.5)).toBeUndefined();
  });

  it('ages slices out one at a time as the clock advances', () => {
    const clock = steppedClock();
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: clock.read });
    // Slice k holds 10 samples of (k + 1) * 100 ms, and one upstream error.
    for (let k = 0; k < 6; k++) {
      clock.now = k * 10_000 + 5_000;
      for (let i = 0; i < 10; i++) window.record('ok', (k + 1) * 100, undefined);
      window.record('upstream_5xx', undefined, undefined);
    }
    expect(window.snapshot().ttfbSamples).toBe(60);
    expect(window.snapshot().ttfbQuantile(0)).toBe(100);
    for (let expired = 1; expired <= 6; expired++) {
      clock.now = 50_000 + expired * 10_000;
      const s = window.snapshot();
      expect(s.ttfbSamples).toBe(60 - expired * 10);
      expect(s.outcomes.upstream_5xx).toBe(6 - expired);
      if (expired < 6) expect(s.ttfbQuantile(0)).toBe((expired + 1) * 100);
    }
    expect(window.snapshot().ttfbQuantile(0.5)).toBeUndefined();
  });

  it('starts empty after an idle gap longer than the window, even in a reused ring position', () => {
    const clock = steppedClock(1_000);
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: clock.read });
    for (let i = 0; i < 100; i++) window.record('timeout', undefined, undefined);
    for (let i = 0; i < 100; i++) window.record('ok', 900, 950);
    // Ten windows later, at the same ring position as the first samples.
    clock.now = 10 * MINUTE + 1_000;
    expect(window.snapshot().requests).toBe(0);
    window.record('ok', 50, 60);
    const s = window.snapshot();
    expect(s.requests).toBe(1);
    expect(s.errors).toBe(0);
    expect(s.ttfbSamples).toBe(1);
    expect(s.ttfbQuantile(0.99)).toBe(50);
  });

  it('sees samples recorded after a snapshot in the same slice, and in a slice opened after it', () => {
    const clock = steppedClock(15_000);
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: clock.read });
    window.record('ok', 10, undefined);
    expect(window.snapshot().ttfbSamples).toBe(1);
    window.record('ok', 20, undefined);
    expect(window.snapshot().ttfbSamples).toBe(2);
    // A new slice begins; read it before anything lands in it, then record.
    clock.now = 25_000;
    expect(window.snapshot().ttfbSamples).toBe(2);
    window.record('ok', 30, undefined);
    const s = window.snapshot();
    expect(s.ttfbSamples).toBe(3);
    expect(s.ttfbQuantile(1)).toBe(30);
  });

  it('honours other slice counts and window lengths', () => {
    const clock = steppedClock();
    const window = new SlidingWindow({ windowMs: 10_000, slices: 2, clock: clock.read });
    expect(window.sliceMs).toBe(5_000);
    window.record('ok', 1, undefined);
    clock.now = 6_000;
    window.record('ok', 2, undefined);
    expect(window.snapshot().ttfbSamples).toBe(2);
    clock.now = 10_000;
    expect(window.snapshot().ttfbSamples).toBe(1);
    clock.now = 15_000;
    expect(window.snapshot().ttfbSamples).toBe(0);
  });
});

describe('samples waiting to be digested', () => {
  it('stay with the slice they came in: read at once, and expire with that slice', () => {
    const clock = steppedClock(1_000);
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: clock.read });
    // Fewer than a digest batch: none of these has reached a digest when the window is read.
    for (let i = 0; i < 50; i++) window.record('ok', 1_000 + i, 2_000 + i);
    let s = window.snapshot();
    expect(s.ttfbSamples).toBe(50);
    expect(s.ttfbQuantile(0.5)).toBeGreaterThanOrEqual(1_000);
    for (let i = 0; i < 50; i++) window.record('ok', 1_100 + i, undefined);
    // The next slice: its first sample puts the waiting ones into the slice they came in.
    clock.now = 11_000;
    for (let i = 0; i < 30; i++) window.record('ok', 10 + i, 20 + i);
    expect(window.snapshot().ttfbSamples).toBe(130);
    expect(window.snapshot().durationSamples).toBe(80);
    // The first slice leaves the window; only the second slice's samples are left.
    clock.now = 61_000;
    s = window.snapshot();
    expect(s.ttfbSamples).toBe(30);
    expect(s.durationSamples).toBe(30);
    expect(s.ttfbQuantile(0.99)).toBeLessThan(40);
  });

  it('expire with their slice even when no sample came after them', () => {
    const clock = steppedClock(1_000);
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: clock.read });
    for (let i = 0; i < 20; i++) window.record('ok', 500, undefined);
    clock.now = 65_000;
    expect(window.snapshot().ttfbSamples).toBe(0);
    clock.now = 70_000;
    window.record('ok', 7, undefined);
    const s = window.snapshot();
    expect(s.ttfbSamples).toBe(1);
    expect(s.ttfbQuantile(0.5)).toBe(7);
  });
});

describe('window reshape (slo.window or slo.slices reloaded)', () => {
  /** One sample per second from t=0 to t=59 s: TTFB = the second it came in, one error every 10 s. */
  function minuteOfSamples() {
    const clock = steppedClock();
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: clock.read });
    for (let t = 0; t < 60; t++) {
      clock.now = t * 1_000;
      window.record(t % 10 === 0 ? 'upstream_5xx' : 'ok', t, t + 1);
    }
    return { clock, window };
  }

  it('keeps every sample when the window grows, and then ages them out by the new length', () => {
    const { clock, window } = minuteOfSamples();
    window.reshape(2 * MINUTE, 6);
    expect(window.sliceMs).toBe(20_000);
    let s = window.snapshot();
    expect(s.ttfbSamples).toBe(60);
    expect(s.durationSamples).toBe(60);
    expect(s.errors).toBe(6);
    expect(s.ttfbQuantile(0)).toBe(0);
    expect(s.ttfbQuantile(1)).toBe(59);
    // The open slice keeps taking samples.
    window.record('ok', 1_000, undefined);
    expect(window.snapshot().ttfbSamples).toBe(61);
    // Under the old 60 s window the first slice (0-9 s) would be gone at 60 s; under 120 s it stays.
    clock.now = 100_000;
    s = window.snapshot();
    expect(s.ttfbSamples).toBe(61);
    // New slices are 20 s: 0-19 s leaves at 120 s, 20-39 s at 140 s.
    clock.now = 120_000;
    expect(window.snapshot().ttfbSamples).toBe(41);
    expect(window.snapshot().ttfbQuantile(0)).toBe(20);
    clock.now = 140_000;
    expect(window.snapshot().ttfbSamples).toBe(21);
  });

  it('drops the slices that end before a shorter window, and keeps the rest', () => {
    const { clock, window } = minuteOfSamples();
    window.reshape(30_000, 3);
    // At 59 s the new window (30-59 s, 10 s slices) keeps the old slices of 30-39, 40-49 and 50-59 s.
    let s = window.snapshot();
    expect(s.ttfbSamples).toBe(30);
    expect(s.errors).toBe(3);
    expect(s.ttfbQuantile(0)).toBe(30);
    // At 70 s the window holds the slices of 50-59, 60-69 and 70-79 s.
    clock.now = 70_000;
    s = window.snapshot();
    expect(s.ttfbSamples).toBe(10);
    expect(s.ttfbQuantile(0)).toBe(50);
  });

  it('moves each old slice into the new slice holding its last moment when the slice length changes', () => {
    const { clock, window } = minuteOfSamples();
    // 60 s in 4 slices of 15 s: the old 0-9 s slice ends in 0-14, 10-19 in 15-29, 20-29 in 15-29,
    // 30-39 in 30-44, 40-49 in 45-59, 50-59 in 45-59.
    window.reshape(MINUTE, 4);
    expect(window.snapshot().ttfbSamples).toBe(60);
    clock.now = 60_000;
    expect(window.snapshot().ttfbSamples).toBe(50);
    clock.now = 75_000;
    expect(window.snapshot().ttfbSamples).toBe(30);
    expect(window.snapshot().ttfbQuantile(0)).toBe(30);
    clock.now = 90_000;
    expect(window.snapshot().ttfbSamples).toBe(20);
    // Read the same way as before the reshape: the merged window still answers like one digest.
    const digest = new TDigest(0.01, 10);
    for (let t = 40; t < 60; t++) digest.push(t);
    expect(window.snapshot().ttfbQuantile(0.95)).toBeCloseTo(digest.percentile(0.95), 6);
  });

  it('keeps the samples not yet digested', () => {
    const clock = steppedClock(5_000);
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: clock.read });
    for (let i = 0; i < 10; i++) window.record('ok', 100 + i, undefined);
    window.reshape(2 * MINUTE, 12);
    expect(window.snapshot().ttfbSamples).toBe(10);
    expect(window.snapshot().ttfbQuantile(1)).toBe(109);
  });
});

describe('window memory', () => {
  it('keeps a digest near 1,000 centroids however many samples land in one slice', () => {
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: () => 30_000 });
    const samples = lognormal(1_000_000, 3);
    const counts: number[] = [];
    for (let i = 0; i < samples.length; i++) {
      window.record('ok', samples[i], undefined);
      if (i + 1 === 10_000 || i + 1 === 100_000 || i + 1 === 1_000_000) counts.push(window.centroidCount());
    }
    // npm tdigest recompresses past K / delta = 10 / 0.01 = 1,000 centroids.
    for (const c of counts) expect(c).toBeLessThanOrEqual(1_001);
    // No growth with volume: 1,000,000 samples need no more centroids than 100,000 did (plus slack for
    // where the last recompression happened).
    expect(counts[2]!).toBeLessThan(counts[1]! * 1.25);
  });

  it('stays within slices × 2 digests × 1,000 centroids under 1,000,000 inserts rotating through ten windows', () => {
    const clock = steppedClock();
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: clock.read });
    const samples = lognormal(1_000_000, 5);
    let peak = 0;
    for (let i = 0; i < samples.length; i++) {
      clock.now = Math.floor((i / samples.length) * 10 * MINUTE);
      window.record('ok', samples[i], samples[i]! * 3);
      if (i % 50_000 === 0) peak = Math.max(peak, window.centroidCount());
    }
    peak = Math.max(peak, window.centroidCount());
    expect(peak).toBeLessThanOrEqual(6 * 2 * 1_001);
    // Only the last window's samples are counted: 1/10 of them, within one slice's worth.
    const s = window.snapshot();
    expect(s.ttfbSamples).toBeGreaterThan(80_000);
    expect(s.ttfbSamples).toBeLessThanOrEqual(100_001);
  });
});

describe('window outcome counters', () => {
  const mix: [Outcome, number][] = [
    ['ok', 70],
    ['upstream_5xx', 5],
    ['connect_error', 4],
    ['timeout', 3],
    ['reset', 2],
    ['client_abort', 16],
    ['saturated', 9],
  ];

  it('counts each outcome class and leaves client aborts and saturated refusals out of the error rate', () => {
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: () => 1_000 });
    for (const [outcome, n] of mix) for (let i = 0; i < n; i++) window.record(outcome, undefined, undefined);
    const s = window.snapshot();
    expect(s.outcomes).toEqual(Object.fromEntries(mix));
    expect(Object.keys(s.outcomes).sort()).toEqual([...OUTCOMES].sort());
    expect(s.requests).toBe(84);
    expect(s.errors).toBe(14);
    expect(s.errorRate).toBeCloseTo(14 / 84, 12);
  });

  it('reports an error rate of 0, not NaN, when the only traffic is clients that left', () => {
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: () => 0 });
    for (let i = 0; i < 10; i++) window.record('client_abort', 80, undefined);
    const s = window.snapshot();
    expect(s.outcomes.client_abort).toBe(10);
    expect(s.requests).toBe(0);
    expect(s.errorRate).toBe(0);
    expect(s.ttfbSamples).toBe(10);
  });

  it('ages errors out with their slice, so the rate recovers', () => {
    const clock = steppedClock();
    const window = new SlidingWindow({ windowMs: MINUTE, slices: 6, clock: clock.read });
    for (let i = 0; i < 50; i++) window.record('upstream_5xx', undefined, undefined);
    clock.now = 30_000;
    for (let i = 0; i < 50; i++) window.record('ok', 100, 200);
    expect(window.snapshot().errorRate).toBeCloseTo(0.5, 12);
    clock.now = 60_000;
    expect(window.snapshot().errorRate).toBe(0);
    expect(window.snapshot().requests).toBe(50);
  });
});
