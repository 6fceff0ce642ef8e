// What a change of routing state is: who asks for it and why (ChangeSpec), what it does (PlannedChange), what came of it (ChangeOutcome).

import type { Config } from '../config/types.js';
import { type ErrorCode, VeerError } from '../errors.js';
import { type PersistedState, STATE_FORMAT } from '../state/store.js';
import type { RuleResult } from './evaluate.js';

/** A change the controller refuses (or applied but could not persist): the admin API answers it as is. */
export class ControllerError extends VeerError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'ControllerError';
  }
}

export type Cause = 'slo' | 'operator' | 'config' | 'kill' | 'fleet';

export interface ChangeSpec {
  actor: string;
  action: string;
  reason: string;
  cause: Cause;
  /** Moves traffic toward legacy: applied even when the state file cannot be written. */
  safe: boolean;
  rules?: RuleResult[];
  detail?: Record<string, unknown>;
  /** The audit entry shows no "before" (the very first state of a rollout). */
  noBefore?: boolean;
}

/** A change decided but not yet applied: `mutate` computes the next state from the current one. */
export interface PlannedChange {
  spec: ChangeSpec;
  mutate: (cur: PersistedState) => PersistedState;
  /** The state is replaced as a whole (a rollout starting afresh): its own version, a new weight clock. */
  replace?: boolean;
  /** Counted in veer_rollbacks_total under this cause once applied. */
  rollbackCause?: 'slo' | 'operator' | 'kill';
}

/**
 * What came of a change. Refusals (nothing applied) are thrown as ControllerError instead; a change that is
 * in effect but could not be written to the state file is an outcome, and its caller decides what to say.
 */
export type ChangeOutcome =
  /** Nothing to do (a kill of a killed rollout, a rollback of a rolled-back one). */
  | { applied: false; persisted: true }
  | { applied: true; persisted: true }
  /** In effect on the request path, but it will not survive a restart; `error` says so for an operator. */
  | { applied: true; persisted: false; error: string }
  /**
   * Fleet mode, a change toward new: it applies here only once the fleet's store has it; `confirmed`
   * settles with the outcome then, or rejects (503 fleet_unavailable, 409 conflict) with nothing applied.
   */
  | { applied: false; persisted: true; confirmed: Promise<ChangeOutcome> };

/** The outcome once the fleet has confirmed (or refused) a change toward new; any other outcome as is. */
export function settledOutcome(outcome: ChangeOutcome): Promise<ChangeOutcome> {
  return 'confirmed' in outcome ? outcome.confirmed : Promise.resolve(outcome);
}

export const NOTHING_CHANGED: ChangeOutcome = Object.freeze({ applied: false, persisted: true });

/** The admin API's answer to an applied change that could not be persisted (503, as documented). */
export function notPersistedError(outcome: ChangeOutcome): ControllerError | undefined {
  return outcome.persisted ? undefined : new ControllerError('state_not_persisted', outcome.error);
}

/** The state a rollout starts in: the config's initial weight, nothing pinned, no history. */
export function freshState(config: Config, now: number): PersistedState {
  const weight = config.rollout.weightBp;
  return {
    format: STATE_FORMAT,
    rollout_id: config.rollout.id,
    // A rollout that starts with a shadow holds 0 % real traffic until the shadow passed every rule.
    state: config.rollout.shadowFirst ? 'shadowing' : weight === 10_000 ? 'promoted' : 'progressing',
    weight_bp: weight,
    latched: false,
    kill_reason: null,
    before_kill: null,
    overrides: { new: [], legacy: [] },
    flips: [],
    weight_since: now,
    last_change: null,
    version: 1,
  };
}

export const percentOf = (bp: number) => bp / 100;
