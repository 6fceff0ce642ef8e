// Query rules: their config form, and how a reading (or its absence) is judged.

import { describe, expect, it } from 'vitest';
import { buildConfig, type LoadEnv } from '../../src/config/load.js';
import type { QueryRule } from '../../src/config/types.js';
import { judgeQueryRule, type QueryInput } from '../../src/guard/evaluate.js';
import type { QueryReading, RuleReadings } from '../../src/guard/prometheus.js';

const io: LoadEnv = { env: { PROM_TOKEN: 'secret-token' }, readFile: () => '' };
const doc = (rules: unknown[], prometheus: unknown = { url: 'http://prometheus:9090/' }) => ({
  upstreams: { legacy: { url: 'http://127.0.0.1:9101' }, new: { url: 'http://127.0.0.1:9102' } },
  rollout: { id: 'r1' },
  slo: { rules, ...(prometheus ? { prometheus } : {}) },
});

function load(rules: unknown[], prometheus?: unknown) {
  return buildConfig(doc(rules, prometheus), undefined, io);
}

const KV = { name: 'kv_cache', query: 'max(vllm:gpu_cache_usage_perc{backend="new"})', max: 0.95 };
const QUEUE = {
  name: 'queue_vs_legacy',
  query: 'sum(vllm:num_requests_waiting{backend="new"})',
  legacy_query: 'sum(vllm:num_requests_waiting{backend="legacy"})',
  max: '1.5 x legacy',
};

describe('query rules in the config', () => {
  it('reads an absolute and a relative query rule beside the window rules', () => {
    const result = load(['error_rate <= 1%', KV, QUEUE], { url: 'http://prometheus:9090/', token_env: 'PROM_TOKEN' });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const [, kv, queue] = result.config.slo.rules as [unknown, QueryRule, QueryRule];
    expect(kv).toMatchObject({ metric: 'query', kind: 'absolute', threshold: 0.95, query: KV.query });
    expect(queue).toMatchObject({ kind: 'ratio_to_legacy', factor: 1.5, legacyQuery: QUEUE.legacy_query });
    expect(result.config.slo.prometheus).toEqual({
      url: 'http://prometheus:9090',
      timeoutMs: 2000,
      bearerToken: 'secret-token',
    });
  });

  it('takes action: observe on a query rule (judged and shown, never acting)', () => {
    const result = load([{ ...KV, action: 'observe' }]);
    expect(result.ok && result.config.slo.rules[0]).toMatchObject({ metric: 'query', action: 'observe' });
  });

  it('reads `legacy + D` as a delta over legacy', () => {
    const result = load([{ ...QUEUE, max: 'legacy + 4' }]);
    expect(result.ok && result.config.slo.rules[0]).toMatchObject({ kind: 'delta_over_legacy', delta: 4 });
  });

  it.each([
    [[{ ...QUEUE, legacy_query: undefined }], 'slo.rules[0].legacy_query: required when max is relative'],
    [[{ ...KV, legacy_query: 'x' }], 'slo.rules[0].legacy_query: only with a max relative to legacy'],
    [[{ ...KV, max: 'lots' }], 'slo.rules[0].max: must be a number, "F x legacy" or "legacy + D"'],
    [[{ ...KV, max: '0 x legacy', legacy_query: 'x' }], 'slo.rules[0].max: the factor must be greater than 0'],
    [[KV, { ...KV }], 'slo.rules[1]: duplicate rule name "kv_cache"'],
  ])('refuses %j naming the field', (rules, words) => {
    const result = load(rules as unknown[]);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.problems.join('\n')).toContain(words);
  });

  it('needs slo.prometheus when a rule has a query', () => {
    const result = load([KV], null);
    expect(!result.ok && result.problems).toContain(
      'slo.prometheus: required when a rule has a query (e.g. { url: http://prometheus:9090 })',
    );
  });
});

const rule = (over: Partial<QueryRule> = {}): QueryRule =>
  ({
    name: 'kv',
    text: 'kv: q <= 0.95',
    metric: 'query',
    query: 'q',
    minSamples: 0,
    kind: 'absolute',
    threshold: 0.95,
    ...over,
  }) as QueryRule;
const ok = (value: number, at = 1000): QueryReading => ({ status: 'ok', value, at });
const input = (readings: RuleReadings, staleAfterMs = 10_000): QueryInput => ({
  readings: new Map([['kv', readings]]),
  staleAfterMs,
});

describe('judging a query rule', () => {
  it('passes at or below max and breaches above it', () => {
    expect(judgeQueryRule(rule(), input({ new: ok(0.95) }), 1000).status).toBe('pass');
    const breach = judgeQueryRule(rule(), input({ new: ok(0.97) }), 1000);
    expect(breach).toMatchObject({ status: 'breach', value: 0.97, threshold: 0.95, unit: 'value', samples: 1 });
  });

  it('judges a relative rule against legacy_query read in the same round', () => {
    const relative = rule({ kind: 'ratio_to_legacy', factor: 1.5, legacyQuery: 'l' } as Partial<QueryRule>);
    expect(judgeQueryRule(relative, input({ new: ok(14), legacy: ok(10) }), 1000)).toMatchObject({
      status: 'pass',
      threshold: 15,
      legacy: 10,
    });
    expect(judgeQueryRule(relative, input({ new: ok(16), legacy: ok(10) }), 1000).status).toBe('breach');
  });

  it.each([
    ['no data', { new: { status: 'no_data', detail: 'the query returned no series', at: 1000 } }, /^no_data/],
    ['several series', { new: { status: 'multiple_series', detail: '3 series', at: 1000 } }, /^multiple_series/],
    ['NaN', { new: { status: 'not_a_number', detail: 'the value is NaN', at: 1000 } }, /^not_a_number/],
    ['a failed query', { new: { status: 'error', detail: 'HTTP 503', at: 1000 } }, /^error/],
    ['a timeout', { new: { status: 'timeout', detail: 'no answer within 2000 ms', at: 1000 } }, /^timeout/],
    ['a stale reading', { new: ok(0.99, 1000) }, /^stale/],
  ] as [string, RuleReadings, RegExp][])(
    'is inconclusive on %s, never a pass or a breach',
    (_what, readings, detail) => {
      const result = judgeQueryRule(rule(), input(readings, 5000), 7000);
      expect(result.status).toBe('inconclusive');
      expect(result.detail).toMatch(detail);
    },
  );

  it('is inconclusive before the first reading and without a source', () => {
    expect(judgeQueryRule(rule(), { readings: new Map(), staleAfterMs: 1000 }, 0).status).toBe('inconclusive');
    expect(judgeQueryRule(rule(), undefined, 0).detail).toBe('no query source');
  });

  it('is inconclusive when legacy_query fails, whatever new reads', () => {
    const relative = rule({ kind: 'ratio_to_legacy', factor: 1.5, legacyQuery: 'l' } as Partial<QueryRule>);
    const result = judgeQueryRule(
      relative,
      input({ new: ok(100), legacy: { status: 'no_data', detail: 'none', at: 1000 } }),
      1000,
    );
    expect(result).toMatchObject({ status: 'inconclusive', value: 100, legacy: null });
    expect(result.detail).toMatch(/^legacy_query no_data/);
  });
});
