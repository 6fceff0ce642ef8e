// Extraction of the bucketing key: the first configured source present on the request.

import type { KeySource } from '../config/types.js';

export type HeaderBag = Record<string, string | string[] | undefined>;

const MAX_KEY_LENGTH = 512;

function first(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v === undefined || v === '' ? undefined : v;
}

function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  // h2 may split cookies into several header fields; HTTP/1.1 joins them with "; ".
  const text = Array.isArray(header) ? header.join('; ') : header;
  if (!text) return undefined;
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf(';', at);
    const part = end === -1 ? text.slice(at) : text.slice(at, end);
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      let value = part.slice(eq + 1).trim();
      if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
      return value === '' ? undefined : value;
    }
    if (end === -1) break;
    at = end + 1;
  }
  return undefined;
}

function queryValue(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q === -1) return undefined;
  const value = new URLSearchParams(path.slice(q + 1)).get(name);
  return value === null || value === '' ? undefined : value;
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
