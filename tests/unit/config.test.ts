import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import schema from '../../config/veer.schema.json' with { type: 'json' };
import { withReference } from '../../scripts/config-reference.js';
import { buildConfig, ConfigError, type LoadEnv, loadConfigFile } from '../../src/config/load.js';

const base = () => ({
  upstreams: { legacy: { url: 'http://127.0.0.1:9101' }, new: { url: 'http://127.0.0.1:9102' } },
  rollout: { id: 'r1' },
});

const io: LoadEnv = {
  env: { VEER_TOKEN: 'a-long-enough-admin-token', SHORT: 'short' },
  readFile: (p) => {
    if (p === '/tokens/ops') return 'another-long-admin-token\n';
    if (p.endsWith('.pem')) return 'PEM';
    throw Object.assign(new Error('nope'), { code: 'ENOENT' });
  },
};

function set(doc: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const parts = path.split('.');
  let at: Record<string, unknown> = doc;
  for (const p of parts.slice(0, -1)) {
    at[p] = (at[p] as Record<string, unknown>) ?? {};
    at = at[p] as Record<string, unknown>;
  }
  at[parts.at(-1)!] = value;
  return doc;
}

/** Every field of the schema: [path, a valid value, an invalid value, words the error must contain]. */
const FIELDS: [string, unknown, unknown, string][] = [
  ['listen.host', '0.0.0.0', '', 'must NOT have fewer than 1 characters'],
  ['listen.port', 8080, 70000, 'must be <= 65535'],
  ['listen.tls', { cert: 'c.pem', key: 'k.pem' }, { cert: 'c.pem' }, 'listen.tls.key: is required'],
  [
    'listen.tls',
    { cert: 'c.pem', key: 'k.pem' },
    { cert: 'missing.crt', key: 'k.pem' },
    'listen.tls.cert: cannot read missing.crt',
  ],
  ['listen.tls', { cert: 'c.pem', key: 'k.pem' }, { cert: 'c.pem', key: 42 }, 'listen.tls.key: must be string'],
  ['listen.max_header_size', 32768, 10, 'must be >= 1024'],
  ['listen.headers_timeout', '5s', '5 parsecs', 'must be a duration'],
  ['listen.idle_timeout', 30000, -1, 'must be >= 0'],
  ['listen.max_concurrent_streams', 100, 0, 'must be >= 1'],
  ['listen.max_connections', 5000, 1.5, 'must be integer'],
  ['listen.max_session_memory_mb', 20, 0, 'must be >= 1'],
  ['listen.stream_reset_burst', 500, 0, 'must be >= 1'],
  ['listen.stream_reset_rate', 50, -1, 'must be >= 0'],
  ['upstreams.legacy.url', 'https://legacy.internal:8443/base', 'ftp://x', 'must be an http(s) URL'],
  ['upstreams.new.url', 'http://10.0.0.2:8000', 'not a url', 'must be an http(s) URL'],
  ['upstreams.new.connect_timeout', '500ms', true, 'must be a duration'],
  ['upstreams.new.ttfb_timeout', '1m', '1y', 'must be a duration'],
  ['upstreams.new.idle_timeout', '90s', 'soon', 'must be a duration'],
  ['upstreams.new.max_sockets', 64, 0, 'must be >= 1'],
  ['upstreams.new.max_pending', 0, -1, 'must be >= 0'],
  ['upstreams.new.pool_timeout', '2s', 'later', 'must be a duration'],
  ['upstreams.new.keep_alive_timeout', '10s', '-', 'must be a duration'],
  ['upstreams.new.host_header', 'client', 'server', 'must be one of "upstream", "client"'],
  ['upstreams.new.tls_insecure', true, 'yes', 'must be boolean'],
  ['upstreams.new.preconnect', 4, -1, 'must be >= 0'],
  ['rollout.id', 'llama-4-rollout.2026', 'has spaces', 'must match'],
  ['rollout.salt', 'cohort-b', '', 'must NOT have fewer than 1 characters'],
  ['rollout.weight', 12.5, 12.345, 'at most two decimals'],
  ['rollout.steps', [1, 5, 25, 50, 100], [5, 1], 'must be greater than the step before it'],
  [
    'rollout.steps',
    [{ weight: 5, min_duration: '1m' }, 25, { weight: 50, gate: 'manual' }, 100],
    [{ weight: 5, gate: 'later' }],
    'must be',
  ],
  ['rollout.steps', [5, 25], [{ weight: 25 }, { weight: 5 }], 'must be greater than the step before it'],
  ['rollout.step_min_duration', '10m', 'forever', 'must be a duration'],
  ['rollout.auto_promote', false, 'no', 'must be boolean'],
  ['rollout.shadow.percent', 5, 101, 'must be <= 100'],
  ['rollout.shadow.max_inflight', 16, 0, 'must be >= 1'],
  ['rollout.shadow.max_body', '512KiB', '1 parsec', 'must be a size'],
  ['rollout.shadow.timeout', '30s', 'soon', 'must be a duration'],
  ['rollout.shadow.methods', ['POST', 'PUT'], ['P O S T'], 'must match'],
  ['rollout.shadow.paths', ['/v1/*', '/health'], ['v1'], 'must match'],
  ['rollout.shadow.on_breach', 'alert_only', 'step_down', 'must be one of'],
  [
    'routing.keys',
    [{ header: 'x-user-id' }, { cookie: 'sid' }, { query: 'u' }, { client_address: true }],
    [{ header: 'a', cookie: 'b' }],
    'exactly one source',
  ],
  ['routing.overrides.new', ['alice', 'bob'], ['alice', 'alice'], 'duplicate items'],
  ['routing.overrides.legacy', ['vip'], [''], 'must NOT have fewer than 1 characters'],
  ['routing.force_header', { enabled: true, name: 'x-force' }, { enabled: true, name: 'bad header' }, 'must match'],
  ['routing.response_header', false, 1, 'must be boolean'],
  ['routing.fallback_on_connect_error', false, 'off', 'must be boolean'],
  ['routing.underscore_headers', 'reject', 'fold', 'must be one of'],
  ['forwarding.trust_client', true, 'maybe', 'must be boolean'],
  [
    'routing.segments',
    [
      { name: 'staff', match: { header: 'x-tenant', in: ['internal', 'qa'] }, side: 'new' },
      { name: 'free-tier', match: { cookie: 'plan', equals: 'free' }, weight: 50, cap_at_weight: true },
      { name: 'beta', match: { query: 'beta', regex: '^(1|yes)$' }, weight: 5 },
    ],
    [{ name: 'broken', match: { header: 'x-plan', regex: '(' }, side: 'new' }],
    'routing.segments[0].match.regex: not a valid regular expression',
  ],
  ['slo.window', '2m', '2 weeks', 'must be a duration'],
  ['slo.slices', 12, 0, 'must be >= 1'],
  ['slo.interval', '1s', 'often', 'must be a duration'],
  ['slo.min_samples', 20, 0, 'must be >= 1'],
  ['slo.consecutive_breaches', 3, 0, 'must be >= 1'],
  ['slo.on_breach', 'step_down', 'panic', 'must be one of'],
  ['slo.cooldown', '1m', 'a while', 'must be a duration'],
  ['slo.flap', { max_flips: 2, period: '5m' }, { max_flips: 0 }, 'must be >= 1'],
  ['slo.confidence', 0.95, 1, 'must be < 1'],
  ['slo.failure_limit', 3, 0, 'must be >= 1'],
  ['slo.inconclusive_limit', '10m', 'a while', 'must be a duration'],
  ['slo.on_inconclusive', 'rollback', 'panic', 'must be one of'],
  [
    'slo.rules',
    [
      'ttfb_p95 <= 550ms',
      { rule: 'error_rate <= 1%', min_samples: 200, name: 'errors' },
      { rule: 'ttfb_p99 <= 2s', action: 'observe' },
    ],
    ['ttfb_p95 <= fast'],
    'the threshold must be a duration',
  ],
  ['admin.enabled', false, 'no', 'must be boolean'],
  ['admin.host', '127.0.0.2', '', 'must NOT have fewer than 1 characters'],
  ['admin.port', 9000, 'eighty', 'must be integer'],
  [
    'admin.tokens',
    [
      { name: 'alice', env: 'VEER_TOKEN' },
      { name: 'ops', file: '/tokens/ops', role: 'read' },
    ],
    [{ name: 'bob', env: 'MISSING_TOKEN' }],
    'environment variable MISSING_TOKEN is not set',
  ],
  ['admin.read_requires_token', true, 'yes', 'must be boolean'],
  ['admin.max_body_bytes', 4096, 10, 'must be >= 256'],
  ['admin.allowed_hosts', ['veer-admin.ops.svc', 'localhost'], ['evil.example:8081'], 'must match'],
  ['state.path', '/var/lib/veer/state.json', '', 'must NOT have fewer than 1 characters'],
  ['state.audit_path', '/var/lib/veer/audit.jsonl', 7, 'must be string'],
  ['log.level', 'debug', 'loud', 'must be one of'],
  ['log.access', false, 'no', 'must be boolean'],
  ['drain.grace_period', '25s', 'later', 'must be a duration'],
  ['reload.watch', true, 'yes', 'must be boolean'],
  [
    'slo.prometheus',
    { url: 'http://prometheus:9090', timeout: '2s', token_env: 'VEER_TOKEN' },
    { url: 'http://prometheus:9090', token_env: 'MISSING_PROM_TOKEN' },
    'slo.prometheus.token_env: environment variable MISSING_PROM_TOKEN is not set',
  ],
  [
    'notify',
    [
      {
        name: 'oncall',
        url: 'https://hooks.example/veer',
        events: ['rollback', 'kill', { inconclusive_for: '10m' }],
        format: 'slack',
        secret_env: 'VEER_TOKEN',
        timeout: '2s',
        retry_for: '1m',
        backoff: '500ms',
        max_queue: 10,
      },
    ],
    [{ name: 'oncall', url: 'https://hooks.example/veer', events: ['rollback'], secret_env: 'MISSING_SECRET' }],
    'notify[0].secret_env: environment variable MISSING_SECRET is not set',
  ],
  ['measure.token_accounting', false, 'off', 'must be boolean'],
  ['measure.stream_format', 'anthropic', 'xml', 'must be one of'],
  ['fleet.enabled', true, 'yes', 'must be boolean'],
  ['fleet.redis_url', 'rediss://redis:6380', 'http://redis', 'must match'],
  ['fleet.username_env', 'REDIS_USER', '1BAD', 'must match'],
  ['fleet.password_env', 'REDIS_PASSWORD', 'BAD-NAME', 'must match'],
  ['fleet.tls_insecure', true, 'yes', 'must be boolean'],
  ['fleet.key_prefix', 'veer:prod', 'has space', 'must match'],
  ['fleet.publish_interval', '1s', 'often', 'must be a duration'],
  ['fleet.lease_ttl', '3s', 'ages', 'must be a duration'],
  ['fleet.resync_interval', '10s', 'sometimes', 'must be a duration'],
  ['fleet.connect_timeout', '3s', 'soon', 'must be a duration'],
  ['fleet.command_timeout', '250ms', '10ms', 'must be at least 50ms'],
  ['fleet.health_interval', '1s', '2s', 'must be at most 1s'],
  ['fleet.seed_hold', '30s', 'a while', 'must be a duration'],
  ['fleet.start_without_store', 'config', 'legacy', 'must be one of'],
];

