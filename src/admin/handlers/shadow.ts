// PUT /api/shadow: veer shadow on|off|PERCENT, applied (persisted, audited) before its answer.

import { bad, objectBody, percentOf, reasonOf } from '../body.js';
import { type AdminContext, type ApiRoute, actorOf, settleChange } from '../context.js';
import { serializeShadow } from '../schemas.js';
import { sendJson } from '../server.js';
import { shadowJson } from './shadow-status.js';
import { rolloutJson } from './status.js';

/** `veer shadow on` with a config whose percent is 0: the share it turns on. */
export const DEFAULT_SHADOW_BP = 500;

/** `{"on": true}`, `{"on": false}` or `{"percent": N}`: the share in basis points. */
function shadowBpOf(body: Record<string, unknown>, ctx: AdminContext): number {
  const hasOn = body.on !== undefined;
  if (hasOn === (body.percent !== undefined)) throw bad('give exactly one of on (true or false) or percent (0..100)');
  if (!hasOn) return percentOf(body);
  if (typeof body.on !== 'boolean') throw bad('on: must be true or false');
  if (!body.on) return 0;
  return ctx.config().rollout.shadow.percentBp || DEFAULT_SHADOW_BP;
}

export function shadowRoutes(ctx: AdminContext): ApiRoute[] {
  return [
    {
      method: 'PUT',
      path: '/api/shadow',
      access: 'operate',
      action: 'shadow',
      handler: async (req, res, _url, who) => {
        const body = await objectBody(req, ctx.config().admin.maxBodyBytes, ['on', 'percent', 'reason']);
        const bp = shadowBpOf(body, ctx);
        const reason = reasonOf(body, false);
        // In a fleet, a larger share waits for the store's confirmation (as any change toward new).
        await settleChange(ctx, ctx.controller.setShadow(actorOf(who), bp, reason));
        sendJson(
          res,
          200,
          serializeShadow({ rollout: rolloutJson(ctx.controller, ctx.config()), shadow: shadowJson(ctx) }),
        );
      },
    },
  ];
}
