// The admin API's route table: every /api route with the access it needs, composed from the handler files by resource.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { VeerError } from '../errors.js';
import { ControllerError } from '../guard/controller.js';
import { RefusalAuditLimit } from './audit-limit.js';
import { withAuth } from './auth.js';
import type { AdminContext, ApiRoute } from './context.js';
import { auditRoutes } from './handlers/audit.js';
import { overridesRoutes } from './handlers/overrides.js';
import { reloadRoutes } from './handlers/reload.js';
import { rolloutRoutes } from './handlers/rollout.js';
import { shadowRoutes } from './handlers/shadow.js';
import { statusRoutes } from './handlers/status.js';
import { type AdminHandler, type AdminRoute, sendError } from './server.js';

export type { AdminContext, ReloadOutcome } from './context.js';
export { statusJson } from './handlers/status.js';

/** Every veer error a handler throws becomes its JSON answer; anything else is the server's 500. */
function answeringErrors(handler: AdminHandler): AdminHandler {
  return async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    try {
      await handler(req, res, url);
    } catch (err) {
      if (!(err instanceof VeerError || err instanceof ControllerError)) throw err;
      // After a 413 the rest of the body is not worth reading: answer, then close the connection.
      if (err.status === 413 && !res.headersSent) res.setHeader('connection', 'close');
      if (!res.headersSent) {
        const problems = err instanceof VeerError ? err.problems : undefined;
        sendError(res, err.code as VeerError['code'], err.message, { status: err.status, problems });
      }
    }
  };
}

export function apiRoutes(ctx: AdminContext): AdminRoute[] {
  const table: ApiRoute[] = [
    ...statusRoutes(ctx),
    ...rolloutRoutes(ctx),
    ...shadowRoutes(ctx),
    ...overridesRoutes(ctx),
    ...reloadRoutes(ctx),
    ...auditRoutes(ctx),
  ];
  const limit = new RefusalAuditLimit(ctx.clock);
  const gate = {
    auth: ctx.auth,
    readRequiresToken: () => ctx.config().admin.readRequiresToken,
    refused: (actor: string, message: string, detail: Record<string, unknown>) => {
      // A flood of refused attempts (anything that can reach the port can make them) must not push the
      // real entries out of the audit log's last lines.
      const skipped = limit.admit(String(detail.remote ?? 'unknown'));
      if (skipped === undefined) return;
      ctx.controller.refused(
        actor,
        'refused',
        message,
        skipped > 0 ? { ...detail, not_audited_before: skipped } : detail,
      );
    },
  };
  return table.map((route) => ({
    method: route.method,
    path: route.path,
    handler: answeringErrors(withAuth(gate, route.access, route.action, route.handler)),
  }));
}
