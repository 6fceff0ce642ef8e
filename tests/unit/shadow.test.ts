import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import type { WindowView } from '../../src/guard/evaluate.js';
import {
  FRESH_SHADOW_MEMORY,
  judgeShadow,
  type ShadowMemory,
  shadowDecision,
  shadowInForce,
} from '../../src/guard/shadow-judge.js';
import { BodyTee, type TeeResult } from '../../src/proxy/shadow-tee.js';
import type { RolloutState } from '../../src/rollout.js';
import { shadowScope } from '../../src/routing/shadow-scope.js';
import type { PersistedState } from '../../src/state/store.js';

function config(extra: Record<string, unknown> = {}) {
  const r = buildConfig({
    upstreams: { legacy: { url: 'http://127.0.0.1:1' }, new: { url: 'http://127.0.0.1:2' } },
    rollout: { id: 'r', steps: [5, 25], step_min_duration: '10s', shadow: { percent: 10 }, ...extra },
    slo: { min_samples: 10, consecutive_breaches: 2, rules: ['ttfb_p95 <= 500ms', 'error_rate <= 1%'] },
  });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config;
}

function view(ttfbMs: number, errorRate: number, samples = 100): WindowView {
  return {
    requests: samples,
    errorRate,
    ttfbSamples: samples,
    durationSamples: samples,
    ttfbQuantile: () => ttfbMs,
    durationQuantile: () => ttfbMs * 2,
  };
}

const legacy = view(200, 0);

function judge(
  shadow: WindowView,
  memory: ShadowMemory,
  now: number,
  options: { state?: RolloutState; autoPromote?: boolean; onBreach?: 'rollback' | 'alert_only' } = {},
) {
  return judgeShadow(
    { shadow, legacy },
    config().slo,
    {
      state: options.state ?? 'shadowing',
      stepsBp: [500, 2500],
      stepMinDurationMs: 10_000,
      autoPromote: options.autoPromote ?? true,
      onBreach: options.onBreach ?? 'rollback',
      since: 0,
    },
    memory,
    now,
  );
}

describe('the shadow judge', () => {
  it('opens the first step in shadowing only after every rule passed for step_min_duration', () => {
    let v = judge(view(300, 0), FRESH_SHADOW_MEMORY, 1000);
    expect(v.action).toEqual({ kind: 'none' });
    expect(v.eligibleAt).toBe(11_000);
    v = judge(view(300, 0), v.memory, 10_999);
    expect(v.action).toEqual({ kind: 'none' });
    v = judge(view(300, 0), v.memory, 11_000);
    expect(v.action).toEqual({ kind: 'open_first_step', toBp: 500 });
    // With auto_promote false the gate opens for an operator instead.
    expect(judge(view(300, 0), v.memory, 11_000, { autoPromote: false }).action).toEqual({
      kind: 'gate_open',
      nextBp: 500,
    });
  });

  it('judges the shadow by the window rules only: a query rule reads real traffic, not the copies', () => {
    const r = buildConfig({
      upstreams: { legacy: { url: 'http://127.0.0.1:1' }, new: { url: 'http://127.0.0.1:2' } },
      rollout: { id: 'r', steps: [5], shadow: { percent: 10 } },
      slo: {
        min_samples: 10,
        prometheus: { url: 'http://127.0.0.1:9090' },
        rules: ['ttfb_p95 <= 500ms', { name: 'kv', query: 'max(kv_usage)', max: 0.9 }],
      },
    });
    if (!r.ok) throw new Error(r.problems.join('\n'));
    const rollout = {
      state: 'shadowing' as const,
      stepsBp: [500],
      stepMinDurationMs: 0,
      autoPromote: true,
      onBreach: 'rollback' as const,
      since: 0,
    };
    const v = judgeShadow({ shadow: view(300, 0), legacy }, r.config.slo, rollout, FRESH_SHADOW_MEMORY, 0);
    expect(v.rules.map((rule) => rule.name)).toEqual(['ttfb_p95']);
    expect(v.action).toEqual({ kind: 'open_first_step', toBp: 500 });
  });

  it('never counts an inconclusive shadow (too few copies) as a pass', () => {
    let memory = FRESH_SHADOW_MEMORY;
    for (let t = 0; t <= 60_000; t += 5000) {
      const v = judge(view(300, 0, 5), memory, t);
      expect(v.action.kind).toBe('none');
      memory = v.memory;
    }
  });

  it('reports a breach after consecutive_breaches, once per streak, and restarts the gate clock', () => {
    const slow = view(900, 0);
    let v = judge(slow, FRESH_SHADOW_MEMORY, 0, { onBreach: 'alert_only' });
    expect(v.action.kind).toBe('none');
    v = judge(slow, v.memory, 5000, { onBreach: 'alert_only' });
    expect(v.action).toEqual({ kind: 'breach', stop: false });
    v = judge(slow, v.memory, 10_000, { onBreach: 'alert_only' });
    expect(v.action.kind).toBe('none');
    expect(v.memory.passingSince).toBeNull();
    v = judge(view(300, 0), v.memory, 15_000, { onBreach: 'alert_only' });
    v = judge(slow, v.memory, 20_000, { onBreach: 'alert_only' });
    v = judge(slow, v.memory, 25_000, { onBreach: 'alert_only' });
    expect(v.action).toEqual({ kind: 'breach', stop: false });
  });

  it('turns a breach into a stop of the shadow (rollback) or an audit-only record, never a move of real traffic', () => {
    const c = config();
    const state = { state: 'progressing', weight_bp: 500, flips: [], shadow_bp: 1000 } as unknown as PersistedState;
    let v = judge(view(200, 0.5), FRESH_SHADOW_MEMORY, 0, { state: 'progressing' });
    v = judge(view(200, 0.5), v.memory, 1, { state: 'progressing' });
    const stop = shadowDecision(v, state, c, 1);
    expect(stop.kind).toBe('change');
    if (stop.kind !== 'change') return;
    expect(stop.change.spec.action).toBe('shadow_stop');
    expect(stop.change.spec.safe).toBe(true);
    expect(stop.change.mutate(state)).toEqual({ ...state, shadow_bp: 0 });
    const record = shadowDecision({ ...v, action: { kind: 'breach', stop: false } }, state, c, 1);
    expect(record.kind).toBe('record');
    // Outside shadowing, a healthy shadow opens nothing.
    expect(shadowDecision({ ...v, action: { kind: 'open_first_step', toBp: 500 } }, state, c, 1).kind).toBe('none');
  });

  it('runs in every state but killed, rolled_back and latched', () => {
    const c = config();
    for (const state of ['shadowing', 'progressing', 'holding', 'promoted'] as const)
      expect(shadowInForce({ state, shadow_bp: undefined }, c)).toBe(1000);
    for (const state of ['killed', 'rolled_back', 'latched'] as const)
      expect(shadowInForce({ state, shadow_bp: 2000 }, c)).toBe(0);
    expect(shadowInForce({ state: 'progressing', shadow_bp: 0 }, c)).toBe(0);
  });

  it('starts a stepped rollout with a shadow in shadowing at 0 %, and one with an explicit weight as configured', () => {
    expect(config().rollout).toMatchObject({ shadowFirst: true, weightBp: 0 });
    expect(config({ weight: 5 }).rollout).toMatchObject({ shadowFirst: false, weightBp: 500 });
  });
});

