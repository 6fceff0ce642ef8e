// The fleet's reconciliation rule as a pure function: given this sidecar's state and the store's, what to write and adopt.

import type { LocalChange } from '../guard/controller.js';
import type { PersistedState } from '../state/store.js';

/*
 * Fleet invariants (docs/fleet.md, "Invariants"). Redis is a cache of the fleet's decisions, never the
 * authority that can move traffic toward new by forgetting:
 * 1. A sidecar never adopts a store state older than one it has seen: a store that is empty, was
 *    re-seeded since (another epoch), or is behind the version it saw, is a reset, and the sidecar
 *    re-seeds its own state onto it.
 * 2. An empty or reset store is re-seeded with the safest state known: the re-seeding sidecar's own
 *    state, with every stop (kill, rollback, latch) of the store's carried onto it (kill wins).
 * 3. A sidecar that has never synced and knows only its config seeds an empty store *provisionally*:
 *    it (and every other such sidecar) keeps serving legacy until a sidecar that remembers the fleet
 *    has re-seeded it, or `fleet.seed_hold` has passed with none coming forward.
 * 4. Changes toward new need the store's confirmation before they apply (Fleet.propose); changes toward
 *    legacy apply locally at once and are merged into whatever the fleet did meanwhile, all of them:
 *    a kill over a rollback keeps the rollback underneath (a resume returns to rolled_back).
 */

/** The shared state as stored: `epoch` names one seeding of the store; versions count within it. */
export interface StoreRecord {
  version: number;
  epoch: string;
  /** Seeded from a config by a sidecar that had never synced: served by nobody until confirmed. */
  provisional: boolean;
  state: PersistedState;
}

/** The store position this sidecar last reconciled with (kept in its state file across restarts). */
export interface Seen {
  epoch: string;
  version: number;
}

/**
 * What this sidecar knows beyond the store: `fleet`, a store position it reconciled with; `local`, a
 * state of its own (a restored file without fleet history, or a stop made here); `none`, only its config.
 */
export type Knowledge = 'fleet' | 'local' | 'none';

export interface ReconcileInput {
  local: PersistedState;
  pending: readonly LocalChange[];
  seen: Seen | undefined;
  remote: StoreRecord | undefined;
  knowledge: Knowledge;
  /** A provisional store has waited `seed_hold` since this sidecar first saw it. */
  holdOver: boolean;
  now: number;
}

export type Plan =
  /** Write `state` by compare-and-set over the store as read (empty: epoch '' version 0). */
  | { kind: 'write'; state: PersistedState; provisional: boolean; epoch: string; why: WriteWhy; dropped: string[] }
  /** Take the store's state as it is. */
  | { kind: 'adopt'; record: StoreRecord; dropped: string[] }
  /** A provisional store, and this sidecar knows nothing better: keep serving legacy, write nothing. */
  | { kind: 'wait'; record: StoreRecord };

export type WriteWhy = 'seed' | 'reseed' | 'push' | 'merge' | 'confirm_seed';

const STOPS = new Set(['killed', 'rolled_back', 'latched']);
export const isStop = (s: PersistedState) => STOPS.has(s.state);

/** What a sidecar knows beyond the store, read from its state alone (the file keeps fleet_version). */
export function knowledgeOf(local: PersistedState, pending: readonly LocalChange[]): Knowledge {
  if (local.fleet_version !== undefined) return 'fleet';
  if (isStop(local) || pending.length > 0) return 'local';
  // A state written by config alone (start, new rollout id, reload) is what every sidecar's config says.
  return local.last_change && !local.last_change.actor.startsWith('config') ? 'local' : 'none';
}

export function reconcile(input: ReconcileInput): Plan {
  const { local, pending, seen, remote, knowledge } = input;
  if (!remote) {
    // Invariants 1-3: an empty store. What we know goes in; from config alone, only provisionally.
    const provisional = knowledge === 'none';
    return {
      kind: 'write',
      state: { ...local, version: Math.max(local.version, seen?.version ?? 0) + 1 },
      provisional,
      epoch: newEpoch(input.now),
      why: seen ? 'reseed' : 'seed',
      dropped: [],
    };
  }
  if (seen && remote.epoch === seen.epoch && remote.version < seen.version) {
    // Invariant 1 within an epoch: a store behind what we saw (a lagging replica promoted, a restore from an
    // old snapshot) is a reset too; numbered past what we saw, so no sidecar takes it for older.
    const next = carryStops(remote.state, local);
    return {
      kind: 'write',
      state: { ...next, version: seen.version + 1 },
      provisional: false,
      epoch: remote.epoch,
      why: 'reseed',
      dropped: [],
    };
  }
  if (seen && remote.epoch === seen.epoch && !remote.provisional) return sameEpoch(input, remote, seen);
  if (knowledge === 'none' && pending.length === 0) {
    if (!remote.provisional) return { kind: 'adopt', record: remote, dropped: [] };
    if (!input.holdOver) return { kind: 'wait', record: remote };
    return write(remote, remote.state, 'confirm_seed', []);
  }
  if (seen || remote.provisional) {
    // Invariant 1: a store re-seeded since we last saw it (or seeded from config alone) is not newer than
    // what we know: our state goes back in, with the store's stops carried onto it (invariant 2).
    const next = remote.provisional ? local : carryStops(remote.state, local);
    return write(remote, next, 'reseed', []);
  }
  // Never synced, but with a state of our own: the fleet's state wins, our moves toward legacy ride on it.
  return mergeOnto(input, remote);
}

