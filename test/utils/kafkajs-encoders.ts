/**
 * kafkajs' own record batch encoder (magic 2) and record encoder, for tests that decode what a producer
 * writes: the same bytes a kafkajs producer sends.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const { RecordBatch: encodeBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as {
  RecordBatch: (options: object) => Promise<{ buffer: Buffer }>;
};

export const encodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (
  options: object,
) => unknown;
