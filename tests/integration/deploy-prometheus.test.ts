// The Prometheus and Grafana files under docker/: promtool accepts and unit-tests them, and every query names metrics a running veer really exports.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { REPO } from '../helpers/process.js';
import { requireProgram } from '../helpers/programs.js';
import { type Family, parseExposition } from '../helpers/prom-text.js';
import { closedPort, type Stack, startStack, unusedPort } from '../helpers/stack.js';

const run = promisify(execFile);
const PROM_DIR = join(REPO, 'docker/prometheus');
const RULES = join(PROM_DIR, 'rules/veer-alerts.yml');
const DASHBOARD = join(REPO, 'docker/grafana/veer-dashboard.json');

async function promtool(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd: REPO, timeout: 20_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

interface RuleFile {
  groups: { name: string; rules: { alert?: string; expr: string }[] }[];
}

interface Dashboard {
  panels: { type: string; title: string; targets?: { expr: string; refId: string }[] }[];
  annotations: { list: { expr?: string }[] };
  templating: { list: { name: string; query: string | { query: string } }[] };
}

const rules = parseYaml(readFileSync(RULES, 'utf8')) as RuleFile;
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;

/** Every PromQL expression of the alert rules, each with where it comes from. */
function ruleExpressions(): [string, string][] {
  return rules.groups.flatMap((g) => g.rules.map((r): [string, string] => [`rule ${r.alert}`, r.expr]));
}

/** Every query of the dashboard: panel targets, annotation queries and variable queries. */
function dashboardExpressions(): [string, string][] {
  const out: [string, string][] = [];
  for (const p of dashboard.panels)
    for (const t of p.targets ?? []) out.push([`panel "${p.title}" ${t.refId}`, t.expr]);
  for (const a of dashboard.annotations.list) if (a.expr) out.push(['annotation', a.expr]);
  for (const v of dashboard.templating.list) {
    const q = typeof v.query === 'string' ? v.query : v.query.query;
    if (q.includes('veer_')) out.push([`variable $${v.name}`, q]);
  }
  return out;
}

interface Selector {
  name: string;
  matchers: { label: string; op: string; value: string }[];
}

/** The veer_* series selectors of a PromQL expression, with their label matchers. */
function selectorsOf(expr: string): Selector[] {
  const out: Selector[] = [];
  for (const m of expr.matchAll(/\b(veer_[a-zA-Z0-9_:]+)\s*(?:\{([^}]*)\})?/g)) {
    const matchers = [...(m[2] ?? '').matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)].map((x) => ({
      label: x[1]!,
      op: x[2]!,
      value: x[3]!,
    }));
    out.push({ name: m[1]!, matchers });
  }
  return out;
}

/** Labels Prometheus adds at scrape time (or Grafana variables select on): not in veer's own output. */
const TARGET_LABELS = new Set(['job', 'instance', 'pod']);

/**
 * What in `exprs` does not match the exposition: an unknown series name (histograms by their _bucket, _sum,
 * _count series as exposed), a label the series never carries, or an `=` value no sample has.
 */
function problemsAgainst(families: Map<string, Family>, exprs: [string, string][]): string[] {
  const series = new Map<string, Record<string, string>[]>();
  for (const f of families.values()) {
    for (const s of f.samples) series.set(s.name, [...(series.get(s.name) ?? []), s.labels]);
  }
  const problems: string[] = [];
  for (const [where, expr] of exprs) {
    for (const sel of selectorsOf(expr)) {
      const samples = series.get(sel.name);
      if (!samples) {
        const family = families.get(sel.name);
        problems.push(
          family?.type === 'histogram'
            ? `${where}: ${sel.name} is a histogram; query its _bucket, _sum or _count series`
            : `${where}: ${sel.name} is not in veer's /metrics`,
        );
        continue;
      }
      for (const m of sel.matchers) {
        if (TARGET_LABELS.has(m.label)) continue;
        if (!samples.some((l) => m.label in l)) problems.push(`${where}: ${sel.name} has no label "${m.label}"`);
        else if (m.op === '=' && !samples.some((l) => l[m.label] === m.value))
          problems.push(`${where}: no ${sel.name} sample has ${m.label}="${m.value}"`);
      }
    }
  }
  return problems;
}

const TOKEN = 'deploy-test-operator-token-0123456789';

