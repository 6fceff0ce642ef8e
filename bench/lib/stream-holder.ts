// Child process entry: opens and holds thousands of SSE streams (one HTTP/1.1 connection each) for the streams scenario.

import type { Pool } from 'undici';
import { benchPool, chatRequest, type Started, startRequest } from './h1-client.js';
import { serve } from './ipc.js';
import { sleep } from './load.js';

let pool: Pool | undefined;
let streams: Started[] = [];

export interface HolderCounts {
  opened: number;
  /** 200 with at least one event and still open. */
  ok: number;
  /** ok, and a chunk arrived within the last `liveWithinMs`. */
  live: number;
  ended: number;
  failed: number;
  events: number;
  errors: Record<string, number>;
}

function counts(liveWithinMs = 2500): HolderCounts {
  const now = process.hrtime.bigint();
  const liveAfter = now - BigInt(liveWithinMs) * 1_000_000n;
  const c: HolderCounts = { opened: streams.length, ok: 0, live: 0, ended: 0, failed: 0, events: 0, errors: {} };
  for (const s of streams) {
    const t = s.timing;
    c.events += t.events;
    if (t.error !== undefined) {
      c.failed++;
      c.errors[t.error] = (c.errors[t.error] ?? 0) + 1;
    } else if (t.endNs !== 0n) c.ended++;
    else if (t.status === 200 && t.events > 0) {
      c.ok++;
      if (t.lastDataNs >= liveAfter) c.live++;
    }
  }
  return c;
}

serve({
  /** Opens `count` streams at `ratePerS`, then waits (bounded) until each has its first event or failed. */
  async open(p: { url: string; count: number; ratePerS: number; keyPrefix: string; waitMs: number }) {
    pool = benchPool(p.url, p.count);
    streams = [];
    const perTick = Math.max(1, Math.round(p.ratePerS / 100));
    for (let i = 0; i < p.count; i += perTick) {
      for (let j = i; j < Math.min(p.count, i + perTick); j++) {
        streams.push(startRequest(pool, chatRequest(`${p.keyPrefix}-${j}`, true)));
      }
      await sleep(10);
    }
    const deadline = Date.now() + p.waitMs;
    while (Date.now() < deadline) {
      if (streams.every((s) => s.timing.events > 0 || s.timing.error !== undefined || s.timing.endNs !== 0n)) break;
      await sleep(100);
    }
    return counts();
  },
  counts: () => counts(),
  async close() {
    const final = counts();
    for (const s of streams) s.abort();
    await Promise.race([Promise.all(streams.map((s) => s.done)), sleep(10_000)]);
    await pool?.destroy();
    pool = undefined;
    streams = [];
    return final;
  },
});
