// Webhook delivery against real HTTP receivers on 127.0.0.1: order, retries, signatures, and what is given up.

import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Notifier, type NotifyTarget } from '../../src/notify/notifier.js';
import type { AuditEntry } from '../../src/state/audit.js';
import { silentLogger } from '../helpers/stack.js';

interface Received {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** A receiver that answers each POST with the next status of `statuses` (the last one repeats). */
async function receiver(
  statuses: number[],
): Promise<{ url: string; received: Received[]; close: () => Promise<void> }> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => {
      const status = statuses[Math.min(received.length, statuses.length - 1)]!;
      received.push({ status, body: Buffer.concat(parts).toString('utf8'), headers: req.headers });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const target = (url: string, over: Partial<NotifyTarget> = {}): NotifyTarget => ({
  name: 'oncall',
  url,
  events: ['rollback', 'kill', 'resume'],
  format: 'json',
  timeoutMs: 1000,
  retryForMs: 10_000,
  backoffMs: 20,
  maxQueue: 100,
  ...over,
});

const change = (action: string, reason: string): AuditEntry => ({
  time: '2026-12-02T12:00:00.000Z',
  actor: action === 'rollback' ? 'slo-guard' : 'admin:oncall',
  action,
  reason,
  rollout_id: 'r1',
  before: { rollout_id: 'r1', state: 'progressing', weight_percent: 25, latched: false, kill_reason: null },
  after: { rollout_id: 'r1', state: 'rolled_back', weight_percent: 0, latched: false, kill_reason: null },
  rules: [
    {
      name: 'ttfb_p95',
      text: 'ttfb_p95 <= 550ms',
      status: 'breach',
      value: 812,
      threshold: 550,
      legacy: null,
      unit: 'ms',
      samples: 120,
      min_samples: 50,
    },
  ],
});

const until = async (done: () => boolean, timeoutMs = 5000) => {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

function notifier(targets: NotifyTarget[]) {
  const counts: string[] = [];
  const audited: AuditEntry[] = [];
  const n = new Notifier({
    targets,
    logger: silentLogger(),
    clock: Date.now,
    random: () => 1,
    count: (webhook, result) => counts.push(`${webhook}:${result}`),
    audit: (entry) => audited.push(entry),
    sidecar: 'veer-test',
  });
  cleanup.push(() => n.close());
  return { n, counts, audited };
}

describe('webhook delivery', () => {
  it('retries a receiver that answers 500 twice, then delivers each notification once and in order', async () => {
    const hook = await receiver([500, 500, 200]);
    cleanup.push(hook.close);
    const { n, counts } = notifier([target(hook.url)]);
    n.applied(change('rollback', 'ttfb_p95 812ms > 550ms'));
    n.applied(change('kill', 'incident 42'));
    await until(() => hook.received.length === 4);
    const events = hook.received.map((r) => `${r.status} ${JSON.parse(r.body).event}`);
    expect(events).toEqual(['500 rollback', '500 rollback', '200 rollback', '200 kill']);
    expect(counts).toEqual(['oncall:retried', 'oncall:retried', 'oncall:delivered', 'oncall:delivered']);
    const payload = JSON.parse(hook.received[2]!.body);
    expect(payload).toMatchObject({
      event: 'rollback',
      rollout_id: 'r1',
      actor: 'slo-guard',
      from: { state: 'progressing', weight_percent: 25 },
      to: { state: 'rolled_back', weight_percent: 0 },
      rules: [{ name: 'ttfb_p95', value: 812, threshold: 550, status: 'breach' }],
      sidecar: 'veer-test',
    });
  });

  it('signs each body with HMAC-SHA256 over timestamp and body, which the receiver can verify', async () => {
    const hook = await receiver([200]);
    cleanup.push(hook.close);
    const secret = 'a-shared-webhook-secret';
    const { n } = notifier([target(hook.url, { secret })]);
    n.applied(change('kill', 'incident 42'));
    await until(() => hook.received.length === 1);
    const { headers, body } = hook.received[0]!;
    const timestamp = String(headers['x-veer-timestamp']);
    const expected = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
    expect(headers['x-veer-signature']).toBe(`sha256=${expected}`);
    expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(30);
    const forged = createHmac('sha256', 'another-secret').update(`${timestamp}.${body}`).digest('hex');
    expect(headers['x-veer-signature']).not.toBe(`sha256=${forged}`);
  });

  it('sends a Slack message a human reads in one line', async () => {
    const hook = await receiver([200]);
    cleanup.push(hook.close);
    const { n } = notifier([target(hook.url, { format: 'slack' })]);
    n.applied(change('rollback', 'ttfb_p95 812ms > 550ms'));
    await until(() => hook.received.length === 1);
    const message = JSON.parse(hook.received[0]!.body);
    expect(message.text).toBe(
      'veer rollback: rollout r1 progressing 25% → rolled_back 0% by slo-guard (ttfb_p95 812ms &gt; 550ms); ttfb_p95 812ms (limit 550ms, breach)',
    );
    expect(message.blocks[0].text.text).toBe(message.text);
  });

  it('gives up after retry_for, counts it and writes it to the audit log, and goes on with the next', async () => {
    const hook = await receiver([503, 503, 503, 503, 503, 503, 200]);
    cleanup.push(hook.close);
    const { n, counts, audited } = notifier([target(hook.url, { retryForMs: 50, backoffMs: 20 })]);
    n.applied(change('rollback', 'first'));
    await until(() => audited.length === 1);
    expect(audited[0]).toMatchObject({
      actor: 'notify',
      action: 'notify_dropped',
      detail: { webhook: 'oncall', event: 'rollback', why: 'expired' },
    });
    expect(counts.at(-1)).toBe('oncall:expired');
  });

  it('does not retry a receiver that refuses (4xx): the notification is dropped and audited at once', async () => {
    const hook = await receiver([404]);
    cleanup.push(hook.close);
    const { n, counts, audited } = notifier([target(hook.url)]);
    n.applied(change('kill', 'incident'));
    await until(() => audited.length === 1);
    expect(hook.received).toHaveLength(1);
    expect(counts).toEqual(['oncall:rejected']);
    expect(audited[0]!.detail).toMatchObject({ why: 'rejected' });
  });

  it('sends only the events a webhook asked for, and nothing for a state adopted from the fleet', async () => {
    const hook = await receiver([200]);
    cleanup.push(hook.close);
    const { n } = notifier([target(hook.url, { events: ['kill'] })]);
    n.applied(change('rollback', 'not subscribed'));
    n.applied({ ...change('kill', 'adopted'), actor: 'fleet' });
    n.applied(change('kill', 'mine'));
    await until(() => hook.received.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(hook.received.map((r) => JSON.parse(r.body).reason)).toEqual(['mine']);
  });
});
