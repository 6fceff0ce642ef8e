// The fleet's reconciliation rule (src/fleet/reconcile.ts): what a sidecar writes or adopts, store by store.

import { describe, expect, it } from 'vitest';
import { type ReconcileInput, reconcile, type StoreRecord } from '../../src/fleet/reconcile.js';
import type { LocalChange } from '../../src/guard/controller.js';
import type { PersistedState } from '../../src/state/store.js';

const base: PersistedState = {
  format: 1,
  rollout_id: 'r',
  state: 'progressing',
  weight_bp: 2000,
  latched: false,
  kill_reason: null,
  before_kill: null,
  overrides: { new: [], legacy: [] },
  flips: [],
  weight_since: 0,
  last_change: { time: 't', actor: 'config', action: 'start', reason: 'started' },
  version: 1,
};

const killed = (reason = 'pager'): PersistedState => ({
  ...base,
  state: 'killed',
  weight_bp: 0,
  kill_reason: reason,
  before_kill: { state: 'progressing', weight_bp: 2000 },
  last_change: { time: 't', actor: 'admin:oncall', action: 'kill', reason },
});

const rolledBack: PersistedState = {
  ...base,
  state: 'rolled_back',
  weight_bp: 0,
  last_change: { time: 't', actor: 'admin:oncall', action: 'rollback', reason: 'errors' },
};

function change(action: 'kill' | 'rollback' | 'weight', prev: PersistedState): LocalChange {
  const mutate =
    action === 'kill'
      ? (cur: PersistedState): PersistedState => ({
          ...cur,
          state: 'killed',
          weight_bp: 0,
          kill_reason: 'pager',
          before_kill: { state: cur.state, weight_bp: cur.weight_bp },
        })
      : action === 'rollback'
        ? (cur: PersistedState): PersistedState => ({ ...cur, state: 'rolled_back', weight_bp: 0 })
        : (cur: PersistedState): PersistedState => ({ ...cur, weight_bp: 5000 });
  const next = { ...mutate(prev), last_change: { time: 't', actor: 'admin:oncall', action, reason: action } };
  return { prev, next, safe: action !== 'weight', action, mutate };
}

const store = (state: PersistedState, version: number, epoch = 'e1', provisional = false): StoreRecord => ({
  version,
  epoch,
  provisional,
  state: { ...state, version },
});

const input = (over: Partial<ReconcileInput>): ReconcileInput => ({
  local: base,
  pending: [],
  seen: undefined,
  remote: undefined,
  knowledge: 'none',
  holdOver: false,
  now: 1000,
  ...over,
});

