// The running veer: builds the proxy, measurement, metrics and admin listener from a Config and tears them down.

import { type FSWatcher, watch } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { basename, dirname } from 'node:path';
import { TokenAuth } from './admin/auth.js';
import { dashboardRoutes } from './admin/dashboard/dashboard.js';
import { SeriesSampler } from './admin/dashboard/series.js';
import { apiRoutes, type ReloadOutcome } from './admin/routes.js';
import { type AdminRoute, AdminServer, sendJson } from './admin/server.js';
import { changedFields, needsRestart } from './config/diff.js';
import { ConfigError, loadConfigFile } from './config/load.js';
import type { Config, UpstreamName } from './config/types.js';
import { Fleet } from './fleet/fleet.js';
import { Controller } from './guard/controller.js';
import { createLogger, flushLogger, type Logger } from './log.js';
import { Recorder } from './measure/recorder.js';
import type { Clock } from './measure/window.js';
import { createMetrics, type Metrics } from './metrics/registry.js';
import { ProxyHandler } from './proxy/proxy.js';
import { FrontListener } from './proxy/server.js';
import { ShadowTraffic } from './proxy/shadow.js';
import { type PoolReading, Upstream } from './proxy/upstream.js';
import { makeTable, type RoutingTable } from './routing/table.js';
import { OutsideSignals } from './signals.js';
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
    segments: config.routing.segments,
  });
}

