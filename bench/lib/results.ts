// Bench results: figures with their targets, PASS/FAIL, and the latest.md / latest.json files.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

export type Unit = 'ns' | 'us' | 'ms' | 'req/s' | 'KiB' | '%' | 'count' | 'x';

/** A target on one number of a figure: `added` (veer − direct), `veer`, or a single-sided `value`. */
export interface Target {
  of: 'added' | 'veer' | 'value';
  max?: number;
  min?: number;
}

export interface Figure {
  key: string;
  label: string;
  unit: Unit;
  direct?: number;
  veer?: number;
  /** veer / direct */
  ratio?: number;
  /** veer − direct */
  added?: number;
  /** A figure with no direct counterpart (ns per decision, RSS per stream). */
  value?: number;
  target?: Target;
  /** Show only the difference (for values near zero, where a ratio means nothing). */
  noRatio?: boolean;
  pass?: boolean;
  note?: string;
}

export interface ScenarioResult {
  name: string;
  startedAt: string;
  seconds: number;
  quick: boolean;
  /** 1-minute load average of the machine when the scenario started and ended (others' work shows here). */
  load?: { before: number; after: number };
  params: Record<string, unknown>;
  figures: Figure[];
  notes: string[];
}

/** Starts a scenario's clock; `result` closes it with the scenario's figures and notes. */
export function scenarioRun(name: string, quick: boolean) {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  return {
    result: (params: Record<string, unknown>, figures: Figure[], notes: string[]): ScenarioResult => ({
      name,
      startedAt,
      seconds: (performance.now() - started) / 1000,
      quick,
      params,
      figures,
      notes,
    }),
  };
}

export interface Report {
  generatedAt: string;
  machine: { cpu: string; cores: number; memoryGiB: number; kernel: string; node: string; loadAverage: number[] };
  quick: boolean;
  scenarios: Record<string, ScenarioResult>;
}

/** Fills `ratio`/`added` from direct and veer, and `pass` from the target. */
export function figure(f: Figure): Figure {
  const out = { ...f };
  // A reference row (e.g. the bare forwarder) compares its `value` with direct the way veer is compared.
  const other = out.veer ?? (out.direct !== undefined ? out.value : undefined);
  if (out.direct !== undefined && other !== undefined) {
    out.added ??= other - out.direct;
    if (out.direct > 0 && other >= 0 && !out.noRatio) out.ratio ??= other / out.direct;
  }
  if (out.target) {
    const v = out.target.of === 'added' ? out.added : out.target.of === 'veer' ? out.veer : out.value;
    out.pass =
      v !== undefined &&
      Number.isFinite(v) &&
      (out.target.max === undefined || v <= out.target.max) &&
      (out.target.min === undefined || v >= out.target.min);
  }
  return out;
}

export function machine(): Report['machine'] {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

function num(value: number, unit: Unit): string {
  if (!Number.isFinite(value)) return '–';
  // -0.0001 would print as "-0.000"
  const v = Math.abs(value) < 0.0005 ? 0 : value;
  const abs = Math.abs(v);
  let digits: number;
  if (unit === 'count') digits = 0;
  else if (abs >= 1000) digits = 0;
  else if (abs >= 100) digits = 0;
  else if (abs >= 10) digits = 1;
  else if (abs >= 1) digits = 2;
  else digits = 3;
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }).replace('-', '−');
}

function withUnit(v: number | undefined, unit: Unit): string {
  if (v === undefined) return '';
  const n = num(v, unit);
  if (unit === 'count') return n;
  if (unit === 'x') return `×${n}`;
  if (unit === '%') return `${n} %`;
  return `${n} ${unit === 'us' ? 'µs' : unit}`;
}

function signed(v: number, unit: Unit): string {
  const s = withUnit(v, unit);
  return s.startsWith('−') ? s : `+${s}`;
}

function targetText(t: Target, unit: Unit): string {
  const what = t.of === 'added' ? 'added ' : '';
  const parts: string[] = [];
  if (t.max !== undefined) parts.push(`${what}≤ ${withUnit(t.max, unit)}`);
  if (t.min !== undefined) parts.push(`${what}≥ ${withUnit(t.min, unit)}`);
  return parts.join(', ');
}

/** veer vs direct: the difference for latencies, the ratio for rates and counts. */
function versus(f: Figure): string {
  if (f.direct === undefined || (f.veer ?? f.value) === undefined) return '';
  if (f.unit === 'req/s' || f.unit === 'count') return f.ratio === undefined ? '' : `×${num(f.ratio, 'x')}`;
  const ratio = f.ratio === undefined ? '' : ` (×${num(f.ratio, 'x')})`;
  return `${signed(f.added ?? 0, f.unit)}${ratio}`;
}

export function renderMarkdown(report: Report, order: string[]): string {
  const m = report.machine;
  const lines: string[] = [];
  lines.push(`# veer bench results${report.quick ? ' (quick mode: small counts, not comparable to targets)' : ''}`);
  lines.push('');
  lines.push(
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.kernel}, Node ${m.node}; load average at the end ${m.loadAverage.join(' / ')}.`,
  );
  lines.push(`Generated ${report.generatedAt} by \`npm run bench\`. Everything runs on 127.0.0.1.`);
  lines.push('');
  lines.push('| Scenario | Measure | Direct | Through veer | veer vs direct | Target | Result |');
  lines.push('| --- | --- | ---: | ---: | ---: | --- | --- |');
  const names = order
    .filter((n) => report.scenarios[n])
    .concat(Object.keys(report.scenarios).filter((n) => !order.includes(n)));
  for (const name of names) {
    const s = report.scenarios[name]!;
    for (const f of s.figures) {
      const veer = f.veer ?? f.value;
      const result = f.pass === undefined ? '' : f.pass ? 'PASS' : '**FAIL**';
      lines.push(
        `| ${name}${s.quick ? ' (quick)' : ''} | ${f.label}${f.note ? ` — ${f.note}` : ''} | ${withUnit(f.direct, f.unit)} | ${withUnit(veer, f.unit)} | ${versus(f)} | ${f.target ? targetText(f.target, f.unit) : ''} | ${result} |`,
      );
    }
  }
  lines.push('');
  for (const name of names) {
    const s = report.scenarios[name]!;
    const load = s.load ? `, load average ${s.load.before} → ${s.load.after}` : '';
    lines.push(`**${name}** (${s.startedAt}, ${Math.round(s.seconds)} s${load}): ${paramsText(s.params)}`);
    for (const n of s.notes) lines.push(`- ${n}`);
    lines.push('');
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

function paramsText(params: Record<string, unknown>): string {
  return Object.entries(params)
    .filter(([k]) => k !== 'pids')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(', ');
}

/**
 * Writes `<base>.json` and `<base>.md`. A run of some scenarios replaces only those in an existing
 * file of the same mode, so `npm run bench -- micro` refreshes one block of the table.
 */
export function writeReport(
  dir: string,
  base: string,
  results: ScenarioResult[],
  quick: boolean,
  order: string[],
): { json: string; md: string; report: Report } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, `${base}.json`);
  const md = join(dir, `${base}.md`);
  let scenarios: Record<string, ScenarioResult> = {};
  if (existsSync(json)) {
    try {
      const old = JSON.parse(readFileSync(json, 'utf8')) as Report;
      if (old.quick === quick) scenarios = old.scenarios;
    } catch {
      // an unreadable old file is replaced
    }
  }
  for (const r of results) scenarios[r.name] = r;
  const report: Report = { generatedAt: new Date().toISOString(), machine: machine(), quick, scenarios };
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(md, renderMarkdown(report, order));
  return { json, md, report };
}
