import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Most files wait on sockets and child processes, not the CPU: two at a time halve the run on 2 cores
    // (measured 393 s with one worker, 193 s with two, every file green both ways).
    maxWorkers: 2,
    // The second reporter ends the run with one line naming the system programs suites skipped for.
    reporters: ['default', './tests/helpers/missing-programs-reporter.ts'],
  },
});
