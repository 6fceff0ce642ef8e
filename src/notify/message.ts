// What a notification says: the event an applied change or a verdict is, and its JSON and Slack bodies.

import type { AuditEntry, RolloutSummary } from '../state/audit.js';

export type NotifyEvent =
  | 'rollback'
  | 'step'
  | 'promote'
  | 'kill'
  | 'resume'
  | 'latch'
  | 'gate'
  | 'breach'
  | 'inconclusive';

export const NOTIFY_EVENTS: readonly NotifyEvent[] = [
  'rollback',
  'step',
  'promote',
  'kill',
  'resume',
  'latch',
  'gate',
  'breach',
  'inconclusive',
];

/** The audit actions that are decisions worth telling someone about, and the event each is. */
const EVENT_OF_ACTION: Readonly<Record<string, NotifyEvent>> = {
  rollback: 'rollback',
  step_down: 'step',
  weight: 'step',
  promote: 'promote',
  kill: 'kill',
  resume: 'resume',
  latch: 'latch',
  gate_open: 'gate',
};

/** The event an applied change is, or undefined (overrides, reloads, refusals, and what the fleet adopted). */
export function eventOfChange(entry: AuditEntry): NotifyEvent | undefined {
  // In a fleet only the sidecar that decided tells: a state adopted from the store is someone else's news.
  if (entry.actor === 'fleet' || entry.action === 'fleet_sync') return undefined;
  return EVENT_OF_ACTION[entry.action];
}

/** veer's documented notification payload (format: json). */
export interface NotificationPayload {
  event: NotifyEvent;
  rollout_id: string;
  time: string;
  actor: string;
  reason: string;
  /** The rollout before and after (null for an event that changed nothing, e.g. a breach not acted on). */
  from: RolloutSummary | null;
  to: RolloutSummary | null;
  /** The rule results that decided it (value, threshold, legacy, status). */
  rules: NonNullable<AuditEntry['rules']>;
  /** The sidecar that sent it (hostname). */
  sidecar: string;
}

export function payloadOf(event: NotifyEvent, entry: AuditEntry, sidecar: string): NotificationPayload {
  return {
    event,
    rollout_id: entry.rollout_id,
    time: entry.time,
    actor: entry.actor,
    reason: entry.reason,
    from: entry.before,
    to: entry.after,
    rules: entry.rules ?? [],
    sidecar,
  };
}

const side = (summary: RolloutSummary | null) => (summary ? `${summary.state} ${summary.weight_percent}%` : '?');

function ruleLine(rule: NotificationPayload['rules'][number]): string {
  const shown = (value: number | null) =>
    value === null
      ? '-'
      : rule.unit === 'ms'
        ? `${Math.round(value)}ms`
        : rule.unit === 'ratio'
          ? `${(value * 100).toFixed(2)}%`
          : `${value}`;
  return `${rule.name} ${shown(rule.value)} (limit ${shown(rule.threshold)}, ${rule.status})`;
}

/** One line a human reads: what happened to which rollout, who did it, and why. */
export function headline(payload: NotificationPayload): string {
  const change = payload.from || payload.to ? ` ${side(payload.from)} → ${side(payload.to)}` : '';
  const rules = payload.rules.filter((rule) => rule.status !== 'pass').map(ruleLine);
  return (
    `veer ${payload.event}: rollout ${payload.rollout_id}${change} by ${payload.actor}` +
    ` (${payload.reason})${rules.length > 0 ? `; ${rules.join('; ')}` : ''}`
  );
}

/** A Slack incoming-webhook message: the headline as text, and as a block with the sidecar as context. */
export function slackBody(payload: NotificationPayload): string {
  const text = headline(payload);
  // Slack reads <, > and & as markup: escape what an operator or a rule name wrote.
  const escaped = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return JSON.stringify({
    text: escaped,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: escaped } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `sidecar ${payload.sidecar} at ${payload.time}` }] },
    ],
  });
}
