import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  // graphql 16 ships index.js (CJS) and index.mjs ("module"). Node loads the CJS one for every package
  // (type-graphql, @apollo/*), but Vite would hand our sources the .mjs one: two graphql instances, and
  // graphql-js refuses schemas from "another realm". Pin the bare import to the file Node picks.
  resolve: { alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }] },
  test: {
    include: ['test/**/*.test.ts'],
    // The fault-injection suite (crash loops, a 30 s broker freeze, hostile clients) takes minutes: it has
    // its own config and runs as `npm run test:faults` (CI runs both; see vitest.faults.config.ts).
    exclude: [...configDefaults.exclude, 'test/faults/**'],
    setupFiles: ['test/utils/setup.ts'],
    // Integration tests start real servers and a Kafka mock cluster; 2 cores, so keep files serial-ish.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
