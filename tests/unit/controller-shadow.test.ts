// Specification of the controller with a shadow: the shadowing state, the shadow's share across commands, its audit.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { changedFields } from '../../src/config/diff.js';
import { Controller } from '../../src/guard/controller.js';
import { SlidingWindow } from '../../src/measure/window.js';
import { createMetrics } from '../../src/metrics/registry.js';
import type { RoutingTable } from '../../src/routing/table.js';
import { AuditLog } from '../../src/state/audit.js';
import { StateStore } from '../../src/state/store.js';
import { deepMerge, mustBuild, silentLogger, stateFiles } from '../helpers/stack.js';

const T0 = Date.parse('2026-12-02T12:00:00Z');

function configOf(extra: Record<string, unknown>, files: { path: string; audit_path: string }) {
  return mustBuild(
    deepMerge(
      {
        upstreams: { legacy: { url: 'http://127.0.0.1:9' }, new: { url: 'http://127.0.0.1:9' } },
        rollout: { id: 'r1', steps: [5, 25], step_min_duration: '20s', shadow: { percent: 10 } },
        routing: { segments: [{ name: 'staff', match: { header: 'x-tenant', equals: 'qa' }, side: 'new' }] },
        slo: { interval: '5s', min_samples: 20, rules: ['ttfb_p95 <= 550ms', 'error_rate <= 1%'] },
        state: files,
        log: { level: 'silent' },
      },
      extra,
    ),
  );
}

function rig(extra: Record<string, unknown> = {}) {
  let now = T0;
  const clock = () => now;
  const files = stateFiles();
  const config = configOf(extra, files);
  const window = () => new SlidingWindow({ windowMs: 60_000, slices: 6, clock });
  const windows = { legacy: window(), new: window(), shadow: window() };
  let table!: RoutingTable;
  const controller = Controller.open({
    config,
    store: new StateStore(config.state.path),
    audit: new AuditLog(config.state.auditPath),
    metrics: createMetrics({ defaultMetrics: false }),
    logger: silentLogger(),
    clock,
    windows: () => ({ legacy: windows.legacy.snapshot(), new: windows.new.snapshot() }),
    shadowWindows: () => ({ shadow: windows.shadow.snapshot(), legacy: windows.legacy.snapshot() }),
    swap: (t) => {
      table = t;
    },
  });
  return {
    controller,
    config,
    table: () => table,
    advance: (ms: number) => {
      now += ms;
    },
    /** n samples on legacy and on the shadow, the shadow's at `ttfbMs` (an error when `error`). */
    traffic(n: number, ttfbMs: number, error = false) {
      for (let i = 0; i < n; i++) {
        windows.legacy.record('ok', 200, 400);
        windows.shadow.record(error ? 'upstream_5xx' : 'ok', error ? undefined : ttfbMs, error ? undefined : 400);
      }
    },
    audit: () =>
      readFileSync(config.state.auditPath, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
  };
}

describe('the controller with a shadow', () => {
  it('starts a stepped rollout with a shadow in shadowing, at 0 % real traffic, the shadow in force', () => {
    const r = rig();
    expect(r.controller.snapshot).toMatchObject({ state: 'shadowing', weight_bp: 0 });
    expect(r.table()).toMatchObject({ state: 'shadowing', weightBp: 0, shadowBp: 1000 });
  });

  it('stops the shadow on a kill and brings it back on resume; a kill also sends segments to legacy', () => {
    const r = rig();
    r.controller.kill('admin:t', 'drill');
    expect(r.table().shadowBp).toBe(0);
    r.controller.resume('admin:t', 'over');
    expect(r.table()).toMatchObject({ state: 'shadowing', shadowBp: 1000 });
    expect(r.table().segments[0]!.side).toBe('new');
    r.controller.rollback('admin:t', 'no');
    expect(r.table().shadowBp).toBe(0);
    expect(r.table().segments[0]!.side).toBe('legacy');
    // A rollout that starts with a shadow resumes into it.
    r.controller.resume('admin:t', 'again');
    expect(r.controller.snapshot).toMatchObject({ state: 'shadowing', weight_bp: 0, shadow_bp: 1000 });
  });

  it('waits in holding at 0 % for promote when auto_promote is false, then opens the first step', () => {
    const r = rig({ rollout: { auto_promote: false } });
    r.traffic(50, 100);
    r.controller.tick();
    r.advance(20_000);
    r.traffic(10, 100);
    r.controller.tick();
    expect(r.controller.snapshot).toMatchObject({ state: 'holding', weight_bp: 0 });
    expect(r.audit().at(-1)).toMatchObject({ action: 'gate_open', actor: 'slo-guard' });
    r.controller.promote('admin:t', 'go');
    expect(r.controller.snapshot).toMatchObject({ state: 'progressing', weight_bp: 500 });
  });

  it('audits a breach in the shadow once with alert_only, and moves nothing', () => {
    const r = rig({ rollout: { shadow: { on_breach: 'alert_only' } } });
    r.traffic(50, 900);
    for (let i = 0; i < 3; i++) {
      r.controller.tick();
      r.advance(5000);
    }
    const breaches = r.audit().filter((e) => e.action === 'shadow_breach');
    expect(breaches).toHaveLength(1);
    expect(breaches[0].reason).toMatch(/ttfb_p95 900ms > 550ms .*recorded only/);
    expect(r.controller.snapshot).toMatchObject({ state: 'shadowing', weight_bp: 0 });
    expect(r.table().shadowBp).toBe(1000);
  });

  it("keeps the operator's share across a reload, and applies a changed rollout.shadow.percent", () => {
    const r = rig();
    r.controller.setShadow('admin:t', 2500, 'more');
    expect(r.table().shadowBp).toBe(2500);
    const same = configOf({}, { path: r.config.state.path, audit_path: r.config.state.auditPath });
    r.controller.reconfigure(same, changedFields(r.config, same));
    expect(r.table().shadowBp).toBe(2500);
    const changed = configOf(
      { rollout: { shadow: { percent: 2 } } },
      { path: r.config.state.path, audit_path: r.config.state.auditPath },
    );
    const fields = changedFields(same, changed);
    expect(fields).toEqual(['rollout.shadow.percent']);
    r.controller.reconfigure(changed, fields);
    expect(r.table().shadowBp).toBe(200);
  });
});
