// Bearer-token authentication for the admin API: named tokens, roles, constant-time comparison, and the wrapper that guards each route.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TokenConfig } from '../config/types.js';
import { sendError } from './server.js';

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

/** What the auth wrapper needs from the admin plane: tokens as now configured, and the audit of refusals. */
export interface AuthGate {
  auth: () => TokenAuth;
  readRequiresToken: () => boolean;
  /** Audits a refused attempt on a mutating route with whatever identity was presented. */
  refused: (actor: string, message: string, detail: Record<string, unknown>) => void;
}

export type AuthorizedHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  who: Principal | undefined,
) => Promise<void>;

const AUTH_MESSAGE: Readonly<Record<'missing' | 'malformed' | 'unknown', string>> = {
  missing: 'send Authorization: Bearer <token>',
  malformed: 'the Authorization header must be "Bearer <token>"',
  unknown: 'unknown token',
};

/**
 * Authentication before the handler: an operator token for `operate`, any token for `private`, and for
 * `read` when reads need one. A refusal answers 401/403 with its JSON error and, on a mutating route, is
 * audited. An open read still learns who presented a valid token (the status shows overrides to them).
 */
export function withAuth(
  gate: AuthGate,
  access: 'read' | 'private' | 'operate',
  action: string,
  handler: AuthorizedHandler,
): (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> {
  return async (req, res, url) => {
    const auth = gate.auth();
    const result = auth.authenticate(req.headers.authorization);
    if (access === 'read' && !gate.readRequiresToken()) {
      return handler(req, res, url, result.ok ? result.principal : undefined);
    }
    const detail = {
      route: `${req.method} ${url.pathname}`,
      attempted: action,
      remote: req.socket.remoteAddress ?? null,
    };
    if (!result.ok) {
      const message = auth.configured
        ? AUTH_MESSAGE[result.reason]
        : 'no admin tokens are configured: add admin.tokens to the config to allow changes';
      if (access === 'operate') gate.refused('anonymous', message, { ...detail, status: 401, auth: result.reason });
      res.setHeader('www-authenticate', 'Bearer realm="veer-admin"');
      req.resume();
      sendError(res, 'unauthorized', message);
      return;
    }
    const who = result.principal;
    if (access === 'operate' && who.role !== 'operator') {
      gate.refused(`admin:${who.name}`, `token "${who.name}" is read-only`, { ...detail, status: 403 });
      req.resume();
      sendError(res, 'forbidden', `token "${who.name}" may read but not change the rollout`);
      return;
    }
    return handler(req, res, url, who);
  };
}
