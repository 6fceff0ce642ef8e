// GET, PUT and DELETE /api/overrides: keys pinned to one side at runtime, over the config file's pins.

import type { UpstreamName } from '../../config/types.js';
import { VeerError } from '../../errors.js';
import { bad, keyOf, objectBody, reasonOf } from '../body.js';
import { type AdminContext, type ApiRoute, actorOf, settleChange } from '../context.js';
import { serializeOverrides } from '../schemas.js';
import { sendJson } from '../server.js';

const MAX_KEYS_PER_CALL = 1000;
const MAX_RUNTIME_OVERRIDES = 10_000;

export function overridesRoutes(ctx: AdminContext): ApiRoute[] {
  const overridesReply = () => serializeOverrides(ctx.controller.effectiveOverrides());
  const maxBody = () => ctx.config().admin.maxBodyBytes;
  return [
    {
      method: 'GET',
      path: '/api/overrides',
      access: 'private',
      action: 'overrides',
      handler: async (_req, res) => sendJson(res, 200, overridesReply()),
    },
    {
      method: 'PUT',
      path: '/api/overrides',
      access: 'operate',
      action: 'overrides_set',
      handler: async (req, res, _url, who) => {
        const body = await objectBody(req, maxBody(), ['keys', 'reason']);
        const keys = body.keys;
        if (keys === undefined) throw bad('keys: required, e.g. {"user-1": "new", "user-2": "legacy"}');
        if (typeof keys !== 'object' || keys === null || Array.isArray(keys))
          throw bad('keys: must be an object mapping each key to "new" or "legacy"');
        const entries = Object.entries(keys as Record<string, unknown>);
        if (entries.length === 0) throw bad('keys: must name at least one key');
        if (entries.length > MAX_KEYS_PER_CALL) throw bad(`keys: at most ${MAX_KEYS_PER_CALL} keys per call`);
        const pins: [string, UpstreamName][] = entries.map(([key, side]) => {
          keyOf(key, `keys["${key.slice(0, 32)}"]`);
          if (side !== 'new' && side !== 'legacy') throw bad(`keys["${key.slice(0, 64)}"]: must be "new" or "legacy"`);
          return [key, side];
        });
        const reason = reasonOf(body, true);
        const current = ctx.controller.snapshot.overrides;
        const existing = new Set([...current.new, ...current.legacy]);
        const added = pins.filter(([key]) => !existing.has(key)).length;
        if (existing.size + added > MAX_RUNTIME_OVERRIDES)
          throw new VeerError(
            'too_many_overrides',
            `keys: at most ${MAX_RUNTIME_OVERRIDES} runtime overrides; remove some first`,
          );
        await settleChange(ctx, ctx.controller.setOverrides(actorOf(who), pins, reason));
        sendJson(res, 200, overridesReply());
      },
    },
    {
      method: 'DELETE',
      path: '/api/overrides',
      access: 'operate',
      action: 'overrides_remove',
      handler: async (req, res, _url, who) => {
        const body = await objectBody(req, maxBody(), ['keys', 'reason']);
        const keys = body.keys;
        if (keys === undefined) throw bad('keys: required, a list of keys to unpin');
        if (!Array.isArray(keys) || keys.length === 0) throw bad('keys: must be a non-empty list of strings');
        if (keys.length > MAX_KEYS_PER_CALL) throw bad(`keys: at most ${MAX_KEYS_PER_CALL} keys per call`);
        const list = keys.map((key, i) => keyOf(key, `keys[${i}]`));
        // A key the config file pins, with no runtime pin over it, cannot be removed here: answering 200
        // with the key still pinned would read as done. The whole call is refused, nothing is removed.
        const runtime = ctx.controller.snapshot.overrides;
        const pinnedAtRuntime = new Set([...runtime.new, ...runtime.legacy]);
        const fromFile = ctx.config().routing.overrides;
        const inFile = list.flatMap((key) => {
          if (pinnedAtRuntime.has(key)) return [];
          const side = fromFile.new.includes(key) ? 'new' : fromFile.legacy.includes(key) ? 'legacy' : undefined;
          return side ? [`"${key.slice(0, 64)}" (routing.overrides.${side})`] : [];
        });
        if (inFile.length > 0)
          throw new VeerError(
            'override_in_config',
            `keys: ${inFile.slice(0, 5).join(', ')}${inFile.length > 5 ? ` and ${inFile.length - 5} more` : ''} ` +
              'pinned by the config file; remove them there and reload, or PUT them to the other side. Nothing was removed',
          );
        await settleChange(ctx, ctx.controller.removeOverrides(actorOf(who), list, reasonOf(body, true)));
        sendJson(res, 200, overridesReply());
      },
    },
  ];
}
