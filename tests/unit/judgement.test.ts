// Specification of the guard's judgement over time: failure budget, observe rules, stalled steps, per-step plans,
// and no false rollback over a thousand healthy windows drawn from a noisy heavy-tailed model.

import { describe, expect, it } from 'vitest';
import { parseRule } from '../../src/config/rule.js';
import type { SloRule, StepPlan, UpstreamName } from '../../src/config/types.js';
import {
  type EvaluationPolicy,
  evaluate,
  FRESH_MEMORY,
  type GuardMemory,
  type RolloutView,
  stepWindows,
  type WindowView,
} from '../../src/guard/evaluate.js';
import { SlidingWindow } from '../../src/measure/window.js';
import { seededRandom } from '../helpers/random.js';

function rule(text: string, minSamples = 20, action: 'act' | 'observe' = 'act'): SloRule {
  const r = parseRule(text, minSamples);
  if (!r.ok) throw new Error(r.reason);
  return { ...r.rule, action };
}

const POLICY: EvaluationPolicy = {
  rules: [rule('error_rate <= 1%')],
  consecutiveBreaches: 3,
  onBreach: 'rollback',
  cooldownMs: 0,
  confidence: 0.99,
  failureLimit: null,
  inconclusiveLimitMs: null,
  onInconclusive: 'hold',
};

/** Two real windows (10 s in 10 slices) on one clock that the test moves. */
function rig() {
  let now = 1_000_000;
  const clock = () => now;
  const w = {
    legacy: new SlidingWindow({ windowMs: 10_000, slices: 10, clock }),
    new: new SlidingWindow({ windowMs: 10_000, slices: 10, clock }),
  };
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
    add(side: UpstreamName, n: number, errors = 0, ttfbMs = 100) {
      for (let i = 0; i < n; i++) {
        const failed = i < errors;
        w[side].record(failed ? 'upstream_5xx' : 'ok', failed ? undefined : ttfbMs, ttfbMs + 10);
      }
    },
    view(): Record<UpstreamName, WindowView> {
      return { legacy: w.legacy.snapshot(), new: w.new.snapshot() };
    },
  };
}

function rollout(now: number, over: Partial<RolloutView> = {}): RolloutView {
  return {
    state: 'progressing',
    weightBp: 500,
    stepsBp: [500, 2500, 5000],
    stepMinDurationMs: 5_000,
    autoPromote: true,
    weightSince: now - 60_000,
    lastChangeAt: Number.NEGATIVE_INFINITY,
    ...over,
  };
}

describe('failure budget (slo.failure_limit)', () => {
  it('acts on the third breach at a step even when passes came between', () => {
    const t = rig();
    const policy = { ...POLICY, failureLimit: 3 };
    const r = rollout(t.now());
    let memory: GuardMemory = FRESH_MEMORY;
    const kinds: string[] = [];
    for (const errors of [5, 0, 5, 0, 5]) {
      t.advance(10_000); // a fresh window each time
      t.add('legacy', 100);
      t.add('new', 100, errors);
      const v = evaluate(t.view(), policy, r, memory, t.now());
      memory = v.memory;
      kinds.push(v.action.kind);
    }
    expect(kinds).toEqual(['none', 'none', 'none', 'none', 'rollback']);
    expect(memory.stepBreaches).toBe(3);
  });

  it('without a failure limit, needs consecutive_breaches in a row', () => {
    const t = rig();
    const r = rollout(t.now());
    let memory: GuardMemory = FRESH_MEMORY;
    for (const errors of [5, 0, 5, 0, 5]) {
      t.advance(10_000);
      t.add('new', 100, errors);
      const v = evaluate(t.view(), POLICY, r, memory, t.now());
      memory = v.memory;
      expect(v.action.kind).toBe('none');
    }
  });
});