type S = { properties?: Record<string, S>; $ref?: string; items?: S };
function leafPaths(s: S, prefix: string): string[] {
  const out: string[] = [];
  for (const [name, raw] of Object.entries(s.properties ?? {})) {
    const path = prefix ? `${prefix}.${name}` : name;
    const resolved = raw.$ref === '#/definitions/upstream' ? (schema.definitions.upstream as S) : raw;
    if (resolved.properties && !['listen.tls', 'slo.flap', 'slo.prometheus', 'routing.force_header'].includes(path)) {
      out.push(...leafPaths(resolved, path));
    } else out.push(path);
  }
  return out;
}

describe('config validation', () => {
  it('has a valid and an invalid example for every field of the schema', () => {
    // Both upstreams share one definition: the examples for new cover legacy's fields too.
    const documented = new Set(FIELDS.map((f) => f[0]));
    const missing = leafPaths(schema as S, '').filter(
      (p) => !documented.has(p) && !documented.has(p.replace('upstreams.legacy.', 'upstreams.new.')),
    );
    expect(missing).toEqual([]);
  });

  it.each(FIELDS)('accepts a valid %s', (path, valid) => {
    const r = buildConfig(set(base(), path, valid), undefined, io);
    expect(r.ok ? [] : r.problems).toEqual([]);
  });

  it.each(FIELDS)('rejects an invalid %s naming the field and the reason', (path, _valid, invalid, words) => {
    const r = buildConfig(set(base(), path, invalid), undefined, io);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const line = r.problems.find((p) => p.startsWith(path) || p.startsWith(path.split('.').slice(0, -1).join('.')));
    expect(line, r.problems.join('\n')).toBeDefined();
    expect(line).toContain(words);
  });

  it('names the field in the issue form: upstreams.new.url: must be an http(s) URL', () => {
    const r = buildConfig(set(base(), 'upstreams.new.url', 'gopher://x'));
    expect(r.ok ? [] : r.problems).toEqual(['upstreams.new.url: must be an http(s) URL without query or fragment']);
  });

  it('reports every problem at once, one line each, and unknown fields by name', () => {
    const doc = set(set(set(base(), 'listen.port', -1), 'upstreams.new.bogus', 1), 'rollout.weight', 101);
    const r = buildConfig(doc);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toEqual(
      expect.arrayContaining([
        'listen.port: must be >= 0',
        'upstreams.new.bogus: unknown field',
        'rollout.weight: must be <= 100',
      ]),
    );
    expect(r.problems).toHaveLength(3);
  });

  it('requires the upstreams and the rollout id', () => {
    const r = buildConfig({ rollout: {} });
    expect(r.ok ? [] : r.problems).toEqual(['upstreams: is required', 'rollout.id: is required']);
  });

  it('refuses a non-loopback admin listener without an operator token', () => {
    const r = buildConfig(set(base(), 'admin.host', '0.0.0.0'), undefined, io);
    expect(r.ok ? [] : r.problems).toEqual([
      'admin.tokens: an operator token is required when admin.host is not a loopback address',
    ]);
    const withToken = buildConfig(
      set(set(base(), 'admin.host', '0.0.0.0'), 'admin.tokens', [{ name: 'a', env: 'VEER_TOKEN' }]),
      undefined,
      io,
    );
    expect(withToken.ok).toBe(true);
  });

  it('refuses admin tokens shorter than 16 characters', () => {
    const r = buildConfig(set(base(), 'admin.tokens', [{ name: 'a', env: 'SHORT' }]), undefined, io);
    expect(r.ok ? [] : r.problems).toEqual(['admin.tokens[0]: a token must be at least 16 characters']);
  });

  it('applies the documented defaults', () => {
    const r = buildConfig(base());
    if (!r.ok) throw new Error(r.problems.join());
    const c = r.config;
    expect(c.listen).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      maxHeaderSize: 16384,
      headersTimeoutMs: 10_000,
      maxConcurrentStreams: 256,
    });
    expect(c.upstreams.new).toMatchObject({
      connectTimeoutMs: 2000,
      ttfbTimeoutMs: 30_000,
      idleTimeoutMs: 60_000,
      maxSockets: null,
      maxPending: null,
      poolTimeoutMs: 10_000,
    });
    expect(c.rollout).toMatchObject({ id: 'r1', salt: 'r1', weightBp: 0, stepsBp: [], autoPromote: true });
    expect(c.routing.keys).toEqual([
      { kind: 'header', name: 'x-user-id' },
      { kind: 'header', name: 'x-session-id' },
    ]);
    expect(c.routing).toMatchObject({ responseHeader: true, fallbackOnConnectError: true, forceHeader: undefined });
    expect(c.slo).toMatchObject({
      windowMs: 60_000,
      slices: 6,
      intervalMs: 5000,
      minSamples: 100,
      onBreach: 'rollback',
      rules: [],
    });
    expect(c.admin).toMatchObject({ enabled: true, host: '127.0.0.1', port: 8081, maxBodyBytes: 65_536 });
    expect(c.drain.gracePeriodMs).toBe(20_000);
  });

  it('turns weights into basis points and parses SLO rules', () => {
    const doc = set(set(base(), 'rollout.weight', 12.34), 'slo.rules', [
      'ttfb_p95 <= 550ms',
      'error_rate <= 1%',
      'ttfb_p99 <= 1.5 x legacy',
      'error_rate <= legacy + 0.5%',
    ]);
    const r = buildConfig(doc);
    if (!r.ok) throw new Error(r.problems.join());
    expect(r.config.rollout.weightBp).toBe(1234);
    expect(r.config.slo.rules.map((x) => [x.name, x.kind])).toEqual([
      ['ttfb_p95', 'absolute'],
      ['error_rate', 'absolute'],
      ['ttfb_p99_vs_legacy', 'ratio_to_legacy'],
      ['error_rate_over_legacy', 'delta_over_legacy'],
    ]);
    expect(r.config.slo.rules[0]).toMatchObject({ threshold: 550 });
    expect(r.config.slo.rules[1]).toMatchObject({ threshold: 0.01 });
  });
});

