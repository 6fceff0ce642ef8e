// The outcome classes of a proxied stream and which of them count against an upstream.

export const OUTCOMES = ['ok', 'upstream_5xx', 'connect_error', 'timeout', 'reset', 'client_abort'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export const OUTCOME_INDEX: Readonly<Record<Outcome, number>> = {
  ok: 0,
  upstream_5xx: 1,
  connect_error: 2,
  timeout: 3,
  reset: 4,
  client_abort: 5,
};

/** Outcomes the SLO counts as the upstream's errors; a client that leaves is not one. */
export function isUpstreamError(outcome: Outcome): boolean {
  return outcome !== 'ok' && outcome !== 'client_abort';
}
