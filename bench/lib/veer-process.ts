// veer as a separate process on a temporary config, so its own CPU time and RSS can be read from /proc/PID.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VEER_NODE_FLAGS } from '../../src/cli/node-flags.js';
import { EVENT_LOOP_SAMPLE_MS } from '../../src/metrics/registry.js';
import { entry, forkEntry, NODE_ARGS, spawnNode, stopChild } from './children.js';
import { type CpuTime, cpuTime, rssBytes, runQueueWait } from './proc.js';

export interface VeerProcess {
  pid: number;
  /** http://127.0.0.1:PORT of the proxy listener. */
  url: string;
  adminUrl: string;
  cpu(): CpuTime;
  rss(): number;
  /** Scrapes the admin /metrics text. */
  metrics(): Promise<string>;
  /** What the SLO guard did: rollbacks so far and the current weight on new (0..1). */
  guard(): Promise<{ rollbacks: number; weight: number }>;
  stop(): Promise<void>;
}

/**
 * The config the bench runs veer with: the shipped defaults (access log on, metrics, SLO guard
 * evaluating every 5 s, state file) with ports chosen by the OS and files in a temp directory.
 */
export function benchConfig(legacyUrl: string, newUrl: string, dir: string, extra: Record<string, unknown> = {}) {
  const upstream = (url: string) => ({ url, max_sockets: 12_000 });
  return {
    listen: { host: '127.0.0.1', port: 0, max_connections: 12_000 },
    admin: { host: '127.0.0.1', port: 0 },
    upstreams: { legacy: upstream(legacyUrl), new: upstream(newUrl) },
    rollout: { id: 'bench', weight: 20 },
    routing: { keys: [{ header: 'x-user-id' }, { cookie: 'session' }], response_header: true },
    slo: { window: '60s', interval: '5s', min_samples: 50, rules: ['ttfb_p95 <= 550ms', 'error_rate <= 1%'] },
    state: { path: join(dir, 'state.json'), audit_path: join(dir, 'audit.jsonl') },
    drain: { grace_period: '1s' },
    ...extra,
  };
}

/** Starts `veer run --config <temp>`; resolves once its start-up log line names the bound ports. */
export async function startVeer(
  legacyUrl: string,
  newUrl: string,
  options: { extra?: Record<string, unknown>; nodeArgs?: string[] } = {},
): Promise<VeerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'veer-bench-'));
  const configPath = join(dir, 'veer.json');
  writeFileSync(configPath, JSON.stringify(benchConfig(legacyUrl, newUrl, dir, options.extra), null, 2));
  // BENCH_CPU_PROF=DIR: veer writes a V8 CPU profile there when it stops (open it in Chrome DevTools).
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  // Logs (one access line per request) go to a pipe the bench drains, as a sidecar's stdout goes to its
  // container runtime; a file would add this disk's write costs to veer's CPU time.
  const child: ChildProcess = spawnNode(
    [
      ...VEER_NODE_FLAGS,
      ...prof,
      ...(options.nodeArgs ?? []),
      ...NODE_ARGS,
      entry('src/cli/main'),
      'run',
      '--config',
      configPath,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  let started: { proxy: string; admin: string };
  try {
    started = await waitForStart(child);
  } catch (err) {
    child.kill('SIGKILL');
    cleanup();
    throw err;
  }
  const pid = child.pid!;
  const adminUrl = `http://${started.admin}`;
  return {
    pid,
    url: `http://${started.proxy}`,
    adminUrl,
    cpu: () => cpuTime(pid),
    rss: () => rssBytes(pid),
    metrics: async () => (await fetch(`${adminUrl}/metrics`)).text(),
    async guard() {
      const text = await (await fetch(`${adminUrl}/metrics`)).text();
      let rollbacks = 0;
      for (const m of text.matchAll(/^veer_rollbacks_total(?:\{[^}]*\})? ([^\s]+)/gm)) rollbacks += Number(m[1]);
      return { rollbacks, weight: metricValue(text, 'veer_routing_weight_ratio') ?? Number.NaN };
    },
    async stop() {
      await stopChild(child, 3000);
      cleanup();
    },
  };
}

/** Reads stdout until the start-up line, then keeps draining it (only the last few KiB are kept, for errors). */
function waitForStart(child: ChildProcess): Promise<{ proxy: string; admin: string }> {
  return new Promise((resolve, reject) => {
    let tail = '';
    let found = false;
    const keep = (d: Buffer) => {
      tail = (tail + d.toString('utf8')).slice(-8192);
    };
    child.stderr!.on('data', keep);
    child.stdout!.on('data', (d: Buffer) => {
      keep(d);
      if (found) return;
      for (const line of tail.split('\n')) {
        if (!line.includes('"veer started"')) continue;
        found = true;
        clearTimeout(timer);
        const l = JSON.parse(line) as { proxy: string; admin: string };
        resolve({ proxy: l.proxy, admin: l.admin });
        return;
      }
    });
    child.once('exit', (code, signal) => {
      if (!found) reject(new Error(`veer exited during start-up (${code ?? signal}):\n${tail}`));
    });
    const timer = setTimeout(() => reject(new Error(`veer did not start within 30 s:\n${tail}`)), 30_000);
  });
}

