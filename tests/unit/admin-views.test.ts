// What `veer status` prints about a stalled step and a manual gate.

import { describe, expect, it } from 'vitest';
import type { Rollout } from '../../src/admin/api-types.js';
import { rolloutView } from '../../src/cli/admin-views.js';

const rollout: Rollout = {
  id: 'r',
  state: 'progressing',
  weight_percent: 5,
  step: 0,
  steps: [5, 25, 50, 100],
  kill_reason: null,
  latched: false,
  gate: { next_percent: 25, waiting_for_approval: false, eligible_at: null, manual: false, min_duration_ms: 60_000 },
  stalled: null,
  last_change: null,
  version: 1,
};

describe('veer status, the rollout block', () => {
  it('says when a step is stalled and what it will do', () => {
    const text = rolloutView({
      ...rollout,
      stalled: { since: '2026-12-02T13:00:00.000Z', limit_ms: 600_000, on_inconclusive: 'hold' },
    });
    expect(text).toMatch(
      /^stalled +STALLED: inconclusive since 2026-12-02T13:00:00.000Z \(limit 10m\); on_inconclusive hold$/m,
    );
    expect(rolloutView(rollout)).not.toMatch(/stalled/);
  });

  it('says when the next promotion waits for an operator at a manual step', () => {
    const text = rolloutView({ ...rollout, gate: { ...rollout.gate!, manual: true } });
    expect(text).toMatch(/^next +25%, once every rule passes at this step \(manual gate: then `veer promote`\)$/m);
  });
});
