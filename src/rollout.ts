// The rollout's shared vocabulary (its states, a judged rule as stored and shown): types and constants only, no imports, so every layer and the browser bundle can use it.

export const ROLLOUT_STATES = [
  'shadowing',
  'progressing',
  'holding',
  'promoted',
  'rolled_back',
  'killed',
  'latched',
] as const;

export type RolloutState = (typeof ROLLOUT_STATES)[number];

export type RuleStatus = 'pass' | 'breach' | 'inconclusive';

/** One judged SLO rule as the admin API answers it and the audit log stores it (snake_case). */
export interface RuleJson {
  name: string;
  text: string;
  status: RuleStatus;
  value: number | null;
  threshold: number | null;
  legacy: number | null;
  /** ms for latency, a ratio for rates, per_s (tokens per second) for tokens_per_s_p5, the query's own value for a query rule. */
  unit: 'ms' | 'ratio' | 'per_s' | 'value';
  samples: number;
  min_samples: number;
  /** Why a query rule is inconclusive (no_data, timeout, stale...). */
  detail?: string;
  /** observe: shown and alerted, never acting. */
  action?: 'act' | 'observe';
  /** The evidence bounds at slo.confidence (a rate's, or the share of requests over a latency limit). */
  lower?: number | null;
  upper?: number | null;
  /** Requests still waiting for a first byte past the limit, counted as samples at least that slow. */
  waiting?: number;
  /** How a pass or breach was reached: on min_samples, or on the bounds before min_samples. */
  decided_by?: 'samples' | 'bounds' | null;
}

/** How a sidecar stands with the fleet: awaiting_fleet is no state file and no sync yet, serving legacy only. */
export type FleetLinkState = 'awaiting_fleet' | 'connected' | 'disconnected';

/** This sidecar's link to the fleet, as /api/status, `veer status` and the dashboard show it. */
export interface FleetStatus {
  state: FleetLinkState;
  connected: boolean;
  member: string;
  /** The lease holder (the judge) as last seen (null when unknown), and whether it is this sidecar. */
  leader: string | null;
  is_leader: boolean;
  /** The store version last reconciled with. */
  version: number | null;
  last_sync: string | null;
  /** Changes toward legacy applied here and not yet in the store. */
  pending_changes: number;
}
