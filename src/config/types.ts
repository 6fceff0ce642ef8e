// The typed, defaults-applied configuration every other module receives.

export type UpstreamName = 'legacy' | 'new';

export interface UpstreamConfig {
  url: string;
  connectTimeoutMs: number;
  ttfbTimeoutMs: number;
  idleTimeoutMs: number;
  maxSockets: number;
  keepAliveTimeoutMs: number;
  hostHeader: 'upstream' | 'client';
  tlsInsecure: boolean;
}

export type KeySource =
  | { kind: 'header'; name: string }
  | { kind: 'cookie'; name: string }
  | { kind: 'query'; name: string }
  | { kind: 'client_address' };

export type SloMetric = 'ttfb_p50' | 'ttfb_p90' | 'ttfb_p95' | 'ttfb_p99' | 'duration_p95' | 'error_rate';

/** One SLO rule on the new upstream: absolute, or relative to legacy in the same window. */
export type SloRule =
  | { name: string; text: string; metric: SloMetric; kind: 'absolute'; threshold: number; minSamples: number }
  | { name: string; text: string; metric: SloMetric; kind: 'ratio_to_legacy'; factor: number; minSamples: number }
  | { name: string; text: string; metric: SloMetric; kind: 'delta_over_legacy'; delta: number; minSamples: number };

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
    stepMinDurationMs: number;
    autoPromote: boolean;
  };
  routing: {
    keys: KeySource[];
    overrides: { new: string[]; legacy: string[] };
    forceHeader?: string;
    responseHeader: boolean;
    fallbackOnConnectError: boolean;
  };
  slo: SloConfig;
  admin: {
    enabled: boolean;
    host: string;
    port: number;
    tokens: TokenConfig[];
    readRequiresToken: boolean;
    maxBodyBytes: number;
  };
  state: { path: string; auditPath: string };
  log: { level: string; access: boolean };
  drain: { gracePeriodMs: number };
  reload: { watch: boolean };
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
  };
}
