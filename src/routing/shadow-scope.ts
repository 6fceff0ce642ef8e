// Which requests may be mirrored at all (rollout.shadow.methods and paths), compiled once per config.

import type { ShadowConfig } from '../config/types.js';

/** True when a request's method and path (query excluded) are among those the shadow mirrors. */
export type ShadowScope = (method: string, path: string) => boolean;

export function shadowScope(config: Pick<ShadowConfig, 'methods' | 'paths'>): ShadowScope {
  const methods = new Set(config.methods);
  const exact = new Set(config.paths.filter((p) => !p.endsWith('*')));
  const prefixes = config.paths.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return (method, path) => {
    if (!methods.has(method)) return false;
    const q = path.indexOf('?');
    const bare = q === -1 ? path : path.slice(0, q);
    if (exact.has(bare)) return true;
    for (const prefix of prefixes) if (bare.startsWith(prefix)) return true;
    return false;
  };
}
