// Token rules: parsing, and judging TPOT, ITL, decode rate and answer rates on real windows fed stream summaries.

import { describe, expect, it } from 'vitest';
import { parseRule } from '../../src/config/rule.js';
import type { UpstreamName } from '../../src/config/types.js';
import { judgeRule, rateCounts } from '../../src/guard/evaluate.js';
import type { EndClass, TokenSummary } from '../../src/measure/token-summary.js';
import { ITL_BUCKETS, itlBucket } from '../../src/measure/token-summary.js';
import { SlidingWindow } from '../../src/measure/window.js';

function rule(text: string, minSamples = 10) {
  const r = parseRule(text, minSamples);
  if (!r.ok) throw new Error(r.reason);
  return r.rule;
}

/** A stream of `events` token events `gapMs` apart, ending so. */
function stream(
  events: number,
  gapMs: number,
  end: EndClass = 'complete',
  over: Partial<TokenSummary> = {},
): TokenSummary {
  const gaps = new Uint32Array(ITL_BUCKETS);
  if (events >= 2) gaps[itlBucket(gapMs)] = events - 1;
  return {
    kind: 'sse',
    format: 'openai',
    events: events + 1,
    tokenEvents: events,
    firstTokenAt: 1000,
    lastTokenAt: 1000 + (events - 1) * gapMs,
    outputTokens: -1,
    end,
    gaps: events >= 2 ? gaps : undefined,
    maxGapMs: events >= 2 ? gapMs : 0,
    heldBack: false,
    ...over,
  };
}

function windows() {
  const clock = () => 5_000_000;
  const w = {
    legacy: new SlidingWindow({ windowMs: 60_000, slices: 6, clock }),
    new: new SlidingWindow({ windowMs: 60_000, slices: 6, clock }),
  };
  return {
    add(side: UpstreamName, n: number, make: (i: number) => TokenSummary) {
      for (let i = 0; i < n; i++) {
        const t = make(i);
        w[side].record(t.end === 'client_abort' ? 'client_abort' : 'ok', 20, 100, t);
      }
    },
    view: () => ({ legacy: w.legacy.snapshot(), new: w.new.snapshot() }),
  };
}

describe('token rule language', () => {
  it('parses the token metrics, absolute and relative to legacy', () => {
    expect(rule('tpot_p95 <= 1.3 x legacy')).toMatchObject({
      metric: 'tpot_p95',
      kind: 'ratio_to_legacy',
      factor: 1.3,
    });
    expect(rule('itl_p99 <= 250ms')).toMatchObject({ metric: 'itl_p99', kind: 'absolute', threshold: 250 });
    expect(rule('incomplete_rate <= legacy + 0.5%')).toMatchObject({ kind: 'delta_over_legacy', delta: 0.005 });
    expect(rule('inband_error_rate <= 0.1%')).toMatchObject({ threshold: 0.001 });
    expect(rule('empty_rate <= 2%')).toMatchObject({ threshold: 0.02 });
    expect(rule('tokens_per_s_p5 >= 20/s')).toMatchObject({ kind: 'absolute', threshold: 20 });
    expect(rule('tokens_per_s_p5 >= 0.8 x legacy')).toMatchObject({ kind: 'ratio_to_legacy', factor: 0.8 });
    expect(rule('tokens_per_s_p5 >= legacy - 5')).toMatchObject({ kind: 'delta_over_legacy', delta: 5 });
  });

  it('refuses a rule judged the wrong way round, naming the metric', () => {
    const bad = (text: string) => {
      const r = parseRule(text, 10);
      return r.ok ? 'parsed' : r.reason;
    };
    expect(bad('tokens_per_s_p5 <= 20')).toMatch(/tokens_per_s_p5 is worse when lower/);
    expect(bad('tpot_p95 >= 20ms')).toMatch(/tpot_p95 is worse when higher/);
    expect(bad('tpot_p95 <= legacy - 5ms')).toMatch(/legacy \+ DELTA/);
    expect(bad('itl_p99 <= 2%')).toMatch(/a duration/);
    expect(bad('incomplete_rate <= 20ms')).toMatch(/a ratio/);
  });
});

