// The parent's handle on the mock host process: its URLs, behaviour changes and stats.

import type { ChildProcess } from 'node:child_process';
import type { MockBehavior, MockStats } from '../mock-upstream.js';
import { forkEntry, stopChild } from './children.js';
import { call } from './ipc.js';
import { type CpuTime, cpuTime } from './proc.js';

export interface MockEndpoints {
  url: string;
  h2Url: string | undefined;
}

export interface MockHost {
  pid: number;
  legacy: MockEndpoints;
  new: MockEndpoints;
  set(behavior: Partial<MockBehavior>): Promise<void>;
  stats(): Promise<{ legacy: MockStats; new: MockStats }>;
  cpu(): CpuTime;
  stop(): Promise<void>;
}

/** Both mock upstreams in one child process, so the bench's client work and theirs do not share an event loop. */
export async function startMockHost(
  behavior: Partial<MockBehavior>,
  options: { h2?: boolean } = {},
): Promise<MockHost> {
  const child: ChildProcess = forkEntry('bench/lib/mock-host');
  try {
    const urls = await call<{ legacy: MockEndpoints; new: MockEndpoints }>(
      child,
      'start',
      { behavior, h2: options.h2 ?? false },
      30_000,
    );
    const pid = child.pid!;
    return {
      pid,
      ...urls,
      set: (b) => call(child, 'set', b),
      stats: () => call(child, 'stats'),
      cpu: () => cpuTime(pid),
      async stop() {
        await call(child, 'stop', undefined, 5000).catch(() => {});
        await stopChild(child, 2000);
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}
