// Specification of judging on evidence: confidence bounds on rates, hangs counted while they hang, and
// which requests the guard sees waiting.

import { describe, expect, it } from 'vitest';
import { parseRule } from '../../src/config/rule.js';
import type { UpstreamName } from '../../src/config/types.js';
import { judgeRule, type WindowView } from '../../src/guard/evaluate.js';
import { EXACT_BELOW, normalQuantile, rateEvidence } from '../../src/measure/confidence.js';
import { WaitingList, type WaitingRecord } from '../../src/measure/waiting.js';
import { SlidingWindow } from '../../src/measure/window.js';

function rule(text: string, minSamples = 100) {
  const r = parseRule(text, minSamples);
  if (!r.ok) throw new Error(r.reason);
  return r.rule;
}

/** A side with `errors` failures in `requests` requests and TTFB samples at `ttfbMs`, plus requests waiting. */
function side(requests: number, errors: number, ttfbMs = 100, waitingAges: number[] = []): WindowView {
  let now = 0;
  const w = new SlidingWindow({ windowMs: 60_000, slices: 6, clock: () => now });
  for (let i = 0; i < requests; i++) {
    w.record(i < errors ? 'upstream_5xx' : 'ok', i < errors ? undefined : ttfbMs, ttfbMs + 5);
  }
  now = 1;
  const sorted = [...waitingAges].sort((a, b) => b - a);
  return { ...w.snapshot(), waitingOver: (ms) => sorted.filter((age) => age > ms) };
}

const both = (legacy: WindowView, fresh: WindowView): Record<UpstreamName, WindowView> => ({ legacy, new: fresh });

describe('confidence bounds on a rate', () => {
  it('gives the one-sided normal quantile of a confidence level', () => {
    expect(normalQuantile(0.99)).toBeCloseTo(2.3263, 4);
    expect(normalQuantile(0.995)).toBeCloseTo(2.5758, 4);
    expect(normalQuantile(0.5)).toBeCloseTo(0, 9);
    expect(normalQuantile(0.01)).toBeCloseTo(-2.3263, 4);
  });

  it('puts 11 failures in 11 requests far above 1 %, and 1 failure in 3 not conclusively above it', () => {
    expect(rateEvidence(11, 11, 0.99).lower).toBeGreaterThan(0.6);
    // Exact binomial: P(at least 1 failure in 3 | 1 %) = 2.97 % > 1 %, so the lower bound stays under 1 %.
    expect(rateEvidence(1, 3, 0.99).lower).toBeLessThan(0.01);
    expect(rateEvidence(1, 3, 0.99).lower).toBeCloseTo(1 - 0.99 ** (1 / 3), 6);
  });

  it('bounds an empty side by 0 and 1 and a clean side from below by 0', () => {
    expect(rateEvidence(0, 0, 0.99)).toMatchObject({ value: null, lower: 0, upper: 1 });
    expect(rateEvidence(0, 500, 0.99)).toMatchObject({ value: 0, lower: 0 });
    // Rule of three at 99 %: about 4.6 / n.
    expect(rateEvidence(0, 500, 0.99).upper).toBeCloseTo(1 - 0.01 ** (1 / 500), 6);
  });

  it('switches from the exact bound to Wilson without a jump a judge would notice', () => {
    const exact = rateEvidence(EXACT_BELOW - 1, 1000, 0.99);
    const wilson = rateEvidence(EXACT_BELOW, 1000, 0.99);
    expect(wilson.lower - exact.lower).toBeGreaterThan(0);
    expect(wilson.lower - exact.lower).toBeLessThan(0.003);
  });

  it('keeps lower <= rate <= upper and tightens both as the count grows', () => {
    let prev = rateEvidence(1, 10, 0.99);
    for (const n of [100, 1000, 10_000]) {
      const e = rateEvidence(n / 10, n, 0.99);
      expect(e.lower).toBeLessThanOrEqual(0.1);
      expect(e.upper).toBeGreaterThanOrEqual(0.1);
      expect(e.upper - e.lower).toBeLessThan(prev.upper - prev.lower);
      prev = e;
    }
  });
});

describe('rate rules on evidence', () => {
  it('breaches `error_rate <= 1%` on 11 failures in 11 requests, far below min_samples', () => {
    const r = judgeRule(rule('error_rate <= 1%'), both(side(200, 0), side(11, 11)));
    expect(r).toMatchObject({ status: 'breach', decidedBy: 'bounds', samples: 11, value: 1 });
    expect(r.lower).toBeGreaterThan(0.01);
  });

  it('stays inconclusive on 1 failure in 3 (never a pass before min_samples)', () => {
    const r = judgeRule(rule('error_rate <= 1%'), both(side(200, 0), side(3, 1)));
    expect(r).toMatchObject({ status: 'inconclusive', decidedBy: null });
    expect(judgeRule(rule('error_rate <= 1%'), both(side(200, 0), side(3, 0))).status).toBe('inconclusive');
  });

  it('passes on the rate from min_samples on, and breaches only when the rate is conclusively above', () => {
    expect(judgeRule(rule('error_rate <= 1%'), both(side(0, 0), side(200, 2))).status).toBe('pass');
    // 1.5 % of 200 could be a 1 % backend's bad luck (2 errors in 140 happen to a 0.2 % one).
    expect(judgeRule(rule('error_rate <= 1%'), both(side(0, 0), side(200, 3))).status).toBe('inconclusive');
    expect(judgeRule(rule('error_rate <= 1%'), both(side(0, 0), side(200, 12)))).toMatchObject({
      status: 'breach',
      decidedBy: 'samples',
    });
  });

  it("breaches a relative rule early only when new's lower bound clears legacy's upper bound plus the delta", () => {
    const delta = rule('error_rate <= legacy + 1%');
    // Legacy clean over 500 requests (upper ≈ 0.9 %); new 8 of 10 failing.
    expect(judgeRule(delta, both(side(500, 0), side(10, 8)))).toMatchObject({ status: 'breach', decidedBy: 'bounds' });
    // Legacy itself failing 20 %: new's 3 of 10 proves nothing.
    expect(judgeRule(delta, both(side(500, 100), side(10, 3))).status).toBe('inconclusive');
    // No legacy traffic: nothing to compare with.
    expect(judgeRule(delta, both(side(0, 0), side(10, 10))).status).toBe('inconclusive');
    const factor = rule('error_rate <= 2 x legacy');
    expect(judgeRule(factor, both(side(1000, 10), side(12, 12))).status).toBe('breach');
  });
});

