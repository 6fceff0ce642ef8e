// Operator and config commands, pure: (rollout state, config, request) → the change to apply, or a ControllerError refusing it.

import type { Config, UpstreamName } from '../config/types.js';
import type { RolloutState } from '../rollout.js';
import type { PersistedState } from '../state/store.js';
import { ControllerError, freshState, type PlannedChange } from './change.js';
import { nextStepBp } from './evaluate.js';

type Overrides = { new: string[]; legacy: string[] };

function refuseWhen(current: PersistedState, states: RolloutState[], what: string): void {
  if (states.includes(current.state)) {
    const hint = current.state === 'rolled_back' ? 'resume it first' : 'resume it first (veer resume)';
    throw new ControllerError('conflict', `cannot ${what}: the rollout is ${current.state}; ${hint}`);
  }
}

/** Null when the rollout is already killed (nothing to do). */
export function killChange(current: PersistedState, actor: string, reason: string): PlannedChange | null {
  if (current.state === 'killed') return null;
  return {
    spec: { actor, action: 'kill', reason, cause: 'kill', safe: true },
    mutate: (cur) => ({
      ...cur,
      state: 'killed',
      weight_bp: 0,
      kill_reason: reason,
      before_kill: { state: cur.state, weight_bp: cur.weight_bp },
    }),
    rollbackCause: 'kill',
  };
}

/**
 * After a kill: back to exactly where the kill found the rollout. After a rollback or a latch: back to
 * the first step (the config's weight without steps), so a backend that just failed is not handed its
 * old share at once.
 */
export function resumeChange(current: PersistedState, config: Config, actor: string, reason: string): PlannedChange {
  const spec = { actor, action: 'resume', reason, cause: 'operator' as const, safe: false };
  if (current.state === 'killed') {
    const back = current.before_kill ?? { state: 'progressing' as RolloutState, weight_bp: 0 };
    return {
      spec,
      mutate: (cur) => ({ ...cur, state: back.state, weight_bp: back.weight_bp, kill_reason: null, before_kill: null }),
    };
  }
  if (current.state === 'rolled_back' || current.state === 'latched') {
    // A rollout that starts with a shadow goes back to it, with the config's shadow share.
    const shadowFirst = config.rollout.shadowFirst;
    const weight = shadowFirst ? 0 : (config.rollout.stepsBp[0] ?? config.rollout.weightBp);
    return {
      spec,
      mutate: (cur) => ({
        ...cur,
        state: shadowFirst ? 'shadowing' : weight === 10_000 ? 'promoted' : 'progressing',
        weight_bp: weight,
        latched: false,
        flips: [],
        ...(shadowFirst ? { shadow_bp: config.rollout.shadow.percentBp } : {}),
      }),
    };
  }
  throw new ControllerError('conflict', `nothing to resume: the rollout is ${current.state}`);
}

export function weightChange(current: PersistedState, actor: string, weightBp: number, reason: string): PlannedChange {
  refuseWhen(current, ['killed', 'latched'], 'set the weight');
  return {
    spec: { actor, action: 'weight', reason, cause: 'operator', safe: weightBp <= current.weight_bp },
    mutate: (cur) => ({ ...cur, state: weightBp === 10_000 ? 'promoted' : 'progressing', weight_bp: weightBp }),
  };
}

export function promoteChange(current: PersistedState, config: Config, actor: string, reason: string): PlannedChange {
  refuseWhen(current, ['killed', 'latched', 'rolled_back'], 'promote');
  const next = nextStepBp(current.weight_bp, config.rollout.stepsBp);
  if (next === null) throw new ControllerError('conflict', 'nothing to promote: new already has 100%');
  return {
    spec: { actor, action: 'promote', reason, cause: 'operator', safe: false },
    mutate: (cur) => ({ ...cur, state: next === 10_000 ? 'promoted' : 'progressing', weight_bp: next }),
  };
}

/** Null when the rollout is already rolled back (nothing to do). */
export function rollbackChange(current: PersistedState, actor: string, reason: string): PlannedChange | null {
  refuseWhen(current, ['killed', 'latched'], 'rollback');
  if (current.state === 'rolled_back') return null;
  return {
    spec: { actor, action: 'rollback', reason, cause: 'operator', safe: true },
    mutate: (cur) => ({ ...cur, state: 'rolled_back', weight_bp: 0 }),
    rollbackCause: 'operator',
  };
}