/** The store is in the epoch we know: only "did it move since we saw it" and "have we unshared changes" decide. */
function sameEpoch(input: ReconcileInput, remote: StoreRecord, seen: Seen): Plan {
  const { local, pending } = input;
  const ahead = pending.length > 0 || local.version > seen.version;
  if (remote.version === seen.version) {
    if (!ahead) return { kind: 'adopt', record: remote, dropped: [] };
    return write(remote, local, 'push', []);
  }
  if (!ahead) return { kind: 'adopt', record: remote, dropped: [] };
  return mergeOnto(input, remote);
}

/**
 * The fleet moved on while we made changes: its state wins, and every one of our moves toward legacy is
 * replayed on top of it (from the queue; after a restart, when the queue is gone, the stop the state
 * file holds). Moves toward new are dropped (they were confirmed in the store before applying, so only
 * a config change can be among them).
 */
function mergeOnto(input: ReconcileInput, remote: StoreRecord): Plan {
  const { local, pending } = input;
  let next = remote.state;
  const dropped: string[] = [];
  if (pending.length > 0) {
    for (const p of pending) {
      if (!p.safe) {
        dropped.push(p.action);
        continue;
      }
      next = applySafe(next, p, input.now);
    }
  } else {
    next = carryStops(local, remote.state);
  }
  if (sameContent(next, remote.state)) return { kind: 'adopt', record: remote, dropped };
  return write(remote, next, 'merge', dropped);
}

function write(remote: StoreRecord, state: PersistedState, why: WriteWhy, dropped: string[]): Plan {
  return {
    kind: 'write',
    state: { ...state, version: remote.version + 1 },
    provisional: false,
    epoch: remote.epoch,
    why,
    dropped,
  };
}

/**
 * A change toward legacy replayed on another base. On a killed base it applies underneath the kill (to
 * `before_kill`), so a resume returns to the rollback or latch; a kill on a killed base keeps the base's.
 */
export function applySafe(base: PersistedState, change: LocalChange, now: number): PersistedState {
  const stamp = { last_change: change.next.last_change, weight_since: now };
  if (base.state !== 'killed') return { ...change.mutate(base), ...stamp };
  if (change.action === 'kill') return base;
  const under = base.before_kill ?? { state: 'progressing' as const, weight_bp: 0 };
  const moved = change.mutate({ ...base, state: under.state, weight_bp: under.weight_bp });
  return {
    ...base,
    latched: moved.latched,
    flips: moved.flips,
    before_kill: { state: moved.state, weight_bp: moved.weight_bp },
    last_change: change.next.last_change,
  };
}

/**
 * `onto` with the stop `from` holds carried over (kill wins; a rollback or latch under a kill stays under
 * it). A stale stop can only hold traffic on legacy until an operator resumes; a stale weight could send
 * it to a failing backend, so nothing else is carried.
 */
export function carryStops(from: PersistedState, onto: PersistedState): PersistedState {
  const fromStop = stopOf(from);
  if (from.state === 'killed' && onto.state !== 'killed') {
    const under = STOPS.has(onto.state) || !fromStop ? { state: onto.state, weight_bp: onto.weight_bp } : fromStop;
    return {
      ...onto,
      state: 'killed',
      weight_bp: 0,
      latched: from.latched || onto.latched,
      kill_reason: from.kill_reason,
      before_kill: under,
      last_change: from.last_change,
    };
  }
  if (!fromStop) return onto;
  const latched = from.latched || onto.latched;
  if (onto.state === 'killed') {
    if (stopOf(onto)) return onto;
    return { ...onto, latched, before_kill: fromStop };
  }
  if (STOPS.has(onto.state)) return onto;
  return { ...onto, ...fromStop, latched, flips: from.flips, last_change: from.last_change };
}

/** The rollback or latch a state holds, on its face or under a kill. */
function stopOf(s: PersistedState): { state: 'rolled_back' | 'latched'; weight_bp: 0 } | undefined {
  const st = s.state === 'killed' ? s.before_kill?.state : s.state;
  return st === 'rolled_back' || st === 'latched' ? { state: st, weight_bp: 0 } : undefined;
}

/** Same rollout position (what routes traffic), whatever the version numbers say. */
export function sameContent(a: PersistedState, b: PersistedState): boolean {
  return (
    a.rollout_id === b.rollout_id &&
    a.state === b.state &&
    a.weight_bp === b.weight_bp &&
    a.latched === b.latched &&
    a.kill_reason === b.kill_reason &&
    JSON.stringify(a.before_kill) === JSON.stringify(b.before_kill) &&
    JSON.stringify(a.overrides) === JSON.stringify(b.overrides)
  );
}

function newEpoch(now: number): string {
  return `${now.toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
