/**
 * Issue 15 at the ingest: each topic's decoder feeds the store. A truncate empties the table in the same
 * LMDB transaction as its offset (on the calling thread and on the writer thread); the source commit
 * time is the event time; undecodable records reach the DLQ with their schema id; a registry that cannot
 * answer fails the batch (redelivered later) with nothing committed and nothing dead-lettered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordErrorCode, SchemaRegistryError } from '../../src/errors.js';
import type { FeedBatch } from '../../src/feed/types.js';
import { createDecoders } from '../../src/formats/index.js';
import { createSchemaRegistryClient } from '../../src/formats/registry-client.js';
import { silentLogger } from '../../src/ops/logger.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { createIngestHandler, type DeadLetter } from '../../src/pipeline/ingest.js';
import { userCounts } from '../utils/store-state.js';
import { toOutboxEntry } from '../../src/feed/dead-letter.js';
import { openStore, type LmdbStore } from '../../src/store/lmdb-store.js';
import { TABLES, type Table } from '../../src/views/source.js';
import { encode, valueSchema } from '../formats/fixtures/avro.js';
import { event, tombstone, truncate, type EventOptions } from '../formats/fixtures/debezium.js';
import { deploySources } from '../formats/helpers.js';
import { startRegistry, type RegistryDouble } from '../utils/schema-registry.js';
import { tempDir } from '../utils/tmp.js';

let registry: RegistryDouble;
beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(async () => {
  await registry.close();
});

function setup(writerThread: boolean, likesFormat: 'debezium-json' | 'avro' = 'debezium-json') {
  const sources = deploySources((json) => {
    json.schemaRegistryUrl = registry.url;
    json.topics['likes']!.format = likesFormat;
  });
  const topics = Object.fromEntries(TABLES.map((t) => [t, sources.topics[t].topic])) as Record<Table, string>;
  const client = createSchemaRegistryClient({ urls: [registry.url] });
  const decoders = createDecoders(sources, topics, { registry: client });
  const store = openStore({ path: tempDir(), writerThread });
  const dead: DeadLetter[] = [];
  const applied: (number | undefined)[] = [];
  const handler = createIngestHandler({
    store,
    tables: new Map(TABLES.map((t) => [topics[t], t])),
    decoders,
    metrics: createMetrics({ defaultMetrics: false }),
    logger: silentLogger,
    deadLetters: {
      outboxEntry: (d) => {
        dead.push(d);
        return toOutboxEntry(d, '.dlq');
      },
    },
    onApplied: (_b, _r, newest) => applied.push(newest),
  });
  return { store, dead, applied, handler, topics };
}

let nextOffset = 0;
const batch = (
  topic: string,
  messages: { key: string | Buffer | null; value: string | Buffer | null }[],
): FeedBatch => {
  const first = nextOffset;
  nextOffset += messages.length;
  return {
    topic,
    partition: 0,
    highWatermark: String(nextOffset),
    records: messages.map((m, i) => ({
      topic,
      partition: 0,
      offset: String(first + i),
      timestamp: '1700000000000',
      key: m.key === null ? null : Buffer.from(m.key),
      value: m.value === null ? null : Buffer.from(m.value),
      headers: {},
    })),
  };
};
const o: EventOptions = { connector: 'postgresql', schemas: true, tsMs: 1_600_000_000_000 };
const like = (id: number, userId: number) => ({ id, user_id: userId, tweet_id: 1, created_at: 1n });
const userRow = (id: number) => ({ id, username: `u${id}`, created_at: '2020-01-01T00:00:00Z' });
const counts = (store: LmdbStore, id: string) =>
  userCounts(store.activeGeneration().spaces('user-information'), id)?.likeCount ?? 0;

describe.each([false, true])('ingest of Debezium topics (writer thread: %s)', (writerThread) => {
  it('should empty the table on a truncate, in the transaction that stores its offset, and count what follows', async () => {
    const { store, handler, topics, applied } = setup(writerThread);
    try {
      await handler(batch(topics.users, [event('users', 'r', null, userRow(1), o)]));
      const likes = [like(10, 1), like(11, 1), like(12, 1)].map((r) => event('likes', 'c', null, r, o));
      await handler(batch(topics.likes, likes));
      await handler(
        batch(topics.likes, [
          event('likes', 'd', { id: 11 }, null, o),
          tombstone('likes', 11, o),
          truncate('likes', { ...o, tsMs: o.tsMs + 5_000 }),
        ]),
      );
      expect({ likes: counts(store, '1'), next: store.position(topics.likes, 0) }).toEqual({
        likes: 0,
        next: String(nextOffset),
      });
      expect(store.getUser('1')?.version.eventTime).toBe(new Date(o.tsMs + 5_000).toISOString());
      expect(applied.at(-1)).toBe(o.tsMs + 5_000);
      await handler(batch(topics.likes, [event('likes', 'c', null, like(13, 1), o)]));
      expect(counts(store, '1')).toBe(1);
      // Deleted rows are gone (no markers: replays are caught by the partition's stored position).
      expect([...store.activeGeneration().rows.keys('likes')]).toEqual(['13']);
    } finally {
      await store.close();
    }
  });
});

describe('ingest of Avro topics', () => {
  it('should dead-letter what cannot be decoded with its schema id and commit the rest', async () => {
    const { store, handler, topics, dead } = setup(false, 'avro');
    try {
      const schema = valueSchema('postgresql', 'likes');
      const good = encode(registry, 'likes-value', schema, like(20, 2));
      const unknown = Buffer.from(good);
      unknown.writeUInt32BE(777, 1);
      await handler(
        batch(topics.likes, [
          { key: '20', value: good },
          { key: '21', value: unknown },
        ]),
      );
      expect({ likes: counts(store, '2'), next: store.position(topics.likes, 0) }).toEqual({
        likes: 1,
        next: String(nextOffset),
      });
      expect(dead.map((d) => ({ code: d.code, schemaId: d.schemaId, offset: d.record.offset }))).toEqual([
        { code: RecordErrorCode.SchemaUnknown, schemaId: 777, offset: String(nextOffset - 1) },
      ]);
    } finally {
      await store.close();
    }
  });

  it('should fail the batch while the registry cannot answer, with nothing committed or dead-lettered, and apply it when redelivered', async () => {
    const { store, handler, topics, dead } = setup(false, 'avro');
    try {
      const schema = { ...valueSchema('postgresql', 'likes'), name: 'Outage' };
      const b = batch(topics.likes, [
        { key: '30', value: encode(registry, 'likes-value', schema, like(30, 3)) },
      ]);
      registry.mode = 'down';
      const error = await handler(b).catch((e: unknown) => e);
      expect({
        error: error instanceof SchemaRegistryError,
        retriable: (error as SchemaRegistryError).retriable,
      }).toEqual({
        error: true,
        retriable: true,
      });
      expect({ next: store.position(topics.likes, 0), dead: dead.length }).toEqual({
        next: undefined,
        dead: 0,
      });
      registry.mode = 'up';
      await handler(b);
      expect({ likes: counts(store, '3'), dead: dead.length }).toEqual({ likes: 1, dead: 0 });
    } finally {
      registry.mode = 'up';
      await store.close();
    }
  }, 30_000);
});
