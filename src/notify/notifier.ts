// Tells webhooks about the controller's decisions once they are applied, and about breaches and long inconclusive spells.

import { hostname } from 'node:os';
import type { NotifyConfig } from '../config/types.js';
import { type RuleResult, ruleJson, type Verdict } from '../guard/evaluate.js';
import type { Logger } from '../log.js';
import type { AuditEntry } from '../state/audit.js';
import { eventOfChange, type NotifyEvent, payloadOf, slackBody } from './message.js';
import { type DeliveryResult, Webhook } from './webhook.js';

/** A webhook as configured: where it is, how it is retried, which events it wants. */
export type NotifyTarget = NotifyConfig;

export interface NotifierOptions {
  targets: readonly NotifyTarget[];
  logger: Logger;
  clock: () => number;
  random?: () => number;
  /** Counts deliveries by webhook and result (veer_notify_total). */
  count: (webhook: string, result: DeliveryResult) => void;
  /** Writes a dropped notification to the audit log. */
  audit: (entry: AuditEntry) => void;
  sidecar?: string;
}

/**
 * Subscribes beside the audit log: it is told of a change after the change is applied and persisted,
 * queues the news and returns at once, so delivery can never delay or block a decision.
 */
export class Notifier {
  private readonly webhooks: { target: NotifyTarget; webhook: Webhook }[];
  private readonly sidecar: string;
  private breachedBefore = new Set<string>();
  private inconclusiveSince: number | null = null;
  private inconclusiveSent = new Set<string>();
  /** The rollout the last news was about, for the audit line of a dropped notification. */
  private rolloutId = '';
  /** The guard changed the rollout in the evaluation now being judged: its notification names the rules already. */
  private guardActed = false;

  constructor(private readonly options: NotifierOptions) {
    this.sidecar = options.sidecar ?? hostname();
    this.webhooks = options.targets.map((target) => ({
      target,
      webhook: new Webhook(target, {
        now: options.clock,
        random: options.random ?? Math.random,
        count: (result) => options.count(target.name, result),
        dropped: (why, event, detail) => this.dropped(target, why, event, detail),
      }),
    }));
  }

  /** Notifications waiting or being retried, per webhook (for /api/status). */
  get pending(): Record<string, number> {
    return Object.fromEntries(this.webhooks.map(({ target, webhook }) => [target.name, webhook.pending]));
  }

  /** An applied change, as the audit log records it. */
  applied(entry: AuditEntry): void {
    if (entry.rollout_id) this.rolloutId = entry.rollout_id;
    if (entry.actor === 'slo-guard') this.guardActed = true;
    const event = eventOfChange(entry);
    if (event) this.emit(event, entry);
  }

  /** An evaluation: a rule that starts to breach, and a rollout inconclusive for too long, are news too. */
  judged(verdict: Verdict, rolloutId: string, guarding: boolean): void {
    this.rolloutId = rolloutId;
    const breached = new Set(verdict.breached.map((rule) => rule.name));
    const fresh = verdict.breached.filter((rule) => !this.breachedBefore.has(rule.name));
    this.breachedBefore = breached;
    const acted = this.guardActed;
    this.guardActed = false;
    if (guarding && !acted && fresh.length > 0) {
      this.emit('breach', this.entry(verdict, rolloutId, `breach: ${fresh.map((r) => r.text).join('; ')}`));
    }
    const inconclusive =
      guarding && breached.size === 0 && verdict.rules.some((rule) => rule.status === 'inconclusive');
    if (!inconclusive) {
      this.inconclusiveSince = null;
      this.inconclusiveSent.clear();
      return;
    }
    this.inconclusiveSince ??= verdict.at;
    const spell = verdict.at - this.inconclusiveSince;
    for (const { target, webhook } of this.webhooks) {
      const limit = target.inconclusiveForMs;
      if (!target.events.includes('inconclusive') || limit === undefined) continue;
      if (spell < limit || this.inconclusiveSent.has(target.name)) continue;
      this.inconclusiveSent.add(target.name);
      const names = verdict.rules.filter((rule) => rule.status === 'inconclusive').map((rule) => rule.name);
      const entry = this.entry(
        verdict,
        rolloutId,
        `inconclusive for ${Math.round(spell / 1000)}s: ${names.join(', ')}`,
      );
      this.deliver(target, webhook, 'inconclusive', entry);
    }
  }

  close(): void {
    for (const { webhook } of this.webhooks) webhook.close();
  }

  private entry(verdict: Verdict, rolloutId: string, reason: string): AuditEntry {
    return {
      time: new Date(verdict.at).toISOString(),
      actor: 'slo-guard',
      action: 'evaluate',
      reason,
      rollout_id: rolloutId,
      before: null,
      after: null,
      rules: verdict.rules.map((rule: RuleResult) => ruleJson(rule)),
    };
  }

  private emit(event: NotifyEvent, entry: AuditEntry): void {
    for (const { target, webhook } of this.webhooks) {
      if (event !== 'inconclusive' && target.events.includes(event)) this.deliver(target, webhook, event, entry);
    }
  }

  private deliver(target: NotifyTarget, webhook: Webhook, event: NotifyEvent, entry: AuditEntry): void {
    const payload = payloadOf(event, entry, this.sidecar);
    webhook.send(event, target.format === 'slack' ? slackBody(payload) : JSON.stringify(payload));
  }

  private dropped(target: NotifyTarget, why: string, event: string, detail: string): void {
    this.options.logger.warn({ webhook: target.name, event, why, detail }, 'notification dropped');
    try {
      this.options.audit({
        time: new Date(this.options.clock()).toISOString(),
        actor: 'notify',
        action: 'notify_dropped',
        reason: `${event} notification to ${target.name} dropped (${why}): ${detail}`,
        rollout_id: this.rolloutId,
        before: null,
        after: null,
        detail: { webhook: target.name, event, why },
      });
    } catch (err) {
      this.options.logger.error({ err: (err as Error).message }, 'audit log not writable');
    }
  }
}
