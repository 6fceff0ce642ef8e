// How the operator CLI reaches the admin API: which address and token it uses, one JSON call, and the exit code of each failure.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Agent, request } from 'undici';
import { parse as parseYaml } from 'yaml';
// config/path.ts, not config/load.ts: the schema compiler (ajv) would add ~0.15 s to every operator command.
import { resolveConfigPath } from '../config/path.js';

export const EXIT_OK = 0;
/** The admin API answered, but refused or failed the request. */
export const EXIT_REFUSED = 1;
/** The command line itself is wrong; nothing was sent. */
export const EXIT_USAGE = 2;
/** Nothing answered at the admin address. */
export const EXIT_UNREACHABLE = 3;

const DEFAULT_ADMIN = 'http://127.0.0.1:8081';

/** A failure the CLI reports on stderr as `veer: <message>` and turns into its exit code. */
export class CliFailure extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
    /** Extra lines printed indented under the message (the API's `problems`). */
    readonly details: string[] = [],
  ) {
    super(message);
  }
}

export interface AdminTarget {
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:8081. */
  url: string;
  /** Where the address came from, named when it cannot be reached. */
  source: string;
  token: string | undefined;
}

export interface TargetOptions {
  admin?: string;
  tokenFile?: string;
  config?: string;
}

/** `--admin URL` / VEER_ADMIN accept `host:port` too; anything else must be an http(s) URL. */
function normalizeUrl(raw: string, from: string): string {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliFailure(EXIT_USAGE, `${from}: "${raw}" is not a URL (e.g. http://127.0.0.1:8081)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CliFailure(EXIT_USAGE, `${from}: "${raw}" must be an http:// or https:// URL`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * The admin address a running veer with this config file listens on, or undefined when the file cannot
 * be read or parsed. Only admin.host/port are read, so a config whose token env vars are unset here still works.
 */
function adminUrlFromConfig(path: string): string | undefined {
  let doc: unknown;
  try {
    // JSON is YAML too; only two fields are read, so the JSON parser's better messages do not matter here.
    doc = parseYaml(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  const admin = (doc as { admin?: { host?: unknown; port?: unknown } } | null)?.admin ?? {};
  let host = typeof admin.host === 'string' && admin.host !== '' ? admin.host : '127.0.0.1';
  const port = typeof admin.port === 'number' && admin.port > 0 ? admin.port : 8081;
  // A wildcard bind is reachable on loopback from the same machine.
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return `http://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliFailure(
      EXIT_USAGE,
      `--token-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  const token = text.split('\n')[0]!.trim();
  if (!token) throw new CliFailure(EXIT_USAGE, `--token-file: ${file} is empty (the token is its first line)`);
  return token;
}

/** `--admin`, else VEER_ADMIN, else the config file's admin listener, else 127.0.0.1:8081; token from `--token-file` or VEER_ADMIN_TOKEN. */
export function resolveTarget(options: TargetOptions, env: NodeJS.ProcessEnv = process.env): AdminTarget {
  let url: string;
  let source: string;
  if (options.admin !== undefined) {
    url = normalizeUrl(options.admin, '--admin');
    source = '--admin';
  } else if (env.VEER_ADMIN) {
    url = normalizeUrl(env.VEER_ADMIN, 'VEER_ADMIN');
    source = 'VEER_ADMIN';
  } else {
    const path = resolveConfigPath(options.config, env);
    const fromConfig = adminUrlFromConfig(path);
    url = fromConfig ?? DEFAULT_ADMIN;
    source = fromConfig ? `admin.host/port of ${path}` : 'the default';
  }
  const token =
    options.tokenFile !== undefined ? readToken(options.tokenFile) : env.VEER_ADMIN_TOKEN?.trim() || undefined;
  return { url, source, token };
}

export interface AdminReply {
  status: number;
  /** The reply exactly as sent, for `--json`. */
  text: string;
  body: unknown;
}

/** Calls the admin API; resolves only with a 2xx JSON reply, otherwise throws a CliFailure. */
export class AdminClient {
  // One connection per CLI run, closed at the end so the process exits at once instead of idling on keep-alive.
  private readonly agent = new Agent({ connect: { timeout: 5_000 }, headersTimeout: 30_000, bodyTimeout: 30_000 });

  constructor(readonly target: AdminTarget) {}

  async call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<AdminReply> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.target.token) headers.authorization = `Bearer ${this.target.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let status: number;
    let text: string;
    try {
      const res = await request(`${this.target.url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher: this.agent,
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      throw this.unreachable(err as NodeJS.ErrnoException);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new CliFailure(
        EXIT_REFUSED,
        `${status}: ${this.target.url} did not answer with JSON; is it a veer admin listener? (${text.slice(0, 120).trim() || 'empty body'})`,
      );
    }
    if (status < 200 || status > 299) throw apiFailure(status, parsed);
    return { status, text, body: parsed };
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  private unreachable(err: NodeJS.ErrnoException): CliFailure {
    // Connection errors to "localhost" arrive as an AggregateError over both address families.
    const inner = (err as unknown as { errors?: NodeJS.ErrnoException[] }).errors?.[0];
    const code = err.code ?? inner?.code ?? err.name;
    const what =
      code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' ? 'no answer in time from' : 'cannot reach';
    return new CliFailure(
      EXIT_UNREACHABLE,
      `${what} the admin API at ${this.target.url} (${code}; address from ${this.target.source}; set it with --admin URL or VEER_ADMIN)`,
    );
  }
}

/** `veer: 409 conflict: cannot set the weight: ...`, with the API's `problems` as detail lines. */
function apiFailure(status: number, body: unknown): CliFailure {
  const error = (body as { error?: { code?: unknown; message?: unknown; problems?: unknown } } | null)?.error;
  const code = typeof error?.code === 'string' ? error.code : 'error';
  const message = typeof error?.message === 'string' ? error.message : JSON.stringify(body);
  const problems = Array.isArray(error?.problems) ? error.problems.map(String) : [];
  return new CliFailure(EXIT_REFUSED, `${status} ${code}: ${message}`, problems);
}
