// Specification of the pure SLO evaluation, on real sliding windows fed through an injected clock.

import { describe, expect, it } from 'vitest';
import { parseRule } from '../../src/config/rule.js';
import type { SloConfig, UpstreamName } from '../../src/config/types.js';
import {
  evaluate,
  FRESH_MEMORY,
  judgeRule,
  nextStepBp,
  previousStepBp,
  type RolloutView,
  type WindowView,
} from '../../src/guard/evaluate.js';
import type { Outcome } from '../../src/measure/outcome.js';
import { SlidingWindow } from '../../src/measure/window.js';

function rule(text: string, minSamples = 10) {
  const r = parseRule(text, minSamples);
  if (!r.ok) throw new Error(r.reason);
  return r.rule;
}

/** Two real windows (60 s in 6 slices) on one injected clock. */
function windows() {
  let now = 1_000_000;
  const clock = () => now;
  const w = {
    legacy: new SlidingWindow({ windowMs: 60_000, slices: 6, clock }),
    new: new SlidingWindow({ windowMs: 60_000, slices: 6, clock }),
  };
  return {
    w,
    advance(ms: number) {
      now += ms;
    },
    now: () => now,
    /** `n` completed requests with the given TTFB (ms) on one side. */
    add(side: UpstreamName, n: number, ttfbMs: number, outcome: Outcome = 'ok') {
      for (let i = 0; i < n; i++) w[side].record(outcome, outcome === 'ok' ? ttfbMs : undefined, ttfbMs + 10);
    },
    view(): Record<UpstreamName, WindowView> {
      return { legacy: w.legacy.snapshot(), new: w.new.snapshot() };
    },
  };
}

const POLICY: Pick<SloConfig, 'rules' | 'consecutiveBreaches' | 'onBreach' | 'cooldownMs'> = {
  rules: [rule('ttfb_p95 <= 550ms'), rule('error_rate <= 1%')],
  consecutiveBreaches: 1,
  onBreach: 'rollback',
  cooldownMs: 30_000,
};

function rolloutAt(now: number, over: Partial<RolloutView> = {}): RolloutView {
  return {
    state: 'progressing',
    weightBp: 1000,
    stepsBp: [],
    stepMinDurationMs: 60_000,
    autoPromote: true,
    weightSince: now - 3_600_000,
    lastChangeAt: now - 3_600_000,
    ...over,
  };
}

