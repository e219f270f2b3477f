/**
 * The fault-injection suite (issue 8): `npm run test:faults`, run by CI after `npm test`. Kept out of
 * `npm test` because it takes minutes: 20 SIGKILLed server processes, a 30 s broker freeze, hostile
 * clients. The load soak (`test/faults/soak`) is heavier still and has its own `npm run test:soak`.
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
