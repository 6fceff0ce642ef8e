// Reading an admin request's JSON body and its common fields: capped in size, parsed, with errors an operator can act on.

import type { IncomingMessage } from 'node:http';
import { VeerError } from '../errors.js';

export type Body = Record<string, unknown>;

export const bad = (message: string) => new VeerError('bad_request', message);

const MAX_REASON = 500;
const MAX_KEY = 256;

/**
 * Characters a terminal or a log viewer acts on instead of showing: C0 controls but TAB, DEL, C1 controls
 * (ESC, CSI, OSC start sequences that recolour, retitle or rewrite a screen; CR and LF forge rows), the line
 * and paragraph separators, and the bidi overrides and isolates that reorder what is shown.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters it refuses.
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Names the first control character of `text` as U+XXXX, or undefined when there is none. */
function controlIn(text: string): string | undefined {
  const m = CONTROL.exec(text);
  return m ? `U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}` : undefined;
}

/** The body as parsed JSON (undefined when empty); 413 past `maxBytes`, 400 when it is not JSON. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > maxBytes) {
    throw new VeerError('payload_too_large', `request body is larger than ${maxBytes} bytes`);
  }
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      throw new VeerError('payload_too_large', `request body is larger than ${maxBytes} bytes`);
    }
    parts.push(chunk);
  }
  if (size === 0) return undefined;
  const type = req.headers['content-type'];
  if (type !== undefined && !/^application\/json\b/i.test(type)) {
    throw new VeerError('unsupported_media_type', 'send the body as application/json');
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch (err) {
    throw new VeerError('bad_json', `request body is not valid JSON: ${(err as Error).message}`);
  }
}

/** The body as an object with only the allowed fields; a typo is named rather than ignored. */
export async function objectBody(req: IncomingMessage, maxBytes: number, allowed: readonly string[]): Promise<Body> {
  const body = await readJsonBody(req, maxBytes);
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('body: must be a JSON object');
  for (const field of Object.keys(body)) {
    if (!allowed.includes(field)) throw bad(`${field}: unknown field; allowed: ${allowed.join(', ') || '(none)'}`);
  }
  return body as Body;
}

/** The audit reason: trimmed, bounded; a placeholder when optional and absent. */
export function reasonOf(body: Body, required: boolean): string {
  const reason = body.reason;
  if (reason === undefined || reason === null) {
    if (required) throw bad('reason: required (a short text for the audit log)');
    return '(no reason given)';
  }
  if (typeof reason !== 'string') throw bad('reason: must be a string');
  const trimmed = reason.trim();
  if (trimmed === '') {
    if (required) throw bad('reason: must not be empty');
    return '(no reason given)';
  }
  if (trimmed.length > MAX_REASON) throw bad(`reason: must be at most ${MAX_REASON} characters`);
  const control = controlIn(trimmed);
  if (control) throw bad(`reason: must not contain control characters (found ${control}; TAB is allowed)`);
  return trimmed;
}

/** Percent with at most two decimals, as basis points. */
export function percentOf(body: Body): number {
  const percent = body.percent;
  if (percent === undefined) throw bad('percent: required (0..100)');
  if (typeof percent !== 'number' || !Number.isFinite(percent))
    throw bad('percent: must be a number between 0 and 100');
  if (percent < 0 || percent > 100) throw bad(`percent: must be between 0 and 100, got ${percent}`);
  const bp = Math.round(percent * 100);
  if (Math.abs(bp - percent * 100) > 1e-6) throw bad(`percent: at most two decimals, got ${percent}`);
  return bp;
}

/** A routing key named in a request: a non-empty, bounded string. */
export function keyOf(key: unknown, field: string): string {
  if (typeof key !== 'string' || key.length === 0) throw bad(`${field}: must be a non-empty string`);
  if (key.length > MAX_KEY) throw bad(`${field}: must be at most ${MAX_KEY} characters`);
  const control = controlIn(key);
  if (control) throw bad(`${field}: must not contain control characters (found ${control}; TAB is allowed)`);
  return key;
}