describe('judging one rule', () => {
  it('passes at exactly the threshold and breaches just above it', () => {
    const t = windows();
    t.add('new', 100, 550);
    expect(judgeRule(rule('ttfb_p95 <= 550ms'), t.view())).toMatchObject({
      status: 'pass',
      value: 550,
      threshold: 550,
    });
    const u = windows();
    u.add('new', 100, 551);
    expect(judgeRule(rule('ttfb_p95 <= 550ms'), u.view())).toMatchObject({ status: 'breach', value: 551 });
  });

  it('is inconclusive below min_samples however bad the value, and judged at exactly min_samples', () => {
    const t = windows();
    t.add('new', 9, 5_000);
    const below = judgeRule(rule('ttfb_p95 <= 550ms', 10), t.view());
    expect(below).toMatchObject({ status: 'inconclusive', samples: 9, minSamples: 10 });
    t.add('new', 1, 5_000);
    expect(judgeRule(rule('ttfb_p95 <= 550ms', 10), t.view())).toMatchObject({ status: 'breach', samples: 10 });
  });

  it('is inconclusive with no data at all, with a null value', () => {
    const t = windows();
    expect(judgeRule(rule('ttfb_p99 <= 1s', 0), t.view())).toMatchObject({ status: 'inconclusive', value: null });
  });

  it('reads the quantile the rule names', () => {
    const t = windows();
    // 94 fast, 6 slow, spread like real latencies (a digest interpolates between centroids, so a pile
    // of identical values would be read as spread toward its neighbour): p50 and p90 fast, p99 slow.
    for (let i = 0; i < 94; i++) t.add('new', 1, 100 + i / 2);
    for (let i = 0; i < 6; i++) t.add('new', 1, 2_000 + i);
    const v = t.view();
    expect(judgeRule(rule('ttfb_p50 <= 150ms'), v).status).toBe('pass');
    expect(judgeRule(rule('ttfb_p90 <= 150ms'), v).status).toBe('pass');
    expect(judgeRule(rule('ttfb_p99 <= 150ms'), v).status).toBe('breach');
    // duration is TTFB + 10 ms in this fixture.
    expect(judgeRule(rule('duration_p95 <= 2s'), v).status).toBe('breach');
  });

  it('counts upstream errors in the error rate but never client aborts', () => {
    const t = windows();
    t.add('new', 98, 50);
    t.add('new', 1, 0, 'upstream_5xx');
    t.add('new', 1, 0, 'timeout');
    t.add('new', 500, 0, 'client_abort');
    const r = judgeRule(rule('error_rate <= 2%'), t.view());
    expect(r).toMatchObject({ status: 'pass', value: 0.02, samples: 100, unit: 'ratio' });
    // 3 % of 101 is above 2 % but not conclusively: neither a pass nor a breach.
    t.add('new', 1, 0, 'reset');
    expect(judgeRule(rule('error_rate <= 2%'), t.view()).status).toBe('inconclusive');
    t.add('new', 10, 0, 'reset');
    expect(judgeRule(rule('error_rate <= 2%'), t.view()).status).toBe('breach');
  });

  it('judges a ratio rule against legacy in the same window', () => {
    const t = windows();
    t.add('legacy', 100, 500);
    t.add('new', 100, 600);
    // 1.2 × 500 is 600.0000000000001 in floating point: equality must still pass.
    expect(judgeRule(rule('ttfb_p95 <= 1.2 x legacy'), t.view())).toMatchObject({
      status: 'pass',
      legacy: 500,
      value: 600,
    });
    const u = windows();
    u.add('legacy', 100, 500);
    u.add('new', 100, 620);
    expect(judgeRule(rule('ttfb_p95 <= 1.2 x legacy'), u.view()).status).toBe('breach');
  });

  it('takes the smaller side as the sample count of a relative rule', () => {
    const t = windows();
    t.add('legacy', 5, 100);
    t.add('new', 100, 10_000);
    expect(judgeRule(rule('ttfb_p95 <= 1.2 x legacy', 10), t.view())).toMatchObject({
      status: 'inconclusive',
      samples: 5,
    });
  });

  it('judges a delta rule on error rate against legacy', () => {
    const t = windows();
    t.add('legacy', 97, 10);
    t.add('legacy', 3, 0, 'upstream_5xx');
    t.add('new', 96, 10);
    t.add('new', 4, 0, 'connect_error');
    // 4 % <= 3 % + 1 % passes; 6 % is above but not conclusively; 21 % is a breach.
    expect(judgeRule(rule('error_rate <= legacy + 1%'), t.view())).toMatchObject({ status: 'pass', legacy: 0.03 });
    t.add('new', 2, 0, 'connect_error');
    expect(judgeRule(rule('error_rate <= legacy + 1%'), t.view()).status).toBe('inconclusive');
    t.add('new', 20, 0, 'connect_error');
    expect(judgeRule(rule('error_rate <= legacy + 1%'), t.view()).status).toBe('breach');
  });

  it('forgets samples older than the window', () => {
    const t = windows();
    t.add('new', 100, 5_000);
    expect(judgeRule(rule('ttfb_p95 <= 550ms'), t.view()).status).toBe('breach');
    t.advance(61_000);
    t.add('new', 100, 100);
    expect(judgeRule(rule('ttfb_p95 <= 550ms'), t.view())).toMatchObject({ status: 'pass', samples: 100 });
  });
});

