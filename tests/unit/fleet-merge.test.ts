// Fleet judgement reads the pooled samples of every sidecar: merged t-digest quantiles against exact pooled ones.

import { describe, expect, it } from 'vitest';
import { mergeWindows, toWire, type WindowWire } from '../../src/fleet/merge.js';
import type { Outcome } from '../../src/measure/outcome.js';
import { ITL_BUCKETS, itlBucket } from '../../src/measure/token-summary.js';
import { SlidingWindow } from '../../src/measure/window.js';
import { seededRandom as prng } from '../helpers/random.js';

function lognormal(rand: () => number, median: number, sigma: number): number {
  const u = Math.max(rand(), 1e-12);
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  return median * Math.exp(sigma * z);
}

/** The fraction of the pooled samples at or below x: the rank a quantile estimate really has. */
function rankOf(sortedSamples: Float64Array, x: number): number {
  let lo = 0;
  let hi = sortedSamples.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sortedSamples[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo / sortedSamples.length;
}

interface Sidecar {
  wire: WindowWire;
  newTtfb: number[];
  p95: number;
}

/**
 * One sidecar with its own traffic mix, recorded into a real window over several slices (so the closed-slice
 * cache and the open slice are both read), published as it would be to Redis (JSON).
 */
function sidecar(index: number, samples: number, median: number, sigma: number, errorShare: number): Sidecar {
  const rand = prng(1000 + index);
  let now = 1_700_000_000_000;
  const clock = () => now;
  const legacy = new SlidingWindow({ windowMs: 60_000, slices: 6, clock });
  const fresh = new SlidingWindow({ windowMs: 60_000, slices: 6, clock });
  const newTtfb: number[] = [];
  for (let i = 0; i < samples; i++) {
    now += 50_000 / samples;
    const ttfb = lognormal(rand, median, sigma);
    const outcome: Outcome = rand() < errorShare ? 'upstream_5xx' : rand() < 0.02 ? 'client_abort' : 'ok';
    if (outcome === 'ok') newTtfb.push(ttfb);
    fresh.record(outcome, outcome === 'ok' ? ttfb : undefined, outcome === 'ok' ? ttfb * 3 : undefined);
    legacy.record('ok', lognormal(rand, 200, 0.3), 600);
  }
  const snap = { legacy: legacy.snapshot(), new: fresh.snapshot() };
  const wire = JSON.parse(JSON.stringify(toWire(`pod-${index}`, now, snap))) as WindowWire;
  return { wire, newTtfb, p95: snap.new.ttfbQuantile(0.95)! };
}

describe('fleet window merge', () => {
  // Twelve sidecars with different traffic: most healthy, three slow ones carrying more requests.
  const fleet = Array.from({ length: 12 }, (_, i) =>
    i < 9 ? sidecar(i, 2_000 + 300 * i, 180, 0.35, 0.005) : sidecar(i, 9_000, 650, 0.5, 0.03),
  );
  const pooled = Float64Array.from(fleet.flatMap((s) => s.newTtfb)).sort();
  const merged = mergeWindows(fleet.map((s) => s.wire));

  it('reads each fleet quantile within 1 % rank of the exact pooled quantile', () => {
    for (const q of [0.5, 0.9, 0.95, 0.99]) {
      const estimate = merged.new.ttfbQuantile(q)!;
      const rank = rankOf(pooled, estimate);
      expect(Math.abs(rank - q), `q=${q}: estimate ${estimate.toFixed(1)} ms sits at rank ${rank}`).toBeLessThan(0.01);
    }
    expect(merged.new.ttfbSamples).toBe(pooled.length);
  });

  it('differs from an average of the sidecars p95s, which would misjudge the fleet', () => {
    const averaged = fleet.reduce((a, s) => a + s.p95, 0) / fleet.length;
    const exact = pooled[Math.ceil(0.95 * pooled.length) - 1]!;
    // The average of p95s sits far from the pooled p95 (it gives the small healthy sidecars the same
    // say as the busy slow ones); the merge does not.
    expect(Math.abs(rankOf(pooled, averaged) - 0.95)).toBeGreaterThan(0.05);
    expect(Math.abs(merged.new.ttfbQuantile(0.95)! - exact) / exact).toBeLessThan(0.03);
  });

  it('adds up the counts: the fleet error rate is all errors over all judged requests', () => {
    const outcomes = fleet.map((s) => s.wire.new.o);
    const sum = (i: number) => outcomes.reduce((a, o) => a + o[i]!, 0);
    // OUTCOMES order: ok, upstream_5xx, connect_error, timeout, reset, client_abort.
    const judged = sum(0) + sum(1) + sum(2) + sum(3) + sum(4);
    expect(merged.new.requests).toBe(judged);
    expect(merged.new.errorRate).toBeCloseTo(sum(1) / judged, 12);
    expect(merged.legacy.requests).toBe(fleet.reduce((a, s) => a + s.wire.legacy.o[0]!, 0));
  });

  it('keeps what each sidecar publishes small whatever its traffic', () => {
    const busy = sidecar(99, 60_000, 300, 0.6, 0.01);
    const bytes = Buffer.byteLength(JSON.stringify(busy.wire));
    expect(busy.wire.new.t.length).toBeLessThanOrEqual(1_000);
    expect(bytes).toBeLessThan(64 * 1024);
  });
});

describe('fleet merge of token accounting', () => {
  /** A sidecar whose new streams have `gapMs` between tokens and `truncated` of them truncated. */
  function tokenSidecar(name: string, streams: number, gapMs: number, truncated: number): WindowWire {
    const clock = () => 1_700_000_000_000;
    const w = {
      legacy: new SlidingWindow({ windowMs: 60_000, slices: 6, clock }),
      new: new SlidingWindow({ windowMs: 60_000, slices: 6, clock }),
    };
    for (let i = 0; i < streams; i++) {
      const gaps = new Uint32Array(ITL_BUCKETS);
      gaps[itlBucket(gapMs)] = 9;
      w.new.record('ok', 20, 200, {
        kind: 'sse',
        format: 'openai',
        events: 11,
        tokenEvents: 10,
        firstTokenAt: 0,
        // Streams differ a little, as real ones do (a digest interpolates between distinct centroids).
        lastTokenAt: 9 * gapMs * (1 + i / 1000),
        outputTokens: -1,
        end: i < truncated ? 'truncated' : 'complete',
        gaps,
        maxGapMs: gapMs,
        heldBack: false,
      });
    }
    return JSON.parse(JSON.stringify(toWire(name, 0, { legacy: w.legacy.snapshot(), new: w.new.snapshot() })));
  }

  it('pools every sidecar’s streams: TPOT, ITL and answer rates, and counts broken answers as errors', () => {
    const merged = mergeWindows([tokenSidecar('a', 90, 10, 0), tokenSidecar('b', 10, 100, 10)]).new;
    const t = merged.tokens!;
    expect(t.tpotSamples).toBe(100);
    expect(t.itlStreams).toBe(100);
    // 10 % of streams decode at 100 ms: p95 sits among them, p50 among the fast ones.
    expect(t.tpotQuantile(0.95)).toBeCloseTo(100, 0);
    expect(t.tpotQuantile(0.5)).toBeCloseTo(10, 0);
    expect(t.itlQuantile(0.99)! / 100).toBeGreaterThan(0.9);
    expect(t.incomplete).toEqual({ failures: 10, total: 100 });
    expect(merged.errorRate).toBeCloseTo(0.1);
  });

  it('has no token side when no member published one', () => {
    const wire = tokenSidecar('a', 5, 10, 0);
    delete wire.new.k;
    delete wire.legacy.k;
    expect(mergeWindows([wire]).new.tokens).toBeUndefined();
  });
});
