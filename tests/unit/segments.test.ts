import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import type { SegmentConfig } from '../../src/config/types.js';
import type { RolloutState } from '../../src/rollout.js';
import { bucketOf, decide, makeTable, shadowed } from '../../src/routing/table.js';
import { seededRandom } from '../helpers/random.js';

const draw = seededRandom(20261202);
const keys = Array.from({ length: 20_000 }, (_, i) => `user-${Math.floor(draw() * 1e9)}-${i}`);

/** Segments as the config loader builds them, from the YAML shape. */
function segments(raw: unknown[]): SegmentConfig[] {
  const r = buildConfig({
    upstreams: { legacy: { url: 'http://127.0.0.1:1' }, new: { url: 'http://127.0.0.1:2' } },
    rollout: { id: 'r' },
    routing: { segments: raw },
  });
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config.routing.segments;
}

const SEGMENTS = segments([
  { name: 'staff', match: { header: 'x-tenant', in: ['internal', 'qa'] }, side: 'new' },
  { name: 'blocked', match: { header: 'x-tenant', equals: 'bank' }, side: 'legacy' },
  { name: 'free-tier', match: { header: 'x-plan', equals: 'free' }, weight: 50 },
  { name: 'capped', match: { cookie: 'plan', prefix: 'trial-' }, weight: 80, cap_at_weight: true },
  { name: 'beta', match: { query: 'beta', regex: '^(1|yes)$' }, weight: 5 },
]);

function table(weightPercent: number, state: RolloutState = 'progressing', extra: Record<string, unknown> = {}) {
  return makeTable({
    rolloutId: 'r',
    salt: 'salt-1',
    weightBp: Math.round(weightPercent * 100),
    state,
    forceHeader: 'x-veer-force',
    version: 1,
    overrides: [
      ['pinned-legacy', 'legacy'],
      ['pinned-new', 'new'],
    ],
    segments: SEGMENTS,
    ...extra,
  });
}

describe('segments', () => {
  it('sends a fixed-side segment to its side whatever the weight', () => {
    for (const weight of [0, 30, 100]) {
      const d = decide(table(weight), 'anyone', undefined, Math.random, { 'x-tenant': 'qa' });
      expect(d).toEqual({ upstream: 'new', reason: 'segment', bucket: -1, segment: 'staff' });
      expect(decide(table(weight), 'anyone', undefined, Math.random, { 'x-tenant': 'bank' }).upstream).toBe('legacy');
    }
  });

  it('takes the first segment that matches, in config order', () => {
    const headers = { 'x-tenant': 'internal', 'x-plan': 'free' };
    expect(decide(table(0), 'k', undefined, Math.random, headers).segment).toBe('staff');
    expect(decide(table(0), 'k', undefined, Math.random, { 'x-plan': 'free' }).segment).toBe('free-tier');
  });

  it('ranks kill over overrides over the force header over segments over the main weight', () => {
    const staff = { 'x-tenant': 'internal', 'x-veer-force': 'legacy' };
    // kill: everything to legacy, segments included.
    expect(decide(table(100, 'killed'), 'pinned-new', 'new', Math.random, staff).reason).toBe('killed');
    // overrides beat the force header and the segment.
    expect(decide(table(0), 'pinned-legacy', 'new', Math.random, staff)).toMatchObject({
      upstream: 'legacy',
      reason: 'override',
    });
    // the trusted force header beats the segment.
    expect(decide(table(0), 'someone', 'legacy', Math.random, staff)).toMatchObject({
      upstream: 'legacy',
      reason: 'forced',
    });
    // the segment beats the main weight.
    expect(decide(table(0), 'someone', undefined, Math.random, staff)).toMatchObject({
      upstream: 'new',
      reason: 'segment',
    });
    // no segment matches: the main weight decides.
    expect(decide(table(0), 'someone', undefined, Math.random, { 'x-tenant': 'other' }).reason).toBe('bucket');
  });

  it('sends every segment to legacy after a kill, a rollback or a latch', () => {
    for (const state of ['killed', 'rolled_back', 'latched'] as const) {
      const t = table(0, state);
      for (const headers of [{ 'x-tenant': 'qa' }, { 'x-plan': 'free' }]) {
        for (const key of keys.slice(0, 500)) {
          expect(decide(t, key, undefined, Math.random, headers).upstream).toBe('legacy');
        }
      }
    }
  });

  it('splits a weighted segment by the main hash: sticky, and its own share whatever the main weight', () => {
    const headers = { 'x-plan': 'free' };
    for (const main of [0, 10, 100]) {
      const t = table(main);
      let onNew = 0;
      for (const key of keys) {
        const d = decide(t, key, undefined, Math.random, headers);
        expect(d.bucket).toBe(bucketOf('salt-1', key));
        expect(decide(t, key, undefined, Math.random, headers)).toEqual(d);
        if (d.upstream === 'new') onNew++;
      }
      expect(onNew / keys.length).toBeGreaterThan(0.48);
      expect(onNew / keys.length).toBeLessThan(0.52);
    }
  });

  it('keeps a user on new when a segment weight rises (monotone cohorts)', () => {
    const at = (w: number) =>
      makeTable({
        rolloutId: 'r',
        salt: 'salt-1',
        weightBp: 0,
        state: 'progressing',
        forceHeader: undefined,
        version: 1,
        segments: segments([{ name: 'free', match: { header: 'x-plan', equals: 'free' }, weight: w }]),
      });
    const headers = { 'x-plan': 'free' };
    const steps = [1, 5, 25, 50, 100].map(at);
    for (const key of keys.slice(0, 5000)) {
      let wasNew = false;
      for (const t of steps) {
        const onNew = decide(t, key, undefined, Math.random, headers).upstream === 'new';
        if (wasNew) expect(onNew).toBe(true);
        wasNew = onNew;
      }
    }
  });

  it('caps a segment at the main weight with cap_at_weight, and moves it with the guard’s steps only then', () => {
    const cookie = { cookie: 'plan=trial-7' };
    for (const main of [0, 5, 25, 80, 100]) {
      const t = table(main);
      let onNew = 0;
      for (const key of keys) if (decide(t, key, undefined, Math.random, cookie).upstream === 'new') onNew++;
      const expected = Math.min(main, 80) / 100;
      expect(Math.abs(onNew / keys.length - expected)).toBeLessThan(0.02);
    }
    // Without the cap, free-tier keeps its 50 % at a main weight of 5 % (a step down does not touch it).
    expect(table(5).segments.find((s) => s.name === 'free-tier')!.weightBp).toBe(5000);
    expect(table(5).segments.find((s) => s.name === 'capped')!.weightBp).toBe(500);
  });

  it('matches a query value and a regex compiled once at load', () => {
    const t = table(0);
    const beta = SEGMENTS.find((s) => s.name === 'beta')!;
    expect(beta.test.kind === 'regex' && beta.test.regex).toBeInstanceOf(RegExp);
    let onNew = 0;
    for (const key of keys) {
      const d = decide(t, key, undefined, Math.random, {}, '/v1/chat?beta=yes');
      expect(d.segment).toBe('beta');
      if (d.upstream === 'new') onNew++;
    }
    expect(Math.abs(onNew / keys.length - 0.05)).toBeLessThan(0.01);
    expect(decide(t, 'k', undefined, Math.random, {}, '/v1/chat?beta=no').segment).toBeUndefined();
  });

  it('splits keyless requests in a weighted segment by a random draw', () => {
    const random = seededRandom(7);
    let onNew = 0;
    for (let i = 0; i < 10_000; i++) {
      if (decide(table(0), undefined, undefined, random, { 'x-plan': 'free' }).upstream === 'new') onNew++;
    }
    expect(Math.abs(onNew / 10_000 - 0.5)).toBeLessThan(0.03);
  });
});

