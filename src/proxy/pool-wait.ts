// Waiting for a connection to an upstream: when a request is refused for it (max_pending, pool_timeout), and in what words.

import type { Upstream } from './upstream.js';

/**
 * Why a request cannot join the upstream's wait for a connection, or undefined when it can. Checked
 * before dispatch: all max_sockets connections are taken and max_pending requests already wait.
 */
export function saturatedBeforeDispatch(up: Upstream): string | undefined {
  if (!up.full()) return undefined;
  const waiting = up.inPool - (up.config.maxSockets ?? 0);
  return `${up.name} upstream is saturated: every connection is busy and ${waiting} waiting for one (max_pending ${up.config.maxPending}${capText(up)})`;
}

/** Why a request that waited pool_timeout for a connection is answered 503 upstream_saturated. */
export function poolTimeoutMessage(up: Upstream): string {
  return `${up.name} upstream is saturated: no connection within pool_timeout (${up.config.poolTimeoutMs} ms${capText(up)})`;
}

function capText(up: Upstream): string {
  return up.config.maxSockets === null ? '' : `, max_sockets ${up.config.maxSockets}`;
}
