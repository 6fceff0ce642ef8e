// The rollout's shared vocabulary (its states, a judged rule as stored and shown): types and constants only, no imports, so every layer and the browser bundle can use it.

export const ROLLOUT_STATES = ['progressing', 'holding', 'promoted', 'rolled_back', 'killed', 'latched'] as const;

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
  /** ms for latency, a ratio for rates, the query's own value for a query rule. */
  unit: 'ms' | 'ratio' | 'value';
  samples: number;
  min_samples: number;
  /** Why a query rule is inconclusive (no_data, timeout, stale...). */
  detail?: string;
}
