/**
 * The load soak (issue 8.6): `npm run test:soak`. Minutes of sustained load that saturate a 2-core
 * machine, so it is in neither `npm test` nor CI; run it before a release or after performance work.
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
