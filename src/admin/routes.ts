// The admin API under /api: status, kill, resume, weight, promote, rollback, overrides, reload, audit.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError } from '../config/load.js';
import type { Config, UpstreamName } from '../config/types.js';
import { type Controller, ControllerError } from '../guard/controller.js';
import { guardActive, nextStepBp, ruleJson } from '../guard/evaluate.js';
import type { Recorder } from '../measure/recorder.js';
import type { AuditLog } from '../state/audit.js';
import type { Principal, TokenAuth } from './auth.js';
import { AdminError, readJsonBody } from './body.js';
import type { SeriesSampler } from './dashboard/series.js';
import {
  serializeAudit,
  serializeError,
  serializeOverrides,
  serializeReload,
  serializeRollout,
  serializeStatus,
} from './schemas.js';
import { type AdminRoute, sendJson } from './server.js';

export interface ReloadOutcome {
  rolloutId: string;
  changed: string[];
  restartRequired: string[];
}

/** What the routes read and drive; getters, because a reload replaces config and tokens. */
export interface AdminContext {
  controller: Controller;
  recorder: Recorder;
  audit: AuditLog;
  config: () => Config;
  auth: () => TokenAuth;
  clock: () => number;
  /** Re-reads the config file; throws ConfigError when it is invalid (the old config keeps serving). */
  reload: (actor: string, reason?: string) => Promise<ReloadOutcome>;
  /** Waits until a change has reached the fleet's shared state (fleet mode); resolves at once otherwise. */
  settle?: () => Promise<void>;
  /** The dashboard's one-point-a-second history (GET /api/series). */
  series: SeriesSampler;
}

type Body = Record<string, unknown>;
type Handler = (req: IncomingMessage, res: ServerResponse, url: URL, who: Principal | undefined) => Promise<void>;

const MAX_REASON = 500;
const MAX_KEY = 256;
const MAX_KEYS_PER_CALL = 1000;
const MAX_RUNTIME_OVERRIDES = 10_000;

function sendAdminError(res: ServerResponse, status: number, code: string, message: string, problems?: string[]) {
  sendJson(res, status, serializeError({ error: { code, message, ...(problems ? { problems } : {}) } }));
}

const bad = (message: string) => new AdminError(400, 'bad_request', message);

/** The body as an object with only the allowed fields; a typo is named rather than ignored. */
async function objectBody(req: IncomingMessage, maxBytes: number, allowed: readonly string[]): Promise<Body> {
  const body = await readJsonBody(req, maxBytes);
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('body: must be a JSON object');
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) throw bad(`${k}: unknown field; allowed: ${allowed.join(', ') || '(none)'}`);
  }
  return body as Body;
}

function reasonOf(body: Body, required: boolean): string {
  const r = body.reason;
  if (r === undefined || r === null) {
    if (required) throw bad('reason: required (a short text for the audit log)');
    return '(no reason given)';
  }
  if (typeof r !== 'string') throw bad('reason: must be a string');
  const t = r.trim();
  if (t === '') {
    if (required) throw bad('reason: must not be empty');
    return '(no reason given)';
  }
  if (t.length > MAX_REASON) throw bad(`reason: must be at most ${MAX_REASON} characters`);
  return t;
}

/** Percent with at most two decimals, as basis points. */
function percentOf(body: Body): number {
  const p = body.percent;
  if (p === undefined) throw bad('percent: required (0..100)');
  if (typeof p !== 'number' || !Number.isFinite(p)) throw bad('percent: must be a number between 0 and 100');
  if (p < 0 || p > 100) throw bad(`percent: must be between 0 and 100, got ${p}`);
  const bp = Math.round(p * 100);
  if (Math.abs(bp - p * 100) > 1e-6) throw bad(`percent: at most two decimals, got ${p}`);
  return bp;
}

function keyOf(k: unknown, field: string): string {
  if (typeof k !== 'string' || k.length === 0) throw bad(`${field}: must be a non-empty string`);
  if (k.length > MAX_KEY) throw bad(`${field}: must be at most ${MAX_KEY} characters`);
  return k;
}

