// Every Prometheus metric veer exports, defined here on one prom-client registry.

import { Counter, collectDefaultMetrics, Gauge, type GaugeConfiguration, Histogram, Registry } from 'prom-client';

/** Inference TTFB spans a few ms (cache hits) to tens of seconds (long prompts, queueing). */
export const TTFB_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.55, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30];
export const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];

export type Metrics = ReturnType<typeof createMetrics>;

type PerUpstream = { legacy: number; new: number };

/**
 * Readers of live state, filled in by the modules that own it; gauges call them at scrape time so the
 * request path only bumps plain numbers.
 */
export interface LiveReadings {
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
  shadowRatio?: () => number;
  shadowInflight?: () => number;
  /** Token accounting's window figures (seconds, tokens/s, ratios); undefined where there are no samples. */
  tokenWindow?: () => Record<'legacy' | 'new', TokenWindowReading>;
  /** Each upstream pool's open connections and requests waiting for one (undici's own counts). */
  pools?: () => Record<'legacy' | 'new', { connected: number; pending: number }>;
}

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

export interface TokenWindowReading {
  itl: Record<string, number | undefined>;
  tpot: Record<string, number | undefined>;
  tokensPerSecond: Record<string, number | undefined>;
  /** Share of answers in the window per end class (client_abort left out); undefined without answers. */
  endRatio: Record<string, number | undefined>;
}

/** Token accounting's quantiles published from the window: ITL and TPOT from the top, decode rate from the bottom. */
export const TOKEN_WINDOW_QUANTILES = ['0.5', '0.95', '0.99'] as const;
export const TOKENS_PER_SECOND_QUANTILES = ['0.05', '0.5'] as const;
export const ANSWER_ENDS = ['complete', 'truncated', 'inband_error', 'empty', 'client_abort'] as const;
/** Time per output token: ~1 ms (small models, speculative decoding) to a second (overloaded). */
export const TPOT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1];
/** The longest gap of a stream: tens of ms when healthy, seconds when it stalls. */
export const MAX_GAP_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export const WINDOW_QUANTILES = ['0.5', '0.9', '0.95', '0.99'] as const;

/**
 * Quantiles veer computes itself (from the window's t-digests) are declared TYPE summary: Prometheus reserves
 * the `quantile` label for summaries and `promtool check metrics` rejects it on a gauge. There is no
 * _sum/_count: a summary's are cumulative, and the window has none to give.
 */
class WindowQuantiles<T extends string> extends Gauge<T> {
  constructor(config: GaugeConfiguration<T>) {
    super(config);
    (this as unknown as { type: string }).type = 'summary';
  }
}

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
    fleetMembers: new Gauge({
      name: 'veer_fleet_members',
      help: 'Sidecars that published a window within its TTL.',
      registers,
    }),
    fleetLeader: new Gauge({
      name: 'veer_fleet_leader',
      help: '1 when this sidecar holds the fleet lease, else 0.',
      registers,
    }),
    fleetSyncErrors: new Counter({
      name: 'veer_fleet_sync_errors_total',
      help: 'Failed exchanges with the fleet store (Redis).',
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
    ...tokenMetrics(registers, live, flushRecorder),
    fleetConnected: new Gauge({
      name: 'veer_fleet_connected',
      help: '1 while this sidecar is in sync with the fleet store (Redis answers within fleet.command_timeout), else 0.',
      registers,
    }),
    fleetDisconnected: new Gauge({
      name: 'veer_fleet_disconnected_seconds',
      help: 'Seconds since this sidecar last was in sync with the fleet store (0 while in sync, and outside fleet mode).',
      registers,
      collect() {
        this.set(live.fleetDisconnectedSeconds?.() ?? 0);
      },
    }),
    fleetPendingChanges: new Gauge({
      name: 'veer_fleet_pending_changes',
      help: 'Local changes toward legacy applied here and not yet in the fleet store.',
      registers,
    }),
    fleetStateVersion: new Gauge({
      name: 'veer_fleet_state_version',
      help: 'Version of the shared rollout state this sidecar applies.',
      registers,
    }),
  };
}