describe('hangs counted while they hang', () => {
  it('counts requests waiting past a TTFB threshold as samples at least that slow', () => {
    // 190 answered at 100 ms, 20 waiting for 1.5 s to 3.4 s: the p95 is one of the hangs.
    const ages = Array.from({ length: 20 }, (_, i) => 1500 + i * 100);
    const r = judgeRule(rule('ttfb_p95 <= 500ms'), both(side(200, 0), side(190, 0, 100, ages)));
    expect(r).toMatchObject({ status: 'breach', waiting: 20, samples: 210, decidedBy: 'samples' });
    expect(r.value).toBeGreaterThan(1500);
  });

  it('ignores requests that have not yet waited as long as the threshold', () => {
    const r = judgeRule(rule('ttfb_p95 <= 500ms'), both(side(200, 0), side(190, 0, 100, [400, 450, 499])));
    expect(r).toMatchObject({ status: 'pass', waiting: 0, samples: 190 });
  });

  it('breaches before min_samples when the hangs alone are conclusively more than 5 % of requests', () => {
    const r = judgeRule(rule('ttfb_p95 <= 500ms'), both(side(200, 0), side(20, 0, 100, [900, 800, 700, 600, 550])));
    expect(r).toMatchObject({ status: 'breach', decidedBy: 'bounds', waiting: 5 });
  });

  it('never breaches before min_samples on slow requests that finished (a warm-up, a cold cache)', () => {
    const r = judgeRule(rule('ttfb_p95 <= 500ms'), both(side(200, 0), side(20, 0, 2_000)));
    expect(r.status).toBe('inconclusive');
  });

  it('censors a relative rule at the threshold derived from legacy', () => {
    const ages = Array.from({ length: 30 }, () => 700);
    const r = judgeRule(rule('ttfb_p95 <= 2 x legacy'), both(side(300, 0, 300), side(200, 0, 100, ages)));
    expect(r).toMatchObject({ threshold: 600, waiting: 30, status: 'breach' });
  });
});

describe('the list of requests waiting for their first byte', () => {
  const record = (startedAt: number): WaitingRecord => ({ startedAt, waitPrev: null, waitNext: null, waitList: null });

  it('keeps them oldest first and forgets each at its first byte or its end', () => {
    const list = new WaitingList();
    const rs = [0, 10, 20, 30].map(record);
    for (const r of rs) list.add(r);
    expect(list.oldestAgeMs(100)).toBe(100);
    list.remove(rs[0]!);
    list.remove(rs[2]!);
    list.remove(rs[2]!); // first byte, then the end: the second remove is a no-op
    expect(list.size).toBe(2);
    expect(list.oldestAgeMs(100)).toBe(90);
    expect(list.agesOver(75, 100)).toEqual([90]);
    expect(list.agesOver(0, 100)).toEqual([90, 70]);
    list.remove(rs[1]!);
    list.remove(rs[3]!);
    expect(list.oldestAgeMs(100)).toBe(0);
    expect(list.agesOver(0, 100)).toEqual([]);
  });

  it('moves a record to another list in one step (a fallback to legacy)', () => {
    const a = new WaitingList();
    const b = new WaitingList();
    const r = record(5);
    a.add(r);
    b.add(r);
    expect([a.size, b.size]).toEqual([0, 1]);
    a.remove(r);
    expect(b.size).toBe(1);
  });
});

describe("a step's own samples", () => {
  it('leaves out every slice that began before the step, and keeps the slices after it', () => {
    let now = 0;
    const w = new SlidingWindow({ windowMs: 60_000, slices: 6, clock: () => now });
    for (let i = 0; i < 50; i++) w.record('upstream_5xx', undefined, undefined);
    now = 15_000; // the step starts mid-slice: the slice [10 s, 20 s) holds samples of both steps
    const stepStart = now;
    for (let i = 0; i < 10; i++) w.record('ok', 100, 110);
    now = 25_000;
    for (let i = 0; i < 30; i++) w.record('ok', 100, 110);
    expect(w.snapshot().requests).toBe(90);
    const step = w.snapshotSince(stepStart);
    expect(step).toMatchObject({ requests: 30, errors: 0, ttfbSamples: 30 });
    // Once the window holds nothing older than the step, the two agree.
    expect(w.snapshotSince(0).requests).toBe(90);
  });
});