describe('the body tee', () => {
  async function drain(tee: BodyTee): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for await (const chunk of tee) out.push(chunk);
    return out;
  }
  async function* source(chunks: Buffer[]) {
    for (const c of chunks) yield c;
  }

  it('passes every chunk on untouched and keeps the same chunks for the copy', async () => {
    const chunks = [Buffer.from('abc'), Buffer.from('defg')];
    const results: TeeResult[] = [];
    const passed = await drain(new BodyTee(source(chunks), 100, (r) => results.push(r)));
    expect(passed).toEqual(chunks);
    expect(passed[0]).toBe(chunks[0]);
    expect(results).toHaveLength(1);
    expect(results[0]).toEqual({ chunks, bytes: 7 });
  });

  it('abandons the copy past max_body, and the user still gets every byte', async () => {
    const chunks = [Buffer.alloc(60), Buffer.alloc(60), Buffer.alloc(60)];
    const results: TeeResult[] = [];
    const passed = await drain(new BodyTee(source(chunks), 100, (r) => results.push(r)));
    expect(Buffer.concat(passed).length).toBe(180);
    expect(results).toEqual([{ dropped: 'body_too_large' }]);
  });

  it('makes no copy of a body that does not end', async () => {
    const results: TeeResult[] = [];
    const tee = new BodyTee(source([Buffer.from('a'), Buffer.from('b')]), 100, (r) => results.push(r));
    await tee.next();
    await tee.return();
    expect(results).toEqual([{ dropped: 'body_incomplete' }]);
    const failing = new BodyTee(
      (async function* () {
        yield Buffer.from('a');
        throw new Error('client reset');
      })(),
      100,
      (r) => results.push(r),
    );
    await expect(drain(failing)).rejects.toThrow('client reset');
    expect(results[1]).toEqual({ dropped: 'body_incomplete' });
  });
});

describe('the shadow scope', () => {
  it('mirrors the configured methods and paths only (a trailing * is a prefix; the query is ignored)', () => {
    const scope = shadowScope({ methods: ['POST'], paths: ['/v1/*', '/health'] });
    expect(scope('POST', '/v1/chat/completions?x=1')).toBe(true);
    expect(scope('POST', '/health')).toBe(true);
    expect(scope('POST', '/healthz')).toBe(false);
    expect(scope('GET', '/v1/models')).toBe(false);
    expect(scope('POST', '/v2/chat')).toBe(false);
  });
});
