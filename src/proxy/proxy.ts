// The request entry: picks the key, asks the routing table, and starts an Exchange for HTTP/1.1 or HTTP/2 clients.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Config, UpstreamName } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Recorder } from '../measure/recorder.js';
import type { Metrics } from '../metrics/registry.js';
import { extractKey } from '../routing/key.js';
import { decide, type RoutingTable } from '../routing/table.js';
import { Http1Downstream } from './downstream-h1.js';
import { Http2Downstream } from './downstream-h2.js';
import { errorBody } from './errors.js';
import { Exchange, type ExchangeContext } from './exchange.js';
import { type OutHeaders, withoutHopByHop } from './headers.js';
import type { Upstream } from './upstream.js';

/** Request headers that belong to one connection (RFC 9110 §7.6.1) or that veer sets itself. */
const REQUEST_HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
  'http2-settings',
]);

function ignoreStreamError(): void {}

function hostLines(raw: string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') n++;
  }
  return n;
}

/** A header list's size as HTTP/2 counts it (RFC 9113 §6.5.2): name and value octets plus 32 per field. */
function headerListSize(headers: IncomingHttpHeaders): number {
  let size = 0;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) size += name.length + v.length + 32;
    else size += name.length + String(value).length + 32;
  }
  return size;
}

function upstreamHeaders(src: IncomingHttpHeaders, clientAddress: string | undefined, proto: string): OutHeaders {
  const out = withoutHopByHop(src, REQUEST_HOP_BY_HOP);
  const xff = src['x-forwarded-for'];
  if (clientAddress) out['x-forwarded-for'] = xff ? `${xff}, ${clientAddress}` : clientAddress;
  if (!src['x-forwarded-proto']) out['x-forwarded-proto'] = proto;
  const host = src[':authority'] ?? src.host;
  if (!src['x-forwarded-host'] && host) out['x-forwarded-host'] = host;
  // With host_header: client the client's host travels on; with upstream, Exchange sets the upstream's.
  if (host) out.host = host;
  return out;
}

export interface ProxyOptions {
  config: Config;
  table: RoutingTable;
  upstreams: Record<UpstreamName, Upstream>;
  recorder: Recorder;
  metrics: Metrics;
  logger: Logger;
}

export class ProxyHandler {
  /** The one routing snapshot requests read; swapped whole, never mutated. */
  table: RoutingTable;
  routing: Config['routing'];
  readonly ctx: ExchangeContext;
  private readonly metrics: Metrics;
  private readonly maxHeaderSize: number;

  constructor(options: ProxyOptions) {
    this.table = options.table;
    this.routing = options.config.routing;
    this.metrics = options.metrics;
    this.maxHeaderSize = options.config.listen.maxHeaderSize;
    const fallbacks = options.metrics.fallbacks;
    this.ctx = {
      upstreams: options.upstreams,
      recorder: options.recorder,
      responseHeader: options.config.routing.responseHeader,
      fallbackOnConnectError: options.config.routing.fallbackOnConnectError,
      onFallback: () => fallbacks.inc(),
      draining: false,
      closing: false,
      clientIdleTimeoutMs: options.config.listen.idleTimeoutMs,
    };
  }

  applyRouting(routing: Config['routing']): void {
    this.routing = routing;
    this.ctx.responseHeader = routing.responseHeader;
    this.ctx.fallbackOnConnectError = routing.fallbackOnConnectError;
  }

  private route(headers: IncomingHttpHeaders, path: string, clientAddress: string | undefined) {
    const key = extractKey(this.routing.keys, headers, path, clientAddress);
    if (key === undefined) this.metrics.keyless.inc();
    const force = this.table.forceHeader;
    const forced = force === undefined ? undefined : headers[force];
    return decide(this.table, key, typeof forced === 'string' ? forced : undefined);
  }

