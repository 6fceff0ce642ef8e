// The front listener: one port, each connection sniffed (TLS, HTTP/2 preface, else HTTP/1.1) and handed to the right server.

import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import { answerClientError, type ClientErrorReason, cutByVeer, endAfterPending, errorBody } from './errors.js';
import { RefusedStreams } from './refused-streams.js';
import { ResetBudget } from './reset-budget.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const TLS_HANDSHAKE = 0x16;
/** The reason a session is closed for resetting too fast (an error, or node would send GOAWAY NO_ERROR). */
const RESET_FLOOD = new Error('client reset streams too fast');
/** Set on an HTTP/2 connection's socket (through the session's socket proxy): its refused-stream tally. */
const kRefused = Symbol('veer.refusedStreams');

export type Protocol = 'http/1.1' | 'h2c' | 'h2' | 'https/1.1';

export interface FrontListenerOptions {
  listen: Config['listen'];
  onHttp1: (req: IncomingMessage, res: ServerResponse) => void;
  onHttp2: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void;
  logger: Logger;
  /** Called when veer turns a client away itself: a malformed HTTP/1.1 request, an abusive HTTP/2 session. */
  onRejected?: (reason: RejectReason) => void;
  /** Monotonic milliseconds for the reset budget; tests step it. */
  clock?: () => number;
}

export type RejectReason = ClientErrorReason | 'stream_reset_flood' | 'stream_refused';

/**
 * node's `allowHTTP1` answers HTTP/1.1 on a plaintext port with SETTINGS+GOAWAY (nodejs/node#26795),
 * so the first bytes decide: the 24-byte HTTP/2 preface → http2, a TLS handshake → TLS then ALPN,
 * anything else → http. Sniffed bytes are put back with unshift; http2 re-reads them itself.
 */
export class FrontListener {
  readonly connections: Record<Protocol, number> = { 'http/1.1': 0, h2c: 0, h2: 0, 'https/1.1': 0 };
  private readonly server: net.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly tls: tls.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<Http2Session>();
  private readonly options: FrontListenerOptions;
  /** Streams open per HTTP/2 session, for the idle timeout. */
  private readonly openStreams = new WeakMap<Http2Session, number>();
  /** Each HTTP/2 session's tally of the streams nghttp2 refused. */
  private readonly refusals = new WeakMap<Http2Session, RefusedStreams>();
  /** Sessions already being closed for resetting too fast. */
  private readonly calmed = new WeakSet<Http2Session>();
  private readonly clock: () => number;
  private draining = false;

