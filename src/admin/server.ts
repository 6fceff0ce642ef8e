// The admin listener: a plain HTTP server on its own port, separate from the proxy, dispatching to admin routes.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ErrorCode, errorBody, statusOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/registry.js';
import { answerClientError } from '../proxy/errors.js';
import { crossSite, hostAllowed } from './origin.js';

export type AdminHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export interface AdminRoute {
  method: string;
  path: string;
  handler: AdminHandler;
}

export function sendJson(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/** A veer error as JSON, with the catalogue's status for its code unless `status` names another row. */
export function sendError(
  res: ServerResponse,
  code: ErrorCode,
  message: string,
  extra: { status?: number; problems?: readonly string[] } = {},
): void {
  sendJson(res, extra.status ?? statusOf(code), errorBody(code, message, extra.problems));
}

export interface AdminServerOptions {
  host: string;
  port: number;
  /** admin.allowed_hosts as now configured (a reload may change it). */
  allowedHosts?: () => readonly string[];
  routes: AdminRoute[];
  metrics: Metrics;
  logger: Logger;
}

export class AdminServer {
  private readonly server: http.Server;
  private routes: AdminRoute[];

  constructor(private readonly options: AdminServerOptions) {
    this.routes = options.routes;
    this.server = http.createServer(
      { maxHeaderSize: 16_384, headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000 },
      (req, res) => this.dispatch(req, res),
    );
    // A malformed or too-slow admin request gets a JSON 400/431/408 too, not a silent close.
    this.server.on('clientError', (err, socket) => answerClientError(err, socket));
  }

  setRoutes(routes: AdminRoute[]): void {
    this.routes = routes;
  }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    // Every answer, errors and the dashboard's assets included: a browser must not guess another type.
    res.setHeader('x-content-type-options', 'nosniff');
    if (!hostAllowed(req.headers.host, this.options.allowedHosts?.() ?? [])) {
      res.once('finish', () => this.options.metrics.adminRequests.inc({ route: 'unknown', code: '421' }));
      req.resume();
      sendError(
        res,
        'misdirected_request',
        `this admin listener does not answer to Host ${(req.headers.host ?? '').slice(0, 64)}; add the name to admin.allowed_hosts`,
      );
      return;
    }
    const foreign = crossSite(req);
    if (foreign !== undefined) {
      // Before any route runs, so a page elsewhere cannot write an audit line either.
      res.once('finish', () => this.options.metrics.adminRequests.inc({ route: 'unknown', code: '403' }));
      req.resume();
      sendError(res, 'cross_site', `cross-site request refused: ${foreign}`);
      return;
    }
    const url = new URL(req.url ?? '/', 'http://admin');
    const onPath = this.routes.filter((r) => r.path === url.pathname);
    const route =
      onPath.find((r) => r.method === req.method) ??
      (req.method === 'HEAD' ? onPath.find((r) => r.method === 'GET') : undefined);
    const label = onPath[0]?.path ?? 'unknown';
    res.once('finish', () => this.options.metrics.adminRequests.inc({ route: label, code: String(res.statusCode) }));
    if (!route) {
      if (onPath.length > 0) {
        res.setHeader('allow', onPath.map((r) => r.method).join(', '));
        sendError(res, 'method_not_allowed', `${req.method} is not allowed on ${url.pathname}`);
      } else {
        sendError(res, 'not_found', `no admin route ${url.pathname}`);
      }
      return;
    }
    Promise.resolve()
      .then(() => route.handler(req, res, url))
      .catch((err: Error) => {
        this.options.logger.error({ err: err.message, route: route.path }, 'admin route failed');
        if (!res.headersSent) sendError(res, 'internal', 'the admin request failed; see the logs');
        else res.destroy();
      });
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: this.options.host, port: this.options.port }, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  get listening(): boolean {
    return this.server.listening;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
