// Reading another process's CPU time and resident memory from /proc/PID, the figures the bench divides by work done.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on every common Linux build). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

export interface CpuTime {
  user: number;
  system: number;
  /** user + system, in seconds, over every thread of the process. */
  total: number;
}

/** Process-wide user and system CPU seconds (fields 14 and 15 of /proc/PID/stat). */
export function cpuTime(pid: number): CpuTime {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses; fields are counted after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const hz = clockTicks();
  const user = Number(fields[11]) / hz;
  const system = Number(fields[12]) / hz;
  return { user, system, total: user + system };
}

/**
 * Seconds the process's main thread (for Node: the event loop) has spent runnable but waiting for a
 * CPU (/proc/PID/schedstat, field 2). It grows when other work on the machine holds the cores.
 */
export function runQueueWait(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
  } catch {
    return Number.NaN; // kernels without schedstats
  }
}

/** Resident set size in bytes (VmRSS of /proc/PID/status). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** The soft and hard limits on open files of a process (RLIMIT_NOFILE, as /proc/PID/limits shows them). */
export function fdLimits(pid: number | 'self' = 'self'): { soft: number; hard: number } {
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits);
  const n = (v: string | undefined) => (v === undefined || v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

/** The soft limit on open files, the one that refuses a socket. */
export function fdLimit(pid: number | 'self' = 'self'): number {
  return fdLimits(pid).soft;
}

/** CPU seconds spent between two readings. */
export function cpuDelta(before: CpuTime, after: CpuTime): number {
  return after.total - before.total;
}
