// Header copies for the next hop: what a proxy must not forward (RFC 9110 §7.6.1), in one place for both directions.

import type { IncomingHttpHeaders } from 'node:http';

export type OutHeaders = Record<string, string | string[] | undefined>;

/**
 * A new object with `src`'s headers but the hop-by-hop ones: those in `hopByHop`, those its Connection
 * header lists, and HTTP/2 pseudo-headers; and, with `dropUnderscore`, names with `_`. A new object rather
 * than deletions from `src`: deleting turns it into a slow dictionary that node's writeHead then walks
 * (~1.5 µs per response).
 */
export function withoutHopByHop(
  src: IncomingHttpHeaders,
  hopByHop: ReadonlySet<string>,
  dropUnderscore = false,
): OutHeaders {
  // Several Connection lines arrive as an array from undici (node joins a request's); both are lists.
  const raw = src.connection as string | string[] | undefined;
  const connection = Array.isArray(raw) ? raw.join(',') : raw;
  // `keep-alive` and `close`, the usual values, list no field outside the hop-by-hop set.
  const listed =
    connection !== undefined && connection !== 'keep-alive' && connection !== 'close'
      ? connection
          .toLowerCase()
          .split(',')
          .map((t) => t.trim())
      : undefined;
  const out: OutHeaders = {};
  for (const name in src) {
    if (name.charCodeAt(0) === 58 /* ':' */ || hopByHop.has(name) || listed?.includes(name)) continue;
    if (dropUnderscore && name.includes('_')) continue;
    out[name] = src[name];
  }
  return out;
}

/**
 * Response headers that belong to one connection (RFC 9110 §7.6.1, RFC 9113 §8.2.2; node's HTTP/2 refuses
 * to send them), and `trailer`: veer does not relay trailers, so it does not announce them.
 */
export const RESPONSE_HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'http2-settings',
  'trailer',
]);
