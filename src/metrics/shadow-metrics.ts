// Shadow traffic's Prometheus series: copies sent to new and how they ended, and the shadow guard's verdicts.

import { Counter, Gauge, type Registry } from 'prom-client';

/** veer_shadow_requests_total's `result`: how a copy ended, or why it was dropped before it was sent. */
export const SHADOW_RESULTS = [
  'ok',
  'upstream_5xx',
  'timeout',
  'connect_error',
  'reset',
  'cancelled',
  'dropped_saturated',
  'dropped_new_failing',
  'dropped_body_too_large',
  'dropped_body_incomplete',
] as const;
export type ShadowResult = (typeof SHADOW_RESULTS)[number];

/** What the shadow's gauges read at scrape time. */
export interface ShadowReadings {
  shadowInflight?: () => number;
  shadowRatio?: () => number;
}

export function shadowMetrics(registers: Registry[], live: ShadowReadings) {
  return {
    shadowRequests: new Counter({
      name: 'veer_shadow_requests_total',
      help: 'Shadow copies sent to new, by how they ended, and copies dropped before they were sent (dropped_*).',
      labelNames: ['result'] as const,
      registers,
    }),
    shadowInflight: new Gauge({
      name: 'veer_shadow_inflight',
      help: 'Shadow copies open now (buffering their body or waiting on new).',
      registers,
      collect() {
        const n = live.shadowInflight?.();
        if (n !== undefined) this.set(n);
      },
    }),
    shadowRatio: new Gauge({
      name: 'veer_shadow_ratio',
      help: 'Share of legacy-bound keys mirrored to new by the current routing table (0..1).',
      registers,
      collect() {
        const r = live.shadowRatio?.();
        if (r !== undefined) this.set(r);
      },
    }),
    shadowRuleStatus: new Gauge({
      name: 'veer_shadow_rule_status',
      help: 'Last evaluation of each SLO rule on the shadow against legacy: 1 pass, 0 inconclusive, -1 breach.',
      labelNames: ['rule'] as const,
      registers,
    }),
  };
}