describe('fleet reconciliation', () => {
  it('seeds an empty store only provisionally from a sidecar that knows nothing but its config', () => {
    const plan = reconcile(input({}));
    expect(plan).toMatchObject({ kind: 'write', provisional: true, why: 'seed' });
  });

  it('re-seeds an empty store with its own kill when it has seen the fleet, numbered past what it saw', () => {
    const plan = reconcile(
      input({ local: { ...killed(), version: 34 }, seen: { epoch: 'e1', version: 34 }, knowledge: 'fleet' }),
    );
    expect(plan).toMatchObject({
      kind: 'write',
      provisional: false,
      why: 'reseed',
      state: { state: 'killed', version: 35 },
    });
  });

  it('never adopts a store re-seeded from config after it has seen a kill: it writes the kill back', () => {
    const plan = reconcile(
      input({
        local: { ...killed(), version: 34 },
        seen: { epoch: 'e1', version: 34 },
        remote: store(base, 1, 'e2', true),
        knowledge: 'fleet',
      }),
    );
    expect(plan).toMatchObject({ kind: 'write', why: 'reseed', epoch: 'e2', state: { state: 'killed', version: 2 } });
  });

  it('treats a store behind the version it saw (a lagging replica promoted) as a reset, not as news', () => {
    const plan = reconcile(
      input({
        local: { ...killed(), version: 40 },
        seen: { epoch: 'e1', version: 40 },
        remote: store(base, 35, 'e1'),
        knowledge: 'fleet',
      }),
    );
    expect(plan).toMatchObject({ kind: 'write', why: 'reseed', epoch: 'e1', state: { state: 'killed', version: 41 } });
  });

  it('keeps the stops of both when two sidecars that remember the fleet re-seed it: kill over rollback', () => {
    const plan = reconcile(
      input({
        local: { ...killed(), version: 34 },
        seen: { epoch: 'e1', version: 34 },
        remote: store(rolledBack, 36, 'e2'),
        knowledge: 'fleet',
      }),
    );
    expect(plan).toMatchObject({
      kind: 'write',
      state: { state: 'killed', before_kill: { state: 'rolled_back', weight_bp: 0 } },
    });
  });

  it('waits on a provisional store until seed_hold is over, then confirms it', () => {
    const remote = store(base, 2, 'e3', true);
    expect(reconcile(input({ remote })).kind).toBe('wait');
    expect(reconcile(input({ remote, holdOver: true }))).toMatchObject({
      kind: 'write',
      why: 'confirm_seed',
      provisional: false,
      state: { version: 3, weight_bp: 2000 },
    });
  });

  it('adopts a confirmed store when it knows nothing but its config', () => {
    expect(reconcile(input({ remote: store(killed(), 7) }))).toMatchObject({ kind: 'adopt' });
  });

  it('replays a rollback under a kill the fleet made meanwhile: a resume returns to rolled_back', () => {
    const plan = reconcile(
      input({
        local: { ...rolledBack, version: 6 },
        pending: [change('rollback', { ...base, version: 5 })],
        seen: { epoch: 'e1', version: 5 },
        remote: store(killed(), 6),
        knowledge: 'fleet',
      }),
    );
    expect(plan).toMatchObject({
      kind: 'write',
      why: 'merge',
      state: { state: 'killed', weight_bp: 0, before_kill: { state: 'rolled_back', weight_bp: 0 }, version: 7 },
    });
  });

  it('replays a kill over a rollback the fleet made meanwhile, the rollback under it', () => {
    const plan = reconcile(
      input({
        local: { ...killed(), version: 6 },
        pending: [change('kill', { ...base, version: 5 })],
        seen: { epoch: 'e1', version: 5 },
        remote: store(rolledBack, 6),
        knowledge: 'fleet',
      }),
    );
    expect(plan).toMatchObject({
      kind: 'write',
      state: { state: 'killed', before_kill: { state: 'rolled_back', weight_bp: 0 } },
    });
  });

  it('keeps the fleet kill as it is under a second kill', () => {
    const plan = reconcile(
      input({
        local: { ...killed('mine'), version: 6 },
        pending: [change('kill', { ...base, version: 5 })],
        seen: { epoch: 'e1', version: 5 },
        remote: store(killed('theirs'), 6),
        knowledge: 'fleet',
      }),
    );
    expect(plan).toMatchObject({ kind: 'adopt', record: { state: { kill_reason: 'theirs' } } });
  });

  it('names what a merge drops', () => {
    const plan = reconcile(
      input({
        local: { ...base, weight_bp: 5000, version: 6 },
        pending: [change('weight', { ...base, version: 5 })],
        seen: { epoch: 'e1', version: 5 },
        remote: store(rolledBack, 6),
        knowledge: 'fleet',
      }),
    );
    expect(plan).toMatchObject({ kind: 'adopt', dropped: ['weight'] });
  });

  it('pushes its own change when the store has not moved', () => {
    const plan = reconcile(
      input({
        local: { ...killed(), version: 6 },
        pending: [change('kill', { ...base, version: 5 })],
        seen: { epoch: 'e1', version: 5 },
        remote: store(base, 5),
        knowledge: 'fleet',
      }),
    );
    expect(plan).toMatchObject({ kind: 'write', why: 'push', epoch: 'e1', state: { state: 'killed', version: 6 } });
  });
});
