// Extraction of the bucketing key: the first configured source present on the request.

import type { KeySource } from '../config/types.js';

export type HeaderBag = Record<string, string | string[] | undefined>;

const MAX_KEY_LENGTH = 512;

/** Any character outside ASCII: node reads header bytes as latin1, one character per byte. */
const NON_ASCII = /[\u0080-\uffff]/;

/**
 * A header or cookie value as the UTF-8 text its bytes spell, as a query value is decoded, so that a key
 * hashes (and matches an override) the same from every source. Bytes that are not UTF-8 stay as they came.
 */
function asUtf8(latin1: string): string {
  if (!NON_ASCII.test(latin1)) return latin1;
  const text = Buffer.from(latin1, 'latin1').toString('utf8');
  return text.includes('\uFFFD') ? latin1 : text;
}

/**
 * The header's value as the upstream gets it. The proxy refuses a key header sent on several lines (node
 * would join them as "a, b"), so a comma here is part of one line and of the key.
 */
function first(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v === undefined || v === '' ? undefined : asUtf8(v);
}

function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  // h2 may split cookies into several header fields; HTTP/1.1 joins them with "; ".
  const text = Array.isArray(header) ? header.join('; ') : header;
  // No cookie of that name can be in a header that does not contain the name (the usual case for a
  // segment's cookie): skip the parse.
  if (!text?.includes(name)) return undefined;
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf(';', at);
    const part = end === -1 ? text.slice(at) : text.slice(at, end);
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      let value = part.slice(eq + 1).trim();
      if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
      // An empty one (`session=; session=abc`) is skipped, not taken as "no key".
      if (value !== '') return asUtf8(value);
    }
    if (end === -1) break;
    at = end + 1;
  }
  return undefined;
}

function queryValue(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q === -1) return undefined;
  const query = path.slice(q + 1);
  const value = new URLSearchParams(query).get(name);
  if (value === null || value === '') return undefined;
  if (!value.includes('\uFFFD')) return value;
  // Percent-escapes that are not UTF-8 all decode to U+FFFD: keep them as written, so that different
  // keys stay different keys.
  for (const pair of query.split('&')) {
    if (pair.startsWith(`${name}=`)) return pair.slice(name.length + 1);
  }
  return value;
}

/**
 * One value from a request, read as a key source reads it (a header's first line, a cookie, a query
 * parameter; UTF-8 text), capped in length: what a segment matches.
 */
export function requestValue(
  kind: 'header' | 'cookie' | 'query',
  name: string,
  headers: HeaderBag,
  path: string,
): string | undefined {
  const value =
    kind === 'header'
      ? first(headers[name])
      : kind === 'cookie'
        ? cookieValue(headers.cookie, name)
        : queryValue(path, name);
  return value !== undefined && value.length > MAX_KEY_LENGTH ? value.slice(0, MAX_KEY_LENGTH) : value;
}

/** The key, capped in length so an attacker cannot make hashing expensive; undefined when no source is present. */
export function extractKey(
  sources: readonly KeySource[],
  headers: HeaderBag,
  path: string,
  clientAddress: string | undefined,
): string | undefined {
  for (const source of sources) {
    let key: string | undefined;
    switch (source.kind) {
      case 'header':
        key = first(headers[source.name]);
        break;
      case 'cookie':
        key = cookieValue(headers.cookie, source.name);
        break;
      case 'query':
        key = queryValue(path, source.name);
        break;
      case 'client_address':
        key = clientAddress;
        break;
    }
    if (key !== undefined) return key.length > MAX_KEY_LENGTH ? key.slice(0, MAX_KEY_LENGTH) : key;
  }
  return undefined;
}
