// The typed, defaults-applied configuration every other module receives.

export type UpstreamName = 'legacy' | 'new';

export interface UpstreamConfig {
  url: string;
  connectTimeoutMs: number;
  ttfbTimeoutMs: number;
  idleTimeoutMs: number;
  /** null: no cap (one connection per concurrent request, up to the fd limit). */
  maxSockets: number | null;
  /** Requests allowed to wait for a connection; null: no limit. */
  maxPending: number | null;
  poolTimeoutMs: number;
  keepAliveTimeoutMs: number;
  hostHeader: 'upstream' | 'client';
  tlsInsecure: boolean;
  /** Connections opened at start, before the first request (absent: none). */
  preconnect?: number;
}

export type KeySource =
  | { kind: 'header'; name: string }
  | { kind: 'cookie'; name: string }
  | { kind: 'query'; name: string }
  | { kind: 'client_address' };

/** Where a segment reads the value it matches: a request header, a cookie or a query parameter. */
export type SegmentSource = { kind: 'header' | 'cookie' | 'query'; name: string };

/** How a segment tests that value; a regex is compiled once, when the config is loaded. */
export type SegmentTest =
  | { kind: 'equals'; value: string }
  | { kind: 'in'; values: string[] }
  | { kind: 'prefix'; value: string }
  | { kind: 'regex'; pattern: string; regex: RegExp };

/** One targeted cohort (routing.segments): requests it matches get a fixed side or the segment's own weight. */
export interface SegmentConfig {
  name: string;
  source: SegmentSource;
  test: SegmentTest;
  /** A fixed side, or undefined when the segment has its own weight. */
  side: UpstreamName | undefined;
  /** The segment's own share on new, basis points; undefined with a fixed side. */
  weightBp: number | undefined;
  /** The segment's weight never exceeds the main weight. */
  capAtWeight: boolean;
}

/** rollout.shadow: a copy of some of legacy's requests sent to new, answered by nobody, judged on its own. */
export interface ShadowConfig {
  /** Share of legacy-bound requests mirrored, basis points (0 = off); a saved state wins over it. */
  percentBp: number;
  maxInflight: number;
  maxBodyBytes: number;
  timeoutMs: number;
  /** Upper-case methods mirrored. */
  methods: string[];
  /** Paths mirrored: exact, or a prefix when ending in `*`. */
  paths: string[];
  /** A breach in the shadow stops it (rollback) or is only recorded (alert_only). */
  onBreach: 'rollback' | 'alert_only';
}

export type SloMetric =
  | 'ttfb_p50'
  | 'ttfb_p90'
  | 'ttfb_p95'
  | 'ttfb_p99'
  | 'duration_p95'
  | 'error_rate'
  // Token accounting's metrics (measured on streams; see src/measure/token-window.ts).
  | 'itl_p50'
  | 'itl_p95'
  | 'itl_p99'
  | 'tpot_p95'
  | 'tokens_per_s_p5'
  | 'incomplete_rate'
  | 'inband_error_rate'
  | 'empty_rate';

/** act: a breach counts toward the guard's decisions; observe: evaluated, shown, exported, alerted, never acting. */
export type RuleAction = 'act' | 'observe';

/** One SLO rule on the new upstream's window: absolute, or relative to legacy in the same window. */
export type WindowRule = (
  | { name: string; text: string; metric: SloMetric; kind: 'absolute'; threshold: number; minSamples: number }
  | { name: string; text: string; metric: SloMetric; kind: 'ratio_to_legacy'; factor: number; minSamples: number }
  | { name: string; text: string; metric: SloMetric; kind: 'delta_over_legacy'; delta: number; minSamples: number }
) & {
  /** Absent means act. */
  action?: RuleAction;
};

/** One step of a progressive rollout and its own plan. */
export interface StepPlan {
  bp: number;
  /** Every rule must pass at this step for this long (on samples taken at this step) before the next one. */
  minDurationMs: number;
  /** auto: promote by itself; manual: wait at this step for an operator's promote. */
  gate: 'auto' | 'manual';
}

/**
 * A rule on a Prometheus query (what the backend itself exports: KV cache use, queue length): the query's
 * one value must stay at or below `max`, absolute or relative to `legacyQuery`'s value at the same time.
 */
export type QueryRule = { name: string; text: string; metric: 'query'; query: string; minSamples: 0 } & (
  | { kind: 'absolute'; threshold: number; legacyQuery?: undefined }
  | { kind: 'ratio_to_legacy'; factor: number; legacyQuery: string }
  | { kind: 'delta_over_legacy'; delta: number; legacyQuery: string }
);

/** A window rule or a query rule; either may be observe-only (`action: observe`). */
export type SloRule = (WindowRule | QueryRule) & { action?: RuleAction };

/** Where query rules read from: a Prometheus HTTP API, each query bounded by `timeoutMs`. */
export interface PrometheusSourceConfig {
  url: string;
  timeoutMs: number;
  /** Sent as `Authorization: Bearer`, read at load time from the variable `token_env` names. */
  bearerToken?: string;
}