  constructor(options: FrontListenerOptions) {
    this.options = options;
    this.clock = options.clock ?? (() => performance.now());
    const l = options.listen;
    this.h1 = http.createServer(
      {
        maxHeaderSize: l.maxHeaderSize,
        headersTimeout: l.headersTimeoutMs,
        // Long streams are normal; a request body still has to arrive within five minutes.
        requestTimeout: 300_000,
        keepAliveTimeout: l.idleTimeoutMs,
        // veer answers a missing Host itself (request-checks.ts): node's own 400 has no JSON body and is
        // not counted. llhttp stays strict (no insecureHTTPParser); duplicate fields are joined by node
        // as "a, b" either way, so joinDuplicateHeaders would change nothing veer checks.
        requireHostHeader: false,
        connectionsCheckingInterval: Math.min(1000, l.headersTimeoutMs),
      },
      options.onHttp1,
    );
    // No socket inactivity timer while a request is open: a stream waiting for a slow first token is
    // not idle (the upstream's ttfb/idle timeouts bound that wait, and the Exchange cuts a client that
    // stops reading). Idle connections between requests close after keepAliveTimeout.
    this.h1.timeout = 0;
    // http.Server arms its headers/request timeouts on 'listening'; it never listens itself here.
    this.h1.emit('listening');
    this.h1.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      const reason = answerClientError(err, socket);
      if (reason) options.onRejected?.(reason);
    });
    // CONNECT asks for a tunnel, which veer does not open: without a listener node closes the socket
    // without a word.
    this.h1.on('connect', (req: IncomingMessage, socket: Duplex) => {
      refuseConnect(req, socket);
      options.onRejected?.('bad_request');
    });

    this.h2 = http2.createServer({
      settings: {
        maxConcurrentStreams: l.maxConcurrentStreams,
        maxHeaderListSize: l.maxHeaderSize,
        enablePush: false,
      },
      maxSessionMemory: l.maxSessionMemoryMb,
      maxHeaderListPairs: 256,
      maxOutstandingPings: 10,
      maxSettings: 32,
      peerMaxConcurrentStreams: l.maxConcurrentStreams,
    });
    // node destroys a session idle for this long even with streams open; only sessions without open
    // streams are idle (those waiting on an upstream are bounded by its timeouts).
    this.h2.setTimeout(l.idleTimeoutMs);
    this.h2.on('timeout', (session: Http2Session) => {
      // destroy, not close: a client that reads nothing would keep a graceful close waiting forever.
      if ((this.openStreams.get(session) ?? 0) === 0) session.destroy();
    });
    this.h2.on('stream', options.onHttp2);
    this.h2.on('session', (session: Http2Session) => {
      this.sessions.add(session);
      const budget = new ResetBudget(l.streamResetBurst, l.streamResetRate, this.clock);
      const refused = new RefusedStreams(session, (count) => {
        for (let i = 0; i < count; i++) options.onRejected?.('stream_refused');
      });
      // Set through the socket proxy onto the socket, whose end/close listeners (registered in handOver,
      // before node's own) tally the last refusals while the session can still be read.
      (session.socket as unknown as Record<symbol, RefusedStreams>)[kRefused] = refused;
      this.refusals.set(session, refused);
      // A client's GOAWAY closes the session right after this event: count before that.
      session.on('goaway', () => refused.tally());
      session.on('stream', (stream: ServerHttp2Stream) => {
        refused.announce();
        refused.tally();
        // A HEADERS and its RST_STREAM read in one chunk: the stream is closed before it is announced.
        if (stream.closed) return this.streamClosed(session, budget, stream);
        this.openStreams.set(session, (this.openStreams.get(session) ?? 0) + 1);
        stream.once('close', () => {
          this.openStreams.set(session, (this.openStreams.get(session) ?? 1) - 1);
          this.streamClosed(session, budget, stream);
        });
      });
      session.on('close', () => this.sessions.delete(session));
      session.on('error', (err) => options.logger.debug({ err: err.message }, 'h2 session error'));
      if (this.draining) session.close();
    });
    this.h2.on('sessionError', (err) => options.logger.debug({ err: err.message }, 'h2 session error'));

    if (l.tls) {
      this.tls = tls.createServer({
        cert: readFileSync(l.tls.cert),
        key: readFileSync(l.tls.key),
        ALPNProtocols: ['h2', 'http/1.1'],
        handshakeTimeout: l.headersTimeoutMs,
      });
      this.tls.on('secureConnection', (socket: tls.TLSSocket) => {
        if (socket.alpnProtocol === 'h2') this.handOver(socket, 'h2', this.h2);
        else this.handOver(socket, 'https/1.1', this.h1);
      });
      this.tls.on('tlsClientError', (err) => options.logger.debug({ err: err.message }, 'tls client error'));
    }

    this.server = net.createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    this.server.maxConnections = l.maxConnections;
  }

  listen(): Promise<AddressInfo> {
    const { host, port } = this.options.listen;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      // A burst of connections (an application starting up) must not overflow node's default backlog of 511.
      this.server.listen({ host, port, backlog: 4096 }, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  get listening(): boolean {
    return this.server.listening;
  }

  private onConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    // A socket that says nothing is closed, whatever protocol it would have spoken.
    socket.setTimeout(this.options.listen.headersTimeoutMs, closeSilentSocket);
    let seen: Buffer | undefined;
    const onData = (chunk: Buffer) => {
      const data = seen ? Buffer.concat([seen, chunk]) : chunk;
      if (data[0] === TLS_HANDSHAKE) {
        socket.off('data', onData);
        socket.pause();
        socket.unshift(data);
        if (!this.tls) {
          socket.destroy();
          return;
        }
        socket.setTimeout(0, closeSilentSocket);
        // No resume: TLSSocket, like http2, re-reads the buffered bytes itself on the next tick.
        this.tls.emit('connection', socket);
        return;
      }
      const n = Math.min(data.length, PREFACE.length);
      const maybeH2 = data.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (maybeH2 && data.length < PREFACE.length) {
        seen = data; // a prefix of the preface: wait for the rest
        return;
      }
      socket.off('data', onData);
      socket.pause();
      socket.unshift(data);
      // With its listener, or the socket would keep it (and this closure, `seen` with it) for its lifetime.
      socket.setTimeout(0, closeSilentSocket);
      if (maybeH2) {
        // No resume: the http2 session reads the buffered bytes itself on the next tick.
        this.handOver(socket, 'h2c', this.h2);
      } else {
        this.handOver(socket, 'http/1.1', this.h1);
        socket.resume();
      }
    };
    socket.on('data', onData);
  }

  /**
   * Rapid reset (CVE-2023-44487): every stream the client resets before veer finished answering spends
   * from its session's budget; an empty budget ends the session with GOAWAY(ENHANCE_YOUR_CALM). nghttp2
   * has its own limit, but after its GOAWAY node stops reading and keeps the socket until the idle
   * timeout; this one closes the connection at once. Streams veer cut itself (a failed upstream, a
   * stalled reader) are not the client's resets and do not count.
   */
  private streamClosed(session: Http2Session, budget: ResetBudget, stream: ServerHttp2Stream): void {
    if (stream.rstCode === http2.constants.NGHTTP2_NO_ERROR || cutByVeer.has(stream)) return;
    if (session.destroyed || budget.spend() || this.calmed.has(session)) return;
    this.calmed.add(session);
    this.refusals.get(session)?.stop();
    this.options.logger.warn(
      { client: session.socket?.remoteAddress, reason: 'stream_reset_flood' },
      'HTTP/2 client resets streams too fast: session closed (GOAWAY ENHANCE_YOUR_CALM)',
    );
    this.options.onRejected?.('stream_reset_flood');
    // Not from inside the stream's 'close': it runs within nghttp2's callback, and freeing the session
    // there aborts the process (std::bad_alloc).
    setImmediate(() => session.destroy(RESET_FLOOD, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM));
  }

  private handOver(socket: net.Socket, protocol: Protocol, server: net.Server | http2.Http2Server): void {
    this.connections[protocol]++;
    socket.once('close', () => this.connections[protocol]--);
    if (protocol === 'h2' || protocol === 'h2c') {
      const tally = () => (socket as unknown as Record<symbol, RefusedStreams | undefined>)[kRefused]?.tally();
      socket.once('end', tally);
      socket.once('error', tally);
      socket.once('close', tally);
    }
    server.emit('connection', socket);
  }

  /**
   * Stops accepting, lets open streams finish for up to `graceMs`, then closes what is left.
   * HTTP/2 sessions get GOAWAY; idle HTTP/1.1 connections close now, busy ones after their response.
   */
  async drain(graceMs: number): Promise<{ forced: number }> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const session of this.sessions) session.close();
    this.h1.closeIdleConnections();
    const idleSweep = setInterval(() => this.h1.closeIdleConnections(), 250);
    const deadline = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    clearInterval(idleSweep);
    const forced = this.sockets.size;
    for (const socket of this.sockets) socket.destroy();
    for (const session of this.sessions) session.destroy();
    await closed;
    this.h1.close(() => {});
    return { forced };
  }

  /** Immediate close, for tests and fatal errors. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    for (const session of this.sessions) session.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Clears http's connection-checking timer; the 'not running' error is expected here.
    this.h1.close(() => {});
  }
}

/** A CONNECT request: 400, and the connection closes (what follows would be tunnel bytes). */
function refuseConnect(req: IncomingMessage, socket: Duplex): void {
  const body = errorBody(
    'bad_request',
    `CONNECT is not served here (no tunnels), target "${(req.url ?? '').slice(0, 64)}"`,
  );
  endAfterPending(
    socket,
    `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** The sniffer's timeout listener: a socket that said nothing in time is closed. */
export function closeSilentSocket(this: net.Socket): void {
  this.destroy();
}
