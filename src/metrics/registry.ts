// Every Prometheus metric veer exports, defined here on one prom-client registry.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { fleetMetrics } from './fleet-metrics.js';
import { type ShadowReadings, shadowMetrics } from './shadow-metrics.js';
import { type TokenWindowReading, tokenMetrics } from './token-metrics.js';
import { WindowQuantiles } from './window-quantiles.js';

/** Inference TTFB spans a few ms (cache hits) to tens of seconds (long prompts, queueing). */
export const TTFB_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.55, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30];
export const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];

export type Metrics = ReturnType<typeof createMetrics>;

type PerUpstream = { legacy: number; new: number };

/**
 * Readers of live state, filled in by the modules that own it; gauges call them at scrape time so the
 * request path only bumps plain numbers.
 */
export interface LiveReadings extends ShadowReadings {
  /** Meters what the recorder holds in its batch; the request metrics call it before they are read. */
  flush?: () => void;
  inflight?: () => PerUpstream;
  /** Age in seconds of each upstream's oldest request still waiting for its first byte (0 when none). */
  oldestWaiting?: () => PerUpstream;
  window?: () => Record<
    'legacy' | 'new',
    { quantiles: Record<string, number | undefined>; samples: number; errorRate: number }
  >;
  connections?: () => Record<string, number>;
  weightRatio?: () => number;
  /** Fleet mode: seconds since this sidecar lost the fleet store (0 while in sync). */
  fleetDisconnectedSeconds?: () => number;
  /** Requests per segment and side since start (routing.segments). */
  segments?: () => ReadonlyMap<string, PerUpstream>;
  /** Token accounting's window figures (seconds, tokens/s, ratios); undefined where there are no samples. */
  tokenWindow?: () => Record<'legacy' | 'new', TokenWindowReading>;
  /** Each upstream pool's open connections and requests waiting for one (undici's own counts). */
  pools?: () => Record<'legacy' | 'new', { connected: number; pending: number }>;
}

export const WINDOW_QUANTILES = ['0.5', '0.9', '0.95', '0.99'] as const;

/** prom-client's gauges of active handles, requests and resources end in _total, which Prometheus keeps for counters. */
const GAUGES_NAMED_LIKE_COUNTERS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * For each unit a rule result can carry: its value and threshold gauges and the factor to base units.
 * A rule kind with another unit (tokens per second, a score) adds a row and its two gauges.
 */
export const SLO_RULE_UNITS = {
  ms: { value: 'sloRuleValueSeconds', threshold: 'sloRuleThresholdSeconds', toBase: 1 / 1000 },
  ratio: { value: 'sloRuleValueRatio', threshold: 'sloRuleThresholdRatio', toBase: 1 },
  // Token accounting's decode-rate rules (tokens_per_s_p5), judged from below.
  per_s: { value: 'sloRuleValueTokensPerSecond', threshold: 'sloRuleThresholdTokensPerSecond', toBase: 1 },
  // A query rule's value is whatever its PromQL returns: its own series, in the query's unit.
  value: { value: 'sloQueryRuleValue', threshold: 'sloQueryRuleThreshold', toBase: 1 },
} as const satisfies Record<string, { value: string; threshold: string; toBase: number }>;

/** Exports one rule's value and threshold on the series of its unit. */
export function setSloRuleSeries(
  metrics: Metrics,
  rule: {
    name: string;
    metric: string;
    unit: keyof typeof SLO_RULE_UNITS;
    value: number | null;
    threshold: number | null;
  },
): void {
  const unit = SLO_RULE_UNITS[rule.unit];
  const labels = { rule: rule.name, metric: rule.metric };
  if (rule.value !== null) metrics[unit.value].set(labels, rule.value * unit.toBase);
  if (rule.threshold !== null) metrics[unit.threshold].set(labels, rule.threshold * unit.toBase);
}