describe('observe rules (action: observe)', () => {
  it('judges, reports and never acts on an observe rule, nor lets it hold a promotion back', () => {
    const t = rig();
    const policy = {
      ...POLICY,
      consecutiveBreaches: 1,
      rules: [rule('error_rate <= 1%'), rule('ttfb_p99 <= 50ms', 20, 'observe')],
    };
    t.add('new', 100, 0, 200);
    const r = rollout(t.now(), { weightSince: t.now() - 60_000 });
    const v1 = evaluate(t.view(), policy, r, FRESH_MEMORY, t.now());
    expect(v1.rules[1]).toMatchObject({ name: 'ttfb_p99', action: 'observe', status: 'breach' });
    expect(v1.observed.map((x) => x.name)).toEqual(['ttfb_p99']);
    expect(v1.breached).toEqual([]);
    expect(v1.allPassed).toBe(true);
    const v2 = evaluate(t.view(), policy, r, v1.memory, t.now() + 5_000);
    expect(v2.action).toEqual({ kind: 'promote', toBp: 2500 });
  });
});

describe('a stalled step (slo.inconclusive_limit)', () => {
  it('escalates once the step has been inconclusive for the limit, with the configured follow-up', () => {
    const t = rig();
    t.add('new', 5); // far below min_samples
    const policy = { ...POLICY, inconclusiveLimitMs: 30_000, onInconclusive: 'rollback' as const };
    const r = rollout(t.now());
    const v1 = evaluate(t.view(), policy, r, FRESH_MEMORY, t.now());
    expect(v1.action.kind).toBe('none');
    expect(v1.memory.inconclusiveSince).toBe(t.now());
    const v2 = evaluate(t.view(), policy, r, v1.memory, t.now() + 29_999);
    expect(v2.action.kind).toBe('none');
    expect(v2.stalledSince).toBeNull();
    const v3 = evaluate(t.view(), policy, r, v2.memory, t.now() + 30_000);
    expect(v3.action).toEqual({ kind: 'stalled', onInconclusive: 'rollback', sinceMs: 30_000 });
    expect(v3.memory.stalled).toBe(true);
    expect(v3.stalledSince).toBe(t.now());
  });

  it('starts the clock over when the evidence comes, and never stalls at the last step', () => {
    const t = rig();
    t.add('new', 5);
    const policy = { ...POLICY, inconclusiveLimitMs: 30_000 };
    const v1 = evaluate(t.view(), policy, rollout(t.now()), FRESH_MEMORY, t.now());
    t.add('new', 100);
    const v2 = evaluate(t.view(), policy, rollout(t.now()), v1.memory, t.now() + 20_000);
    expect(v2.memory.inconclusiveSince).toBeNull();
    const top = rollout(t.now(), { state: 'promoted', weightBp: 10_000 });
    const u = rig();
    u.add('new', 5);
    const v3 = evaluate(u.view(), policy, top, { ...FRESH_MEMORY, inconclusiveSince: u.now() - 60_000 }, u.now());
    expect(v3.action.kind).toBe('none');
  });
});

