// The channel a sidecar hears the fleet's changes on: one per rollout id, followed again after a reload
// that changes the id, and awaited by a sync so that no change published after its read goes unheard.

import type { Redis } from 'ioredis';

export class ChangesChannel {
  /** The channel subscribed to, or being subscribed to ('' before the subscriber is first ready). */
  private channel = '';
  /**
   * The subscription to `channel` being made. A sync waits for it: a change published after the sync read
   * the state is then always heard, never left to the next resync (a race seen after a reload to a new
   * rollout id, when the subscribe was slower than a kill on another sidecar). fleet.command_timeout bounds it.
   */
  private subscribing: Promise<unknown> = Promise.resolve();

  /**
   * `name()` is the channel for the current rollout id; `heard(message)` gets each message published on it
   * (the store position a writer reached, `epoch:version`).
   */
  constructor(
    private readonly subscriber: Redis,
    private readonly name: () => string,
    heard: (message: string) => void,
  ) {
    subscriber.on('ready', () => this.subscribe());
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) heard(message);
    });
  }

  /** Resolves once the current channel's subscription is made (or failed: a resync covers that). */
  subscribed(): Promise<unknown> {
    return this.subscribing;
  }

  /** The rollout id changed: leaves the old channel for the new one (on the next 'ready' when not connected). */
  follow(): void {
    if (this.subscriber.status !== 'ready') return;
    if (this.channel) this.subscriber.unsubscribe(this.channel).catch(() => {});
    this.subscribe();
  }

  private subscribe(): void {
    this.channel = this.name();
    this.subscribing = this.subscriber.subscribe(this.channel).catch(() => {});
  }
}
