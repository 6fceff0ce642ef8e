// The rollout commands: kill, resume, weight, promote, rollback; each applied (and persisted) before its answer.

import type { IncomingMessage } from 'node:http';
import type { ChangeOutcome } from '../../guard/controller.js';
import { type Body, objectBody, percentOf, reasonOf } from '../body.js';
import { type AdminContext, type ApiRoute, actorOf, settleChange } from '../context.js';
import { sendJson } from '../server.js';
import { rolloutReply } from './status.js';

export function rolloutRoutes(ctx: AdminContext): ApiRoute[] {
  /** A state command: parse, apply (persisted before the reply), answer with the rollout (and, in a fleet, whether the store has it). */
  const command = (
    method: string,
    path: string,
    allowed: string[],
    apply: (body: Body, actor: string) => ChangeOutcome,
  ): ApiRoute => ({
    method,
    path,
    access: 'operate',
    action: path.slice('/api/'.length),
    handler: async (req: IncomingMessage, res, _url, who) => {
      const body = await objectBody(req, ctx.config().admin.maxBodyBytes, allowed);
      const fleet = await settleChange(ctx, apply(body, actorOf(who)));
      sendJson(res, 200, rolloutReply(ctx, fleet));
    },
  });
  return [
    command('POST', '/api/kill', ['reason'], (body, actor) => ctx.controller.kill(actor, reasonOf(body, true))),
    command('POST', '/api/resume', ['reason'], (body, actor) => ctx.controller.resume(actor, reasonOf(body, false))),
    command('PUT', '/api/weight', ['percent', 'reason'], (body, actor) =>
      ctx.controller.setWeight(actor, percentOf(body), reasonOf(body, true)),
    ),
    command('POST', '/api/promote', ['reason'], (body, actor) => ctx.controller.promote(actor, reasonOf(body, false))),
    command('POST', '/api/rollback', ['reason'], (body, actor) => ctx.controller.rollback(actor, reasonOf(body, true))),
  ];
}
