// The running veer: builds the proxy, measurement, metrics and admin listener from a Config and tears them down.

import type { AddressInfo } from 'node:net';
import { type AdminRoute, AdminServer, sendJson } from './admin/server.js';
import type { Config, UpstreamName } from './config/types.js';
import { Controller } from './guard/controller.js';
import { createLogger, flushLogger, type Logger } from './log.js';
import { Recorder } from './measure/recorder.js';
import type { Clock } from './measure/window.js';
import { createMetrics, type Metrics } from './metrics/registry.js';
import { ProxyHandler } from './proxy/proxy.js';
import { FrontListener } from './proxy/server.js';
import { Upstream } from './proxy/upstream.js';
import { makeTable, type RoutingTable } from './routing/table.js';
import { AuditLog } from './state/audit.js';
import { StateStore } from './state/store.js';

export interface VeerOptions {
  config: Config;
  logger?: Logger;
  /** Wall clock for windows and timers that decide things; tests step it. */
  clock?: Clock;
  metrics?: Metrics;
}

export function tableFromConfig(config: Config, version = 1): RoutingTable {
  const overrides: [string, UpstreamName][] = [
    ...config.routing.overrides.legacy.map((k): [string, UpstreamName] => [k, 'legacy']),
    ...config.routing.overrides.new.map((k): [string, UpstreamName] => [k, 'new']),
  ];
  return makeTable({
    rolloutId: config.rollout.id,
    salt: config.rollout.salt,
    weightBp: config.rollout.weightBp,
    state: 'progressing',
    overrides,
    forceHeader: config.routing.forceHeader,
    version,
  });
}

export class Veer {
  config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly recorder: Recorder;
  readonly proxy: ProxyHandler;
  readonly front: FrontListener;
  readonly admin: AdminServer | undefined;
  readonly clock: Clock;
  /** The only writer of routing state (SLO guard and operator commands). */
  readonly controller: Controller;
  readonly store: StateStore;
  readonly audit: AuditLog;
  proxyAddress!: AddressInfo;
  adminAddress: AddressInfo | undefined;
  private upstreams: Record<UpstreamName, Upstream>;
  private stopping = false;

  private constructor(options: VeerOptions) {
    const config = options.config;
    this.config = config;
    this.clock = options.clock ?? Date.now;
    this.logger = options.logger ?? createLogger({ level: config.log.level });
    this.metrics = options.metrics ?? createMetrics();
    this.recorder = new Recorder({
      metrics: this.metrics,
      logger: this.logger,
      accessLog: config.log.access,
      windowMs: config.slo.windowMs,
      slices: config.slo.slices,
      clock: this.clock,
    });
    this.upstreams = {
      legacy: new Upstream('legacy', config.upstreams.legacy),
      new: new Upstream('new', config.upstreams.new),
    };
    this.proxy = new ProxyHandler({
      config,
      table: tableFromConfig(config),
      upstreams: this.upstreams,
      recorder: this.recorder,
      metrics: this.metrics,
      logger: this.logger,
    });
    this.metrics.live.weightRatio = () => this.proxy.table.weightBp / 10_000;
    this.store = new StateStore(config.state.path);
    this.audit = new AuditLog(config.state.auditPath);
    // Throws StateFileError on an unreadable state file: start-up must stop rather than forget a kill.
    this.controller = Controller.open({
      config,
      store: this.store,
      audit: this.audit,
      metrics: this.metrics,
      logger: this.logger,
      clock: this.clock,
      windows: () => ({ legacy: this.recorder.windows.legacy.snapshot(), new: this.recorder.windows.new.snapshot() }),
      swap: (table) => {
        this.proxy.table = table;
      },
    });
    this.front = new FrontListener({
      listen: config.listen,
      onHttp1: this.proxy.handleHttp1,
      onHttp2: this.proxy.handleHttp2,
      logger: this.logger,
    });
    this.metrics.live.connections = () => this.front.connections;
    this.admin = config.admin.enabled
      ? new AdminServer({
          host: config.admin.host,
          port: config.admin.port,
          routes: this.baseRoutes(),
          metrics: this.metrics,
          logger: this.logger,
        })
      : undefined;
  }

  static async start(options: VeerOptions): Promise<Veer> {
    const veer = new Veer(options);
    try {
      veer.proxyAddress = await veer.front.listen();
      if (veer.admin) veer.adminAddress = await veer.admin.listen();
      veer.controller.start();
    } catch (err) {
      await veer.close();
      throw err;
    }
    veer.logger.info(
      {
        proxy: `${veer.proxyAddress.address}:${veer.proxyAddress.port}`,
        admin: veer.adminAddress ? `${veer.adminAddress.address}:${veer.adminAddress.port}` : null,
        tls: Boolean(options.config.listen.tls),
        rollout: options.config.rollout.id,
        weight_percent: veer.proxy.table.weightBp / 100,
        legacy: options.config.upstreams.legacy.url,
        new: options.config.upstreams.new.url,
      },
      'veer started',
    );
    return veer;
  }

  get table(): RoutingTable {
    return this.proxy.table;
  }

  private baseRoutes(): AdminRoute[] {
    return [
      {
        method: 'GET',
        path: '/metrics',
        handler: async (_req, res) => {
          const body = await this.metrics.registry.metrics();
          res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
          res.end(body);
        },
      },
      { method: 'GET', path: '/healthz', handler: (_req, res) => sendJson(res, 200, '{"status":"ok"}') },
      {
        method: 'GET',
        path: '/readyz',
        handler: (_req, res) => {
          const stateWritable = this.store.writable() && this.controller.persisted;
          const ready = !this.stopping && this.front.listening && stateWritable;
          sendJson(
            res,
            ready ? 200 : 503,
            JSON.stringify({
              ready,
              draining: this.stopping,
              listening: this.front.listening,
              state_writable: stateWritable,
              rollout: this.controller.snapshot.rollout_id,
            }),
          );
        },
      },
    ];
  }

  /** SIGTERM: stop accepting, let streams finish within the grace period, then close everything. */
  async shutdown(graceMs = this.config.drain.gracePeriodMs): Promise<{ forced: number }> {
    this.stopping = true;
    this.controller.stop();
    this.proxy.ctx.draining = true;
    this.logger.info({ grace_ms: graceMs }, 'draining');
    const result = await this.front.drain(graceMs);
    await Promise.all([this.upstreams.legacy.destroy(), this.upstreams.new.destroy()]);
    if (this.admin) await this.admin.close();
    this.logger.info({ forced: result.forced }, 'veer stopped');
    flushLogger(this.logger);
    return result;
  }

  /** Immediate teardown (tests, failed start-up). */
  async close(): Promise<void> {
    this.stopping = true;
    this.controller?.stop();
    await this.front.close().catch(() => {});
    await Promise.all([this.upstreams.legacy.destroy(), this.upstreams.new.destroy()]);
    if (this.admin?.listening) await this.admin.close();
    flushLogger(this.logger);
  }
}
