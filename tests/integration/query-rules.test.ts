// Query rules end to end: a real Prometheus scrapes an exporter whose values the test moves; veer judges the query.

import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { programPath, requireProgram } from '../helpers/programs.js';
import { type RunningPrometheus, startExporter, startPrometheus } from '../helpers/prometheus.js';
import { memoryLogger, type Stack, startStack } from '../helpers/stack.js';

// Outside CI a missing prometheus skips (named in the run's closing line); in CI it fails the suite.
const skip = requireProgram('prometheus');
const PROMETHEUS = programPath('prometheus') ?? 'prometheus';

const KV_NEW = 'vllm:gpu_cache_usage_perc{backend="new"}';
const KV_LEGACY = 'vllm:gpu_cache_usage_perc{backend="legacy"}';
const WAITING_NEW = 'vllm:num_requests_waiting{backend="new"}';
const WAITING_LEGACY = 'vllm:num_requests_waiting{backend="legacy"}';

interface RuleStatus {
  name: string;
  status: string;
  value: number | null;
  threshold: number | null;
  legacy: number | null;
  detail?: string;
}

async function status(
  stack: Stack,
): Promise<{ rollout: { state: string; weight_percent: number }; slo: { rules: RuleStatus[] } }> {
  const res = await request(`${stack.adminUrl}/api/status`);
  return (await res.body.json()) as never;
}

describe.skipIf(skip)('SLO rules on Prometheus queries, against a real Prometheus', () => {
  const values = new Map<string, number>();
  let exporter: Awaited<ReturnType<typeof startExporter>>;
  let prometheus: RunningPrometheus;
  let stack: Stack | undefined;

  beforeAll(async () => {
    values.set(KV_NEW, 0.5).set(KV_LEGACY, 0.4).set(WAITING_NEW, 3).set(WAITING_LEGACY, 4);
    exporter = await startExporter(values);
    prometheus = await startPrometheus(PROMETHEUS, [exporter.target]);
    await prometheus.targetsUp(1);
  });

  afterAll(async () => {
    await prometheus?.stop();
    await exporter?.close();
  });

  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  const start = (rules: unknown[], promUrl = prometheus.url, logger = memoryLogger('warn').logger) =>
    startStack({
      logger,
      config: {
        rollout: { weight: 25 },
        slo: { interval: '200ms', min_samples: 5, prometheus: { url: promUrl, timeout: '500ms' }, rules },
      },
    });

  it('rolls new back when its KV cache fills past max, and says which query decided it', async () => {
    stack = await start([
      { name: 'kv_cache', query: `max(${KV_NEW})`, max: 0.95 },
      {
        name: 'queue_vs_legacy',
        query: `sum(${WAITING_NEW})`,
        legacy_query: `sum(${WAITING_LEGACY})`,
        max: '1.5 x legacy',
      },
    ]);
    const s = stack;
    let rules: RuleStatus[] = [];
    for (let i = 0; i < 80 && !(rules.length === 2 && rules.every((r) => r.status === 'pass')); i++) {
      rules = (await status(s)).slo.rules;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(rules).toEqual([
      expect.objectContaining({ name: 'kv_cache', status: 'pass', value: 0.5, threshold: 0.95 }),
      expect.objectContaining({ name: 'queue_vs_legacy', status: 'pass', value: 3, legacy: 4, threshold: 6 }),
    ]);
    expect((await status(s)).rollout).toMatchObject({ state: 'progressing', weight_percent: 25 });

    values.set(KV_NEW, 0.99);
    let state = '';
    for (let i = 0; i < 100 && state !== 'rolled_back'; i++) {
      state = (await status(s)).rollout.state;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(state).toBe('rolled_back');
    const audit = (await (await request(`${s.adminUrl}/api/audit?limit=5`)).body.json()) as {
      entries: { action: string; actor: string; rules?: RuleStatus[] }[];
    };
    const rollback = audit.entries.find((e) => e.action === 'rollback')!;
    expect(rollback.actor).toBe('slo-guard');
    expect(rollback.rules).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'kv_cache', status: 'breach', value: 0.99 })]),
    );
    values.set(KV_NEW, 0.5);
  });

  it('holds a rule on missing data or several series as inconclusive: no rollback, counted, logged once', async () => {
    const log = memoryLogger('warn');
    stack = await start(
      [
        { name: 'absent', query: 'max(vllm:no_such_metric{backend="new"})', max: 1 },
        { name: 'two_series', query: 'vllm:gpu_cache_usage_perc', max: 1 },
      ],
      prometheus.url,
      log.logger,
    );
    const s = stack;
    let rules: RuleStatus[] = [];
    for (let i = 0; i < 60 && !(rules.length === 2 && rules.every((r) => r.detail)); i++) {
      rules = (await status(s)).slo.rules;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(rules[0]).toMatchObject({ name: 'absent', status: 'inconclusive', value: null });
    expect(rules[0]!.detail).toMatch(/^no_data/);
    expect(rules[1]).toMatchObject({ name: 'two_series', status: 'inconclusive' });
    expect(rules[1]!.detail).toMatch(/^multiple_series: the query returned 2 series/);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect((await status(s)).rollout).toMatchObject({ state: 'progressing', weight_percent: 25 });
    const metrics = await (await request(`${s.adminUrl}/metrics`)).body.text();
    expect(metrics).toMatch(/veer_slo_query_total\{rule="absent",result="no_data"\} [1-9]/);
    expect(metrics).toMatch(/veer_slo_query_total\{rule="two_series",result="multiple_series"\} [1-9]/);
    // Several evaluations later, one warning per query that went inconclusive, not one per evaluation.
    const warned = log.lines().filter((line) => String(line.msg).startsWith('slo query inconclusive'));
    expect(warned.map((line) => `${line.rule} ${line.result}`).sort()).toEqual([
      'absent no_data',
      'two_series multiple_series',
    ]);
  });

  it('leaves traffic where it is when Prometheus is dead', async () => {
    const dead = await startPrometheus(PROMETHEUS, [exporter.target]);
    await dead.targetsUp(1);
    stack = await start([{ name: 'kv_cache', query: `max(${KV_NEW})`, max: 0.95 }], dead.url);
    const s = stack;
    let rule: RuleStatus | undefined;
    for (let i = 0; i < 60 && rule?.status !== 'pass'; i++) {
      rule = (await status(s)).slo.rules[0];
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(rule?.status).toBe('pass');
    await dead.stop();
    values.set(KV_NEW, 0.99);
    for (let i = 0; i < 60 && rule?.status !== 'inconclusive'; i++) {
      rule = (await status(s)).slo.rules[0];
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(rule).toMatchObject({ status: 'inconclusive' });
    expect(rule!.detail).toMatch(/^(error|stale)/);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect((await status(s)).rollout).toMatchObject({ state: 'progressing', weight_percent: 25 });
    values.set(KV_NEW, 0.5);
  });
});
