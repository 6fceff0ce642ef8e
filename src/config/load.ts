// Loading and validating the config file: YAML or JSON in, a typed Config or one problem per field out.

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { parseQueryRule } from './query-rule.js';
import { parseRule } from './rule.js';
import { schemaProblems, validateSchema } from './schema-check.js';
import { segmentConfigs } from './segments.js';
import { shadowConfig } from './shadow.js';
import type {
  Config,
  KeySource,
  NotifyConfig,
  PrometheusSourceConfig,
  SloRule,
  StepPlan,
  TokenConfig,
  UpstreamConfig,
} from './types.js';
import { parseDuration } from './units.js';

export { DEFAULT_CONFIG_PATH, resolveConfigPath } from './path.js';

/** A config that cannot be used: every problem names the field path and the reason. */
export class ConfigError extends Error {
  readonly code = 'bad_config';
  constructor(
    readonly problems: string[],
    readonly sourcePath?: string,
  ) {
    super(`${sourcePath ? `${sourcePath}: ` : ''}invalid config\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: raw config is validated by the schema before it is read
type Raw = any;

const dur = (value: unknown, fallback: number): number => (value === undefined ? fallback : parseDuration(value)!);

function upstreamConfig(raw: Raw): UpstreamConfig {
  return {
    url: String(raw.url).replace(/\/+$/, ''),
    connectTimeoutMs: dur(raw.connect_timeout, 2000),
    ttfbTimeoutMs: dur(raw.ttfb_timeout, 30_000),
    idleTimeoutMs: dur(raw.idle_timeout, 60_000),
    maxSockets: raw.max_sockets ?? null,
    maxPending: raw.max_pending ?? null,
    poolTimeoutMs: dur(raw.pool_timeout, 10_000),
    keepAliveTimeoutMs: dur(raw.keep_alive_timeout, 4000),
    hostHeader: raw.host_header ?? 'upstream',
    tlsInsecure: raw.tls_insecure ?? false,
    preconnect: raw.preconnect ?? 2,
  };
}

/** A step written as a number takes the rollout-wide plan; an object overrides it for that step. */
function stepPlans(raw: Raw[], minDurationMs: number, autoPromote: boolean): StepPlan[] {
  return raw.map((st): StepPlan => {
    const weight: number = typeof st === 'number' ? st : st.weight;
    return {
      bp: Math.round(weight * 100),
      minDurationMs: typeof st === 'object' && st.min_duration !== undefined ? dur(st.min_duration, 0) : minDurationMs,
      gate: typeof st === 'object' && st.gate !== undefined ? st.gate : autoPromote ? 'auto' : 'manual',
    };
  });
}

function keySources(raw: Raw[] | undefined): KeySource[] {
  if (!raw)
    return [
      { kind: 'header', name: 'x-user-id' },
      { kind: 'header', name: 'x-session-id' },
    ];
  return raw.map((k): KeySource => {
    if (k.header !== undefined) return { kind: 'header', name: String(k.header).toLowerCase() };
    if (k.cookie !== undefined) return { kind: 'cookie', name: String(k.cookie) };
    if (k.query !== undefined) return { kind: 'query', name: String(k.query) };
    return { kind: 'client_address' };
  });
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

export interface LoadEnv {
  env: NodeJS.ProcessEnv;
  readFile: (path: string) => string;
}

const defaultEnv: LoadEnv = { env: process.env, readFile: (p) => readFileSync(p, 'utf8') };

/** Validates a parsed document and builds the typed Config; pure apart from reading token sources. */
export function buildConfig(
  doc: unknown,
  sourcePath?: string,
  io: LoadEnv = defaultEnv,
): { ok: true; config: Config } | { ok: false; problems: string[] } {
  if (!validateSchema(doc)) return { ok: false, problems: schemaProblems(validateSchema.errors ?? []) };
  const raw = doc as Raw;
  const problems: string[] = [];

  const rawSteps: Raw[] = raw.rollout.steps ?? [];
  const steps: number[] = rawSteps.map((st) => (typeof st === 'number' ? st : st.weight));
  for (let i = 1; i < steps.length; i++) {
    if (steps[i]! <= steps[i - 1]!) problems.push(`rollout.steps[${i}]: must be greater than the step before it`);
  }

  const segments = segmentConfigs(raw.routing?.segments, problems);
  const shadow = shadowConfig(raw.rollout.shadow);
  const shadowFirst = shadow.percentBp > 0 && steps.length > 0 && raw.rollout.weight === undefined;

  const slo = raw.slo ?? {};
  const minSamples: number = slo.min_samples ?? 100;
  const rules: SloRule[] = [];
  (slo.rules ?? []).forEach((r: Raw, i: number) => {
    if (typeof r === 'object' && typeof r.query === 'string') {
      const parsed = parseQueryRule(r, `slo.rules[${i}]`);
      if (!parsed.ok) problems.push(...parsed.problems);
      else if (rules.some((x) => x.name === parsed.rule.name))
        problems.push(`slo.rules[${i}]: duplicate rule name "${parsed.rule.name}"`);
      else rules.push({ ...parsed.rule, action: r.action ?? 'act' });
      return;
    }
    const text = typeof r === 'string' ? r : r.rule;
    const parsed = parseRule(
      text,
      typeof r === 'string' ? minSamples : (r.min_samples ?? minSamples),
      typeof r === 'string' ? undefined : r.name,
    );
    if (!parsed.ok) problems.push(`slo.rules[${i}]: ${parsed.reason}`);
    else if (rules.some((x) => x.name === parsed.rule.name))
      problems.push(`slo.rules[${i}]: duplicate rule name "${parsed.rule.name}"`);
    else rules.push(typeof r === 'string' ? parsed.rule : { ...parsed.rule, action: r.action ?? 'act' });
  });
  let prometheus: PrometheusSourceConfig | undefined;
  if (slo.prometheus) {
    let bearerToken: string | undefined;
    if (slo.prometheus.token_env !== undefined) {
      bearerToken = io.env[slo.prometheus.token_env];
      if (!bearerToken)
        problems.push(`slo.prometheus.token_env: environment variable ${slo.prometheus.token_env} is not set or empty`);
    }
    prometheus = {
      url: slo.prometheus.url.replace(/\/+$/, ''),
      timeoutMs: dur(slo.prometheus.timeout, 2000),
      bearerToken,
    };
  } else if (rules.some((rule) => rule.metric === 'query')) {
    problems.push('slo.prometheus: required when a rule has a query (e.g. { url: http://prometheus:9090 })');
  }
  const notify: NotifyConfig[] = [];
  (raw.notify ?? []).forEach((hook: Raw, i: number) => {
    if (notify.some((x) => x.name === hook.name))
      problems.push(`notify[${i}].name: duplicate webhook name "${hook.name}"`);
    let secret: string | undefined;
    if (hook.secret_env !== undefined) {
      secret = io.env[hook.secret_env];
      if (!secret)
        problems.push(`notify[${i}].secret_env: environment variable ${hook.secret_env} is not set or empty`);
    }
    const events: NotifyConfig['events'] = [];
    let inconclusiveForMs: number | undefined;
    for (const event of hook.events as (string | Raw)[]) {
      if (typeof event === 'string') events.push(event as NotifyConfig['events'][number]);
      else {
        events.push('inconclusive');
        inconclusiveForMs = dur(event.inconclusive_for, 0);
      }
    }
    notify.push({
      name: hook.name,
      url: hook.url,
      events,
      inconclusiveForMs,
      format: hook.format ?? 'json',
      secret,
      timeoutMs: dur(hook.timeout, 5000),
      retryForMs: dur(hook.retry_for, 300_000),
      backoffMs: dur(hook.backoff, 1000),
      maxQueue: hook.max_queue ?? 100,
    });
  });
  const windowMs = dur(slo.window, 60_000);
  const slices: number = slo.slices ?? 6;
  if (windowMs / slices < 100) problems.push('slo.window: must be at least 100ms per slice');
  const intervalMs = dur(slo.interval, 5000);
  if (intervalMs < 50) problems.push('slo.interval: must be at least 50ms');
  const fleetRaw = raw.fleet ?? {};
  if (dur(fleetRaw.health_interval, 500) > 1000)
    problems.push('fleet.health_interval: must be at most 1s (a hung Redis must be seen within about a second)');
  if (dur(fleetRaw.health_interval, 500) < 50) problems.push('fleet.health_interval: must be at least 50ms');
  if (dur(fleetRaw.command_timeout, 500) < 50) problems.push('fleet.command_timeout: must be at least 50ms');
  if (dur(fleetRaw.connect_timeout, 2000) < 100) problems.push('fleet.connect_timeout: must be at least 100ms');

  const admin = raw.admin ?? {};
  const adminHost: string = admin.host ?? '127.0.0.1';
  const tokens: TokenConfig[] = [];
  (admin.tokens ?? []).forEach((t: Raw, i: number) => {
    let secret: string | undefined;
    if (t.env !== undefined) {
      secret = io.env[t.env];
      if (!secret) problems.push(`admin.tokens[${i}].env: environment variable ${t.env} is not set or empty`);
    } else {
      try {
        secret = io.readFile(t.file).split('\n')[0]!.trim();
        if (!secret) problems.push(`admin.tokens[${i}].file: ${t.file} is empty`);
      } catch (err) {
        problems.push(
          `admin.tokens[${i}].file: cannot read ${t.file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        );
      }
    }
    if (secret && secret.length < 16) problems.push(`admin.tokens[${i}]: a token must be at least 16 characters`);
    if (tokens.some((x) => x.name === t.name))
      problems.push(`admin.tokens[${i}].name: duplicate token name "${t.name}"`);
    if (secret) tokens.push({ name: t.name, role: t.role ?? 'operator', secret });
  });
  const adminEnabled: boolean = admin.enabled ?? true;
  if (
    adminEnabled &&
    !isLoopback(adminHost) &&
    !(admin.tokens ?? []).some((t: Raw) => (t.role ?? 'operator') === 'operator')
  ) {
    problems.push('admin.tokens: an operator token is required when admin.host is not a loopback address');
  }

  // A key or force header named with `_` would be dropped (or refused) before veer routes on it.
  if ((raw.routing?.underscore_headers ?? 'drop') !== 'pass') {
    const mode = raw.routing?.underscore_headers ?? 'drop';
    (raw.routing?.keys ?? []).forEach((k: Raw, i: number) => {
      if (typeof k.header === 'string' && k.header.includes('_'))
        problems.push(
          `routing.keys[${i}].header: "${k.header}" has "_", which routing.underscore_headers: ${mode} takes off every request; rename it or set underscore_headers: pass`,
        );
    });
    const force = raw.routing?.force_header;
    if (force?.enabled && typeof force.name === 'string' && force.name.includes('_'))
      problems.push(
        `routing.force_header.name: "${force.name}" has "_", which routing.underscore_headers: ${mode} takes off every request; rename it or set underscore_headers: pass`,
      );
  }

  const tls = raw.listen?.tls;
  if (tls) {
    for (const field of ['cert', 'key'] as const) {
      try {
        io.readFile(tls[field]);
      } catch (err) {
        problems.push(
          `listen.tls.${field}: cannot read ${tls[field]} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        );
      }
    }
  }

  if (problems.length > 0) return { ok: false, problems };

  const listen = raw.listen ?? {};
  const routing = raw.routing ?? {};
  const fleet = raw.fleet ?? {};
  const config: Config = {
    sourcePath,
    listen: {
      host: listen.host ?? '127.0.0.1',
      port: listen.port ?? 8080,
      tls: tls ? { cert: tls.cert, key: tls.key } : undefined,
      maxHeaderSize: listen.max_header_size ?? 16384,
      headersTimeoutMs: dur(listen.headers_timeout, 10_000),
      idleTimeoutMs: dur(listen.idle_timeout, 65_000),
      maxConcurrentStreams: listen.max_concurrent_streams ?? 256,
      maxConnections: listen.max_connections ?? 10_000,
      maxSessionMemoryMb: listen.max_session_memory_mb ?? 10,
      streamResetBurst: listen.stream_reset_burst ?? 200,
      streamResetRate: listen.stream_reset_rate ?? 20,
    },
    upstreams: { legacy: upstreamConfig(raw.upstreams.legacy), new: upstreamConfig(raw.upstreams.new) },
    rollout: {
      id: raw.rollout.id,
      salt: raw.rollout.salt ?? raw.rollout.id,
      // No weight: a stepped rollout starts at its first step, or at 0 while a shadow judges new first. An
      // explicit 0 stays 0 (a dark launch).
      weightBp: shadowFirst ? 0 : Math.round((raw.rollout.weight ?? (steps.length > 0 ? steps[0]! : 0)) * 100),
      stepsBp: steps.map((s) => Math.round(s * 100)),
      stepPlans: stepPlans(rawSteps, dur(raw.rollout.step_min_duration, 300_000), raw.rollout.auto_promote ?? true),
      stepMinDurationMs: dur(raw.rollout.step_min_duration, 300_000),
      autoPromote: raw.rollout.auto_promote ?? true,
      shadow,
      shadowFirst,
    },
    routing: {
      keys: keySources(routing.keys),
      overrides: { new: routing.overrides?.new ?? [], legacy: routing.overrides?.legacy ?? [] },
      forceHeader: routing.force_header?.enabled
        ? String(routing.force_header.name ?? 'x-veer-force').toLowerCase()
        : undefined,
      responseHeader: routing.response_header ?? true,
      fallbackOnConnectError: routing.fallback_on_connect_error ?? true,
      underscoreHeaders: routing.underscore_headers ?? 'drop',
      segments,
    },
    forwarding: { trustClient: raw.forwarding?.trust_client ?? false },
    slo: {
      windowMs,
      slices,
      intervalMs,
      minSamples,
      consecutiveBreaches: slo.consecutive_breaches ?? 1,
      onBreach: slo.on_breach ?? 'rollback',
      cooldownMs: dur(slo.cooldown, 30_000),
      flapMaxFlips: slo.flap?.max_flips ?? 3,
      flapPeriodMs: dur(slo.flap?.period, 600_000),
      rules,
      prometheus,
      confidence: slo.confidence ?? 0.99,
      failureLimit: slo.failure_limit ?? null,
      inconclusiveLimitMs: slo.inconclusive_limit === undefined ? null : dur(slo.inconclusive_limit, 0),
      onInconclusive: slo.on_inconclusive ?? 'hold',
    },
    admin: {
      enabled: adminEnabled,
      host: adminHost,
      port: admin.port ?? 8081,
      tokens,
      readRequiresToken: admin.read_requires_token ?? false,
      maxBodyBytes: admin.max_body_bytes ?? 65_536,
      allowedHosts: (admin.allowed_hosts ?? []).map((h: string) => h.toLowerCase()),
    },
    state: {
      path: raw.state?.path ?? './veer-state.json',
      auditPath: raw.state?.audit_path ?? './veer-audit.jsonl',
    },
    log: { level: raw.log?.level ?? io.env.VEER_LOG_LEVEL ?? 'info', access: raw.log?.access ?? true },
    drain: { gracePeriodMs: dur(raw.drain?.grace_period, 20_000) },
    measure: {
      tokenAccounting: raw.measure?.token_accounting ?? true,
      streamFormat: raw.measure?.stream_format ?? 'auto',
    },
    reload: { watch: raw.reload?.watch ?? false },
    notify,
    fleet: {
      enabled: fleet.enabled ?? false,
      redisUrl: fleet.redis_url ?? 'redis://127.0.0.1:6379',
      usernameEnv: fleet.username_env,
      passwordEnv: fleet.password_env,
      tlsInsecure: fleet.tls_insecure ?? false,
      keyPrefix: fleet.key_prefix ?? 'veer',
      publishIntervalMs: dur(fleet.publish_interval, 2000),
      leaseTtlMs: dur(fleet.lease_ttl, 5000),
      resyncIntervalMs: dur(fleet.resync_interval, 5000),
      connectTimeoutMs: dur(fleet.connect_timeout, 2000),
      commandTimeoutMs: dur(fleet.command_timeout, 500),
      healthIntervalMs: dur(fleet.health_interval, 500),
      seedHoldMs: dur(fleet.seed_hold, 10_000),
      startWithoutStore: fleet.start_without_store ?? 'awaiting',
    },
  };
  return { ok: true, config };
}

/** Parses YAML or JSON text (JSON is valid YAML, but JSON files get JSON's own error messages). */
export function parseConfigText(text: string, sourcePath?: string): unknown {
  try {
    if (sourcePath?.endsWith('.json')) return JSON.parse(text);
    return parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw new ConfigError([`(file): cannot parse: ${(err as Error).message.split('\n')[0]}`], sourcePath);
  }
}

/** Reads, parses and validates a config file; throws ConfigError naming every bad field. */
export async function loadConfigFile(path: string, io: LoadEnv = defaultEnv): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`(file): cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`], path);
  }
  const result = buildConfig(parseConfigText(text, path), path, io);
  if (!result.ok) throw new ConfigError(result.problems, path);
  return result.config;
}