/** Pins keys to a side (merged into the runtime overrides). */
export function setOverridesChange(actor: string, keys: [string, UpstreamName][], reason: string): PlannedChange {
  return {
    spec: {
      actor,
      action: 'overrides_set',
      reason,
      cause: 'operator',
      safe: false,
      detail: { keys: Object.fromEntries(keys) },
    },
    mutate: (cur) => {
      const pins = new Map<string, UpstreamName>(overrideEntries(cur.overrides));
      for (const [key, side] of keys) pins.set(key, side);
      return { ...cur, overrides: overrideLists(pins) };
    },
  };
}

export function removeOverridesChange(actor: string, keys: string[], reason: string): PlannedChange {
  return {
    spec: { actor, action: 'overrides_remove', reason, cause: 'operator', safe: false, detail: { keys } },
    mutate: (cur) => {
      const pins = new Map<string, UpstreamName>(overrideEntries(cur.overrides));
      for (const key of keys) pins.delete(key);
      return { ...cur, overrides: overrideLists(pins) };
    },
  };
}

/** A config with a new rollout id: the rollout starts afresh, whatever the old one's state. */
export function newRolloutChange(
  config: Config,
  previousId: string,
  now: number,
  actor: string,
  reason: string | undefined,
): PlannedChange {
  return {
    spec: {
      actor,
      action: 'new_rollout',
      reason: `${reason ?? 'config reload'}: new rollout id ${config.rollout.id} (was ${previousId}): starting afresh`,
      cause: 'config',
      safe: true,
    },
    mutate: (cur) => ({ ...freshState(config, now), version: cur.version + 1 }),
    replace: true,
  };
}

/**
 * The shadow's share (0: off). It moves no real traffic; it is stored and audited like the weight, and is
 * in force while the rollout is not killed, rolled back or latched.
 */
export function shadowChange(
  current: PersistedState,
  config: Config,
  actor: string,
  shadowBp: number,
  reason: string,
): PlannedChange {
  const before = current.shadow_bp ?? config.rollout.shadow.percentBp;
  return {
    spec: {
      actor,
      action: 'shadow',
      reason,
      cause: 'operator',
      safe: shadowBp <= before,
      detail: { shadow_percent: shadowBp / 100, was_percent: before / 100 },
    },
    mutate: (cur) => ({ ...cur, shadow_bp: shadowBp }),
  };
}

/**
 * A reloaded config for the same rollout: the state stays, the next table takes the new config. A changed
 * rollout.shadow.percent applies at once, like every other reloaded setting.
 */
export function reloadChange(
  actor: string,
  reason: string | undefined,
  changed: string[],
  config?: Config,
): PlannedChange {
  return {
    spec: {
      actor,
      action: 'reload',
      reason: reason ?? 'config reloaded',
      cause: 'config',
      safe: true,
      detail: { changed },
    },
    mutate: (cur) =>
      config && changed.includes('rollout.shadow.percent')
        ? { ...cur, shadow_bp: config.rollout.shadow.percentBp }
        : cur,
  };
}

/** Runtime overrides merged over the config's own (runtime pins win): what the routing table applies. */
export function mergedOverrides(config: Config, runtime: Overrides): Map<string, UpstreamName> {
  const pins = new Map<string, UpstreamName>();
  for (const key of config.routing.overrides.legacy) pins.set(key, 'legacy');
  for (const key of config.routing.overrides.new) pins.set(key, 'new');
  for (const [key, side] of overrideEntries(runtime)) pins.set(key, side);
  return pins;
}

function overrideEntries(overrides: Overrides): [string, UpstreamName][] {
  return [
    ...overrides.legacy.map((key): [string, UpstreamName] => [key, 'legacy']),
    ...overrides.new.map((key): [string, UpstreamName] => [key, 'new']),
  ];
}

export function overrideLists(pins: Map<string, UpstreamName>): Overrides {
  const lists: Overrides = { new: [], legacy: [] };
  for (const [key, side] of pins) lists[side].push(key);
  lists.new.sort();
  lists.legacy.sort();
  return lists;
}