describe('judging token rules', () => {
  it('breaches tpot_p95 <= 1.3 x legacy when new decodes twice as slowly, and passes at the same speed', () => {
    const w = windows();
    w.add('legacy', 50, () => stream(20, 10));
    w.add('new', 50, () => stream(20, 20));
    const slow = judgeRule(rule('tpot_p95 <= 1.3 x legacy', 30), w.view());
    expect(slow).toMatchObject({ status: 'breach', unit: 'ms', samples: 50 });
    expect(slow.value).toBeCloseTo(20);
    expect(slow.threshold).toBeCloseTo(13);
    const same = windows();
    same.add('legacy', 50, () => stream(20, 10));
    same.add('new', 50, () => stream(20, 10.5));
    expect(judgeRule(rule('tpot_p95 <= 1.3 x legacy', 30), same.view()).status).toBe('pass');
  });

  it('judges itl_p99 from every gap and tokens_per_s_p5 from the slowest streams', () => {
    const w = windows();
    // 97 streams with 10 ms gaps, 3 that stall at 400 ms between tokens.
    w.add('new', 100, (i) => stream(11, i < 3 ? 400 : 10));
    const view = w.view();
    const itl = judgeRule(rule('itl_p99 <= 250ms'), view);
    expect(itl).toMatchObject({ status: 'breach', samples: 100 });
    expect(itl.value! / 400).toBeGreaterThan(0.9);
    expect(judgeRule(rule('itl_p50 <= 15ms'), view).status).toBe('pass');
    const tps = judgeRule(rule('tokens_per_s_p5 >= 20'), view);
    expect(tps).toMatchObject({ unit: 'per_s', samples: 100 });
    // The slowest 5 % includes the 2.5 tokens/s streams: a breach from below.
    expect(tps.value!).toBeLessThan(20);
    expect(tps.status).toBe('breach');
  });

  it('counts incomplete, in-band error and empty answers over answers, never a client abort', () => {
    const w = windows();
    w.add('legacy', 200, () => stream(5, 10));
    w.add('new', 200, (i) =>
      stream(5, 10, i < 40 ? 'truncated' : i < 50 ? 'inband_error' : i < 55 ? 'empty' : 'complete'),
    );
    w.add('new', 100, () => stream(2, 10, 'client_abort'));
    const view = w.view();
    expect(rateCounts('incomplete_rate', view.new)).toEqual({ failures: 40, total: 200 });
    expect(rateCounts('inband_error_rate', view.new)).toEqual({ failures: 10, total: 200 });
    expect(rateCounts('empty_rate', view.new)).toEqual({ failures: 5, total: 200 });
    // Rates are judged on their evidence (the counts' confidence bounds), as error_rate is.
    expect(judgeRule(rule('incomplete_rate <= legacy + 0.5%'), view)).toMatchObject({ status: 'breach', value: 0.2 });
    expect(judgeRule(rule('incomplete_rate <= legacy + 30%'), view).status).toBe('pass');
    expect(judgeRule(rule('inband_error_rate <= 0.5%'), view).status).toBe('breach');
    // 2 % truncated against legacy's 0 % in 200 answers is not yet conclusive at 0.5 points.
    const few = windows();
    few.add('legacy', 200, () => stream(5, 10));
    few.add('new', 200, (i) => stream(5, 10, i < 4 ? 'truncated' : 'complete'));
    expect(judgeRule(rule('incomplete_rate <= legacy + 0.5%'), few.view()).status).toBe('inconclusive');
    // Truncated and in-band-error answers relayed whole count as errors too; client aborts do not.
    expect(view.new.errors).toBe(50);
    expect(view.new.requests).toBe(200);
  });

  it('leaves streams the client cut or held back out of timing, and is inconclusive below min_samples', () => {
    const w = windows();
    w.add('new', 40, () => stream(10, 500, 'client_abort'));
    w.add('new', 40, () => stream(10, 500, 'complete', { heldBack: true }));
    w.add('new', 5, () => stream(10, 10));
    const r = judgeRule(rule('tpot_p95 <= 50ms', 20), w.view());
    expect(r).toMatchObject({ status: 'inconclusive', samples: 5 });
    expect(r.value).toBeCloseTo(10);
    expect(judgeRule(rule('itl_p99 <= 250ms', 20), w.view())).toMatchObject({ status: 'inconclusive', samples: 5 });
  });

  it('is inconclusive on a window without a token side', () => {
    const w = windows();
    w.add('new', 50, () => stream(10, 10));
    const { tokens: _dropped, ...withoutTokens } = w.view().new;
    expect(judgeRule(rule('tpot_p95 <= 50ms'), { legacy: withoutTokens, new: withoutTokens }).status).toBe(
      'inconclusive',
    );
    expect(judgeRule(rule('empty_rate <= 1%'), { legacy: withoutTokens, new: withoutTokens }).status).toBe(
      'inconclusive',
    );
  });

  it('keeps its token figures through a reshape of the window, and drops them when they age out', () => {
    let now = 5_000_000;
    const w = new SlidingWindow({ windowMs: 60_000, slices: 6, clock: () => now });
    for (let i = 0; i < 30; i++) w.record('ok', 20, 100, stream(10, 10, i < 3 ? 'truncated' : 'complete'));
    w.reshape(30_000, 3);
    let t = w.snapshot().tokens;
    expect(t.tpotSamples).toBe(30);
    expect(t.incomplete).toEqual({ failures: 3, total: 30 });
    now += 31_000;
    t = w.snapshot().tokens;
    expect(t.tpotSamples).toBe(0);
    expect(t.answers).toBe(0);
  });
});
