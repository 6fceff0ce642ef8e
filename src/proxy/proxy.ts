// The request entry: picks the key, asks the routing table, and starts an Exchange for HTTP/1.1 or HTTP/2 clients.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Config, UpstreamName } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Recorder } from '../measure/recorder.js';
import { TokenAccounting } from '../measure/token-accounting.js';
import type { Metrics } from '../metrics/registry.js';
import { extractKey } from '../routing/key.js';
import { type Decision, decide, type RoutingTable, shadowed } from '../routing/table.js';
import { Http1Downstream } from './downstream-h1.js';
import { Http2Downstream } from './downstream-h2.js';
import { errorBody } from './errors.js';
import { Exchange, type ExchangeContext } from './exchange.js';
import { type OutHeaders, withoutHopByHop } from './headers.js';
import { checkHttp1, checkHttp2, type Refusal, type RequestRules } from './request-checks.js';
import { SegmentCounts } from './segment-counts.js';
import type { ShadowTraffic } from './shadow.js';
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
  // veer's mark on a shadow copy: a client must not make legacy (or new) take a real request for a copy.
  'x-veer-shadow',
]);

function ignoreStreamError(): void {}

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

/** Forwarding claims a client could forge; with trust_client: false veer sets them from the connection. */
const CLIENT_CLAIMS = new Set([
  ...REQUEST_HOP_BY_HOP,
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
]);

/**
 * The headers the upstream gets, decided after the hop-by-hop ones are gone: a client that lists
 * X-Forwarded-Proto in Connection cannot remove veer's own. Unless the client is trusted, the X-Forwarded-*
 * it sent (and `Forwarded`) are replaced by what veer saw on the connection.
 */
function upstreamHeaders(
  src: IncomingHttpHeaders,
  clientAddress: string | undefined,
  proto: string,
  trustClient: boolean,
  dropUnderscore: boolean,
): OutHeaders {
  const out = withoutHopByHop(src, trustClient ? REQUEST_HOP_BY_HOP : CLIENT_CLAIMS, dropUnderscore);
  const host = src[':authority'] ?? src.host;
  if (trustClient) {
    const xff = out['x-forwarded-for'];
    if (clientAddress) out['x-forwarded-for'] = xff ? `${xff}, ${clientAddress}` : clientAddress;
    out['x-forwarded-proto'] ??= proto;
    if (host) out['x-forwarded-host'] ??= host;
  } else {
    if (clientAddress) out['x-forwarded-for'] = clientAddress;
    out['x-forwarded-proto'] = proto;
    if (host) out['x-forwarded-host'] = host;
  }
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
  /** Shadow traffic (rollout.shadow): copies of legacy-bound requests sent to new. */
  shadow?: ShadowTraffic;
}

export class ProxyHandler {
  /** The one routing snapshot requests read; swapped whole, never mutated. */
  table: RoutingTable;
  routing: Config['routing'];
  forwarding: Config['forwarding'];
  readonly ctx: ExchangeContext;
  private rules: RequestRules;
  /** HTTP/1.1 connections veer answered a refusal on: closed once that answer is out. */
  private readonly closingSockets = new WeakSet<object>();
  /** Requests each segment routed, by side (status and metrics read it). */
  readonly segmentCounts = new SegmentCounts();
  private readonly metrics: Metrics;
  private readonly maxHeaderSize: number;
  private readonly shadow: ShadowTraffic | undefined;
  /** The key of the request being routed (read by mirror() right after route(), in the same call). */
  private key: string | undefined;
  private measure: Config['measure'];

  constructor(options: ProxyOptions) {
    this.table = options.table;
    this.routing = options.config.routing;
    this.forwarding = options.config.forwarding;
    this.rules = rulesOf(options.config.routing);
    this.metrics = options.metrics;
    this.metrics.live.segments = () => this.segmentCounts.bySegment;
    this.maxHeaderSize = options.config.listen.maxHeaderSize;
    this.shadow = options.shadow;
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
    this.measure = options.config.measure;
  }

  /** measure.* reloaded: exchanges that start from now on read answers by it. */
  applyMeasure(measure: Config['measure']): void {
    this.measure = measure;
  }

  /** Token accounting for one exchange (measure.token_accounting), or none. */
  private observe(path: string): TokenAccounting | undefined {
    return this.measure.tokenAccounting ? new TokenAccounting(this.measure.streamFormat, path) : undefined;
  }

  applyRouting(routing: Config['routing'], forwarding: Config['forwarding'] = this.forwarding): void {
    this.routing = routing;
    this.forwarding = forwarding;
    this.rules = rulesOf(routing);
    this.ctx.responseHeader = routing.responseHeader;
    this.ctx.fallbackOnConnectError = routing.fallbackOnConnectError;
  }

  /** Routes on the headers the upstream will get (after hop-by-hop removal), so both see the same key. */
  private route(headers: OutHeaders, path: string, clientAddress: string | undefined) {
    const key = extractKey(this.routing.keys, headers, path, clientAddress);
    this.key = key;
    if (key === undefined) this.metrics.keyless.inc();
    const force = this.table.forceHeader;
    const forced = force === undefined ? undefined : headers[force];
    const decision = decide(
      this.table,
      key,
      typeof forced === 'string' ? forced : undefined,
      Math.random,
      headers,
      path,
    );
    if (decision.segment !== undefined) this.segmentCounts.count(decision.segment, decision.upstream);
    return decision;
  }

