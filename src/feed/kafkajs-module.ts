/**
 * kafkajs, required when a module that uses it is initialized rather than imported: the bundle
 * (scripts/build.mjs) keeps kafkajs external, and an external package imported statically is loaded with the
 * bundle by every `matview` command (`matview help` took 0.28-0.29 s with it, 0.25 s without), while only the
 * modules of the commands that use the Kafka client, initialized when a command imports them
 * (src/cli/main.ts), need it. One object either way: kafkajs is CommonJS, and Node's cjs-module-lexer does
 * not see `CompressionCodecs` and the like as named exports (its index.js builds its exports with a spread).
 */
import { createRequire } from 'node:module';
import type * as Kafkajs from 'kafkajs';

export const kafkajs = createRequire(import.meta.url)('kafkajs') as typeof Kafkajs;