function rolloutJson(c: Controller, config: Config) {
  const s = c.snapshot;
  const steps = config.rollout.stepsBp;
  const step = steps.indexOf(s.weight_bp);
  // The next step follows the weight now in force; the last evaluation's eligibility only holds for the
  // weight it judged (a reply to weight or promote comes before the guard has judged the new weight).
  const stepping = (s.state === 'progressing' || s.state === 'holding') && guardActive(s.state, s.weight_bp);
  const nextBp = stepping && steps.length > 0 ? nextStepBp(s.weight_bp, steps) : null;
  const verdict = c.lastVerdict;
  const eligibleAt = verdict?.gate && verdict.at >= s.weight_since ? verdict.gate.eligibleAt : null;
  return {
    id: s.rollout_id,
    state: s.state,
    weight_percent: s.weight_bp / 100,
    step: step < 0 ? null : step,
    steps: steps.map((x) => x / 100),
    kill_reason: s.kill_reason,
    latched: s.latched,
    gate:
      nextBp === null
        ? null
        : {
            next_percent: nextBp / 100,
            waiting_for_approval: s.state === 'holding',
            eligible_at: eligibleAt === null ? null : new Date(eligibleAt).toISOString(),
          },
    last_change: s.last_change,
    version: s.version,
  };
}

function upstreamJson(ctx: AdminContext, name: UpstreamName) {
  const w = ctx.recorder.windows[name].snapshot();
  const q = (x: number) => {
    const v = w.ttfbQuantile(x);
    return v === undefined ? null : Math.round(v * 1000) / 1000;
  };
  return {
    url: ctx.config().upstreams[name].url,
    ttfb_p50_ms: q(0.5),
    ttfb_p95_ms: q(0.95),
    ttfb_p99_ms: q(0.99),
    error_rate: w.requests > 0 ? w.errorRate : null,
    samples: w.ttfbSamples,
    requests: w.requests,
    errors: w.errors,
    inflight: ctx.recorder.inflight[name],
    requests_total: ctx.recorder.finishedTotal[name],
  };
}

export function statusJson(ctx: AdminContext) {
  const config = ctx.config();
  const c = ctx.controller;
  const v = c.lastVerdict;
  const rules = v
    ? v.rules.map(ruleJson)
    : config.slo.rules.map((r) => ({
        name: r.name,
        text: r.text,
        status: 'inconclusive',
        value: null,
        threshold: r.kind === 'absolute' ? r.threshold : null,
        legacy: null,
        unit: r.metric === 'error_rate' ? 'ratio' : 'ms',
        samples: 0,
        min_samples: r.minSamples,
      }));
  return {
    rollout: rolloutJson(c, config),
    upstreams: { legacy: upstreamJson(ctx, 'legacy'), new: upstreamJson(ctx, 'new') },
    slo: {
      on_breach: config.slo.onBreach,
      interval_ms: config.slo.intervalMs,
      window_ms: config.slo.windowMs,
      evaluated_at: v ? new Date(v.at).toISOString() : null,
      rules,
    },
    overrides: c.effectiveOverrides(),
    time: new Date(ctx.clock()).toISOString(),
  };
}

