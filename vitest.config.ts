import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // The second reporter ends the run with one line naming the system programs suites skipped for.
    reporters: ['default', './tests/helpers/missing-programs-reporter.ts'],
  },
});