export class Veer {
  config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly recorder: Recorder;
  readonly proxy: ProxyHandler;
  /** Copies of legacy-bound requests sent to new and judged on their own (rollout.shadow). */
  readonly shadow: ShadowTraffic;
  readonly front: FrontListener;
  readonly admin: AdminServer | undefined;
  readonly clock: Clock;
  /** The only writer of routing state (SLO guard and operator commands). */
  readonly controller: Controller;
  readonly store: StateStore;
  readonly audit: AuditLog;
  /** Fleet mode (shared state and judgement over Redis), when configured. */
  readonly fleet: Fleet | undefined;
  /** One point a second for the dashboard's charts (GET /api/series). */
  readonly series: SeriesSampler;
  /** Query rules' Prometheus source and the notification webhooks. */
  readonly signals: OutsideSignals;
  proxyAddress!: AddressInfo;
  adminAddress: AddressInfo | undefined;
  private upstreams: Record<UpstreamName, Upstream>;
  private stopping = false;
  private auth: TokenAuth;
  private watcher: FSWatcher | undefined;
  /** Reloads run one at a time: a SIGHUP during an API reload waits for it. */
  private reloading: Promise<unknown> = Promise.resolve();

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
    this.shadow = new ShadowTraffic({
      config: config.rollout.shadow,
      upstream: config.upstreams.new,
      recorder: this.recorder,
      metrics: this.metrics,
    });
    this.proxy = new ProxyHandler({
      shadow: this.shadow,
      config,
      table: tableFromConfig(config),
      upstreams: this.upstreams,
      recorder: this.recorder,
      metrics: this.metrics,
      logger: this.logger,
    });
    this.metrics.live.weightRatio = () => this.proxy.table.weightBp / 10_000;
    this.metrics.live.shadowRatio = () => this.proxy.table.shadowBp / 10_000;
    this.metrics.live.pools = () => this.poolReadings();
    this.auth = new TokenAuth(config.admin.tokens);
    this.store = new StateStore(config.state.path);
    this.audit = new AuditLog(config.state.auditPath);
    // Throws StateFileError on an unreadable state file: start-up must stop rather than forget a kill.
    this.signals = new OutsideSignals(
      { logger: this.logger, metrics: this.metrics, clock: this.clock, audit: this.audit },
      config,
    );
    this.controller = Controller.open({
      config,
      store: this.store,
      audit: this.audit,
      metrics: this.metrics,
      logger: this.logger,
      clock: this.clock,
      windows: () => this.fleet?.evaluationWindows() ?? this.localWindows(),
      // In fleet mode the table goes through the fleet, which holds it on legacy until the first sync.
      swap: (table) => {
        if (this.fleet) this.fleet.serveTable(table);
        else this.proxy.table = table;
      },
      queries: () => this.signals.queries(),
      observers: [this.signals.observer],
      shadowWindows: () => ({
        shadow: this.recorder.shadowWindow.snapshot(),
        // The shadow is this sidecar's own: judged against this sidecar's legacy, in the same window.
        legacy: this.recorder.windows.legacy.snapshot(),
      }),
    });
    this.fleet = config.fleet.enabled
      ? new Fleet({
          config,
          controller: this.controller,
          metrics: this.metrics,
          logger: this.logger,
          clock: this.clock,
          localWindows: () => this.localWindows(),
          serve: (table) => {
            this.proxy.table = table;
          },
          audit: this.audit,
        })
      : undefined;
    this.controller.attachFleet(this.fleet);
    this.front = new FrontListener({
      listen: config.listen,
      onHttp1: this.proxy.handleHttp1,
      onHttp2: this.proxy.handleHttp2,
      logger: this.logger,
      onRejected: (reason) => this.metrics.rejectedRequests.inc({ reason }),
    });
    this.metrics.live.connections = () => this.front.connections;
    this.series = new SeriesSampler({
      windows: () => this.localWindows(),
      finishedTotal: this.recorder.finishedTotal,
      weightBp: () => this.proxy.table.weightBp,
      rules: () => this.controller.policy.rules,
      clock: this.clock,
    });
    this.admin = config.admin.enabled
      ? new AdminServer({
          host: config.admin.host,
          port: config.admin.port,
          allowedHosts: () => this.config.admin.allowedHosts,
          routes: [...this.baseRoutes(), ...this.apiRoutes(), ...dashboardRoutes({ logger: this.logger })],
          metrics: this.metrics,
          logger: this.logger,
        })
      : undefined;
  }

  static async start(options: VeerOptions): Promise<Veer> {
    const veer = new Veer(options);
    try {
      // Reconcile with the fleet before serving, for at most fleet.connect_timeout whatever Redis does;
      // without it the state file's state serves, or legacy only when there is no state file.
      if (veer.fleet) await veer.fleet.start();
      veer.proxyAddress = await veer.front.listen();
      if (veer.admin) veer.adminAddress = await veer.admin.listen();
      veer.controller.start();
      veer.signals.start(options.config.slo.intervalMs);
      if (veer.admin) veer.series.start();
      if (options.config.reload.watch) veer.watchConfig();
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

  /** Each current upstream pool's connections and waiting requests (an old pool draining after a reload is left out). */
  private poolReadings(): Record<UpstreamName, PoolReading> {
    return { legacy: this.upstreams.legacy.poolReading(), new: this.upstreams.new.poolReading() };
  }

  private localWindows() {
    return { legacy: this.recorder.sideView('legacy'), new: this.recorder.sideView('new') };
  }

  private apiRoutes(): AdminRoute[] {
    return apiRoutes({
      controller: this.controller,
      recorder: this.recorder,
      audit: this.audit,
      config: () => this.config,
      auth: () => this.auth,
      clock: this.clock,
      reload: (actor, reason) => this.reload(actor, reason),
      fleet: this.fleet,
      series: this.series,
      shadowInflight: () => this.shadow.inflight,
      segmentCounts: () => this.proxy.segmentCounts.bySegment,
      pools: () => this.poolReadings(),
    });
  }

  /**
   * Re-reads the config file. Invalid: throws ConfigError and nothing changes. Valid: upstream pools whose
   * settings changed are replaced (streams in flight finish on the old pool, which then closes), routing,
   * tokens, log settings, the SLO policy (windows included) and reload.watch apply at once; listener, state,
   * drain and fleet changes are reported as needing a restart and keep their running values. `reason`,
   * an operator's, goes into the audit entry.
   */
  reload(actor = 'config', reason?: string): Promise<ReloadOutcome> {
    const run = this.reloading.then(() => this.reloadNow(actor, reason));
    this.reloading = run.catch(() => {});
    return run;
  }

  private async reloadNow(actor: string, reason: string | undefined): Promise<ReloadOutcome> {
    const path = this.config.sourcePath;
    if (!path) throw new ConfigError(['(file): this veer was not started from a config file; nothing to reload']);
    let loaded: Config;
    try {
      loaded = await loadConfigFile(path);
    } catch (err) {
      if (err instanceof ConfigError) {
        this.metrics.configReloads.inc({ result: 'invalid' });
        this.logger.error(
          { actor, path, problems: err.problems },
          'config reload refused: the running config keeps serving',
        );
      }
      throw err;
    }
    const old = this.config;
    const changed = changedFields(old, loaded);
    const restartRequired = changed.filter(needsRestart);
    // Keep what cannot change while running, so the config we report is the one in effect.
    const next: Config = {
      ...loaded,
      listen: old.listen,
      state: old.state,
      drain: old.drain,
      fleet: old.fleet,
      admin: { ...loaded.admin, enabled: old.admin.enabled, host: old.admin.host, port: old.admin.port },
    };
    for (const name of ['legacy', 'new'] as const) {
      const current = this.upstreams[name];
      if (!current.sameAs(next.upstreams[name])) {
        this.upstreams[name] = new Upstream(name, next.upstreams[name]);
        // close() lets requests already on the old pool finish, then ends its sockets.
        current.close().catch(() => {});
      }
    }
    this.proxy.ctx.upstreams = { ...this.upstreams };
    this.proxy.applyRouting(next.routing, next.forwarding);
    this.shadow.configure(next.rollout.shadow, next.upstreams.new);
    this.proxy.applyMeasure(next.measure);
    this.recorder.accessLog = next.log.access;
    if (next.slo.windowMs !== old.slo.windowMs || next.slo.slices !== old.slo.slices) {
      this.recorder.reshapeWindows(next.slo.windowMs, next.slo.slices);
    }
    this.logger.level = next.log.level;
    this.auth = new TokenAuth(next.admin.tokens);
    this.config = next;
    // A change the state file cannot take is in effect all the same (the controller logs it, /readyz reports
    // it): the reload goes on, and its outcome tells the admin API to say so.
    this.signals.configure(next);
    const state = this.controller.reconfigure(next, changed, actor, reason);
    if (next.reload.watch && !this.watcher) this.watchConfig();
    else if (!next.reload.watch && this.watcher) {
      this.watcher.close();
      this.watcher = undefined;
    }
    this.fleet?.reconfigure(next);
    this.metrics.configReloads.inc({ result: 'ok' });
    this.logger.info({ actor, path, changed, restart_required: restartRequired }, 'config reloaded');
    return { rolloutId: next.rollout.id, changed, restartRequired, state };
  }

  /** reload.watch: re-read the file when it changes (editors replace files, so watch the directory). */
  private watchConfig(): void {
    const path = this.config.sourcePath;
    if (!path) return;
    let timer: NodeJS.Timeout | undefined;
    this.watcher = watch(dirname(path), (_event, file) => {
      if (file !== null && file !== basename(path)) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.reload('config:watch').catch(() => {});
      }, 250);
      timer.unref();
    });
    this.watcher.unref();
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
              // Fleet mode never gates readiness: a sidecar serves on its last known table without Redis.
              ...(this.fleet
                ? { fleet: { member: this.fleet.memberId, connected: this.fleet.connected, leader: this.fleet.leader } }
                : {}),
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
    this.signals.stop();
    this.series.stop();
    this.watcher?.close();
    this.proxy.ctx.draining = true;
    this.logger.info({ grace_ms: graceMs }, 'draining');
    const result = await this.front.drain(graceMs);
    this.proxy.ctx.closing = true;
    await this.shadow.close();
    await this.fleet?.stop();
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
    this.signals?.stop();
    this.series?.stop();
    this.watcher?.close();
    await this.front.close().catch(() => {});
    await this.shadow?.close();
    await this.fleet?.stop();
    await Promise.all([this.upstreams.legacy.destroy(), this.upstreams.new.destroy()]);
    if (this.admin?.listening) await this.admin.close();
    flushLogger(this.logger);
  }
}
