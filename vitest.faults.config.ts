import { defineConfig } from 'vitest/config';

// `npm run test:faults`: the fault, load and hostile-input suite (test/faults/, issue 8). Kept out
// of `npm test` (see vitest.config.ts): it runs for minutes and loads the machine on purpose.
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    globalSetup: ['test/faults/support/global-setup.ts'],
    // One file at a time: the load test measures RSS/fd and timing on a 2-core machine, and a
    // second file hammering the CPU beside it would turn load figures into noise.
    fileParallelism: false,
    pool: 'forks',
    maxWorkers: 1,
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});