/** A gauge's value from Prometheus text exposition (first series with that name). */
export function metricValue(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([^\\s]+)`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** A process on the same path as veer, measured like it, for reference. */
export interface Reference {
  side: ReferenceKind | 'nginx';
  /** How the report names it: "reference: <label>". */
  label: string;
  url: string;
  pid: number;
  cpu(): CpuTime;
  stop(): Promise<void>;
}

const REFERENCES = {
  /** The smallest useful undici forwarder (bench/lib/bare-forwarder.ts): what any Node HTTP proxy adds. */
  bare: { entry: 'bench/lib/bare-forwarder', label: 'bare undici forwarder' },
  /** A raw TCP relay (bench/lib/tcp-relay.ts): what one more process on the path adds, HTTP aside. */
  /**
   * The same forwarder in a second process, measured as a side of its own: two identical sides differ
   * only by the measurement's noise (an A/A control), which tells how fine a difference a run can resolve.
   */
  bare_copy: { entry: 'bench/lib/bare-forwarder', label: 'bare undici forwarder, second process (A/A control)' },
  relay: { entry: 'bench/lib/tcp-relay', label: 'raw TCP relay (no HTTP)' },
} as const;

export type ReferenceKind = keyof typeof REFERENCES;

/** Starts a reference as a child process in front of `upstreamUrl`. */
export async function startReference(kind: ReferenceKind, upstreamUrl: string): Promise<Reference> {
  const { entry, label } = REFERENCES[kind];
  const child = forkEntry(entry, [upstreamUrl]);
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (m: { url: string }) => resolve(m.url));
    child.once('exit', (code) => reject(new Error(`${label} exited (${code})`)));
  });
  const pid = child.pid!;
  return { side: kind, label, url, pid, cpu: () => cpuTime(pid), stop: () => stopChild(child, 2000) };
}

/** Starts several references, one after another, in the order given. */
export async function startReferences(kinds: ReferenceKind[], upstreamUrl: string): Promise<Reference[]> {
  const out: Reference[] = [];
  for (const kind of kinds) out.push(await startReference(kind, upstreamUrl));
  return out;
}

/** Adds to `notes` whether veer's guard rolled back during the scenario (which moves later traffic). */
export async function noteGuard(veer: VeerProcess, notes: string[]): Promise<void> {
  const g = await veer.guard().catch(() => undefined);
  if (!g || g.rollbacks === 0) return;
  notes.push(
    `veer's SLO guard rolled back ${g.rollbacks} time(s) during this scenario (weight on new at the end: ${(g.weight * 100).toFixed(0)} %): the new upstream's TTFB p95 or error rate broke its rule, as measured by veer, and later traffic went to legacy.`,
  );
}

/** A scenario's teardown: the guard's note, then the references, veer and the mocks, in that order. */
export async function endScenario(
  notes: string[],
  veer: VeerProcess,
  references: Reference[],
  mocks: { stop(): Promise<void> },
): Promise<void> {
  await noteGuard(veer, notes);
  for (const r of references) await r.stop();
  await veer.stop();
  await mocks.stop();
}

/** veer's prom-client samples the event loop with a timer of this period; its histogram records whole intervals. */
export const ELD_RESOLUTION_S = EVENT_LOOP_SAMPLE_MS / 1000;

export interface LoopStats {
  /** Event-loop delay beyond the sampling interval since the previous reading, ms. */
  eldP99Ms: number;
  eldMaxMs: number;
  /** veer's GC pause time so far (all kinds), seconds; subtract two readings. */
  gcSeconds: number;
  /** Time veer's event loop spent waiting for a CPU so far, seconds; subtract two readings. */
  waitSeconds: number;
}

/**
 * veer's own event-loop delay (p99 and max since the last reading; reading resets prom-client's
 * histogram) and cumulative GC time, from its /metrics.
 */
export async function loopStats(veer: VeerProcess): Promise<LoopStats> {
  const text = await veer.metrics();
  let gc = 0;
  for (const m of text.matchAll(/^veer_nodejs_gc_duration_seconds_sum(?:\{[^}]*\})? ([^\s]+)/gm)) gc += Number(m[1]);
  const beyond = (name: string) => Math.max(0, (metricValue(text, name) ?? Number.NaN) - ELD_RESOLUTION_S) * 1000;
  return {
    eldP99Ms: beyond('veer_nodejs_eventloop_lag_p99_seconds'),
    eldMaxMs: beyond('veer_nodejs_eventloop_lag_max_seconds'),
    gcSeconds: gc,
    waitSeconds: runQueueWait(veer.pid),
  };
}