/** Proxies one SSE completion for `user`; returns the upstream that served it. */
async function complete(url: string, user: string): Promise<string | null> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-user-id': user },
    body: JSON.stringify({ model: 'm', stream: true, messages: [] }),
  });
  await res.text();
  return res.headers.get('x-veer-upstream');
}

async function kill(adminUrl: string): Promise<void> {
  const res = await fetch(`${adminUrl}/api/kill`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ reason: 'deploy test: make the rollback series exist' }),
  });
  expect(res.status).toBe(200);
}

describe.skipIf(requireProgram('promtool'))('docker/prometheus with promtool', () => {
  it('accepts the scrape config and the rule files it loads', async () => {
    const config = await promtool('check', 'config', join(PROM_DIR, 'prometheus.yml'));
    expect(config.code, config.out).toBe(0);
    expect(config.out).toContain('1 rule files found');
    const checked = await promtool('check', 'rules', RULES);
    expect(checked.code, checked.out).toBe(0);
    expect(checked.out).toContain('15 rules found');
  });

  it('passes the alert unit tests (promtool test rules)', async () => {
    const tested = await promtool('test', 'rules', join(PROM_DIR, 'veer-alerts.test.yml'));
    expect(tested.code, tested.out).toBe(0);
    expect(tested.out).toContain('SUCCESS');
  });

  it('takes every SLO threshold from the veer_slo_rule_threshold_* series veer exports, never a number written in', () => {
    const slo = rules.groups
      .flatMap((g) => g.rules)
      .filter((r) =>
        /veer_ttfb_seconds|veer_request_outcomes|veer_time_per_output_token|veer_answer_ends/.test(r.expr),
      );
    expect(slo.map((r) => r.alert)).toEqual([
      'VeerNewTtfbP50OverSlo',
      'VeerNewTtfbP90OverSlo',
      'VeerNewTtfbP95OverSlo',
      'VeerNewTtfbP99OverSlo',
      'VeerNewErrorRateHigh',
      'VeerNewDecodingSlow',
      'VeerNewAnswersIncomplete',
      'VeerNewInbandErrors',
    ]);
    for (const r of slo) {
      expect(r.expr, r.alert).toMatch(
        /> on \(job\) group_right\s+max by \(job, rule\) \(veer_slo_rule_threshold_(seconds|ratio)\{metric="\w+"\}\)/,
      );
      // The only number compared with is the minimum count of streams (>= 50), not a threshold.
      expect(
        [...r.expr.matchAll(/[<>]=?\s*(\d[\d.]*)/g)].map((m) => m[0]),
        r.alert,
      ).toEqual(r.expr.includes('>= 50') ? ['>= 50'] : []);
    }
  });

  it('has unit tests that fail when a threshold series, a quantile or a state name in the rules is wrong', async () => {
    const mutations: [string, string][] = [
      ['veer_slo_rule_threshold_ratio{metric="error_rate"}', 'veer_slo_rule_threshold_ratio{metric="errors"}'],
      ['(0.95, sum by', '(0.9, sum by'],
      ['veer_slo_rule_threshold_seconds{metric="ttfb_p95"}', 'veer_slo_rule_threshold_seconds{metric="ttfb_p99"}'],
      ['state="killed"', 'state="kill"'],
      ['for: 1m', 'for: 5m'],
      ['veer_slo_rule_threshold_seconds{metric="tpot_p95"}', 'veer_slo_rule_threshold_seconds{metric="itl_p95"}'],
      ['{upstream="new"}[10m])) >= 50', '{upstream="new"}[10m])) >= 5000'],
      ['end="truncated"}', 'end=~"truncated|inband_error"}'],
      ['veer_slo_rule_threshold_ratio{metric="incomplete_rate"}', 'veer_slo_rule_threshold_ratio{metric="error_rate"}'],
      [
        'veer_slo_rule_threshold_ratio{metric="inband_error_rate"}',
        'veer_slo_rule_threshold_ratio{metric="incomplete_rate"}',
      ],
      ['end="inband_error"}', 'end="empty"}'],
      ['(veer_fleet_disconnected_seconds) > 60', '(veer_fleet_disconnected_seconds) > 600'],
    ];
    for (const [from, to] of mutations) {
      const dir = mkdtempSync(join(tmpdir(), 'veer-rules-'));
      try {
        cpSync(PROM_DIR, dir, { recursive: true });
        const text = readFileSync(RULES, 'utf8');
        expect(text).toContain(from);
        writeFileSync(join(dir, 'rules/veer-alerts.yml'), text.replace(from, to));
        const tested = await promtool('test', 'rules', join(dir, 'veer-alerts.test.yml'));
        expect(tested.code, `${from} -> ${to} passed:\n${tested.out}`).not.toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

describe.skipIf(requireProgram('prometheus'))('alert rules and dashboard queries against a running veer', () => {
  let stack: Stack;
  let families: Map<string, Family>;
  let prometheus: ChildProcess | undefined;
  let promDir: string | undefined;
  const served = new Set<string | null>();

  beforeAll(async () => {
    process.env.VEER_DEPLOY_TEST_TOKEN = TOKEN;
    // A query rule against a dead Prometheus and a webhook that refuses connections: their counters exist too.
    const nowhere = await closedPort();
    stack = await startStack({
      config: {
        rollout: { weight: 50 },
        admin: { tokens: [{ name: 'ops', env: 'VEER_DEPLOY_TEST_TOKEN' }] },
        // A rule on every metric an alert reads, so each threshold series exists.
        slo: {
          window: '10s',
          interval: '200ms',
          min_samples: 5,
          rules: [
            'ttfb_p95 <= 550ms',
            'error_rate <= 1%',
            'ttfb_p50 <= 5s',
            'ttfb_p90 <= 5s',
            'ttfb_p99 <= 5s',
            'tpot_p95 <= 5s',
            'incomplete_rate <= 50%',
            'inband_error_rate <= 50%',
            { name: 'kv_cache', query: 'max(kv)', max: 0.95 },
          ],
          prometheus: { url: nowhere, timeout: '200ms' },
        },
        notify: [{ name: 'oncall', url: `${nowhere}/hook`, events: ['kill'], backoff: '10ms', retry_for: '30ms' }],
      },
    });
    for (let i = 0; i < 30; i++) served.add(await complete(stack.url, `user-${i}`));
    // One truncated answer and one in-band error, from legacy (no absolute rule judges it): the end classes
    // the answer alerts select on exist.
    for (const fault of [{ truncateRate: 1 }, { inbandErrorRate: 1 }]) {
      stack.legacy.set(fault);
      for (let i = 0; (await complete(stack.url, `user-${i}`)) !== 'legacy'; i++)
        if (i > 30) throw new Error('no user on legacy');
      stack.legacy.set({ truncateRate: 0, inbandErrorRate: 0 });
    }
    // Until the guard has judged its rules once, the SLO gauges have no samples.
    const metrics = () => fetch(`${stack.adminUrl}/metrics`).then((r) => r.text());
    const deadline = Date.now() + 5000;
    while (!(await metrics()).includes('veer_slo_rule_value_seconds{')) {
      if (Date.now() > deadline) throw new Error('the SLO guard never judged its rules');
      await new Promise((r) => setTimeout(r, 50));
    }
    // A kill makes the rollback and routing-change counters exist.
    await kill(stack.adminUrl);
    while (!(await metrics()).includes('veer_notify_total{webhook="oncall",result="expired"}')) {
      if (Date.now() > deadline + 5000) throw new Error('the kill notification was never given up');
      await new Promise((r) => setTimeout(r, 50));
    }
    families = parseExposition(await metrics());
  });

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null) {
      prometheus.kill('SIGTERM');
      await once(prometheus, 'exit');
    }
    if (promDir) rmSync(promDir, { recursive: true, force: true });
    await stack?.close();
  });

  it('names only metrics, labels and label values that veer exports (after traffic to both upstreams and a kill)', async () => {
    expect(served).toEqual(new Set(['new', 'legacy']));
    const exprs = [...ruleExpressions(), ...dashboardExpressions()];
    const names = new Set(exprs.flatMap(([, e]) => selectorsOf(e).map((s) => s.name)));
    for (const expected of [
      'veer_ttfb_seconds_bucket',
      'veer_ttfb_seconds_count',
      'veer_request_outcomes_total',
      'veer_requests_total',
      'veer_rollout_state',
      'veer_routing_weight_ratio',
      'veer_routing_changes_total',
      'veer_rollbacks_total',
      'veer_inflight_streams',
      'veer_ttfb_window_seconds',
      'veer_slo_rule_value_seconds',
      'veer_slo_rule_threshold_seconds',
      'veer_slo_rule_threshold_ratio',
      'veer_answer_ends_total',
      'veer_time_per_output_token_seconds_bucket',
    ])
      expect(names, expected).toContain(expected);
    expect(problemsAgainst(families, exprs)).toEqual([]);
  });

  it('reports misspelt names, histogram families without a suffix, unknown labels and label values', () => {
    const problems = problemsAgainst(families, [
      ['a', 'rate(veer_request_total[5m])'],
      ['b', 'histogram_quantile(0.9, rate(veer_ttfb_seconds[5m]))'],
      ['c', 'veer_ttfb_seconds_bucket{upstreem="new"}'],
      ['d', 'veer_rollout_state{state="rolledback"} == 1'],
      ['e', 'sum(veer_inflight_streams{job=~"$job", upstream="new"})'],
    ]);
    expect(problems).toEqual([
      `a: veer_request_total is not in veer's /metrics`,
      'b: veer_ttfb_seconds is a histogram; query its _bucket, _sum or _count series',
      'c: veer_ttfb_seconds_bucket has no label "upstreem"',
      'd: no veer_rollout_state sample has state="rolledback"',
    ]);
  });

  it('evaluates every dashboard query to data and fires VeerRolloutKilled in a real Prometheus scraping veer', async () => {
    promDir = mkdtempSync(join(tmpdir(), 'veer-prom-'));
    const port = await unusedPort();
    const admin = new URL(stack.adminUrl);
    writeFileSync(
      join(promDir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        `rule_files: [${JSON.stringify(RULES)}]`,
        'scrape_configs:',
        `  - { job_name: veer, static_configs: [{ targets: ["${admin.host}"] }] }`,
        '',
      ].join('\n'),
    );
    const prom = spawn(
      'prometheus',
      [
        `--config.file=${join(promDir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(promDir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prometheus = prom;
    let log = '';
    prom.stderr!.on('data', (d: Buffer) => {
      log += d;
    });
    const api = `http://127.0.0.1:${port}`;
    const query = async (q: string) => {
      const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(q)}`);
      return (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
    };
    // Legacy keeps getting traffic (new is killed) while Prometheus scrapes.
    let stop = false;
    const traffic = (async () => {
      for (let i = 0; !stop; i++) {
        await complete(stack.url, `user-${i % 30}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      const deadline = Date.now() + 20_000;
      const scraped = async () => {
        try {
          const r = await query('count_over_time(up{job="veer"}[1m])');
          return Number((r.data?.result[0] as { value: [number, string] } | undefined)?.value[1] ?? 0);
        } catch {
          return 0;
        }
      };
      while ((await scraped()) < 4) {
        if (Date.now() > deadline || prom.exitCode !== null) throw new Error(`prometheus did not scrape veer:\n${log}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const empty: string[] = [];
      for (const [where, expr] of dashboardExpressions()) {
        if (expr.startsWith('label_values(')) {
          const [, metric, label] = /label_values\((\w+)(?:\{[^}]*\})?,\s*(\w+)\)/.exec(expr)!;
          const res = await fetch(`${api}/api/v1/label/${label}/values?match[]=${metric}`);
          const values = ((await res.json()) as { data: string[] }).data;
          // job and instance come from the scrape; pod only from a Kubernetes PodMonitor (none here).
          const expected: Record<string, string[]> = { job: ['veer'], instance: [admin.host], pod: [] };
          expect(values, where).toEqual(expected[label!]);
          continue;
        }
        const r = await query(
          expr
            .replaceAll('$__rate_interval', '4s')
            .replaceAll('$job', 'veer')
            .replaceAll('$instance', '.*')
            .replaceAll('$pod', '.*'),
        );
        expect(r.status, `${where}: ${r.error}`).toBe('success');
        if (r.data!.result.length === 0) empty.push(where);
      }
      // Annotations show changes only; every panel query must return series.
      expect(empty.filter((w) => w !== 'annotation')).toEqual([]);
      let firing: string[] = [];
      while (!firing.includes('VeerRolloutKilled')) {
        if (Date.now() > deadline) throw new Error(`VeerRolloutKilled never fired; alerts: ${firing}`);
        const res = await fetch(`${api}/api/v1/alerts`);
        const body = (await res.json()) as { data: { alerts: { labels: { alertname: string }; state: string }[] } };
        firing = body.data.alerts.filter((a) => a.state === 'firing').map((a) => a.labels.alertname);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(firing).not.toContain('VeerDown');
      expect(firing).not.toContain('VeerRolloutRolledBack');
    } finally {
      stop = true;
      await traffic;
    }
  });
});
