// `npm run bench [-- <scenario>...]`: runs the scenarios in order, prints the table and writes the results files.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { installCleanup, killChildren, REPO, startedPids } from './lib/children.js';
import type { Scenario } from './lib/context.js';
import { fdLimits } from './lib/proc.js';
import { type ScenarioResult, writeReport } from './lib/results.js';
import { chunkLatency } from './scenarios/chunk-latency.js';
import { micro } from './scenarios/micro.js';
import { shadow } from './scenarios/shadow.js';
import { streams } from './scenarios/streams.js';
import { throughput } from './scenarios/throughput.js';
import { ttfbOverhead } from './scenarios/ttfb-overhead.js';

const SCENARIOS: Record<string, Scenario> = {
  micro,
  throughput,
  'ttfb-overhead': ttfbOverhead,
  'chunk-latency': chunkLatency,
  streams,
  shadow,
};
const ORDER = Object.keys(SCENARIOS);
const round2 = (n: number) => Math.round(n * 100) / 100;

const USAGE = `usage: npm run bench [-- [scenario...] [--quick] [--out DIR] [--strict]]

scenarios: ${ORDER.join(', ')} (default: all, in this order)
  --quick    small counts and short rounds (also BENCH_QUICK=1); writes quick.{md,json} to ${join(tmpdir(), 'veer-bench')}
  --out DIR  where to write the results (default bench/results, latest.{md,json})
  --strict   exit 1 when a target fails
`;

/** Open files the streams scenario wants per process (two sockets per proxied stream, and some). */
const WANTED_FDS = 20_000;

/**
 * A soft open-files limit below the hard one (1024 is a common default) is raised for the whole run:
 * the bench runs itself again under `ulimit -n`, and every child inherits the limit.
 */
function raiseFdLimit(): Promise<number> | undefined {
  const { soft, hard } = fdLimits();
  if (soft >= WANTED_FDS || hard <= soft || process.env.BENCH_FD_RAISED) return undefined;
  const target = Math.min(hard, 65_536);
  const child = spawn(
    '/bin/sh',
    ['-c', `ulimit -n ${target} && exec "$0" "$@"`, process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    { stdio: 'inherit', env: { ...process.env, BENCH_FD_RAISED: '1' } },
  );
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => child.kill(signal));
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

async function main(): Promise<number> {
  const raised = raiseFdLimit();
  if (raised) return raised;
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: process.env.BENCH_QUICK === '1' },
      out: { type: 'string' },
      strict: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const unknown = positionals.filter((p) => !SCENARIOS[p]);
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown scenario ${unknown.join(', ')}\n${USAGE}`);
    return 2;
  }
  const names = positionals.length > 0 ? ORDER.filter((n) => positionals.includes(n)) : ORDER;
  const quick = values.quick;
  const outDir = values.out ?? (quick ? join(tmpdir(), 'veer-bench') : join(REPO, 'bench', 'results'));
  const base = quick ? 'quick' : 'latest';
  installCleanup();
  // A bench that hangs would hold thousands of sockets on a shared machine: give up after a bound.
  const budgetMs = (quick ? 3 : 20) * 60_000;
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: still running after ${budgetMs / 60_000} min; stopping\n`);
    killChildren();
    process.exit(3);
  }, budgetMs);
  watchdog.unref();

  const log = (m: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
  const results: ScenarioResult[] = [];
  for (const name of names) {
    log(`${name}${quick ? ' (quick)' : ''}: starting`);
    const loadBefore = loadavg()[0]!;
    const result = await SCENARIOS[name]!({ quick, log });
    result.load = { before: round2(loadBefore), after: round2(loadavg()[0]!) };
    result.params.pids = [...startedPids];
    startedPids.length = 0;
    results.push(result);
    // Written after each scenario, so a late failure keeps the earlier figures.
    writeReport(outDir, base, results, quick, ORDER);
    log(`${name}: done in ${result.seconds.toFixed(1)} s`);
  }
  const { md, json, report } = writeReport(outDir, base, results, quick, ORDER);
  process.stdout.write(readFileSync(md, 'utf8'));
  const shown = (p: string) => (p.startsWith(REPO) ? relative(process.cwd(), p) : p);
  log(`wrote ${shown(md)} and ${shown(json)}`);
  const failed = Object.values(report.scenarios)
    .filter((s) => names.includes(s.name))
    .flatMap((s) => s.figures.filter((f) => f.pass === false).map((f) => `${s.name}: ${f.label}`));
  if (failed.length > 0) log(`targets missed:\n  ${failed.join('\n  ')}`);
  return values.strict && failed.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    killChildren();
    process.exit(code);
  },
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    killChildren();
    process.exit(1);
  },
);
