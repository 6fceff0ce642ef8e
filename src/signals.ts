// The outside signals veer reads and sends: the Prometheus source of query rules, and the notification webhooks; rebuilt on reload.

import type { Config, QueryRule } from './config/types.js';
import type { ControllerObserver } from './guard/controller.js';
import { guardActive, type QueryInput } from './guard/evaluate.js';
import { PrometheusSource } from './guard/prometheus.js';
import type { Logger } from './log.js';
import type { Clock } from './measure/window.js';
import type { Metrics } from './metrics/registry.js';
import { Notifier } from './notify/notifier.js';
import type { AuditLog } from './state/audit.js';

export interface OutsideSignalsOptions {
  logger: Logger;
  metrics: Metrics;
  clock: Clock;
  audit: AuditLog;
}

/** A reading older than this many evaluation intervals no longer counts (a stalled or slow Prometheus). */
const STALE_INTERVALS = 2;

export class OutsideSignals {
  private source: PrometheusSource | undefined;
  private notifier: Notifier | undefined;
  private staleAfterMs = 0;
  private running = false;

  constructor(
    private readonly options: OutsideSignalsOptions,
    config: Config,
  ) {
    this.configure(config);
  }

  /** What the controller is told: applied changes and evaluations go to the webhooks. */
  readonly observer: ControllerObserver = {
    applied: (entry) => this.notifier?.applied(entry),
    judged: (verdict, rollout) =>
      this.notifier?.judged(verdict, rollout.rollout_id, guardActive(rollout.state, rollout.weight_bp)),
  };

  /** Query rules' latest readings for the next evaluation. */
  queries(): QueryInput | undefined {
    return this.source ? { readings: this.source.latest, staleAfterMs: this.staleAfterMs } : undefined;
  }

  /** Notifications waiting per webhook (for /api/status). */
  get pendingNotifications(): Record<string, number> {
    return this.notifier?.pending ?? {};
  }

  start(intervalMs: number): void {
    this.running = true;
    this.source?.start(intervalMs);
  }

  /** A reloaded config: new queries and webhooks replace the old ones (what was queued for an old webhook is dropped). */
  configure(config: Config): void {
    const { logger, metrics, clock, audit } = this.options;
    this.source?.stop();
    this.notifier?.close();
    const rules = config.slo.rules.filter((rule): rule is QueryRule => rule.metric === 'query');
    const prometheus = config.slo.prometheus;
    this.source =
      prometheus && rules.length > 0
        ? new PrometheusSource({
            source: prometheus,
            rules,
            logger,
            clock,
            count: (rule, result) => metrics.sloQueries.inc({ rule, result }),
          })
        : undefined;
    this.staleAfterMs = STALE_INTERVALS * config.slo.intervalMs + (prometheus?.timeoutMs ?? 0);
    this.notifier =
      config.notify.length > 0
        ? new Notifier({
            targets: config.notify,
            logger,
            clock,
            count: (webhook, result) => metrics.notifications.inc({ webhook, result }),
            audit: (entry) => {
              try {
                audit.append(entry);
              } catch (err) {
                logger.error({ err: (err as Error).message }, 'audit log not writable');
              }
            },
          })
        : undefined;
    if (this.running) this.source?.start(config.slo.intervalMs);
  }

  stop(): void {
    this.running = false;
    this.source?.stop();
    this.notifier?.close();
  }
}