describe('per-step plans', () => {
  const plans: StepPlan[] = [
    { bp: 500, minDurationMs: 60_000, gate: 'auto' },
    { bp: 2500, minDurationMs: 5_000, gate: 'auto' },
    { bp: 5000, minDurationMs: 5_000, gate: 'manual' },
  ];

  it("waits out the current step's own min_duration", () => {
    const t = rig();
    t.add('new', 100);
    const since = t.now();
    const r = rollout(t.now(), { stepPlans: plans, weightSince: since });
    const v1 = evaluate(t.view(), POLICY, r, FRESH_MEMORY, t.now());
    expect(v1.gate).toMatchObject({ nextBp: 2500, eligibleAt: since + 60_000, manual: false });
    const v2 = evaluate(t.view(), POLICY, r, v1.memory, since + 5_000);
    expect(v2.action.kind).toBe('none');
  });

  it('holds at a manual step for an operator even with auto_promote on', () => {
    const t = rig();
    t.add('new', 100);
    const r = rollout(t.now(), { stepPlans: plans, weightBp: 5000, weightSince: t.now() - 60_000 });
    const v1 = evaluate(t.view(), POLICY, r, FRESH_MEMORY, t.now());
    const v2 = evaluate(t.view(), POLICY, r, v1.memory, t.now() + 5_000);
    expect(v2.action).toEqual({ kind: 'hold', nextBp: 10_000 });
  });

  it("never promotes on the previous step's samples", () => {
    const t = rig();
    t.add('new', 200); // taken at the previous step
    t.advance(3_000);
    const stepStart = t.now();
    t.add('new', 5); // the step's own: too few
    const r = rollout(t.now(), { stepPlans: plans, weightBp: 2500, weightSince: stepStart });
    let memory: GuardMemory = FRESH_MEMORY;
    for (let i = 0; i <= 3; i++) {
      const at = stepStart + i * 2_500;
      const windows = t.view();
      const v = evaluate(windows, POLICY, r, memory, at, undefined, stepWindows(windows, stepStart, 10_000, at));
      memory = v.memory;
      // The whole window passes on 205 samples; the step's own 5 cannot.
      expect(v.rules[0]!.status).toBe('pass');
      expect(v.allPassed).toBe(false);
      expect(v.action.kind).toBe('none');
    }
  });

  it('reads a view that cannot tell steps apart only once the window is younger than the step', () => {
    const t = rig();
    t.add('new', 200);
    const bare = ({ since: _, ...rest }: WindowView & { since?: unknown }): WindowView => rest;
    const view = t.view();
    const fleetLike = { legacy: bare(view.legacy), new: bare(view.new) };
    expect(stepWindows(fleetLike, t.now() - 1_000, 10_000, t.now()).new.requests).toBe(0);
    expect(stepWindows(fleetLike, t.now() - 10_000, 10_000, t.now()).new.requests).toBe(200);
  });
});

describe('no false rollback on a healthy new', () => {
  /** TTFB in ms: lognormal around 300 ms, with a 3 % Pareto tail (α 1.5): heavy, noisy, the same on both sides. */
  function ttfb(random: () => number): number {
    const u = Math.max(random(), 1e-12);
    const v = random();
    const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    const body = 300 * Math.exp(0.5 * normal);
    return random() < 0.03 ? Math.min(30_000, body * random() ** (-1 / 1.5)) : body;
  }

  it('rolls back in none of 1,000 evaluation windows, low traffic, hangs and bounds included', () => {
    const random = seededRandom(24);
    const rules = [
      rule('error_rate <= 1%', 100),
      rule('error_rate <= legacy + 1%', 100),
      rule('ttfb_p95 <= 1.5 x legacy', 100),
      rule('ttfb_p99 <= 10s', 100),
    ];
    const policy: EvaluationPolicy = { ...POLICY, rules, consecutiveBreaches: 1 };
    let rollbacks = 0;
    let earlyBreaches = 0;
    for (let i = 0; i < 1000; i++) {
      let now = 0;
      const clock = () => now;
      const sides = {} as Record<UpstreamName, WindowView>;
      // From a handful of requests to ~2,000 a window on new; legacy carries 1 to 20 times more.
      const nNew = Math.round(3 * 700 ** random());
      for (const [name, n] of [
        ['new', nNew],
        ['legacy', Math.round(nNew * (1 + 19 * random()))],
      ] as const) {
        const w = new SlidingWindow({ windowMs: 60_000, slices: 6, clock });
        for (let k = 0; k < n; k++) {
          const failed = random() < 0.002;
          const t = ttfb(random);
          w.record(failed ? 'upstream_5xx' : 'ok', failed ? undefined : t, t * 2);
        }
        // Requests in flight now, each part-way through its own wait (a twentieth of the window's traffic).
        const ages = Array.from({ length: Math.ceil(n / 20) }, () => ttfb(random) * random()).sort((a, b) => b - a);
        now = 1;
        sides[name] = { ...w.snapshot(), waitingOver: (ms: number) => ages.filter((a) => a > ms) };
      }
      const v = evaluate(sides, policy, rollout(0, { weightSince: -3_600_000 }), FRESH_MEMORY, 0);
      if (v.action.kind === 'rollback') rollbacks++;
      if (v.breached.some((r) => r.decidedBy === 'bounds')) earlyBreaches++;
    }
    expect(earlyBreaches).toBe(0);
    expect(rollbacks).toBe(0);
  });
});
