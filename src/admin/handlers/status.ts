// GET /api/status and GET /api/series: the rollout, both upstreams' windows, the rules, and the dashboard's history.

import { performance } from 'node:perf_hooks';
import { metricUnit } from '../../config/slo-metrics.js';
import type { Config, UpstreamName } from '../../config/types.js';
import type { Controller } from '../../guard/controller.js';
import { guardActive, nextStepBp, ruleJson } from '../../guard/evaluate.js';
import { VERSION } from '../../version.js';
import type { FleetAck } from '../api-types.js';
import { bad } from '../body.js';
import type { AdminContext, ApiRoute } from '../context.js';
import { serializeRollout, serializeStatus } from '../schemas.js';
import { sendJson } from '../server.js';
import { segmentsJson, shadowJson } from './shadow-status.js';
import { windowJson } from './window-json.js';

export function rolloutJson(controller: Controller, config: Config) {
  const snapshot = controller.snapshot;
  const steps = config.rollout.stepsBp;
  const step = steps.indexOf(snapshot.weight_bp);
  // The next step follows the weight now in force; the last evaluation's eligibility only holds for the
  // weight it judged (a reply to weight or promote comes before the guard has judged the new weight).
  const stepping =
    (snapshot.state === 'progressing' || snapshot.state === 'holding') &&
    guardActive(snapshot.state, snapshot.weight_bp);
  const nextBp = stepping && steps.length > 0 ? nextStepBp(snapshot.weight_bp, steps) : null;
  const verdict = controller.lastVerdict;
  const fresh = verdict !== undefined && verdict.at >= snapshot.weight_since;
  const eligibleAt = fresh && verdict.gate ? verdict.gate.eligibleAt : null;
  const plan = config.rollout.stepPlans.find((p) => p.bp === snapshot.weight_bp);
  const stalledSince = fresh && guardActive(snapshot.state, snapshot.weight_bp) ? verdict.stalledSince : null;
  return {
    id: snapshot.rollout_id,
    state: snapshot.state,
    weight_percent: snapshot.weight_bp / 100,
    step: step < 0 ? null : step,
    steps: steps.map((bp) => bp / 100),
    kill_reason: snapshot.kill_reason,
    latched: snapshot.latched,
    gate:
      nextBp === null
        ? null
        : {
            next_percent: nextBp / 100,
            waiting_for_approval: snapshot.state === 'holding',
            eligible_at: eligibleAt === null ? null : new Date(eligibleAt).toISOString(),
            manual: (plan?.gate ?? (config.rollout.autoPromote ? 'auto' : 'manual')) === 'manual',
            min_duration_ms: plan?.minDurationMs ?? config.rollout.stepMinDurationMs,
          },
    stalled:
      stalledSince === null
        ? null
        : {
            since: new Date(stalledSince).toISOString(),
            limit_ms: config.slo.inconclusiveLimitMs ?? 0,
            on_inconclusive: config.slo.onInconclusive,
          },
    last_change: snapshot.last_change,
    version: snapshot.version,
  };
}

/** The answer to every rollout command: the rollout as it now stands, and in a fleet whether the store has it. */
export function rolloutReply(ctx: AdminContext, fleet?: FleetAck): string {
  return serializeRollout({ rollout: rolloutJson(ctx.controller, ctx.config()), fleet });
}

function upstreamJson(ctx: AdminContext, name: UpstreamName) {
  const pool = ctx.pools()[name];
  return {
    ...windowJson(ctx.config().upstreams[name].url, ctx.recorder.windows[name].snapshot()),
    inflight: ctx.recorder.inflight[name],
    oldest_waiting_ms: Math.round(ctx.recorder.waiting[name].oldestAgeMs(performance.now())),
    requests_total: ctx.recorder.finishedTotal[name],
    connected: pool.connected,
    pending: pool.pending,
    max_sockets: ctx.config().upstreams[name].maxSockets,
  };
}

/** The status; `withOverrides` only for a request that presented a valid token. */
export function statusJson(ctx: AdminContext, withOverrides = false) {
  const config = ctx.config();
  const controller = ctx.controller;
  const verdict = controller.lastVerdict;
  const rules = verdict
    ? verdict.rules.map(ruleJson)
    : config.slo.rules.map((rule) => ({
        name: rule.name,
        text: rule.text,
        status: 'inconclusive',
        value: null,
        threshold: rule.kind === 'absolute' ? rule.threshold : null,
        legacy: null,
        unit: rule.metric === 'query' ? 'value' : metricUnit(rule.metric),
        samples: 0,
        min_samples: rule.minSamples,
        action: rule.action ?? 'act',
        lower: null,
        upper: null,
        waiting: 0,
        decided_by: null,
      }));
  return {
    rollout: rolloutJson(controller, config),
    shadow: shadowJson(ctx),
    segments: segmentsJson(ctx),
    upstreams: { legacy: upstreamJson(ctx, 'legacy'), new: upstreamJson(ctx, 'new') },
    slo: {
      on_breach: config.slo.onBreach,
      interval_ms: config.slo.intervalMs,
      window_ms: config.slo.windowMs,
      confidence: config.slo.confidence,
      failure_limit: config.slo.failureLimit,
      step_breaches: controller.stepBreaches,
      inconclusive_limit_ms: config.slo.inconclusiveLimitMs,
      on_inconclusive: config.slo.onInconclusive,
      evaluated_at: verdict ? new Date(verdict.at).toISOString() : null,
      rules,
    },
    overrides: withOverrides ? controller.effectiveOverrides() : undefined,
    version: VERSION,
    fleet: ctx.fleet?.status() ?? null,
    time: new Date(ctx.clock()).toISOString(),
  };
}

export function statusRoutes(ctx: AdminContext): ApiRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/status',
      access: 'read',
      action: 'status',
      // Overrides only to a token holder: the keys are user identifiers, and bearer secrets onto new.
      handler: async (_req, res, _url, who) => sendJson(res, 200, serializeStatus(statusJson(ctx, who !== undefined))),
    },
    {
      method: 'GET',
      path: '/api/series',
      access: 'read',
      action: 'series',
      handler: async (_req, res, url) => {
        const raw = url.searchParams.get('since');
        if (raw !== null && !/^\d{1,16}$/.test(raw))
          throw bad(`since: must be epoch milliseconds, got "${raw.slice(0, 32)}"`);
        sendJson(
          res,
          200,
          JSON.stringify({
            interval_ms: ctx.series.intervalMs,
            capacity: ctx.series.capacity,
            time: new Date(ctx.clock()).toISOString(),
            points: ctx.series.since(raw === null ? undefined : Number(raw)),
          }),
        );
      },
    },
  ];
}
