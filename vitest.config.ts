import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/src/**/*.test.ts', 'test/**/*.test.ts'],
    // test/faults/ is its own run (`npm run test:faults`, vitest.faults.config.ts): minutes of load.
    exclude: ['**/node_modules/**', '**/dist/**', 'test/faults/**'],
    // Real PostgreSQL clusters and child services: generous, but bounded.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