describe('config weights', () => {
  it('accepts every weight from 0 to 100 with two decimals, as the basis point it names', () => {
    const refused: number[] = [];
    for (let bp = 0; bp <= 10_000; bp++) {
      const weight = Number((bp / 100).toFixed(2));
      const r = buildConfig(set(base(), 'rollout.weight', weight));
      if (!r.ok || r.config.rollout.weightBp !== bp) refused.push(weight);
    }
    expect(refused).toEqual([]);
  });

  it('starts a stepped rollout at its first step when no weight is given, and at 0 when weight: 0 is', () => {
    const steps = set(base(), 'rollout.steps', [1, 5, 100]);
    const implicit = buildConfig(steps);
    if (!implicit.ok) throw new Error(implicit.problems.join());
    expect(implicit.config.rollout.weightBp).toBe(100);
    const dark = buildConfig(set(set(base(), 'rollout.steps', [1, 5, 100]), 'rollout.weight', 0));
    if (!dark.ok) throw new Error(dark.problems.join());
    expect(dark.config.rollout.weightBp).toBe(0);
  });

  it('accepts steps written with one or two decimals', () => {
    const r = buildConfig(set(base(), 'rollout.steps', [0.07, 0.29, 1.15, 2.3, 4.6, 33.33, 100]));
    if (!r.ok) throw new Error(r.problems.join());
    expect(r.config.rollout.stepsBp).toEqual([7, 29, 115, 230, 460, 3333, 10_000]);
  });
});

