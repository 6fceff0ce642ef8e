// The outcome classes of a proxied stream and which of them count against an upstream.

/** `saturated` comes last: the fleet's wire format lists counts in this order (see fleet/merge.ts). */
export const OUTCOMES = [
  'ok',
  'upstream_5xx',
  'connect_error',
  'timeout',
  'reset',
  'client_abort',
  'saturated',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

export const OUTCOME_INDEX: Readonly<Record<Outcome, number>> = {
  ok: 0,
  upstream_5xx: 1,
  connect_error: 2,
  timeout: 3,
  reset: 4,
  client_abort: 5,
  saturated: 6,
};

/**
 * Outcomes the SLO counts as the upstream's errors. A client that leaves is not one, nor a request veer
 * refused because its own connection cap to the upstream was full (`saturated`: nothing reached it).
 */
export function isUpstreamError(outcome: Outcome): boolean {
  return outcome !== 'ok' && outcome !== 'client_abort' && outcome !== 'saturated';
}
