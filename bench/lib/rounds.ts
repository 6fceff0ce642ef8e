// Alternating rounds, direct and through veer in the same run, with veer's CPU time measured over its own rounds.

import { type Side, sidesOf } from './load.js';
import type { VeerProcess } from './veer-process.js';

export interface RoundOutput {
  /** Requests (or events) that succeeded; veer's CPU time is divided by this. */
  ok: number;
}

export interface Alternated<T> {
  direct: T[];
  veer: T[];
  /** Rounds on the references asked for: the bare forwarder, the TCP relay, NGINX. */
  bare: T[];
  /** A second bare forwarder process, measured like the first: two identical sides (the A/A control). */
  bare_copy: T[];
  relay: T[];
  nginx: T[];
  /** Per reference round: its process's CPU µs per ok unit (for references that can tell their CPU). */
  refCpuUsPerOk: Partial<Record<Side, number[]>>;
  /** veer's user+sys CPU seconds over its rounds only. */
  veerCpuS: number;
  /** The user-mode part of veerCpuS (the rest is the kernel's, mostly socket reads and writes). */
  veerUserS: number;
  veerOk: number;
  /** Per veer round: CPU µs per ok unit. */
  veerCpuUsPerOk: number[];
}

export async function alternate<T extends RoundOutput>(
  rounds: number,
  veer: VeerProcess,
  run: (side: Side, round: number) => Promise<T>,
  options: { references?: Side[]; cpuOf?: Partial<Record<Side, () => number>> } = {},
): Promise<Alternated<T>> {
  const out: Alternated<T> = {
    direct: [],
    veer: [],
    bare: [],
    bare_copy: [],
    relay: [],
    nginx: [],
    refCpuUsPerOk: {},
    veerCpuS: 0,
    veerUserS: 0,
    veerOk: 0,
    veerCpuUsPerOk: [],
  };
  for (let round = 0; round < rounds; round++) {
    for (const side of sidesOf(round, options.references)) {
      const refCpu = options.cpuOf?.[side];
      const refBefore = refCpu?.();
      const before = veer.cpu();
      const r = await run(side, round);
      const after = veer.cpu();
      const cpu = after.total - before.total;
      out[side].push(r);
      if (refCpu && refBefore !== undefined) {
        out.refCpuUsPerOk[side] ??= [];
        out.refCpuUsPerOk[side].push(r.ok > 0 ? ((refCpu() - refBefore) * 1e6) / r.ok : Number.NaN);
      }
      if (side === 'veer') {
        out.veerCpuS += cpu;
        out.veerUserS += after.user - before.user;
        out.veerOk += r.ok;
        out.veerCpuUsPerOk.push(r.ok > 0 ? (cpu * 1e6) / r.ok : Number.NaN);
      }
    }
  }
  return out;
}
