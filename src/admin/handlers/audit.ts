// GET /api/audit: the newest entries of the audit log.

import { bad } from '../body.js';
import type { AdminContext, ApiRoute } from '../context.js';
import { serializeAudit } from '../schemas.js';
import { sendJson } from '../server.js';

export function auditRoutes(ctx: AdminContext): ApiRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/audit',
      access: 'read',
      action: 'audit',
      handler: async (_req, res, url) => {
        const raw = url.searchParams.get('limit');
        let limit = 50;
        if (raw !== null) {
          limit = Number(raw);
          if (!/^\d+$/.test(raw) || limit < 1 || limit > 1000)
            throw bad(`limit: must be an integer between 1 and 1000, got "${raw.slice(0, 32)}"`);
        }
        sendJson(res, 200, serializeAudit({ entries: ctx.audit.read(limit) }));
      },
    },
  ];
}