export function apiRoutes(ctx: AdminContext): AdminRoute[] {
  const maxBody = () => ctx.config().admin.maxBodyBytes;
  const actorOf = (who: Principal | undefined) => (who ? `admin:${who.name}` : 'admin:anonymous');

  /**
   * Authentication first, then the handler; every AdminError/ControllerError becomes its JSON error.
   * A refused attempt on a mutating route is audited with whatever identity was presented.
   */
  const wrap =
    (access: 'read' | 'operate', action: string, handler: Handler) =>
    async (req: IncomingMessage, res: ServerResponse, url: URL) => {
      try {
        const auth = ctx.auth();
        let who: Principal | undefined;
        if (access === 'operate' || ctx.config().admin.readRequiresToken) {
          const r = auth.authenticate(req.headers.authorization);
          if (!r.ok) {
            const message = !auth.configured
              ? 'no admin tokens are configured: add admin.tokens to the config to allow changes'
              : r.reason === 'missing'
                ? 'send Authorization: Bearer <token>'
                : r.reason === 'malformed'
                  ? 'the Authorization header must be "Bearer <token>"'
                  : 'unknown token';
            if (access === 'operate') {
              ctx.controller.refused('anonymous', 'refused', message, {
                route: `${req.method} ${url.pathname}`,
                attempted: action,
                status: 401,
                auth: r.reason,
                remote: req.socket.remoteAddress ?? null,
              });
            }
            res.setHeader('www-authenticate', 'Bearer realm="veer-admin"');
            req.resume();
            sendAdminError(res, 401, 'unauthorized', message);
            return;
          }
          who = r.principal;
          if (access === 'operate' && who.role !== 'operator') {
            ctx.controller.refused(`admin:${who.name}`, 'refused', `token "${who.name}" is read-only`, {
              route: `${req.method} ${url.pathname}`,
              attempted: action,
              status: 403,
              remote: req.socket.remoteAddress ?? null,
            });
            req.resume();
            sendAdminError(res, 403, 'forbidden', `token "${who.name}" may read but not change the rollout`);
            return;
          }
        }
        await handler(req, res, url, who);
      } catch (err) {
        if (err instanceof AdminError || err instanceof ControllerError) {
          // After a 413 the rest of the body is not worth reading: answer, then close the connection.
          if (err.status === 413 && !res.headersSent) res.setHeader('connection', 'close');
          if (!res.headersSent) sendAdminError(res, err.status, err.code, err.message);
          return;
        }
        throw err;
      }
    };

  const rolloutReply = (res: ServerResponse) =>
    sendJson(res, 200, serializeRollout({ rollout: rolloutJson(ctx.controller, ctx.config()) }));
  const overridesReply = (res: ServerResponse) =>
    sendJson(res, 200, serializeOverrides(ctx.controller.effectiveOverrides()));

  /** A state command: parse, apply (persisted before the reply), answer with the rollout. */
  const command = (
    path: string,
    method: string,
    allowed: string[],
    apply: (body: Body, actor: string) => void,
  ): AdminRoute => ({
    method,
    path,
    handler: wrap('operate', path.slice(5), async (req, res, _url, who) => {
      const body = await objectBody(req, maxBody(), allowed);
      apply(body, actorOf(who));
      await ctx.settle?.();
      rolloutReply(res);
    }),
  });

  return [
    {
      method: 'GET',
      path: '/api/status',
      handler: wrap('read', 'status', async (_req, res) => sendJson(res, 200, serializeStatus(statusJson(ctx)))),
    },
    {
      method: 'GET',
      path: '/api/series',
      handler: wrap('read', 'series', async (_req, res, url) => {
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
      }),
    },
    command('/api/kill', 'POST', ['reason'], (b, actor) => ctx.controller.kill(actor, reasonOf(b, true))),
    command('/api/resume', 'POST', ['reason'], (b, actor) => ctx.controller.resume(actor, reasonOf(b, false))),
    command('/api/weight', 'PUT', ['percent', 'reason'], (b, actor) => {
      const bp = percentOf(b);
      ctx.controller.setWeight(actor, bp, reasonOf(b, true));
    }),
    command('/api/promote', 'POST', ['reason'], (b, actor) => ctx.controller.promote(actor, reasonOf(b, false))),
    command('/api/rollback', 'POST', ['reason'], (b, actor) => ctx.controller.rollback(actor, reasonOf(b, true))),
    {
      method: 'GET',
      path: '/api/overrides',
      handler: wrap('read', 'overrides', async (_req, res) => overridesReply(res)),
    },
    {
      method: 'PUT',
      path: '/api/overrides',
      handler: wrap('operate', 'overrides_set', async (req, res, _url, who) => {
        const body = await objectBody(req, maxBody(), ['keys', 'reason']);
        const keys = body.keys;
        if (keys === undefined) throw bad('keys: required, e.g. {"user-1": "new", "user-2": "legacy"}');
        if (typeof keys !== 'object' || keys === null || Array.isArray(keys))
          throw bad('keys: must be an object mapping each key to "new" or "legacy"');
        const entries = Object.entries(keys as Record<string, unknown>);
        if (entries.length === 0) throw bad('keys: must name at least one key');
        if (entries.length > MAX_KEYS_PER_CALL) throw bad(`keys: at most ${MAX_KEYS_PER_CALL} keys per call`);
        const pins: [string, UpstreamName][] = entries.map(([k, side]) => {
          keyOf(k, `keys["${k.slice(0, 32)}"]`);
          if (side !== 'new' && side !== 'legacy') throw bad(`keys["${k.slice(0, 64)}"]: must be "new" or "legacy"`);
          return [k, side];
        });
        const reason = reasonOf(body, true);
        const current = ctx.controller.snapshot.overrides;
        const existing = new Set([...current.new, ...current.legacy]);
        const added = pins.filter(([k]) => !existing.has(k)).length;
        if (existing.size + added > MAX_RUNTIME_OVERRIDES)
          throw new AdminError(
            409,
            'too_many_overrides',
            `keys: at most ${MAX_RUNTIME_OVERRIDES} runtime overrides; remove some first`,
          );
        ctx.controller.setOverrides(actorOf(who), pins, reason);
        await ctx.settle?.();
        overridesReply(res);
      }),
    },
    {
      method: 'DELETE',
      path: '/api/overrides',
      handler: wrap('operate', 'overrides_remove', async (req, res, _url, who) => {
        const body = await objectBody(req, maxBody(), ['keys', 'reason']);
        const keys = body.keys;
        if (keys === undefined) throw bad('keys: required, a list of keys to unpin');
        if (!Array.isArray(keys) || keys.length === 0) throw bad('keys: must be a non-empty list of strings');
        if (keys.length > MAX_KEYS_PER_CALL) throw bad(`keys: at most ${MAX_KEYS_PER_CALL} keys per call`);
        const list = keys.map((k, i) => keyOf(k, `keys[${i}]`));
        // A key the config file pins, with no runtime pin over it, cannot be removed here: answering 200
        // with the key still pinned would read as done. The whole call is refused, nothing is removed.
        const runtime = ctx.controller.snapshot.overrides;
        const pinnedAtRuntime = new Set([...runtime.new, ...runtime.legacy]);
        const fromFile = ctx.config().routing.overrides;
        const inFile = list.flatMap((k) => {
          if (pinnedAtRuntime.has(k)) return [];
          const side = fromFile.new.includes(k) ? 'new' : fromFile.legacy.includes(k) ? 'legacy' : undefined;
          return side ? [`"${k.slice(0, 64)}" (routing.overrides.${side})`] : [];
        });
        if (inFile.length > 0)
          throw new AdminError(
            409,
            'override_in_config',
            `keys: ${inFile.slice(0, 5).join(', ')}${inFile.length > 5 ? ` and ${inFile.length - 5} more` : ''} ` +
              'pinned by the config file; remove them there and reload, or PUT them to the other side. Nothing was removed',
          );
        ctx.controller.removeOverrides(actorOf(who), list, reasonOf(body, true));
        await ctx.settle?.();
        overridesReply(res);
      }),
    },
    {
      method: 'POST',
      path: '/api/reload',
      handler: wrap('operate', 'reload', async (req, res, _url, who) => {
        const body = await objectBody(req, maxBody(), ['reason']);
        // Without one, the audit entry says "config reloaded" (as for SIGHUP and the file watch).
        const reason = body.reason === undefined || body.reason === null ? undefined : reasonOf(body, false);
        try {
          const r = await ctx.reload(actorOf(who), reason);
          sendJson(
            res,
            200,
            serializeReload({
              reloaded: true,
              rollout_id: r.rolloutId,
              changed: r.changed,
              restart_required: r.restartRequired,
            }),
          );
        } catch (err) {
          if (err instanceof ConfigError) {
            sendAdminError(
              res,
              400,
              'bad_config',
              `${err.message.split('\n')[0]}: ${err.problems.length} problem(s); the running config is unchanged`,
              err.problems,
            );
            return;
          }
          throw err;
        }
      }),
    },
    {
      method: 'GET',
      path: '/api/audit',
      handler: wrap('read', 'audit', async (_req, res, url) => {
        const raw = url.searchParams.get('limit');
        let limit = 50;
        if (raw !== null) {
          limit = Number(raw);
          if (!/^\d+$/.test(raw) || limit < 1 || limit > 1000)
            throw bad(`limit: must be an integer between 1 and 1000, got "${raw.slice(0, 32)}"`);
        }
        sendJson(res, 200, serializeAudit({ entries: ctx.audit.read(limit) }));
      }),
    },
  ];
}
