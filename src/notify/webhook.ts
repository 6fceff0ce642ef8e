// Delivers one webhook's notifications in order: a bounded queue, retries with backoff and jitter for a bounded time, signed bodies.

import { createHmac } from 'node:crypto';
import { request } from 'undici';
import type { NotifyConfig } from '../config/types.js';

/** How one webhook is reached and retried: the delivery part of its config entry. */
export type WebhookConfig = Pick<
  NotifyConfig,
  'name' | 'url' | 'format' | 'secret' | 'timeoutMs' | 'retryForMs' | 'backoffMs' | 'maxQueue'
>;

export type DeliveryResult = 'delivered' | 'retried' | 'rejected' | 'expired' | 'queue_full';

export interface WebhookHooks {
  now: () => number;
  random: () => number;
  /** Counts each attempt's outcome (veer_notify_total). */
  count: (result: DeliveryResult) => void;
  /** A notification given up on: audited and logged by the caller. */
  dropped: (why: 'rejected' | 'expired' | 'queue_full', event: string, detail: string) => void;
}

const MAX_BACKOFF_MS = 30_000;

/** Headers a receiver verifies: `x-veer-signature: sha256=HEX` over `TIMESTAMP.BODY`, TIMESTAMP in seconds. */
export function signatureHeaders(secret: string, body: string, nowMs: number): Record<string, string> {
  const timestamp = String(Math.floor(nowMs / 1000));
  const digest = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return { 'x-veer-timestamp': timestamp, 'x-veer-signature': `sha256=${digest}` };
}

interface Pending {
  event: string;
  body: string;
  firstAttemptAt: number | undefined;
}

export class Webhook {
  private readonly queue: Pending[] = [];
  private running = false;
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(
    readonly config: WebhookConfig,
    private readonly hooks: WebhookHooks,
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  /** Queues a body; never waits. A full queue gives up its oldest entry: the newest news matters most. */
  send(event: string, body: string): void {
    if (this.closed) return;
    if (this.queue.length >= this.config.maxQueue) {
      const oldest = this.queue.shift()!;
      this.hooks.count('queue_full');
      this.hooks.dropped('queue_full', oldest.event, `more than ${this.config.maxQueue} notifications waiting`);
    }
    this.queue.push({ event, body, firstAttemptAt: undefined });
    if (!this.running) void this.drain();
  }

  /** Stops retrying; what is queued is dropped without a word (the process is going away). */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.wake?.();
  }

  private async drain(): Promise<void> {
    this.running = true;
    let failures = 0;
    while (this.queue.length > 0 && !this.closed) {
      const item = this.queue[0]!;
      item.firstAttemptAt ??= this.hooks.now();
      const outcome = await this.attempt(item.body);
      if (outcome.done) {
        this.queue.shift();
        failures = 0;
        this.hooks.count(outcome.result);
        if (outcome.result === 'rejected') this.hooks.dropped('rejected', item.event, outcome.detail);
        continue;
      }
      failures++;
      const delay = Math.min(MAX_BACKOFF_MS, this.config.backoffMs * 2 ** (failures - 1)) * this.hooks.random();
      if (this.hooks.now() + delay - item.firstAttemptAt > this.config.retryForMs) {
        this.queue.shift();
        failures = 0;
        this.hooks.count('expired');
        this.hooks.dropped(
          'expired',
          item.event,
          `not delivered within ${this.config.retryForMs} ms: ${outcome.detail}`,
        );
        continue;
      }
      this.hooks.count('retried');
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, delay).unref();
      });
      this.wake = undefined;
    }
    this.running = false;
  }

  /** One POST: 2xx delivers; 5xx, 408, 429 and network failures retry; any other status is final. */
  private async attempt(
    body: string,
  ): Promise<{ done: true; result: 'delivered' | 'rejected'; detail: string } | { done: false; detail: string }> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'veer-notify' };
    if (this.config.secret) Object.assign(headers, signatureHeaders(this.config.secret, body, this.hooks.now()));
    try {
      const res = await request(this.config.url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(this.config.timeoutMs),
      });
      await res.body.dump();
      const status = res.statusCode;
      if (status >= 200 && status < 300) return { done: true, result: 'delivered', detail: `HTTP ${status}` };
      if (status >= 500 || status === 408 || status === 429) return { done: false, detail: `HTTP ${status}` };
      return { done: true, result: 'rejected', detail: `HTTP ${status}` };
    } catch (err) {
      const name = (err as Error).name;
      return {
        done: false,
        detail: name === 'TimeoutError' ? `no answer within ${this.config.timeoutMs} ms` : (err as Error).message,
      };
    }
  }
}
