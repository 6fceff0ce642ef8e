// One keep-alive connection pool per upstream, on undici, with the upstream's timeouts and its count of requests waiting for a connection.

import { buildConnector, Pool } from 'undici';
import type { UpstreamConfig, UpstreamName } from '../config/types.js';
import { WarmConnector } from './preconnect.js';

/** One upstream pool's connections and requests at one moment. */
export interface PoolReading {
  /** Open connections. */
  connected: number;
  /** Requests waiting for a connection (none free, or one being opened). */
  pending: number;
  /** Requests sent on a connection and not finished. */
  running: number;
}

export class Upstream {
  readonly pool: Pool;
  readonly origin: string;
  /** Path prefix of the upstream URL ('' when it has none), prepended to every request path. */
  readonly basePath: string;
  readonly host: string;
  /** Connections opened at start (upstreams.*.preconnect), handed to the first requests. */
  readonly warm: WarmConnector;
  /**
   * Requests dispatched to the pool that undici has not finished (on a connection, or waiting for one):
   * undici's `size`. Kept here, not read from `pool.stats`, which walks every connection: max_pending is
   * checked on every request.
   */
  inPool = 0;

  constructor(
    readonly name: UpstreamName,
    readonly config: UpstreamConfig,
  ) {
    const url = new URL(config.url);
    this.origin = url.origin;
    this.basePath = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
    this.host = url.host;
    const base = buildConnector({
      timeout: config.connectTimeoutMs,
      ...(url.protocol === 'https:' ? { rejectUnauthorized: !config.tlsInsecure } : {}),
    });
    this.warm = new WarmConnector(base, config.keepAliveTimeoutMs);
    this.pool = new Pool(this.origin, {
      connections: config.maxSockets,
      pipelining: 1,
      // veer runs its own first-byte timer; undici's headers timer is only a backstop behind it.
      headersTimeout: config.ttfbTimeoutMs + 1000,
      // Off: undici's body timer starts at the response headers, so it would also bound the wait for the
      // first token (ttfb_timeout's job). veer runs idle_timeout itself from the first body byte on.
      bodyTimeout: 0,
      keepAliveTimeout: config.keepAliveTimeoutMs,
      // The operator's limit caps what an upstream's Keep-Alive hint asks for (undici would allow up to 10 min).
      keepAliveMaxTimeout: config.keepAliveTimeoutMs,
      // Bodies are relayed as they come; a large upload must not be buffered or rejected on size.
      maxResponseSize: -1,
      strictContentLength: true,
      connect: this.warm.connect,
    });
    // The first requests after a start find a connection open, not a connect to wait for.
    if (config.preconnect !== undefined && config.preconnect > 0)
      this.warm.warm(url, Math.min(config.preconnect, config.maxSockets ?? config.preconnect));
  }

  /**
   * All max_sockets connections carry or await a request and max_pending more wait: one more is refused.
   * Without a cap nothing waits for a connection to free, so max_pending has nothing to bound.
   */
  full(): boolean {
    const { maxSockets, maxPending } = this.config;
    return maxSockets !== null && maxPending !== null && this.inPool >= maxSockets + maxPending;
  }

  /** A request just dispatched (and counted) found every one of max_sockets connections taken: it queues. */
  queues(): boolean {
    return this.config.maxSockets !== null && this.inPool > this.config.maxSockets;
  }

  /** The pool as undici counts it, read at scrape and status time (it walks every connection). */
  poolReading(): PoolReading {
    const stats = this.pool.stats;
    return { connected: stats.connected, pending: stats.pending, running: stats.running };
  }

  /** Same settings as another config: the pool can be kept across a reload. */
  sameAs(config: UpstreamConfig): boolean {
    return JSON.stringify(config) === JSON.stringify(this.config);
  }

  /** Stops taking requests and closes once in-flight ones are done. */
  async close(): Promise<void> {
    this.warm.close();
    await this.pool.close();
  }

  destroy(): Promise<void> {
    this.warm.close();
    return this.pool.destroy();
  }
}
