// Load shapes the scenarios share: N concurrent loops (closed), a fixed arrival rate (open), and alternating rounds.

/** `concurrency` loops, each firing its next request when the previous one ends, until the deadline. */
export async function closedLoop(
  concurrency: number,
  durationMs: number,
  fire: (slot: number) => Promise<unknown>,
  options: { staggerMs?: number } = {},
): Promise<void> {
  const deadline = performance.now() + durationMs;
  const loop = async (slot: number) => {
    // Spreading the first requests keeps N streams of equal length from starting (and ending) in lockstep.
    if (options.staggerMs) await sleep((slot / concurrency) * options.staggerMs);
    while (performance.now() < deadline) await fire(slot);
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => loop(i)));
}

/**
 * Requests at a fixed rate regardless of how fast answers come (open loop), so a slow proxy cannot
 * slow the arrivals down and hide its latency. Requests beyond `maxInFlight` are counted as skipped.
 */
export async function fixedRate(
  ratePerS: number,
  durationMs: number,
  fire: () => Promise<unknown>,
  maxInFlight = 10_000,
): Promise<{ sent: number; skipped: number }> {
  const start = performance.now();
  let sent = 0;
  let skipped = 0;
  let inFlight = 0;
  const running = new Set<Promise<unknown>>();
  while (true) {
    const elapsed = performance.now() - start;
    if (elapsed >= durationMs) break;
    const due = Math.floor((elapsed / 1000) * ratePerS);
    while (sent + skipped < due) {
      if (inFlight >= maxInFlight) {
        skipped++;
        continue;
      }
      sent++;
      inFlight++;
      const p = fire().finally(() => {
        inFlight--;
        running.delete(p);
      });
      running.add(p);
    }
    await sleep(1);
  }
  await Promise.all(running);
  return { sent, skipped };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Where a round's requests go: the upstream itself, veer, or a reference on the same path: the bare
 * undici forwarder (`bare`), a second process of it (`bare_copy`, the A/A control), the raw TCP relay
 * (`relay`) or NGINX (`nginx`).
 */
export type Side = 'direct' | 'veer' | 'bare' | 'bare_copy' | 'relay' | 'nginx';

/**
 * The order of sides per round: ABBA-style (direct first in even rounds, last in odd ones), so a drift
 * in machine load over the run weighs on every side alike.
 */
export function sidesOf(round: number, references: Side[] = []): Side[] {
  const sides: Side[] = ['direct', 'veer', ...references];
  return round % 2 === 0 ? sides : sides.reverse();
}