describe('choosing an action', () => {
  it('rolls back on the first breach by default', () => {
    const t = windows();
    t.add('new', 100, 900);
    const v = evaluate(t.view(), POLICY, rolloutAt(t.now()), FRESH_MEMORY, t.now());
    expect(v.action).toEqual({ kind: 'rollback' });
    expect(v.breached.map((r) => r.name)).toEqual(['ttfb_p95']);
  });

  it('waits for consecutive_breaches evaluations in a row', () => {
    const t = windows();
    t.add('new', 100, 900);
    const policy = { ...POLICY, consecutiveBreaches: 3 };
    const r = rolloutAt(t.now());
    const v1 = evaluate(t.view(), policy, r, FRESH_MEMORY, t.now());
    const v2 = evaluate(t.view(), policy, r, v1.memory, t.now() + 5_000);
    const v3 = evaluate(t.view(), policy, r, v2.memory, t.now() + 10_000);
    expect([v1.action.kind, v2.action.kind, v3.action.kind]).toEqual(['none', 'none', 'rollback']);
    expect(v2.memory.breachStreak).toBe(2);
  });

  it('starts the breach count over after a clean evaluation', () => {
    const t = windows();
    t.add('new', 100, 900);
    const policy = { ...POLICY, consecutiveBreaches: 2 };
    const r = rolloutAt(t.now());
    const v1 = evaluate(t.view(), policy, r, FRESH_MEMORY, t.now());
    t.advance(61_000);
    t.add('new', 100, 100);
    const v2 = evaluate(t.view(), policy, r, v1.memory, t.now());
    expect(v2.memory.breachStreak).toBe(0);
  });

  it('never acts on inconclusive rules', () => {
    const t = windows();
    t.add('new', 5, 90_000);
    const v = evaluate(t.view(), POLICY, rolloutAt(t.now(), { stepsBp: [1000, 5000] }), FRESH_MEMORY, t.now());
    expect(v.action.kind).toBe('none');
    expect(v.allPassed).toBe(false);
    expect(v.memory.passingSince).toBeNull();
  });

  it('only alerts with on_breach alert_only', () => {
    const t = windows();
    t.add('new', 100, 900);
    const v = evaluate(t.view(), { ...POLICY, onBreach: 'alert_only' }, rolloutAt(t.now()), FRESH_MEMORY, t.now());
    expect(v.action).toEqual({ kind: 'alert' });
  });

  it('steps down to the previous step, and rolls back from the first step', () => {
    const t = windows();
    t.add('new', 100, 900);
    const policy = { ...POLICY, onBreach: 'step_down' as const };
    const steps = [100, 1000, 5000];
    const at50 = evaluate(
      t.view(),
      policy,
      rolloutAt(t.now(), { weightBp: 5000, stepsBp: steps }),
      FRESH_MEMORY,
      t.now(),
    );
    expect(at50.action).toEqual({ kind: 'step_down', toBp: 1000 });
    const at1 = evaluate(
      t.view(),
      policy,
      rolloutAt(t.now(), { weightBp: 100, stepsBp: steps }),
      FRESH_MEMORY,
      t.now(),
    );
    expect(at1.action).toEqual({ kind: 'rollback' });
  });

  it('holds a step down during the cooldown but never a rollback', () => {
    const t = windows();
    t.add('new', 100, 900);
    const cooling = rolloutAt(t.now(), { weightBp: 5000, stepsBp: [1000, 5000], lastChangeAt: t.now() - 1_000 });
    const step = evaluate(t.view(), { ...POLICY, onBreach: 'step_down' }, cooling, FRESH_MEMORY, t.now());
    expect(step.action).toEqual({ kind: 'none', why: 'breach during cooldown' });
    const back = evaluate(t.view(), POLICY, cooling, FRESH_MEMORY, t.now());
    expect(back.action).toEqual({ kind: 'rollback' });
  });

  it('is idle when new carries no traffic by weight', () => {
    const t = windows();
    t.add('new', 100, 900);
    for (const state of ['rolled_back', 'killed', 'latched'] as const) {
      const v = evaluate(t.view(), POLICY, rolloutAt(t.now(), { state, weightBp: 0 }), FRESH_MEMORY, t.now());
      expect(v.action.kind).toBe('none');
      expect(v.memory.breachStreak).toBe(0);
    }
  });

  it('promotes only after every rule passed for the whole step_min_duration', () => {
    const t = windows();
    t.add('new', 100, 100);
    const start = t.now();
    const r = rolloutAt(start, { weightBp: 1000, stepsBp: [1000, 5000], weightSince: start });
    const v1 = evaluate(t.view(), POLICY, r, FRESH_MEMORY, start);
    expect(v1.action.kind).toBe('none');
    expect(v1.gate).toMatchObject({ nextBp: 5000, eligibleAt: start + 60_000 });
    const v2 = evaluate(t.view(), POLICY, r, v1.memory, start + 59_999);
    expect(v2.action.kind).toBe('none');
    const v3 = evaluate(t.view(), POLICY, r, v2.memory, start + 60_000);
    expect(v3.action).toEqual({ kind: 'promote', toBp: 5000 });
  });

  it('restarts the gate clock when an evaluation does not pass', () => {
    const t = windows();
    t.add('new', 100, 100);
    const start = t.now();
    const r = rolloutAt(start, { weightBp: 1000, stepsBp: [1000], weightSince: start });
    const v1 = evaluate(t.view(), POLICY, r, FRESH_MEMORY, start);
    // A window with too few samples is inconclusive: not a pass, so the run of passes ends.
    t.advance(61_000);
    t.add('new', 3, 100);
    const v2 = evaluate(t.view(), POLICY, r, v1.memory, t.now());
    expect(v2.memory.passingSince).toBeNull();
    t.add('new', 100, 100);
    const v3 = evaluate(t.view(), POLICY, r, v2.memory, t.now());
    expect(v3.memory.passingSince).toBe(t.now());
    expect(v3.action.kind).toBe('none');
  });

  it('holds at a manual gate instead of promoting', () => {
    const t = windows();
    t.add('new', 100, 100);
    const start = t.now();
    const r = rolloutAt(start, { weightBp: 1000, stepsBp: [1000], weightSince: start - 60_000, autoPromote: false });
    const v = evaluate(t.view(), POLICY, r, { breachStreak: 0, passingSince: start - 60_000 }, start);
    // After the last step comes 100 %.
    expect(v.action).toEqual({ kind: 'hold', nextBp: 10_000 });
  });

  it('does not promote during the cooldown', () => {
    const t = windows();
    t.add('new', 100, 100);
    const now = t.now();
    const r = rolloutAt(now, { weightBp: 1000, stepsBp: [1000], weightSince: now - 120_000, lastChangeAt: now - 1 });
    const v = evaluate(t.view(), POLICY, r, { breachStreak: 0, passingSince: now - 120_000 }, now);
    expect(v.action).toEqual({ kind: 'none', why: 'gate open during cooldown' });
  });

  it('has nothing to promote once promoted or without steps', () => {
    const t = windows();
    t.add('new', 100, 100);
    const now = t.now();
    const memory = { breachStreak: 0, passingSince: now - 120_000 };
    expect(evaluate(t.view(), POLICY, rolloutAt(now, { weightBp: 1000 }), memory, now).action.kind).toBe('none');
    const promoted = rolloutAt(now, { state: 'promoted', weightBp: 10_000, stepsBp: [1000] });
    expect(evaluate(t.view(), POLICY, promoted, memory, now).gate).toBeNull();
  });
});

describe('steps', () => {
  it('finds the next and previous step around a weight', () => {
    const steps = [100, 1000, 5000];
    expect(nextStepBp(0, steps)).toBe(100);
    expect(nextStepBp(1000, steps)).toBe(5000);
    expect(nextStepBp(2000, steps)).toBe(5000);
    expect(nextStepBp(5000, steps)).toBe(10_000);
    expect(nextStepBp(10_000, steps)).toBeNull();
    expect(previousStepBp(5000, steps)).toBe(1000);
    expect(previousStepBp(100, steps)).toBe(0);
    expect(previousStepBp(10_000, steps)).toBe(5000);
  });
});
