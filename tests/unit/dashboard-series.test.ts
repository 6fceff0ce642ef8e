// The dashboard's sampler: rates from finished-stream counters, rules judged like the guard, a bounded history.

import { describe, expect, it } from 'vitest';
import { inRange, RANGES } from '../../src/admin/dashboard/ranges.js';
import { SERIES_CAPACITY, SeriesSampler } from '../../src/admin/dashboard/series.js';
import type { SloRule } from '../../src/config/types.js';
import { SlidingWindow } from '../../src/measure/window.js';

function rig(rules: SloRule[] = [], capacity = 600) {
  let now = 1_000_000;
  const clock = () => now;
  const windows = {
    legacy: new SlidingWindow({ windowMs: 10_000, slices: 5, clock }),
    new: new SlidingWindow({ windowMs: 10_000, slices: 5, clock }),
  };
  const finishedTotal = { legacy: 0, new: 0 };
  let weightBp = 2500;
  const sampler = new SeriesSampler(
    {
      windows: () => ({ legacy: windows.legacy.snapshot(), new: windows.new.snapshot() }),
      finishedTotal,
      weightBp: () => weightBp,
      rules: () => rules,
      clock,
    },
    1000,
    capacity,
  );
  return {
    sampler,
    windows,
    finishedTotal,
    step: (ms: number) => {
      now += ms;
    },
    setWeight: (bp: number) => {
      weightBp = bp;
    },
  };
}

const absolute: SloRule = {
  name: 'ttfb_p95',
  text: 'ttfb_p95 <= 300ms',
  metric: 'ttfb_p95',
  kind: 'absolute',
  threshold: 300,
  minSamples: 10,
};
const relative: SloRule = {
  name: 'p95_vs_legacy',
  text: 'ttfb_p95 <= 2 x legacy',
  metric: 'ttfb_p95',
  kind: 'ratio_to_legacy',
  factor: 2,
  minSamples: 10,
};

describe('dashboard series sampler', () => {
  it('derives requests per second and the share on new from the streams finished since the previous point', () => {
    const r = rig();
    r.step(1000);
    r.finishedTotal.legacy = 30;
    r.finishedTotal.new = 10;
    const a = r.sampler.sample();
    expect(a.legacy.rps).toBe(30);
    expect(a.new.rps).toBe(10);
    expect(a.share_new).toBe(0.25);
    expect(a.weight_percent).toBe(25);
    r.step(2000);
    r.finishedTotal.legacy += 10;
    r.finishedTotal.new += 10;
    r.setWeight(5000);
    const b = r.sampler.sample();
    expect([b.legacy.rps, b.new.rps, b.share_new, b.weight_percent]).toEqual([5, 5, 0.5, 50]);
  });

  it('reports no rate when no time passed and no share when nothing finished', () => {
    const r = rig();
    const p = r.sampler.sample();
    expect(p.legacy.rps).toBeNull();
    expect(p.share_new).toBeNull();
    expect(p.new.ttfb_p95_ms).toBeNull();
    expect(p.new.error_rate).toBeNull();
  });

  it('judges every rule on the same windows as the guard, so a relative limit follows legacy', () => {
    const r = rig([absolute, relative]);
    for (let i = 0; i < 50; i++) {
      r.windows.legacy.record('ok', 100, 200);
      r.windows.new.record('ok', 250, 400);
    }
    r.windows.new.record('upstream_5xx', undefined, undefined);
    r.step(1000);
    const p = r.sampler.sample();
    expect(p.legacy.ttfb_p50_ms).toBe(100);
    expect(p.new.ttfb_p99_ms).toBe(250);
    expect(p.new.error_rate).toBeCloseTo(1 / 51, 5);
    expect(p.rules).toEqual([
      { name: 'ttfb_p95', metric: 'ttfb_p95', value: 250, threshold: 300, status: 'pass' },
      { name: 'p95_vs_legacy', metric: 'ttfb_p95', value: 250, threshold: 200, status: 'breach' },
    ]);
  });

  it('marks a rule inconclusive below its minimum samples, as the guard does', () => {
    const r = rig([absolute]);
    for (let i = 0; i < 9; i++) r.windows.new.record('ok', 900, 900);
    expect(r.sampler.sample().rules[0]!.status).toBe('inconclusive');
  });

  it('keeps only the newest points up to its capacity and answers since(t) with the later ones', () => {
    const r = rig([], 5);
    const ts: number[] = [];
    for (let i = 0; i < 8; i++) {
      r.step(1000);
      ts.push(r.sampler.sample().t);
    }
    expect(r.sampler.since().map((p) => p.t)).toEqual(ts.slice(3));
    expect(r.sampler.since(ts[5]).map((p) => p.t)).toEqual(ts.slice(6));
    expect(r.sampler.since(ts[7])).toEqual([]);
    expect(r.sampler.since(0).length).toBe(5);
  });

  it("keeps an hour of points by default, the dashboard's longest time range, and the picker cuts 5 min, 15 min and 1 h from it", () => {
    const r = rig([], SERIES_CAPACITY);
    expect(RANGES.map((x) => x.seconds)).toEqual([300, 900, 3600]);
    expect(r.sampler.capacity * r.sampler.intervalMs).toBe(Math.max(...RANGES.map((x) => x.seconds)) * 1000);
    for (let i = 0; i < 4000; i++) {
      r.step(1000);
      r.sampler.sample();
    }
    const points = r.sampler.since();
    expect(points.length).toBe(3600);
    expect(points.at(-1)!.t - points[0]!.t).toBe(3599_000);
    for (const range of RANGES) {
      const shown = inRange(points, range.seconds);
      expect(shown.length, range.label).toBe(range.seconds);
      expect(shown.at(-1)).toBe(points.at(-1));
    }
    expect(inRange(points.slice(0, 10), 300)).toHaveLength(10);
    expect(inRange([], 300)).toEqual([]);
  });
});
