// Specification of the controller: the only writer of routing state, stepped with an injected clock.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Controller, ControllerError, REFUSED_PER_MINUTE } from '../../src/guard/controller.js';
import { SlidingWindow } from '../../src/measure/window.js';
import { createMetrics } from '../../src/metrics/registry.js';
import type { RoutingTable } from '../../src/routing/table.js';
import { AuditLog } from '../../src/state/audit.js';
import { StateStore } from '../../src/state/store.js';
import { deepMerge, mustBuild, silentLogger, stateFiles } from '../helpers/stack.js';

const T0 = Date.parse('2026-11-25T12:00:00Z');

/** A controller over real windows, a real state file and audit log, and a clock the test moves. */
function configOf(extra: Record<string, unknown>, files: { path: string; audit_path: string }) {
  return mustBuild(
    deepMerge(
      {
        listen: { host: '127.0.0.1', port: 0 },
        upstreams: { legacy: { url: 'http://127.0.0.1:9' }, new: { url: 'http://127.0.0.1:9' } },
        rollout: { id: 'r1', weight: 10 },
        slo: { interval: '5s', min_samples: 20, cooldown: '30s', rules: ['ttfb_p95 <= 550ms', 'error_rate <= 1%'] },
        state: files,
        log: { level: 'silent' },
      },
      extra,
    ),
  );
}