  handleHttp1 = (req: IncomingMessage, res: ServerResponse): void => {
    const path = req.url ?? '';
    if (path.charCodeAt(0) !== 47 /* '/' */) {
      this.reject(res, undefined, `request target must be a path, got "${path.slice(0, 64)}"`);
      return;
    }
    // node keeps the first of several Host lines; a server behind may pick another (RFC 9112 §3.2: 400).
    if (hostLines(req.rawHeaders) > 1) {
      res.shouldKeepAlive = false;
      this.reject(res, undefined, 'more than one Host header');
      return;
    }
    const socket = req.socket;
    const clientAddress = socket.remoteAddress;
    const proto = (socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
    const decision = this.route(req.headers, path, clientAddress);
    const headers = upstreamHeaders(req.headers, clientAddress, proto);
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
    new Exchange({
      ctx: this.ctx,
      upstream: decision.upstream,
      reason: decision.reason,
      bucket: decision.bucket,
      method: req.method ?? 'GET',
      path,
      headers,
      // An iterator, not the request itself: undici destroys a body stream it is done with, and for a
      // request whose answer came before its body was in, that would reset the client's connection.
      body: hasBody ? req.iterator({ destroyOnReturn: false }) : null,
      downstream: new Http1Downstream(res),
    }).start();
  };

  handleHttp2 = (stream: ServerHttp2Stream, reqHeaders: IncomingHttpHeaders): void => {
    // A stream reset with an error code (by the client, or by veer cutting a failed upstream) emits
    // 'error'; unhandled, that would take the process down. The Exchange learns of it from 'close'.
    stream.on('error', ignoreStreamError);
    const path = reqHeaders[':path'] ?? '';
    const method = reqHeaders[':method'] ?? 'GET';
    if (method === 'CONNECT' || path.charCodeAt(0) !== 47) {
      this.reject(undefined, stream, `request target must be a path, got "${path.slice(0, 64)}"`);
      return;
    }
    // node enforces SETTINGS_MAX_HEADER_LIST_SIZE only once the client has acknowledged veer's SETTINGS;
    // a client that never does could send header blocks up to the session memory cap. Once it has, node's
    // own check holds and the count here is skipped.
    if (stream.session?.pendingSettingsAck !== false && headerListSize(reqHeaders) > this.maxHeaderSize) {
      this.reject(
        undefined,
        stream,
        `request header block larger than listen.max_header_size (${this.maxHeaderSize} bytes)`,
        431,
        'header_too_large',
      );
      return;
    }
    const socket = stream.session?.socket;
    const clientAddress = socket?.remoteAddress;
    const proto = (socket as { encrypted?: boolean } | undefined)?.encrypted ? 'https' : 'http';
    const decision = this.route(reqHeaders, path, clientAddress);
    const headers = upstreamHeaders(reqHeaders, clientAddress, proto);
    // The request stream itself must not be handed to undici: it destroys its body when done, and
    // for HTTP/2 that would also end the response. An iterator over the readable side is safe.
    const body = stream.endAfterHeaders ? null : stream.iterator({ destroyOnReturn: false });
    // veer takes the expectation off the request (it is hop-by-hop), so it answers it itself, as node does
    // for HTTP/1.1: a client waiting for 100 would otherwise wait out its own timer (RFC 9110 §10.1.1).
    if (body !== null && reqHeaders.expect?.toLowerCase() === '100-continue') {
      stream.additionalHeaders({ ':status': 100 });
    }
    new Exchange({
      ctx: this.ctx,
      upstream: decision.upstream,
      reason: decision.reason,
      bucket: decision.bucket,
      method,
      path,
      headers,
      body,
      downstream: new Http2Downstream(stream),
    }).start();
  };

  private reject(
    res: ServerResponse | undefined,
    stream: ServerHttp2Stream | undefined,
    message: string,
    status = 400,
    reason = 'bad_request',
  ): void {
    this.metrics.rejectedRequests.inc({ reason });
    const body = errorBody('bad_request', message);
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    if (res) res.writeHead(status, headers).end(body);
    else if (stream) {
      stream.respond({ ':status': status, ...headers });
      stream.end(body);
    }
  }
}
