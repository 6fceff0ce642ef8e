// The admin API's JSON as its clients read it (the dashboard in the browser, the operator CLI) and as the
// server's series sampler builds it. Types only, importing nothing but the import-free src/rollout.ts, so the
// browser bundle can use them too.

export type { FleetLinkState, FleetStatus, RolloutState, RuleJson, RuleStatus } from '../rollout.js';

import type { FleetStatus, RolloutState, RuleJson, RuleStatus } from '../rollout.js';

export interface Rollout {
  id: string;
  state: RolloutState;
  weight_percent: number;
  step: number | null;
  steps: number[];
  kill_reason: string | null;
  latched: boolean;
  gate: {
    next_percent: number;
    waiting_for_approval: boolean;
    eligible_at: string | null;
    /** This step waits for an operator's promote (gate: manual). */
    manual?: boolean;
    min_duration_ms?: number;
  } | null;
  /** Set while the step has been inconclusive for slo.inconclusive_limit. */
  stalled?: { since: string; limit_ms: number; on_inconclusive: string } | null;
  last_change: { time: string; actor: string; action: string; reason: string } | null;
  version: number;
}

/** One upstream in GET /api/status: its SLO window and its streams. */
export interface UpstreamStatus {
  url: string;
  ttfb_p50_ms: number | null;
  ttfb_p95_ms: number | null;
  ttfb_p99_ms: number | null;
  error_rate: number | null;
  samples: number;
  requests: number;
  errors: number;
  inflight: number;
  /** Age of the oldest request still waiting for its first byte, ms (0 when none). */
  oldest_waiting_ms?: number;
  requests_total: number;
  /** Connections open to the upstream, and requests waiting for one (all max_sockets busy, or one being opened). */
  connected: number;
  pending: number;
  /** The connection cap; null: none. */
  max_sockets: number | null;
}

/** Keys pinned to each side (GET/PUT /api/overrides, and in the status). */
export interface Overrides {
  new: string[];
  legacy: string[];
}

/** The shadow (GET /api/status, PUT /api/shadow): its share, its limits, its window and its rules. */
export interface ShadowStatus {
  /** The share in force now (0 while killed, rolled back or latched). */
  percent: number;
  /** The share set by the config or an operator, whether or not it is in force. */
  set_percent: number;
  inflight: number;
  max_inflight: number;
  max_body_bytes: number;
  timeout_ms: number;
  methods: string[];
  paths: string[];
  on_breach: string;
  window: UpstreamStatus;
  rules: RuleJson[];
  /** In state shadowing: when the first step opens if every rule keeps passing. */
  eligible_at: string | null;
}

/** One segment in GET /api/status: its side or weight as in force, and what it routed since start. */
export interface SegmentStatus {
  name: string;
  side: 'new' | 'legacy' | null;
  weight_percent: number | null;
  requests: { new: number; legacy: number };
}

/** Whether the fleet's store has a change (the `fleet` field of a rollout command's reply, fleet mode). */
export type FleetAck = 'confirmed' | 'pending';

export interface Status {
  rollout: Rollout;
  shadow?: ShadowStatus;
  segments?: SegmentStatus[];
  fleet?: FleetStatus | null;
  upstreams: { legacy: UpstreamStatus; new: UpstreamStatus };
  /** Only for a request with a valid token (read or operator). */
  overrides?: Overrides;
  /** veer's version (package.json), as `veer --version` prints it. */
  version: string;
  slo: {
    on_breach: string;
    interval_ms: number;
    window_ms: number;
    confidence?: number;
    failure_limit?: number | null;
    step_breaches?: number;
    inconclusive_limit_ms?: number | null;
    on_inconclusive?: string;
    evaluated_at: string | null;
    rules: RuleJson[];
  };
  time: string;
}

/** One upstream in a GET /api/series point; the server's sampler (dashboard/series.ts) builds these. */
export interface SeriesSide {
  ttfb_p50_ms: number | null;
  ttfb_p95_ms: number | null;
  ttfb_p99_ms: number | null;
  /** Window error rate; null without requests in the window. */
  error_rate: number | null;
  /** Streams finished per second since the previous point; null when no time passed. */
  rps: number | null;
  /** Token accounting's window figures (ms, and shares of answers); null without samples. */
  itl_p50_ms?: number | null;
  itl_p99_ms?: number | null;
  tpot_p95_ms?: number | null;
  incomplete_rate?: number | null;
  inband_error_rate?: number | null;
  empty_rate?: number | null;
}

export interface SeriesRule {
  name: string;
  metric: string;
  value: number | null;
  threshold: number | null;
  status: RuleStatus;
}

export interface SeriesPoint {
  /** Epoch milliseconds on veer's clock. */
  t: number;
  weight_percent: number;
  /** Share of the streams finished since the previous point that were on new; null without any. */
  share_new: number | null;
  legacy: SeriesSide;
  new: SeriesSide;
  /** Every rule judged on the same windows at the same moment, so its threshold line matches the guard. */
  rules: SeriesRule[];
}

export interface Series {
  interval_ms: number;
  capacity: number;
  time: string;
  points: SeriesPoint[];
}

export interface AuditEntry {
  time: string;
  actor: string;
  action: string;
  reason: string;
  before: { state: string; weight_percent: number } | null;
  after: { state: string; weight_percent: number } | null;
  detail?: Record<string, unknown>;
}

/** GET /api/audit. */
export interface Audit {
  entries: AuditEntry[];
}

/** POST /api/reload. */
export interface ReloadReply {
  reloaded: boolean;
  rollout_id: string;
  changed: string[];
  restart_required: string[];
}