/** Token accounting's series: per-answer counters and histograms (batched like the request metrics), and window gauges. */
function tokenMetrics(registers: Registry[], live: LiveReadings, flushRecorder: () => void) {
  const windowQuantiles = (
    name: string,
    help: string,
    quantiles: readonly string[],
    read: (r: TokenWindowReading) => Record<string, number | undefined>,
  ) =>
    new WindowQuantiles({
      name,
      help,
      labelNames: ['upstream', 'quantile'] as const,
      registers,
      collect() {
        const w = live.tokenWindow?.();
        if (!w) return;
        for (const upstream of ['legacy', 'new'] as const) {
          const values = read(w[upstream]);
          for (const quantile of quantiles) {
            const v = values[quantile];
            if (v === undefined) this.remove({ upstream, quantile });
            else this.set({ upstream, quantile }, v);
          }
        }
      },
    });
  return {
    answerEnds: new Counter({
      name: 'veer_answer_ends_total',
      help: 'Answers (SSE streams and JSON bodies with a 2xx status) read by token accounting, by upstream and how they ended (complete, truncated, inband_error, empty, client_abort).',
      labelNames: ['upstream', 'end'] as const,
      registers,
      collect: flushRecorder,
    }),
    tokenEvents: new Counter({
      name: 'veer_token_events_total',
      help: 'SSE events that carried content (a token delta), by upstream.',
      labelNames: ['upstream'] as const,
      registers,
      collect: flushRecorder,
    }),
    outputTokens: new Counter({
      name: 'veer_output_tokens_total',
      help: "Output tokens the upstreams reported in their answers' usage, by upstream.",
      labelNames: ['upstream'] as const,
      registers,
      collect: flushRecorder,
    }),
    tpot: new Histogram({
      name: 'veer_time_per_output_token_seconds',
      help: 'Per stream: (last token event - first token event) / (token events - 1), by upstream; streams the client cut or held back are left out.',
      labelNames: ['upstream'] as const,
      buckets: TPOT_BUCKETS,
      registers,
      collect: flushRecorder,
    }),
    maxGap: new Histogram({
      name: 'veer_stream_max_gap_seconds',
      help: 'Per stream: the longest gap between two token events (a stall), by upstream.',
      labelNames: ['upstream'] as const,
      buckets: MAX_GAP_BUCKETS,
      registers,
      collect: flushRecorder,
    }),
    itlWindow: windowQuantiles(
      'veer_itl_window_seconds',
      "Inter-token gap quantiles over the SLO window, from the window's gap histograms (every gap of every stream that ended in it).",
      TOKEN_WINDOW_QUANTILES,
      (r) => r.itl,
    ),
    tpotWindow: windowQuantiles(
      'veer_tpot_window_seconds',
      'Time-per-output-token quantiles over the SLO window (one sample per stream).',
      TOKEN_WINDOW_QUANTILES,
      (r) => r.tpot,
    ),
    tokensPerSecondWindow: windowQuantiles(
      'veer_tokens_per_second_window',
      'Decode rate quantiles over the SLO window, in tokens per second (one sample per stream; 0.05 is the slowest 5 %).',
      TOKENS_PER_SECOND_QUANTILES,
      (r) => r.tokensPerSecond,
    ),
    windowAnswerRatio: new Gauge({
      name: 'veer_window_answer_ratio',
      help: 'Share of answers in the SLO window that ended so, by upstream and end class (client aborts are not answers judged).',
      labelNames: ['upstream', 'end'] as const,
      registers,
      collect() {
        const w = live.tokenWindow?.();
        if (!w) return;
        for (const upstream of ['legacy', 'new'] as const) {
          for (const end of ['complete', 'truncated', 'inband_error', 'empty']) {
            const v = w[upstream].endRatio[end];
            if (v === undefined) this.remove({ upstream, end });
            else this.set({ upstream, end }, v);
          }
        }
      },
    }),
  };
}
