/**
 * The load soak (issue 8.6): the last part of `npm test` (alone: `npm run test:soak`). 60 s of load
 * that saturates a 2-core machine, so it runs by itself, after the other suites.
 */
import { configDefaults, defineConfig } from 'vitest/config';
import base from './vitest.config.js';

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['test/faults/soak/**/*.test.ts'],
    exclude: [...configDefaults.exclude],
    maxWorkers: 1,
    testTimeout: 600_000,
    hookTimeout: 120_000,
  },
});
