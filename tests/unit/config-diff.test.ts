import { describe, expect, it } from 'vitest';
import { changedFields, needsRestart } from '../../src/config/diff.js';
import { deepMerge, mustBuild } from '../helpers/stack.js';

const base = {
  upstreams: { legacy: { url: 'http://127.0.0.1:9101' }, new: { url: 'http://127.0.0.1:9102' } },
  rollout: { id: 'r1', weight: 1, steps: [1, 5, 100] },
};

describe('what a reload reports as changed', () => {
  it('names each changed field as the config file spells it, and which of them need a restart', () => {
    const before = mustBuild(base);
    const after = mustBuild(
      deepMerge(base, {
        listen: { idle_timeout: '30s' },
        upstreams: { new: { ttfb_timeout: '3s' } },
        rollout: { weight: 5, steps: [5, 50, 100] },
        slo: { window: '2m', cooldown: '1m', flap: { max_flips: 5, period: '20m' } },
        drain: { grace_period: '5s' },
      }),
    );
    const changed = changedFields(before, after);
    expect(changed).toEqual([
      'drain.grace_period',
      'listen.idle_timeout',
      'rollout.steps',
      'rollout.weight',
      'slo.cooldown',
      'slo.flap.max_flips',
      'slo.flap.period',
      'slo.window',
      'upstreams.new.ttfb_timeout',
    ]);
    expect(changed.filter(needsRestart)).toEqual(['drain.grace_period', 'listen.idle_timeout']);
  });

  it('reports nothing for a file that loads to the same config', () => {
    expect(changedFields(mustBuild(base), mustBuild(deepMerge(base, { slo: { window: '60s' } })))).toEqual([]);
  });
});
