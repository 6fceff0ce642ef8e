// Bearer-token authentication for the admin API: named tokens, roles, constant-time comparison.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { TokenConfig } from '../config/types.js';

export interface Principal {
  /** The token's name; the audit log records the actor as `admin:<name>`. */
  name: string;
  role: 'operator' | 'read';
}

export type AuthResult =
  | { ok: true; principal: Principal }
  | { ok: false; reason: 'missing' | 'malformed' | 'unknown' };

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Tokens are compared as SHA-256 digests with timingSafeEqual, against every configured token
 * whatever matches first, so neither the content nor the position of a token leaks through timing.
 */
export class TokenAuth {
  private readonly tokens: { principal: Principal; digest: Buffer }[];

  constructor(tokens: readonly TokenConfig[]) {
    this.tokens = tokens.map((t) => ({ principal: { name: t.name, role: t.role }, digest: digest(t.secret) }));
  }

  get configured(): boolean {
    return this.tokens.length > 0;
  }

  authenticate(authorization: string | undefined): AuthResult {
    if (authorization === undefined || authorization === '') return { ok: false, reason: 'missing' };
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m) return { ok: false, reason: 'malformed' };
    const presented = digest(m[1]!);
    let found: Principal | undefined;
    for (const t of this.tokens) {
      if (timingSafeEqual(presented, t.digest) && found === undefined) found = t.principal;
    }
    return found ? { ok: true, principal: found } : { ok: false, reason: 'unknown' };
  }
}
