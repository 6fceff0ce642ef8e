// The shadow and the segments as GET /api/status and PUT /api/shadow show them.

import { ruleJson } from '../../guard/evaluate.js';
import { shadowInForce } from '../../guard/shadow-judge.js';
import type { AdminContext } from '../context.js';
import { windowJson } from './window-json.js';

export function shadowJson(ctx: AdminContext) {
  const config = ctx.config();
  const shadow = config.rollout.shadow;
  const snapshot = ctx.controller.snapshot;
  const window = ctx.recorder.shadowWindow.snapshot();
  const verdict = ctx.controller.lastShadowVerdict;
  return {
    percent: shadowInForce(snapshot, config) / 100,
    set_percent: (snapshot.shadow_bp ?? shadow.percentBp) / 100,
    inflight: ctx.shadowInflight?.() ?? 0,
    max_inflight: shadow.maxInflight,
    max_body_bytes: shadow.maxBodyBytes,
    timeout_ms: shadow.timeoutMs,
    methods: shadow.methods,
    paths: shadow.paths,
    on_breach: shadow.onBreach,
    window: {
      ...windowJson(config.upstreams.new.url, window),
      inflight: ctx.shadowInflight?.() ?? 0,
      requests_total: window.requests,
    },
    rules: verdict ? verdict.rules.map(ruleJson) : [],
    eligible_at:
      verdict?.eligibleAt !== null && verdict?.eligibleAt !== undefined
        ? new Date(verdict.eligibleAt).toISOString()
        : null,
  };
}

export function segmentsJson(ctx: AdminContext) {
  const counts = ctx.segmentCounts?.();
  return ctx.controller.table.segments.map((segment) => ({
    name: segment.name,
    side: segment.side ?? null,
    weight_percent: segment.side === undefined ? segment.weightBp / 100 : null,
    requests: counts?.get(segment.name) ?? { new: 0, legacy: 0 },
  }));
}
