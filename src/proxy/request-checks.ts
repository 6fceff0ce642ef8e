// What a request head must be before veer routes it: version, Host, framing, method, header names, one key header line.

import { type IncomingMessage, METHODS } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http2';
import type { Config } from '../config/types.js';

/** Why veer turned a request away itself: the `reason` label of veer_rejected_requests_total. */
export type RefusalReason = 'bad_request' | 'unsupported_transfer_encoding';

export interface Refusal {
  status: 400 | 501;
  reason: RefusalReason;
  message: string;
}

export interface RequestRules {
  underscoreHeaders: Config['routing']['underscoreHeaders'];
  /** Lower-case names of the header key sources: each may come on one line only. */
  keyHeaders: readonly string[];
}

/** llhttp's method list, so HTTP/2 accepts exactly the methods the HTTP/1.1 parser does; CONNECT is no path. */
const METHOD_SET = new Set(METHODS.filter((m) => m !== 'CONNECT'));

/**
 * `host[:port]`: a name (letters, digits, `-`, `.`, `_`, `~`), an IPv4 address or a bracketed IPv6
 * address. Stricter than RFC 3986's reg-name on purpose: the value travels on as X-Forwarded-Host, where
 * `a@evil.example:80/x?y` would be read as a URL by whoever builds links from it.
 */
const HOST = /^(?:[A-Za-z0-9._~-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

const bad = (message: string): Refusal => ({ status: 400, reason: 'bad_request', message });

/** How many lines of `name` (lower case) a raw header list ([name, value, name, value...]) holds. */
function lines(raw: readonly string[], name: string): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const field = raw[i]!;
    if (field.length === name.length && field.toLowerCase() === name) n++;
  }
  return n;
}

function underscoreName(raw: readonly string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.includes('_')) return raw[i];
  return undefined;
}

/** Checks shared by both protocols: the header names with `_`, a key header sent twice, the Host syntax. */
function checkFields(
  headers: IncomingHttpHeaders,
  raw: readonly string[],
  host: string | undefined,
  rules: RequestRules,
): Refusal | undefined {
  if (host !== undefined && !HOST.test(host)) return bad(`Host must be host[:port], got "${host.slice(0, 64)}"`);
  if (rules.underscoreHeaders === 'reject') {
    const name = underscoreName(raw);
    if (name !== undefined)
      return bad(`header name with "_" refused (routing.underscore_headers): ${name.slice(0, 64)}`);
  }
  for (const name of rules.keyHeaders) {
    // node joins repeated lines as "a, b"; which one is the user is anyone's guess, so neither is taken.
    // Only a value with ", " can be a join: the raw lines are counted for those alone.
    const value = headers[name];
    if (typeof value === 'string' && value.includes(', ') && lines(raw, name) > 1) {
      return bad(`the routing key header ${name} was sent more than once`);
    }
  }
  return undefined;
}

export function checkHttp1(req: IncomingMessage, rules: RequestRules): Refusal | undefined {
  const path = req.url ?? '';
  if (path.charCodeAt(0) !== 47 /* '/' */) return bad(`request target must be a path, got "${path.slice(0, 64)}"`);
  const version = req.httpVersion;
  // llhttp reads any digit.digit: HTTP/2.0 or a request line without a version (0.9) would be served as 1.1.
  if (version !== '1.1' && version !== '1.0') return bad(`HTTP/${version} is not served here (HTTP/1.0 or 1.1)`);
  const raw = req.rawHeaders;
  const hosts = lines(raw, 'host');
  // node keeps the first of several Host lines; a server behind may pick another (RFC 9112 §3.2: 400).
  if (hosts > 1) return bad('more than one Host header');
  if (hosts === 0 && version === '1.1') return bad('an HTTP/1.1 request needs a Host header (RFC 9112 §3.2)');
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) {
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    if (version === '1.0') return bad('Transfer-Encoding in an HTTP/1.0 request');
    // RFC 9112 §6.3: a coding list not ending in chunked cannot be framed: 400 (llhttp would refuse the
    // body, but only after the head was dispatched). One ending in it, e.g. `gzip, chunked`, is framed but
    // carries a coding veer would silently drop on re-framing: 501, as §6.1 asks for an unknown coding.
    const codings = te.toLowerCase();
    if (codings !== 'chunked') {
      const last = codings.slice(codings.lastIndexOf(',') + 1).trim();
      if (last !== 'chunked') return bad(`Transfer-Encoding must end in chunked, got "${te.slice(0, 64)}"`);
      return {
        status: 501,
        reason: 'unsupported_transfer_encoding',
        message: `Transfer-Encoding "${te.slice(0, 64)}" is not supported; send chunked alone`,
      };
    }
  }
  return checkFields(req.headers, raw, req.headers.host, rules);
}

export function checkHttp2(
  headers: IncomingHttpHeaders,
  raw: readonly string[],
  rules: RequestRules,
): Refusal | undefined {
  const method = headers[':method'] ?? '';
  const path = headers[':path'] ?? '';
  if (method === 'CONNECT' || path.charCodeAt(0) !== 47) {
    return bad(`request target must be a path, got "${path.slice(0, 64)}"`);
  }
  // The HTTP/1.1 parser refuses `get` or `FOO`; over HTTP/2 nghttp2 only checks the token syntax.
  if (!METHOD_SET.has(method)) return bad(`unknown method "${method.slice(0, 32)}"`);
  const authority = headers[':authority'];
  const host = headers.host;
  if (authority !== undefined && !HOST.test(authority)) {
    return bad(`:authority must be host[:port], got "${authority.slice(0, 64)}"`);
  }
  return checkFields(headers, raw, host, rules);
}