describe('config files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'veer-config-'));

  it('loads YAML and JSON files alike', async () => {
    writeFileSync(
      join(dir, 'a.yaml'),
      'upstreams:\n  legacy: {url: "http://a"}\n  new: {url: "http://b"}\nrollout: {id: r, weight: 5}\n',
    );
    writeFileSync(join(dir, 'a.json'), JSON.stringify({ ...base(), rollout: { id: 'r', weight: 5 } }));
    expect((await loadConfigFile(join(dir, 'a.yaml'))).rollout.weightBp).toBe(500);
    expect((await loadConfigFile(join(dir, 'a.json'))).rollout.weightBp).toBe(500);
  });

  it('names unreadable and unparsable files', async () => {
    await expect(loadConfigFile(join(dir, 'missing.yaml'))).rejects.toThrow(/cannot read .*missing\.yaml \(ENOENT\)/);
    writeFileSync(join(dir, 'broken.json'), '{"upstreams": ');
    const err = await loadConfigFile(join(dir, 'broken.json')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems[0]).toMatch(/^\(file\): cannot parse/);
  });

  it('validates the bundled default config', async () => {
    const c = await loadConfigFile(new URL('../../config/veer.yaml', import.meta.url).pathname);
    expect(c.slo.rules.map((r) => r.text)).toEqual(expect.arrayContaining(['ttfb_p95 <= 550ms', 'error_rate <= 1%']));
  });

  it("keeps docs/config.md's config reference in step with the schema (npm run docs:config)", () => {
    const readme = readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8');
    expect(withReference(readme)).toBe(readme);
  });
});