export interface SloConfig {
  windowMs: number;
  slices: number;
  intervalMs: number;
  minSamples: number;
  consecutiveBreaches: number;
  onBreach: 'rollback' | 'step_down' | 'alert_only';
  cooldownMs: number;
  flapMaxFlips: number;
  flapPeriodMs: number;
  rules: SloRule[];
  prometheus?: PrometheusSourceConfig;
  /** One-sided confidence of the evidence bounds on rates (0.99). */
  confidence: number;
  /** Breaching evaluations at one step that act even when not consecutive; null: only consecutive_breaches. */
  failureLimit: number | null;
  /** A step inconclusive this long escalates; null: never. */
  inconclusiveLimitMs: number | null;
  onInconclusive: 'hold' | 'rollback';
}

/** One webhook told of decisions (src/notify). */
export interface NotifyConfig {
  name: string;
  url: string;
  events: ('rollback' | 'step' | 'promote' | 'kill' | 'resume' | 'latch' | 'gate' | 'breach' | 'inconclusive')[];
  /** With the `inconclusive` event: how long the rules must stay inconclusive before it is sent. */
  inconclusiveForMs?: number;
  format: 'json' | 'slack';
  /** Resolved at load time from `secret_env`; never logged. */
  secret?: string;
  timeoutMs: number;
  retryForMs: number;
  backoffMs: number;
  maxQueue: number;
}

export interface TokenConfig {
  name: string;
  role: 'operator' | 'read';
  /** Resolved at load time from `env` or `file`; never logged. */
  secret: string;
}

export interface Config {
  /** The file this config came from, when it came from one. */
  sourcePath?: string;
  listen: {
    host: string;
    port: number;
    tls?: { cert: string; key: string };
    maxHeaderSize: number;
    headersTimeoutMs: number;
    idleTimeoutMs: number;
    maxConcurrentStreams: number;
    maxConnections: number;
    maxSessionMemoryMb: number;
    /** HTTP/2 streams a client may reset before they are answered, at once (token bucket size). */
    streamResetBurst: number;
    /** ...and per second after that (refill rate). */
    streamResetRate: number;
  };
  upstreams: Record<UpstreamName, UpstreamConfig>;
  rollout: {
    id: string;
    salt: string;
    /** Initial weight in basis points (0..10000): the file's weight, else the first step, else 0. */
    weightBp: number;
    /** Progressive steps in basis points, increasing; empty when not progressive. */
    stepsBp: number[];
    /** The same steps with their own plans (min duration, gate), defaults filled in. */
    stepPlans: StepPlan[];
    stepMinDurationMs: number;
    autoPromote: boolean;
    shadow: ShadowConfig;
    /**
     * A fresh rollout starts in `shadowing` (0 % real traffic until the shadow passed every rule): steps are
     * set, the shadow is on, and the file gives no explicit weight.
     */
    shadowFirst: boolean;
  };
  routing: {
    keys: KeySource[];
    overrides: { new: string[]; legacy: string[] };
    forceHeader?: string;
    responseHeader: boolean;
    fallbackOnConnectError: boolean;
    /** Request header names with `_`: dropped, refused with 400, or passed on (some stacks fold `_` into `-`). */
    underscoreHeaders: 'drop' | 'reject' | 'pass';
    /** First match wins; see docs/routing.md for where segments sit among overrides and the weight. */
    segments: SegmentConfig[];
  };
  forwarding: {
    /** Keep a client's X-Forwarded-Proto/-Host/-For (true: veer sits behind a trusted proxy) or set them itself. */
    trustClient: boolean;
  };
  slo: SloConfig;
  admin: {
    enabled: boolean;
    host: string;
    port: number;
    tokens: TokenConfig[];
    readRequiresToken: boolean;
    maxBodyBytes: number;
    /** Host names (lower case, no port) the admin listener answers besides IP literals and localhost. */
    allowedHosts: string[];
  };
  state: { path: string; auditPath: string };
  log: { level: string; access: boolean };
  drain: { gracePeriodMs: number };
  /** Token accounting on the relay path. */
  measure: { tokenAccounting: boolean; streamFormat: 'auto' | 'openai' | 'responses' | 'anthropic' | 'generic' };
  reload: { watch: boolean };
  notify: NotifyConfig[];
  fleet: {
    enabled: boolean;
    redisUrl: string;
    usernameEnv?: string;
    passwordEnv?: string;
    tlsInsecure: boolean;
    keyPrefix: string;
    publishIntervalMs: number;
    leaseTtlMs: number;
    resyncIntervalMs: number;
    /** Start-up waits at most this long for Redis before the proxy listens (also ioredis' connectTimeout). */
    connectTimeoutMs: number;
    /** Every Redis command (both clients) fails after this long: a hung Redis is seen, not waited on. */
    commandTimeoutMs: number;
    /** How often each sidecar pings Redis (at most 1 s): a hang is seen within this plus commandTimeoutMs. */
    healthIntervalMs: number;
    /** How long a store seeded from config alone waits for a sidecar that remembers the fleet. */
    seedHoldMs: number;
    /** A sidecar with no state file and no store: `awaiting` serves legacy until its first sync; `config` serves the config. */
    startWithoutStore: 'awaiting' | 'config';
  };
}