/**
 * How often the event-loop delay histogram samples (prom-client's default is 10 ms). Each sample is a
 * timer that wakes the process: at 10 ms an idle veer woke 212 times a second (1.4 % of a core here, where
 * a halted vCPU costs ~55 µs to wake), and at 200 SSE streams those wakeups were a quarter of veer's CPU
 * per stream (bench/ ttfb-overhead). At 100 ms: 35 wakeups a second idle. A stall still shows in the
 * histogram in proportion to its length, and one of 100 ms or more always does.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  const live: LiveReadings = {};
  const segmentExported = new Map<string, number>();
  if (options.defaultMetrics !== false) {
    collectDefaultMetrics({
      register: registry,
      prefix: 'veer_',
      eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
    });
    // The per-type gauges (veer_nodejs_active_handles{type}, ...) stay and carry the same information.
    for (const name of GAUGES_NAMED_LIKE_COUNTERS) registry.removeSingleMetric(`veer_${name}`);
  }
  const registers = [registry];
  const flushRecorder = () => live.flush?.();
  return {
    registry,
    live,
    requests: new Counter({
      name: 'veer_requests_total',
      help: 'Requests finished, by upstream, status class the client saw (none when no status was sent) and routing reason.',
      labelNames: ['upstream', 'code_class', 'reason'] as const,
      registers,
      collect: flushRecorder,
    }),
    outcomes: new Counter({
      name: 'veer_request_outcomes_total',
      help: 'Requests finished, by upstream and outcome class (ok, upstream_5xx, connect_error, timeout, reset, client_abort, saturated).',
      labelNames: ['upstream', 'outcome'] as const,
      registers,
      collect: flushRecorder,
    }),
    ttfb: new Histogram({
      name: 'veer_ttfb_seconds',
      help: 'Time from request received to the first response body byte (the first token of a stream), by upstream.',
      labelNames: ['upstream'] as const,
      buckets: TTFB_BUCKETS,
      registers,
      collect: flushRecorder,
    }),
    duration: new Histogram({
      name: 'veer_request_duration_seconds',
      help: 'Time from request received to the end of the response, for completed responses, by upstream.',
      labelNames: ['upstream'] as const,
      buckets: DURATION_BUCKETS,
      registers,
      collect: flushRecorder,
    }),
    ttfbWindow: new WindowQuantiles({
      name: 'veer_ttfb_window_seconds',
      help: "TTFB quantiles over the SLO window, from the window's t-digests.",
      labelNames: ['upstream', 'quantile'] as const,
      registers,
      collect() {
        const w = live.window?.();
        if (!w) return;
        for (const upstream of ['legacy', 'new'] as const) {
          for (const q of WINDOW_QUANTILES) {
            const v = w[upstream].quantiles[q];
            if (v === undefined) this.remove({ upstream, quantile: q });
            else this.set({ upstream, quantile: q }, v);
          }
        }
      },
    }),
    windowSamples: new Gauge({
      name: 'veer_window_samples',
      help: 'TTFB samples in the SLO window, by upstream.',
      labelNames: ['upstream'] as const,
      registers,
      collect() {
        const w = live.window?.();
        if (w) for (const upstream of ['legacy', 'new'] as const) this.set({ upstream }, w[upstream].samples);
      },
    }),
    windowErrorRatio: new Gauge({
      name: 'veer_window_error_ratio',
      help: 'Share of requests in the SLO window that ended in an upstream error, by upstream.',
      labelNames: ['upstream'] as const,
      registers,
      collect() {
        const w = live.window?.();
        if (w) for (const upstream of ['legacy', 'new'] as const) this.set({ upstream }, w[upstream].errorRate);
      },
    }),
    inflight: new Gauge({
      name: 'veer_inflight_streams',
      help: 'Requests being proxied right now, by upstream.',
      labelNames: ['upstream'] as const,
      registers,
      collect() {
        const n = live.inflight?.();
        if (n) for (const upstream of ['legacy', 'new'] as const) this.set({ upstream }, n[upstream]);
      },
    }),
    inflightOldest: new Gauge({
      name: 'veer_inflight_oldest_seconds',
      help: 'Age of the oldest request to each upstream still waiting for its first byte, seconds (0 when none): a hang shows here before ttfb_timeout ends it.',
      labelNames: ['upstream'] as const,
      registers,
      collect() {
        const n = live.oldestWaiting?.();
        if (n) for (const upstream of ['legacy', 'new'] as const) this.set({ upstream }, n[upstream]);
      },
    }),
    rolloutStalled: new Gauge({
      name: 'veer_rollout_stalled',
      help: '1 while the current step has stayed inconclusive for slo.inconclusive_limit, else 0.',
      registers,
    }),
    upstreamPending: new Gauge({
      name: 'veer_upstream_pending_requests',
      help: 'Requests waiting for a connection to the upstream (all max_sockets busy, or one being opened), by upstream.',
      labelNames: ['upstream'] as const,
      registers,
      collect() {
        const p = live.pools?.();
        if (p) for (const upstream of ['legacy', 'new'] as const) this.set({ upstream }, p[upstream].pending);
      },
    }),
    upstreamConnections: new Gauge({
      name: 'veer_upstream_connections',
      help: 'Connections open to the upstream (idle in the pool or carrying a request), by upstream.',
      labelNames: ['upstream'] as const,
      registers,
      collect() {
        const p = live.pools?.();
        if (p) for (const upstream of ['legacy', 'new'] as const) this.set({ upstream }, p[upstream].connected);
      },
    }),
    weight: new Gauge({
      name: 'veer_routing_weight_ratio',
      help: 'Share of keys routed to new by the current routing table (0..1).',
      registers,
      collect() {
        const r = live.weightRatio?.();
        if (r !== undefined) this.set(r);
      },
    }),
    keyless: new Counter({
      name: 'veer_keyless_requests_total',
      help: 'Requests without a bucketing key, bucketed at random.',
      registers,
    }),
    fallbacks: new Counter({
      name: 'veer_fallbacks_total',
      help: 'Requests retried on legacy because new refused the connection before anything was sent.',
      registers,
    }),
    rolloutState: new Gauge({
      name: 'veer_rollout_state',
      help: 'The rollout state: 1 for the current state, 0 for the others.',
      labelNames: ['state'] as const,
      registers,
    }),
    rolloutStep: new Gauge({
      name: 'veer_rollout_step',
      help: 'Index of the current progressive rollout step (-1 when not on a step).',
      registers,
    }),
    // One pair of series per unit, so no series mixes units (veer_slo_rule_value before 0.2 did); a
    // rule kind with a new unit adds its pair here and to SLO_RULE_UNITS. `metric` lets an alert pick
    // the threshold of every rule on one measurement (docs/metrics.md, "Alerts from thresholds").
    sloRuleValueSeconds: new Gauge({
      name: 'veer_slo_rule_value_seconds',
      help: 'Latest value of each latency SLO rule, in seconds.',
      labelNames: ['rule', 'metric'] as const,
      registers,
    }),
    sloRuleThresholdSeconds: new Gauge({
      name: 'veer_slo_rule_threshold_seconds',
      help: 'Threshold each latency SLO rule is judged against, in seconds (relative rules: the derived one).',
      labelNames: ['rule', 'metric'] as const,
      registers,
    }),
    sloRuleValueRatio: new Gauge({
      name: 'veer_slo_rule_value_ratio',
      help: 'Latest value of each ratio SLO rule (error rate), 0 to 1.',
      labelNames: ['rule', 'metric'] as const,
      registers,
    }),
    sloRuleValueTokensPerSecond: new Gauge({
      name: 'veer_slo_rule_value_tokens_per_second',
      help: 'Latest value of each decode-rate SLO rule (tokens_per_s_p5), in tokens per second.',
      labelNames: ['rule', 'metric'] as const,
      registers,
    }),
    sloRuleThresholdTokensPerSecond: new Gauge({
      name: 'veer_slo_rule_threshold_tokens_per_second',
      help: 'Threshold each decode-rate SLO rule is judged against from below, in tokens per second.',
      labelNames: ['rule', 'metric'] as const,
      registers,
    }),
    sloQueryRuleValue: new Gauge({
      name: 'veer_slo_query_rule_value',
      help: "Latest value of each query SLO rule (a Prometheus query's result, in that query's unit).",
      labelNames: ['rule', 'metric'] as const,
      registers,
    }),
    sloQueryRuleThreshold: new Gauge({
      name: 'veer_slo_query_rule_threshold',
      help: "Threshold each query SLO rule is judged against, in its query's unit.",
      labelNames: ['rule', 'metric'] as const,
      registers,
    }),
    sloRuleThresholdRatio: new Gauge({
      name: 'veer_slo_rule_threshold_ratio',
      help: 'Threshold each ratio SLO rule is judged against, 0 to 1 (relative rules: the derived one).',
      labelNames: ['rule', 'metric'] as const,
      registers,
    }),
    sloRuleStatus: new Gauge({
      name: 'veer_slo_rule_status',
      help: 'Latest result of each SLO rule: 1 pass, 0 inconclusive, -1 breach.',
      labelNames: ['rule'] as const,
      registers,
    }),
    sloQueries: new Counter({
      name: 'veer_slo_query_total',
      help: 'Prometheus queries run for query rules, by rule and result (ok, no_data, multiple_series, not_a_number, error, timeout).',
      labelNames: ['rule', 'result'] as const,
      registers,
    }),
    notifications: new Counter({
      name: 'veer_notify_total',
      help: 'Webhook notification attempts by webhook and result (delivered, retried, rejected, expired, queue_full).',
      labelNames: ['webhook', 'result'] as const,
      registers,
    }),
    sloRuleObserveOnly: new Gauge({
      name: 'veer_slo_rule_observe_only',
      help: '1 for a rule with action observe (evaluated, exported and alerted, never acting), else 0.',
      labelNames: ['rule'] as const,
      registers,
    }),
    sloBreaches: new Counter({
      name: 'veer_slo_breaches_total',
      help: 'Evaluations in which a rule breached.',
      labelNames: ['rule'] as const,
      registers,
    }),
    rollbacks: new Counter({
      name: 'veer_rollbacks_total',
      help: 'Rollbacks of the new upstream to weight 0, by cause (slo, operator, kill).',
      labelNames: ['cause'] as const,
      registers,
    }),
    routingChanges: new Counter({
      name: 'veer_routing_changes_total',
      help: 'Routing table swaps, by cause (slo, operator, config, fleet).',
      labelNames: ['cause'] as const,
      registers,
    }),
    lastChange: new Gauge({
      name: 'veer_routing_last_change_timestamp_seconds',
      help: 'Unix time of the last routing table change.',
      registers,
    }),
    configReloads: new Counter({
      name: 'veer_config_reloads_total',
      help: 'Config reload attempts, by result (ok, invalid).',
      labelNames: ['result'] as const,
      registers,
    }),
    adminRequests: new Counter({
      name: 'veer_admin_requests_total',
      help: 'Admin API requests, by route and status code.',
      labelNames: ['route', 'code'] as const,
      registers,
    }),
    clientConnections: new Gauge({
      name: 'veer_client_connections',
      help: 'Client connections open on the proxy listener, by protocol.',
      labelNames: ['protocol'] as const,
      registers,
      collect() {
        const c = live.connections?.();
        if (c) for (const [protocol, n] of Object.entries(c)) this.set({ protocol }, n);
      },
    }),
    rejectedRequests: new Counter({
      name: 'veer_rejected_requests_total',
      help: 'Requests refused by veer itself before routing, by reason (bad_request, header_too_large, request_timeout, unsupported_transfer_encoding, stream_refused, stream_reset_flood).',
      labelNames: ['reason'] as const,
      registers,
    }),
    segmentRequests: new Counter({
      name: 'veer_segment_requests_total',
      help: 'Requests routed by a segment (routing.segments), by segment and upstream.',
      labelNames: ['segment', 'upstream'] as const,
      registers,
      collect() {
        // The request path counts plain numbers; the counter catches up with them at scrape time.
        const counts = live.segments?.();
        if (!counts) return;
        for (const [segment, perSide] of counts) {
          for (const upstream of ['legacy', 'new'] as const) {
            const exported = segmentExported.get(`${segment}\0${upstream}`) ?? 0;
            if (perSide[upstream] > exported) this.inc({ segment, upstream }, perSide[upstream] - exported);
            segmentExported.set(`${segment}\0${upstream}`, perSide[upstream]);
          }
        }
      },
    }),
    ...tokenMetrics(registers, () => live.tokenWindow?.(), flushRecorder),
    ...shadowMetrics(registers, live),
    ...fleetMetrics(registers, () => live.fleetDisconnectedSeconds?.()),
  };
}
