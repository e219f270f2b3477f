/**
 * The fault-injection suite (issue 8): the second part of `npm test` (alone: `npm run test:faults`;
 * everything else alone: `npm run test:fast`). A separate run because it takes minutes and its files
 * each bring server processes: 20 SIGKILLed servers, a 30 s broker freeze, hostile clients. The load
 * soak (`test/faults/soak`) needs the machine to itself and is the third part (vitest.soak.config.ts).
 */
import { configDefaults, defineConfig } from 'vitest/config';
import base from './vitest.config.js';

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['test/faults/**/*.test.ts'],
    exclude: [...configDefaults.exclude, 'test/faults/soak/**'],
    // Each file brings its own mock cluster and server processes: two files at a time on 2 cores.
    maxWorkers: 2,
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});
