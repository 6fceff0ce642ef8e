// Response schemas of the admin API, compiled once into fast-json-stringify serializers.

import fastJson, { type Schema } from 'fast-json-stringify';

const nullableNumber: Schema = { type: 'number', nullable: true };
const nullableString: Schema = { type: 'string', nullable: true };

const change: Schema = {
  type: 'object',
  nullable: true,
  properties: {
    time: { type: 'string' },
    actor: { type: 'string' },
    action: { type: 'string' },
    reason: { type: 'string' },
  },
  required: ['time', 'actor', 'action', 'reason'],
};

export const rolloutSchema: Schema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    state: { type: 'string' },
    weight_percent: { type: 'number' },
    step: { type: 'integer', nullable: true },
    steps: { type: 'array', items: { type: 'number' } },
    kill_reason: nullableString,
    latched: { type: 'boolean' },
    gate: {
      type: 'object',
      nullable: true,
      properties: {
        next_percent: { type: 'number' },
        waiting_for_approval: { type: 'boolean' },
        eligible_at: nullableString,
        manual: { type: 'boolean' },
        min_duration_ms: { type: 'number' },
      },
      required: ['next_percent', 'waiting_for_approval', 'eligible_at'],
    },
    stalled: {
      type: 'object',
      nullable: true,
      properties: {
        since: { type: 'string' },
        limit_ms: { type: 'number' },
        on_inconclusive: { type: 'string' },
      },
    },
    last_change: change,
    version: { type: 'integer' },
  },
  required: [
    'id',
    'state',
    'weight_percent',
    'step',
    'steps',
    'kill_reason',
    'latched',
    'gate',
    'last_change',
    'version',
  ],
};

const upstream: Schema = {
  type: 'object',
  properties: {
    url: { type: 'string' },
    ttfb_p50_ms: nullableNumber,
    ttfb_p95_ms: nullableNumber,
    ttfb_p99_ms: nullableNumber,
    error_rate: nullableNumber,
    samples: { type: 'integer' },
    requests: { type: 'integer' },
    errors: { type: 'integer' },
    inflight: { type: 'integer' },
    oldest_waiting_ms: { type: 'number' },
    requests_total: { type: 'integer' },
    connected: { type: 'integer' },
    pending: { type: 'integer' },
    max_sockets: { type: 'integer', nullable: true },
  },
};

const rule: Schema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    text: { type: 'string' },
    status: { type: 'string' },
    value: nullableNumber,
    threshold: nullableNumber,
    legacy: nullableNumber,
    unit: { type: 'string' },
    samples: { type: 'integer' },
    min_samples: { type: 'integer' },
    detail: { type: 'string' },
    action: { type: 'string' },
    lower: nullableNumber,
    upper: nullableNumber,
    waiting: { type: 'integer' },
    decided_by: nullableString,
  },
};

const overrides: Schema = {
  type: 'object',
  properties: {
    new: { type: 'array', items: { type: 'string' } },
    legacy: { type: 'array', items: { type: 'string' } },
  },
  required: ['new', 'legacy'],
};

const sides: Schema = {
  type: 'object',
  properties: { new: { type: 'integer' }, legacy: { type: 'integer' } },
  required: ['new', 'legacy'],
};

export const shadowSchema: Schema = {
  type: 'object',
  properties: {
    percent: { type: 'number' },
    set_percent: { type: 'number' },
    inflight: { type: 'integer' },
    max_inflight: { type: 'integer' },
    max_body_bytes: { type: 'integer' },
    timeout_ms: { type: 'number' },
    methods: { type: 'array', items: { type: 'string' } },
    paths: { type: 'array', items: { type: 'string' } },
    on_breach: { type: 'string' },
    window: upstream,
    rules: { type: 'array', items: rule },
    eligible_at: nullableString,
  },
};

const segment: Schema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    side: nullableString,
    weight_percent: nullableNumber,
    requests: sides,
  },
};

export const serializeStatus = fastJson({
  type: 'object',
  properties: {
    rollout: rolloutSchema,
    shadow: shadowSchema,
    segments: { type: 'array', items: segment },
    upstreams: { type: 'object', properties: { legacy: upstream, new: upstream } },
    slo: {
      type: 'object',
      properties: {
        on_breach: { type: 'string' },
        interval_ms: { type: 'number' },
        window_ms: { type: 'number' },
        confidence: { type: 'number' },
        failure_limit: nullableNumber,
        step_breaches: { type: 'integer' },
        inconclusive_limit_ms: nullableNumber,
        on_inconclusive: { type: 'string' },
        evaluated_at: nullableString,
        rules: { type: 'array', items: rule },
      },
    },
    overrides,
    version: { type: 'string' },
    fleet: {
      type: 'object',
      nullable: true,
      properties: {
        state: { type: 'string' },
        connected: { type: 'boolean' },
        member: { type: 'string' },
        leader: nullableString,
        is_leader: { type: 'boolean' },
        version: { type: 'integer', nullable: true },
        last_sync: nullableString,
        pending_changes: { type: 'integer' },
      },
    },
    time: { type: 'string' },
  },
});

export const serializeShadow = fastJson({
  type: 'object',
  properties: { rollout: rolloutSchema, shadow: shadowSchema },
});

export const serializeRollout = fastJson({
  type: 'object',
  properties: { rollout: rolloutSchema, fleet: { type: 'string' } },
});

export const serializeOverrides = fastJson(overrides);

const summary: Schema = {
  type: 'object',
  nullable: true,
  properties: {
    rollout_id: { type: 'string' },
    state: { type: 'string' },
    weight_percent: { type: 'number' },
    latched: { type: 'boolean' },
    kill_reason: nullableString,
  },
};

export const serializeAudit = fastJson({
  type: 'object',
  properties: {
    entries: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          time: { type: 'string' },
          actor: { type: 'string' },
          action: { type: 'string' },
          reason: { type: 'string' },
          rollout_id: { type: 'string' },
          before: summary,
          after: summary,
          rules: { type: 'array', items: rule },
          detail: { type: 'object', additionalProperties: true },
        },
      },
    },
  },
});

export const serializeReload = fastJson({
  type: 'object',
  properties: {
    reloaded: { type: 'boolean' },
    rollout_id: { type: 'string' },
    changed: { type: 'array', items: { type: 'string' } },
    restart_required: { type: 'array', items: { type: 'string' } },
  },
});

export const serializeError = fastJson({
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        problems: { type: 'array', items: { type: 'string' } },
      },
    },
  },
});