function rig(extra: Record<string, unknown> = {}, files = stateFiles(), start = T0) {
  let now = start;
  const clock = () => now;
  const config = configOf(extra, files);
  const windows = {
    legacy: new SlidingWindow({ windowMs: 60_000, slices: 6, clock }),
    new: new SlidingWindow({ windowMs: 60_000, slices: 6, clock }),
  };
  const metrics = createMetrics({ defaultMetrics: false });
  const store = new StateStore(config.state.path);
  const audit = new AuditLog(config.state.auditPath);
  const swaps: { table: RoutingTable; onDisk: string }[] = [];
  const controller = Controller.open({
    config,
    store,
    audit,
    metrics,
    logger: silentLogger(),
    clock,
    windows: () => ({ legacy: windows.legacy.snapshot(), new: windows.new.snapshot() }),
    swap: (table) => {
      // What is on disk at the moment the request path sees the table ('' when it cannot be read).
      let onDisk = '';
      try {
        onDisk = readFileSync(config.state.path, 'utf8');
      } catch {}
      swaps.push({ table, onDisk });
    },
  });
  return {
    controller,
    config,
    files,
    swaps,
    metrics,
    audit,
    now: () => now,
    /** Moves time; a whole window later the samples before it are gone. */
    advance(ms: number) {
      now += ms;
    },
    /** `n` requests on new with spread TTFBs around `ms`. */
    traffic(n: number, ms: number) {
      for (let i = 0; i < n; i++) windows.new.record('ok', ms + (i % 10), ms + 20);
    },
    /** `ms` later, 50 fast requests on new, then an evaluation. */
    evaluateAfter(ms: number) {
      now += ms;
      this.traffic(50, 100);
      return controller.tick();
    },
    state: () => JSON.parse(readFileSync(config.state.path, 'utf8')),
    async metric(name: string, labels: Record<string, string> = {}) {
      const m = (await metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
      const hit = m.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
      return hit?.value;
    },
  };
}

describe('the SLO guard applying verdicts', () => {
  it('rolls back on the first breaching evaluation, persisted before the table is swapped', async () => {
    const r = rig();
    r.traffic(100, 900);
    const verdict = r.controller.tick();
    expect(verdict.action.kind).toBe('rollback');
    expect(r.controller.table).toMatchObject({ weightBp: 0, state: 'rolled_back' });
    const last = r.swaps.at(-1)!;
    expect(last.table.weightBp).toBe(0);
    expect(JSON.parse(last.onDisk)).toMatchObject({ state: 'rolled_back', weight_bp: 0 });
    const [entry] = r.audit.read(1);
    expect(entry).toMatchObject({
      actor: 'slo-guard',
      action: 'rollback',
      before: { state: 'progressing', weight_percent: 10 },
      after: { state: 'rolled_back', weight_percent: 0 },
    });
    expect(entry!.reason).toMatch(/ttfb_p95 9\d\dms > 550ms \(100 samples\)/);
    expect(entry!.rules?.find((x) => x.name === 'ttfb_p95')?.status).toBe('breach');
    expect(await r.metric('veer_rollout_state', { state: 'rolled_back' })).toBe(1);
    expect(await r.metric('veer_rollout_state', { state: 'progressing' })).toBe(0);
    expect(await r.metric('veer_slo_breaches_total', { rule: 'ttfb_p95' })).toBe(1);
    expect(await r.metric('veer_rollbacks_total', { cause: 'slo' })).toBe(1);
    // Each series has one unit: latency rules in seconds, the error rate as a ratio.
    const ttfb = { rule: 'ttfb_p95', metric: 'ttfb_p95' };
    expect(await r.metric('veer_slo_rule_value_seconds', ttfb)).toBeGreaterThan(0.9);
    expect(await r.metric('veer_slo_rule_threshold_seconds', ttfb)).toBeCloseTo(0.55);
    const errors = { rule: 'error_rate', metric: 'error_rate' };
    expect(await r.metric('veer_slo_rule_value_ratio', errors)).toBe(0);
    expect(await r.metric('veer_slo_rule_threshold_ratio', errors)).toBeCloseTo(0.01);
    const text = await r.metrics.registry.metrics();
    expect(text).not.toMatch(/veer_slo_rule_value_seconds\{rule="error_rate"/);
    expect(text).not.toMatch(/veer_slo_rule_threshold_ratio\{rule="ttfb_p95"/);
  });

  it('leaves routing alone while rules pass or are inconclusive', () => {
    const r = rig();
    r.traffic(5, 5_000);
    expect(r.controller.tick().action.kind).toBe('none');
    r.advance(61_000);
    r.traffic(100, 100);
    expect(r.controller.tick().action.kind).toBe('none');
    expect(r.controller.table).toMatchObject({ weightBp: 1000, state: 'progressing' });
  });

  it('needs consecutive_breaches evaluations in a row before acting', () => {
    const r = rig({ slo: { consecutive_breaches: 3 } });
    r.traffic(100, 900);
    r.controller.tick();
    r.advance(5_000);
    r.controller.tick();
    expect(r.controller.table.weightBp).toBe(1000);
    r.advance(5_000);
    r.controller.tick();
    expect(r.controller.table).toMatchObject({ weightBp: 0, state: 'rolled_back' });
  });

  it('only alerts with on_breach alert_only', () => {
    const r = rig({ slo: { on_breach: 'alert_only' } });
    r.traffic(100, 900);
    expect(r.controller.tick().action.kind).toBe('alert');
    expect(r.controller.table.weightBp).toBe(1000);
  });

  it('steps down, holds the next step down through the cooldown, then rolls back', () => {
    const r = rig({ rollout: { weight: 50, steps: [10, 50] }, slo: { on_breach: 'step_down' } });
    r.traffic(100, 900);
    r.controller.tick();
    expect(r.controller.table).toMatchObject({ weightBp: 1000, state: 'progressing' });
    r.advance(5_000);
    expect(r.controller.tick().action).toEqual({ kind: 'none', why: 'breach during cooldown' });
    expect(r.controller.table.weightBp).toBe(1000);
    r.advance(30_000);
    r.controller.tick();
    expect(r.controller.table).toMatchObject({ weightBp: 0, state: 'rolled_back' });
    expect(r.audit.read(10).map((e) => e.action)).toEqual(['rollback', 'step_down', 'start']);
  });

  it('promotes through the steps only after every rule passed for step_min_duration', () => {
    const r = rig({ rollout: { weight: 10, steps: [10, 50], step_min_duration: '60s' } });
    r.traffic(100, 100);
    r.controller.tick();
    r.advance(55_000);
    r.traffic(50, 100);
    r.controller.tick();
    expect(r.controller.table.weightBp).toBe(1000);
    r.evaluateAfter(5_000);
    expect(r.controller.table).toMatchObject({ weightBp: 5000, state: 'progressing' });
    expect(r.audit.read(1)[0]).toMatchObject({ actor: 'slo-guard', action: 'promote' });
    // The gate clock starts over with the first passing evaluation on the new step.
    r.evaluateAfter(30_000);
    r.evaluateAfter(59_000);
    expect(r.controller.table.weightBp).toBe(5000);
    r.evaluateAfter(1_000);
    expect(r.controller.table).toMatchObject({ weightBp: 10_000, state: 'promoted' });
  });

  it('starts the gate clock over when a reload changes the rules: a rule added mid-gate must pass for the whole step_min_duration', () => {
    const rollout = { weight: 10, steps: [10, 50], step_min_duration: '60s' };
    const r = rig({ rollout });
    r.traffic(100, 100);
    r.controller.tick();
    r.evaluateAfter(55_000);
    const stricter = configOf(
      { rollout, slo: { rules: ['ttfb_p95 <= 550ms', 'error_rate <= 1%', 'ttfb_p50 <= 200ms'] } },
      r.files,
    );
    r.controller.reconfigure(stricter, ['slo.rules']);
    r.evaluateAfter(5_000);
    expect(r.controller.table.weightBp).toBe(1000);
    r.evaluateAfter(60_000);
    expect(r.controller.table.weightBp).toBe(5000);
  });

  it('holds at a manual gate until an operator promotes', () => {
    const r = rig({ rollout: { weight: 10, steps: [10, 50], step_min_duration: '10s', auto_promote: false } });
    r.traffic(100, 100);
    r.controller.tick();
    r.advance(10_000);
    r.traffic(20, 100);
    expect(r.controller.tick().action).toEqual({ kind: 'hold', nextBp: 5000 });
    expect(r.controller.table).toMatchObject({ weightBp: 1000, state: 'holding' });
    expect(r.audit.read(1)[0]).toMatchObject({ action: 'gate_open' });
    r.controller.promote('admin:alice', 'dashboards look fine');
    expect(r.controller.table).toMatchObject({ weightBp: 5000, state: 'progressing' });
    expect(r.audit.read(1)[0]).toMatchObject({
      actor: 'admin:alice',
      action: 'promote',
      reason: 'dashboards look fine',
    });
  });

  it('latches on legacy after more automatic flips than allowed within the period', async () => {
    const r = rig({
      rollout: { weight: 50, steps: [10, 20, 50], step_min_duration: '10s' },
      slo: { on_breach: 'step_down', cooldown: '0s', flap: { max_flips: 2, period: '10m' } },
    });
    r.traffic(100, 900);
    r.controller.tick(); // flip 1: step down to 20 %
    expect(r.controller.table.weightBp).toBe(2000);
    r.advance(61_000);
    r.traffic(100, 100);
    r.controller.tick();
    r.advance(10_000);
    r.traffic(20, 100);
    r.controller.tick(); // flip 2: promote to 50 %
    expect(r.controller.table.weightBp).toBe(5000);
    r.advance(61_000);
    r.traffic(100, 900);
    r.controller.tick(); // flip 3 of 2 allowed: latch
    expect(r.controller.table).toMatchObject({ weightBp: 0, state: 'latched' });
    expect(r.state()).toMatchObject({ state: 'latched', latched: true, weight_bp: 0 });
    expect(r.audit.read(1)[0]!.reason).toMatch(/3 automatic changes within 600s \(max 2\)/);
    // Latched stays latched: good data does not bring it back, nor may anyone but resume.
    r.advance(61_000);
    r.traffic(100, 100);
    r.controller.tick();
    expect(r.controller.table.state).toBe('latched');
    expect(() => r.controller.setWeight('admin:a', 5000, 'x')).toThrow(ControllerError);
    r.controller.resume('admin:a', 'fixed the model server');
    // Back to the first step, not to the share it had.
    expect(r.controller.table).toMatchObject({ weightBp: 1000, state: 'progressing' });
    expect(await r.metric('veer_rollout_state', { state: 'latched' })).toBe(0);
  });
});

describe('operator commands', () => {
  it('kill wins over the guard and over weights until resume restores what it found', () => {
    const r = rig({ rollout: { weight: 20 } });
    r.controller.kill('admin:bob', 'pager: bad tokens');
    expect(r.controller.table).toMatchObject({ weightBp: 0, state: 'killed' });
    expect(JSON.parse(r.swaps.at(-1)!.onDisk)).toMatchObject({ state: 'killed', kill_reason: 'pager: bad tokens' });
    r.traffic(100, 100);
    r.advance(600_000);
    r.controller.tick();
    expect(r.controller.table.state).toBe('killed');
    for (const act of [
      () => r.controller.setWeight('admin:bob', 5000, 'x'),
      () => r.controller.promote('admin:bob', 'x'),
      () => r.controller.rollback('admin:bob', 'x'),
    ]) {
      expect(act).toThrow(expect.objectContaining({ status: 409, code: 'conflict' }));
    }
    r.controller.resume('admin:bob', 'fixed');
    expect(r.controller.table).toMatchObject({ weightBp: 2000, state: 'progressing' });
    expect(r.audit.read(2).map((e) => [e.action, e.actor])).toEqual([
      ['resume', 'admin:bob'],
      ['kill', 'admin:bob'],
    ]);
  });

  it('resumes a rollback at the first step rather than at the share that failed', () => {
    const r = rig({ rollout: { weight: 10, steps: [5, 10, 50] } });
    r.controller.setWeight('admin:a', 5000, 'go');
    r.controller.rollback('admin:a', 'errors');
    expect(r.controller.table).toMatchObject({ weightBp: 0, state: 'rolled_back' });
    r.controller.resume('admin:a', 'again');
    expect(r.controller.table).toMatchObject({ weightBp: 500, state: 'progressing' });
  });

  it('keeps a stepped rollout with an explicit weight: 0 dark until an operator promotes it to the first step', () => {
    const r = rig({ rollout: { weight: 0, steps: [1, 5, 100] } });
    expect(r.controller.table).toMatchObject({ weightBp: 0, state: 'progressing' });
    // Nothing on new, so the guard has nothing to judge and never steps up by itself.
    r.advance(3_600_000);
    r.controller.tick();
    expect(r.controller.table.weightBp).toBe(0);
    r.controller.promote('admin:a', 'open the canary');
    expect(r.controller.table).toMatchObject({ weightBp: 100, state: 'progressing' });
  });

  it('refuses to resume what is not stopped', () => {
    const r = rig();
    expect(() => r.controller.resume('admin:a', 'x')).toThrow(expect.objectContaining({ status: 409 }));
  });

  it('pins keys with overrides and removes them again', () => {
    const r = rig();
    r.controller.setOverrides(
      'admin:a',
      [
        ['alice', 'new'],
        ['bob', 'legacy'],
      ],
      'testers',
    );
    expect([...r.controller.table.overrides]).toEqual([
      ['bob', 'legacy'],
      ['alice', 'new'],
    ]);
    r.controller.removeOverrides('admin:a', ['alice'], 'done');
    expect(r.controller.effectiveOverrides()).toEqual({ new: [], legacy: ['bob'] });
    expect(r.state().overrides).toEqual({ new: [], legacy: ['bob'] });
  });
});

describe('refused admin attempts', () => {
  it('audits at most REFUSED_PER_MINUTE a minute and sums up the rest in one entry', () => {
    const r = rig();
    const before = r.audit.read(1000).length;
    for (let i = 0; i < REFUSED_PER_MINUTE + 50; i++) {
      r.controller.refused('anonymous', 'refused', 'no token', { status: 401, attempted: 'kill' });
    }
    expect(r.audit.read(1000).length - before).toBe(REFUSED_PER_MINUTE);
    r.advance(60_000);
    r.controller.refused('admin:viewer', 'refused', 'read-only token', { status: 403, attempted: 'weight' });
    const [last, summary] = r.audit.read(2);
    expect(summary).toMatchObject({ action: 'refused_suppressed', detail: { suppressed: 50 } });
    expect(last).toMatchObject({ actor: 'admin:viewer', action: 'refused' });
  });
});

describe('durable state', () => {
  it('restores a killed rollout after a restart on the same rollout id', () => {
    const files = stateFiles();
    const first = rig({}, files);
    first.controller.kill('admin:a', 'incident 42');
    const second = rig({}, files);
    expect(second.controller.table).toMatchObject({ weightBp: 0, state: 'killed' });
    expect(second.audit.read(1)[0]).toMatchObject({ action: 'restore' });
  });

  it('starts a new rollout id afresh and audits it', () => {
    const files = stateFiles();
    rig({}, files).controller.kill('admin:a', 'incident');
    const next = rig({ rollout: { id: 'r2', weight: 5 } }, files);
    expect(next.controller.table).toMatchObject({ weightBp: 500, state: 'progressing', rolloutId: 'r2' });
    expect(next.audit.read(1)[0]).toMatchObject({ action: 'new_rollout', rollout_id: 'r2' });
    expect(next.audit.read(1)[0]!.reason).toMatch(/new rollout id r2 \(was r1\)/);
  });

  it('refuses to open on a state file it cannot read, naming the file', () => {
    const files = stateFiles();
    writeFileSync(files.path, '{ not json');
    expect(() => rig({}, files)).toThrow(new RegExp(`state file ${files.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });

  it('applies a kill even when the state file cannot be written, and refuses a move toward new', () => {
    const r = rig({ rollout: { weight: 20 } });
    // A regular file where the state directory was: every write fails with ENOTDIR, even as root.
    const dir = dirname(r.files.path);
    rmSync(dir, { recursive: true });
    writeFileSync(dir, 'not a directory');
    try {
      expect(() => r.controller.setWeight('admin:a', 5000, 'more')).toThrow(
        expect.objectContaining({ status: 503, code: 'state_write_failed' }),
      );
      expect(r.controller.table.weightBp).toBe(2000);
      expect(r.controller.kill('admin:a', 'incident')).toMatchObject({
        applied: true,
        persisted: false,
        error: expect.stringMatching(/^kill applied, but the state file .* could not be written/),
      });
      expect(r.controller.table).toMatchObject({ weightBp: 0, state: 'killed' });
      expect(r.controller.persisted).toBe(false);
    } finally {
      rmSync(dir);
    }
  });
});

describe('start-up', () => {
  it('dates each audit entry when it is written: a restore two days after a kill is dated at the restart', () => {
    const files = stateFiles();
    rig({}, files).controller.kill('admin:a', 'incident 42');
    const later = T0 + 2 * 86_400_000;
    const restarted = rig({}, files, later);
    expect(restarted.audit.read(1)[0]).toMatchObject({ action: 'restore', time: new Date(later).toISOString() });
    expect(restarted.controller.snapshot.state).toBe('killed');
  });

  it("starts on the config's initial state when the state file cannot be written, and reports it as not persisted", () => {
    const dir = mkdtempSync(join(tmpdir(), 'veer-unwritable-'));
    // A directory that does not exist: nothing to read, and nothing can be written there, even by root.
    const r = rig({}, { path: join(dir, 'missing', 'state.json'), audit_path: join(dir, 'audit.jsonl') });
    expect(r.controller.table).toMatchObject({ weightBp: 1000, state: 'progressing' });
    expect(r.controller.persisted).toBe(false);
    expect(r.audit.read(1)[0]).toMatchObject({ action: 'start' });
  });
});