describe('segments in the config', () => {
  const doc = (segment: unknown) => ({
    upstreams: { legacy: { url: 'http://127.0.0.1:1' }, new: { url: 'http://127.0.0.1:2' } },
    rollout: { id: 'r' },
    routing: { segments: [{ name: 'ok', match: { header: 'x-a', equals: 'b' }, side: 'new' }, segment] },
  });
  const problems = (segment: unknown) => {
    const r = buildConfig(doc(segment));
    return r.ok ? [] : r.problems;
  };

  it('refuses a bad segment naming the field', () => {
    expect(problems({ name: 'x', match: { header: 'a', cookie: 'b', equals: 'c' }, side: 'new' })).toEqual([
      'routing.segments[1].match: must name exactly one of header, cookie or query',
    ]);
    expect(problems({ name: 'x', match: { header: 'a', equals: 'c', prefix: 'd' }, side: 'new' })).toEqual([
      'routing.segments[1].match: must name exactly one of equals, in, prefix or regex',
    ]);
    expect(problems({ name: 'x', match: { header: 'a', equals: 'c' }, side: 'new', weight: 5 })).toEqual([
      'routing.segments[1]: must have exactly one of side or weight',
    ]);
    expect(problems({ name: 'x', match: { header: 'a', equals: 'c' }, side: 'new', cap_at_weight: true })).toEqual([
      'routing.segments[1].cap_at_weight: only applies to a segment with a weight',
    ]);
    expect(problems({ name: 'ok', match: { header: 'a', equals: 'c' }, side: 'new' })).toEqual([
      'routing.segments[1].name: duplicate segment name "ok"',
    ]);
    expect(problems({ name: 'x', match: { header: 'a', regex: '[' }, side: 'new' })[0]).toMatch(
      /^routing\.segments\[1\]\.match\.regex: not a valid regular expression/,
    );
    expect(problems({ name: 'bad name', match: { header: 'a', equals: 'c' }, side: 'new' })[0]).toMatch(
      /^routing\.segments\[1\]\.name: must match/,
    );
  });
});

describe('the shadow cohort', () => {
  const at = (shadowPercent: number, weightPercent = 0) =>
    makeTable({
      rolloutId: 'r',
      salt: 'salt-1',
      weightBp: weightPercent * 100,
      state: 'progressing',
      forceHeader: undefined,
      version: 1,
      shadowBp: shadowPercent * 100,
    });

  it('is stable per user, its own share, and independent of the split', () => {
    let both = 0;
    let shadowedCount = 0;
    let onNew = 0;
    for (const key of keys) {
      const s = shadowed(at(10, 50), key);
      expect(shadowed(at(10, 50), key)).toBe(s);
      // A user's shadow membership does not move with the weight.
      expect(shadowed(at(10, 5), key)).toBe(s);
      const n = decide(at(10, 50), key, undefined).upstream === 'new';
      if (s) shadowedCount++;
      if (n) onNew++;
      if (s && n) both++;
    }
    expect(Math.abs(shadowedCount / keys.length - 0.1)).toBeLessThan(0.01);
    // Independent: the shadowed share of new's users is the shadowed share overall.
    expect(Math.abs(both / onNew - 0.1)).toBeLessThan(0.015);
  });

  it('only grows when the shadow share rises, and is off at 0', () => {
    for (const key of keys.slice(0, 5000)) {
      if (shadowed(at(5), key)) expect(shadowed(at(20), key)).toBe(true);
      expect(shadowed(at(0), key)).toBe(false);
    }
  });
});
