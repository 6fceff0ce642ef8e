// POST /api/reload: re-read the config file; an invalid one is refused with its problems and the old one keeps serving.

import { ConfigError } from '../../config/load.js';
import { VeerError } from '../../errors.js';
import { objectBody, reasonOf } from '../body.js';
import { type AdminContext, type ApiRoute, actorOf, throwIfNotPersisted } from '../context.js';
import { serializeReload } from '../schemas.js';
import { sendJson } from '../server.js';

export function reloadRoutes(ctx: AdminContext): ApiRoute[] {
  return [
    {
      method: 'POST',
      path: '/api/reload',
      access: 'operate',
      action: 'reload',
      handler: async (req, res, _url, who) => {
        const body = await objectBody(req, ctx.config().admin.maxBodyBytes, ['reason']);
        // Without one, the audit entry says "config reloaded" (as for SIGHUP and the file watch).
        const reason = body.reason === undefined || body.reason === null ? undefined : reasonOf(body, false);
        let outcome: Awaited<ReturnType<AdminContext['reload']>>;
        try {
          outcome = await ctx.reload(actorOf(who), reason);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          throw new VeerError(
            'bad_config',
            `${err.message.split('\n')[0]}: ${err.problems.length} problem(s); the running config is unchanged`,
            undefined,
            err.problems,
          );
        }
        throwIfNotPersisted(outcome.state);
        sendJson(
          res,
          200,
          serializeReload({
            reloaded: true,
            rollout_id: outcome.rolloutId,
            changed: outcome.changed,
            restart_required: outcome.restartRequired,
          }),
        );
      },
    },
  ];
}
