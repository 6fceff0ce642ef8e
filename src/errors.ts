// Every error code veer answers with, declared once: its status, the plane it comes from, when it is sent.

/**
 * One row per (status, code, plane) that a client or an operator can meet. The proxy's and the admin
 * API's error tables in docs/ are generated from these rows (npm run docs:config), so the code, the
 * docs and the tests read one list. A code listed twice (`bad_request` as 400 and 431) keeps its
 * first row's status as its default.
 */
export const ERROR_ROWS = [
  // The proxy port: what a client of the inference API meets when veer itself answers.
  {
    plane: 'proxy',
    status: 503,
    code: 'upstream_unavailable',
    when: 'connection refused, DNS failure, unreachable, connect timeout (nothing was sent)',
  },
  {
    plane: 'proxy',
    status: 503,
    code: 'upstream_saturated',
    when: "all of the upstream's `max_sockets` connections are busy and `max_pending` requests already wait, or this one waited longer than `pool_timeout` (nothing was sent; not counted as the upstream's error)",
  },
  {
    plane: 'proxy',
    status: 504,
    code: 'upstream_timeout',
    when: 'no first body byte within `ttfb_timeout`, or no response headers in time',
  },
  {
    plane: 'proxy',
    status: 502,
    code: 'upstream_reset',
    when: 'the upstream closed or reset the connection before sending response headers',
  },
  {
    plane: 'proxy',
    status: 502,
    code: 'bad_gateway',
    when: "the upstream's response cannot be relayed (e.g. an invalid header)",
  },
  {
    plane: 'proxy',
    status: 400,
    code: 'bad_request',
    when: 'the request target is not a path, or the request is malformed',
  },
  {
    plane: 'proxy',
    status: 431,
    code: 'bad_request',
    when: 'request header block larger than `listen.max_header_size`',
  },
  {
    plane: 'proxy',
    status: 501,
    code: 'unsupported_transfer_encoding',
    when: 'HTTP/1.1 `Transfer-Encoding` other than `chunked` alone (e.g. `gzip, chunked`: RFC 9112 §6.1); the connection closes',
  },
  {
    plane: 'proxy',
    status: 408,
    code: 'request_timeout',
    when: 'an HTTP/1.1 client took longer than `listen.headers_timeout` to send its headers',
  },
  // The admin port: what an operator, the CLI or the dashboard meets.
  {
    plane: 'admin',
    status: 400,
    code: 'bad_request',
    when: "wrong type, out of range, unknown field, missing required field: `percent: must be between 0 and 100, got 150`, `reason: required (a short text for the audit log)`, `limit: must be an integer between 1 and 1000`; or an HTTP request that cannot be parsed (the message is the parser's code, e.g. `HPE_INVALID_HEADER_TOKEN`; the connection closes)",
  },
  { plane: 'admin', status: 400, code: 'bad_json', when: 'the body is not JSON' },
  {
    plane: 'admin',
    status: 400,
    code: 'bad_config',
    when: 'reload of an invalid file; `problems` lists `field.path: reason` lines; the running config is unchanged',
  },
  {
    plane: 'admin',
    status: 401,
    code: 'unauthorized',
    when: 'no token, malformed header, unknown token (with `WWW-Authenticate: Bearer`)',
  },
  { plane: 'admin', status: 403, code: 'forbidden', when: 'a read-only token on a mutating route' },
  {
    plane: 'admin',
    status: 403,
    code: 'cross_site',
    when: 'a request a browser marks as coming from another site (`Sec-Fetch-Site`, or an `Origin` that is not the admin address); refused before authentication, not audited',
  },
  {
    plane: 'admin',
    status: 421,
    code: 'misdirected_request',
    when: 'a `Host` that is not an IP address, `localhost` or a name in `admin.allowed_hosts` (a DNS-rebinding page); nothing else is read',
  },
  { plane: 'admin', status: 404, code: 'not_found', when: 'no such route' },
  { plane: 'admin', status: 405, code: 'method_not_allowed', when: 'known path, wrong method (with `Allow`)' },
  {
    plane: 'admin',
    status: 408,
    code: 'request_timeout',
    when: "the request's headers took over 10 s or its body over 30 s; the connection closes",
  },
  {
    plane: 'admin',
    status: 409,
    code: 'conflict',
    when: 'the command does not apply to the current state (`cannot set the weight: the rollout is killed; resume it first`)',
  },
  {
    plane: 'admin',
    status: 409,
    code: 'too_many_overrides',
    when: '`PUT /api/overrides` past 10,000 runtime overrides; remove some first',
  },
  {
    plane: 'admin',
    status: 409,
    code: 'override_in_config',
    when: '`DELETE /api/overrides` of a key the config file pins; nothing is removed',
  },
  {
    plane: 'admin',
    status: 413,
    code: 'payload_too_large',
    when: 'body over `admin.max_body_bytes` (64 KiB), declared or streamed',
  },
  {
    plane: 'admin',
    status: 503,
    code: 'dashboard_unavailable',
    when: 'the dashboard assets are not built and cannot be bundled here (run `npm run build`)',
  },
  { plane: 'admin', status: 415, code: 'unsupported_media_type', when: 'a body that is not `application/json`' },
  { plane: 'admin', status: 431, code: 'bad_request', when: 'a header block over 16 KiB; the connection closes' },
  {
    plane: 'admin',
    status: 500,
    code: 'internal',
    when: 'a route failed unexpectedly (a bug: the log has `admin route failed` with the cause)',
  },
  {
    plane: 'admin',
    status: 503,
    code: 'state_not_persisted',
    when: 'a change toward legacy was applied but the state file could not be written',
  },
  {
    plane: 'admin',
    status: 503,
    code: 'state_write_failed',
    when: 'any other change, refused because the state file could not be written',
  },
  {
    plane: 'admin',
    status: 503,
    code: 'fleet_unavailable',
    when: 'in [fleet mode](fleet.md), a change toward new (weight up, promote, resume, overrides) that the fleet store did not confirm in time: Redis unreachable or hung, or the sidecar not yet synced (kill and rollback still work, answered `fleet: pending`)',
  },
] as const satisfies readonly ErrorRow[];

export interface ErrorRow {
  plane: 'proxy' | 'admin';
  status: number;
  code: string;
  when: string;
}

export type ErrorCode = (typeof ERROR_ROWS)[number]['code'];
export type ProxyErrorCode = Extract<(typeof ERROR_ROWS)[number], { plane: 'proxy' }>['code'];

const DEFAULT_STATUS = new Map<string, number>();
for (const row of ERROR_ROWS) if (!DEFAULT_STATUS.has(row.code)) DEFAULT_STATUS.set(row.code, row.status);

/** The status a code is sent with, unless its sender names one of the code's other rows. */
export function statusOf(code: ErrorCode): number {
  return DEFAULT_STATUS.get(code)!;
}

/** An error veer answers with: becomes `{"error":{"code","message"}}` with the catalogue's status. */
export class VeerError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    status?: number,
    /** Field-level reasons, e.g. each problem of a refused config. */
    readonly problems?: readonly string[],
  ) {
    super(message);
    this.name = 'VeerError';
    this.status = status ?? statusOf(code);
  }
}

/** The JSON body every veer error travels in; `problems` lists field-level reasons (a bad config). */
export function errorBody(code: ErrorCode, message: string, problems?: readonly string[]): string {
  return JSON.stringify({ error: { code, message, ...(problems ? { problems } : {}) } });
}