  /**
   * A legacy-bound request the table shadows (and the shadow's methods and paths cover) gets a copy sent
   * to new: the body the user's exchange reads is then the tee. Anything else keeps its body as is.
   */
  private mirror<B extends AsyncIterator<Buffer>>(
    decision: Decision,
    method: string,
    path: string,
    headers: OutHeaders,
    body: B | null,
  ) {
    const shadow = this.shadow;
    if (
      shadow === undefined ||
      decision.upstream !== 'legacy' ||
      this.table.shadowBp === 0 ||
      !shadow.scope(method, path) ||
      !shadowed(this.table, this.key)
    )
      return body;
    return shadow.mirror(method, path, headers, body);
  }

  handleHttp1 = (req: IncomingMessage, res: ServerResponse): void => {
    // A request pipelined behind one veer refused: the connection closes after that answer, and nothing
    // read after a request veer would not frame is forwarded.
    if (this.closingSockets.has(req.socket)) {
      req.resume();
      return;
    }
    const refusal = checkHttp1(req, this.rules);
    if (refusal) {
      this.refuse(res, undefined, refusal);
      return;
    }
    const path = req.url!;
    const socket = req.socket;
    const clientAddress = socket.remoteAddress;
    const proto = (socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
    const headers = this.upstreamHeaders(req.headers, clientAddress, proto);
    const decision = this.route(headers, path, clientAddress);
    const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
    const method = req.method ?? 'GET';
    new Exchange({
      ctx: this.ctx,
      upstream: decision.upstream,
      reason: decision.reason,
      bucket: decision.bucket,
      method,
      path,
      headers,
      // An iterator, not the request itself: undici destroys a body stream it is done with, and for a
      // request whose answer came before its body was in, that would reset the client's connection.
      body: this.mirror(decision, method, path, headers, hasBody ? req.iterator({ destroyOnReturn: false }) : null),
      downstream: new Http1Downstream(res),
      observer: this.observe(path),
    }).start();
  };

  handleHttp2 = (
    stream: ServerHttp2Stream,
    reqHeaders: IncomingHttpHeaders,
    _flags?: number,
    rawHeaders: readonly string[] = [],
  ): void => {
    // A stream reset with an error code (by the client, or by veer cutting a failed upstream) emits
    // 'error'; unhandled, that would take the process down. The Exchange learns of it from 'close'.
    stream.on('error', ignoreStreamError);
    const refusal = checkHttp2(reqHeaders, rawHeaders, this.rules);
    if (refusal) {
      this.refuse(undefined, stream, refusal);
      return;
    }
    const path = reqHeaders[':path']!;
    const method = reqHeaders[':method']!;
    // node enforces SETTINGS_MAX_HEADER_LIST_SIZE only once the client has acknowledged veer's SETTINGS;
    // a client that never does could send header blocks up to the session memory cap. Once it has, node's
    // own check holds and the count here is skipped.
    if (stream.session?.pendingSettingsAck !== false && headerListSize(reqHeaders) > this.maxHeaderSize) {
      this.refuse(undefined, stream, {
        status: 431,
        reason: 'header_too_large',
        message: `request header block larger than listen.max_header_size (${this.maxHeaderSize} bytes)`,
      });
      return;
    }
    const socket = stream.session?.socket;
    const clientAddress = socket?.remoteAddress;
    const proto = (socket as { encrypted?: boolean } | undefined)?.encrypted ? 'https' : 'http';
    const headers = this.upstreamHeaders(reqHeaders, clientAddress, proto);
    const decision = this.route(headers, path, clientAddress);
    // The request stream itself must not be handed to undici: it destroys its body when done, and
    // for HTTP/2 that would also end the response. An iterator over the readable side is safe.
    const body = this.mirror(
      decision,
      method,
      path,
      headers,
      stream.endAfterHeaders ? null : stream.iterator({ destroyOnReturn: false }),
    );
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
      observer: this.observe(path),
    }).start();
  };

  private upstreamHeaders(src: IncomingHttpHeaders, clientAddress: string | undefined, proto: string): OutHeaders {
    const dropUnderscore = this.routing.underscoreHeaders === 'drop';
    return upstreamHeaders(src, clientAddress, proto, this.forwarding.trustClient, dropUnderscore);
  }

  /**
   * veer's own answer to a request it will not forward. HTTP/1.1: the connection closes after it, since
   * what follows a request veer could not frame is not worth reading as the next one.
   */
  private refuse(
    res: ServerResponse | undefined,
    stream: ServerHttp2Stream | undefined,
    refusal: Refusal | { status: 431; reason: 'header_too_large'; message: string },
  ): void {
    this.metrics.rejectedRequests.inc({ reason: refusal.reason });
    const code = refusal.reason === 'unsupported_transfer_encoding' ? refusal.reason : 'bad_request';
    const body = errorBody(code, refusal.message);
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    if (res) {
      res.shouldKeepAlive = false;
      this.closingSockets.add(res.socket ?? res.req.socket);
      res.req.resume();
      res.writeHead(refusal.status, headers).end(body);
    } else if (stream) {
      stream.respond({ ':status': refusal.status, ...headers });
      stream.end(body);
    }
  }
}

function rulesOf(routing: Config['routing']): RequestRules {
  const keyHeaders = routing.keys.flatMap((source) => (source.kind === 'header' ? [source.name] : []));
  return { underscoreHeaders: routing.underscoreHeaders, keyHeaders };
}