describe('the judgement settings of issue #24', () => {
  const doc = {
    upstreams: { legacy: { url: 'http://127.0.0.1:9001' }, new: { url: 'http://127.0.0.1:9002' } },
    rollout: {
      id: 'issue-24',
      steps: [{ weight: 5, min_duration: '1m' }, 25, { weight: 50, gate: 'manual' }, 100],
    },
    slo: {
      confidence: 0.99,
      inconclusive_limit: '10m',
      on_inconclusive: 'hold',
      failure_limit: 3,
      rules: ['error_rate <= 1%', { rule: 'ttfb_p99 <= 2s', action: 'observe' }],
    },
  };

  it('reads per-step plans, the evidence settings and an observe rule', () => {
    const r = buildConfig(doc);
    if (!r.ok) throw new Error(r.problems.join('\n'));
    const c = r.config;
    expect(c.rollout.weightBp).toBe(500);
    expect(c.rollout.stepsBp).toEqual([500, 2500, 5000, 10_000]);
    expect(c.rollout.stepPlans).toEqual([
      { bp: 500, minDurationMs: 60_000, gate: 'auto' },
      { bp: 2500, minDurationMs: 300_000, gate: 'auto' },
      { bp: 5000, minDurationMs: 300_000, gate: 'manual' },
      { bp: 10_000, minDurationMs: 300_000, gate: 'auto' },
    ]);
    expect(c.slo).toMatchObject({
      confidence: 0.99,
      inconclusiveLimitMs: 600_000,
      onInconclusive: 'hold',
      failureLimit: 3,
    });
    expect(c.slo.rules.map((x) => [x.name, x.action ?? 'act'])).toEqual([
      ['error_rate', 'act'],
      ['ttfb_p99', 'observe'],
    ]);
  });

  it('defaults to 0.99, no failure budget, no stall limit, hold; auto_promote false makes every step manual', () => {
    const r = buildConfig({ ...doc, rollout: { id: 'x', steps: [5, 50], auto_promote: false }, slo: {} });
    if (!r.ok) throw new Error(r.problems.join('\n'));
    expect(r.config.slo).toMatchObject({
      confidence: 0.99,
      failureLimit: null,
      inconclusiveLimitMs: null,
      onInconclusive: 'hold',
    });
    expect(r.config.rollout.stepPlans.map((p) => p.gate)).toEqual(['manual', 'manual']);
  });

  it('names the bad field inside a step object, not the step as a whole', () => {
    const r = buildConfig({ ...doc, rollout: { id: 'x', steps: [{ weight: 5, min_duration: 'forever' }] } });
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.problems).toEqual(['rollout.steps[0].min_duration: must be a duration such as 250ms, 2s or 1m']);
  });
});
