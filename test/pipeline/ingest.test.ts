import { afterEach, describe, expect, it } from 'vitest';
import { recordsOf } from '../../src/materializer/change-batch.js';
import { RecordErrorCode } from '../../src/errors.js';
import type { FeedBatch, FeedRecord } from '../../src/feed/types.js';
import { silentLogger } from '../../src/ops/logger.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { DeadLetterHeader, toOutboxEntry } from '../../src/feed/dead-letter.js';
import { createIngestHandler } from '../../src/pipeline/ingest.js';
import { jsonDecoder } from '../../src/formats/json.js';
import type { FormatDecoder } from '../../src/formats/types.js';
import { openStore, type LmdbStore } from '../../src/store/lmdb-store.js';
import type { Table } from '../../src/views/source.js';
import { userCounts } from '../utils/store-state.js';
import { tempDir } from '../utils/tmp.js';

const tables = new Map<string, Table>([
  ['users', 'users'],
  ['tweets', 'tweets'],
  ['follows', 'follows'],
  ['likes', 'likes'],
]);

function batch(
  topic: string,
  records: [key: string | Buffer | null, value: string | Buffer | null][],
  first = 0,
): FeedBatch {
  return {
    topic,
    partition: 0,
    highWatermark: String(first + records.length),
    records: records.map(([k, v], i): FeedRecord => ({
      topic,
      partition: 0,
      offset: String(first + i),
      timestamp: '1700000000000',
      key: k === null ? null : Buffer.from(k),
      value: v === null ? null : Buffer.from(v),
      headers: { trace: Buffer.from('abc') },
    })),
  };
}

/** Stores opened by `setup`, closed after each test (a writer thread's worker with them). */
const opened: LmdbStore[] = [];
afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
});

/**
 * With `writerThread`, the store's commits run on its writer thread, and the ingest packs each record as it
 * decodes it (packed-changes.ts `PackingChangeBatch`); without, it hands over plain columns.
 */
function setup(maxRecordsPerCommit: number | undefined, writerThread: boolean) {
  const store = openStore({
    path: tempDir(),
    writerThread,
    ...(maxRecordsPerCommit === undefined ? {} : { maxRecordsPerCommit }),
  });
  opened.push(store);
  const metrics = createMetrics({ defaultMetrics: false });
  const handler = createIngestHandler({
    store,
    tables,
    metrics,
    logger: silentLogger,
    deadLetters: { outboxEntry: (entry) => toOutboxEntry(entry, '.dlq') },
    ...(maxRecordsPerCommit === undefined ? {} : { maxRecordsPerCommit }),
  });
  return { store, metrics, handler };
}

/** The dead letters waiting in the store's outbox: topic, source offset and error code, in outbox order. */
function outbox(store: LmdbStore): { topic: string; offset: string; code: string }[] {
  const header = (h: Record<string, string | Buffer> | undefined, name: string) => String(h?.[name] ?? '');
  return store.outboxTopics().flatMap((topic) =>
    store.outboxEntries(topic, 1_000).map(({ entry }) => ({
      topic,
      offset: header(entry.message.headers, DeadLetterHeader.SourceOffset),
      code: header(entry.message.headers, DeadLetterHeader.ErrorCode),
    })),
  );
}

describe.each([false, true])('ingest (writer thread: %s)', (writerThread) => {
  it('should keep every kind of invalid record for the dead-letter topic and apply the records after it', async () => {
    const { store, handler } = setup(undefined, writerThread);
    await handler(batch('users', [['u1', JSON.stringify({ userId: 'u1', username: 'ok' })]]));
    await handler(
      batch('tweets', [
        ['t1', '{not json'],
        ['t2', '[1,2]'],
        ['t3', JSON.stringify({ tweetId: 't3' })],
        ['t4', JSON.stringify({ tweetId: 't4', userId: 42 })],
        ['t5', JSON.stringify({ tweetId: 'other', userId: 'u1' })],
        ['', JSON.stringify({ userId: 'u1' })],
        [null, JSON.stringify({ userId: 'u1' })],
        ['k'.repeat(513), JSON.stringify({ userId: 'u1' })],
        [Buffer.from([0xff, 0xfe]), JSON.stringify({ userId: 'u1' })],
        ['t6', JSON.stringify({ tweetId: 't6', userId: 'u1', createdAt: 'yesterday' })],
        [Buffer.from('t7'), Buffer.from([0xc3, 0x28])],
        [
          't8',
          JSON.stringify({
            tweetId: 't8',
            userId: 'u1',
            createdAt: 'Tue Jan 22 15:14:44 +0000 2008',
            extra: { x: 1 },
          }),
        ],
      ]),
    );
    expect(outbox(store).map((d) => [d.topic, d.offset, d.code])).toEqual([
      ['tweets.dlq', '0', RecordErrorCode.JsonInvalid],
      ['tweets.dlq', '1', RecordErrorCode.NotObject],
      ['tweets.dlq', '2', RecordErrorCode.FieldMissing],
      ['tweets.dlq', '3', RecordErrorCode.FieldType],
      ['tweets.dlq', '4', RecordErrorCode.KeyMismatch],
      ['tweets.dlq', '5', RecordErrorCode.KeyInvalid],
      ['tweets.dlq', '6', RecordErrorCode.KeyInvalid],
      ['tweets.dlq', '7', RecordErrorCode.KeyInvalid],
      ['tweets.dlq', '8', RecordErrorCode.KeyInvalid],
      ['tweets.dlq', '9', RecordErrorCode.DateInvalid],
      ['tweets.dlq', '10', RecordErrorCode.JsonInvalid],
    ]);
    // The original bytes and headers, through LMDB.
    const [first] = store.outboxEntries('tweets.dlq', 1);
    expect([
      first?.entry.message.key,
      String(first?.entry.message.value),
      String(first?.entry.message.headers?.['trace']),
    ]).toEqual([Buffer.from('t1'), '{not json', 'abc']);
    expect(store.outboxSize()).toBe(11);
    expect({ tweets: store.getUser('u1')?.tweetCount, next: store.position('tweets', 0) }).toEqual({
      tweets: 1,
      next: '12',
    });
    await store.close();
  });

  it('should skip records below the stored offset so a redelivered batch counts nothing twice', async () => {
    const { store, metrics, handler } = setup(undefined, writerThread);
    const b = batch('tweets', [
      ['t1', JSON.stringify({ userId: 'u1' })],
      ['t2', JSON.stringify({ userId: 'u1' })],
    ]);
    await handler(b);
    await handler(b);
    await handler(
      batch(
        'tweets',
        [
          ['t2', JSON.stringify({ userId: 'u1' })],
          ['t3', JSON.stringify({ userId: 'u1' })],
        ],
        1,
      ),
    );
    await handler(batch('users', [['u1', JSON.stringify({ username: 'a' })]]));
    expect(store.getUser('u1')?.tweetCount).toBe(3);
    expect((await metrics.recordsSkipped.get()).values.map((v) => v.value)).toEqual([3]);
    await store.close();
  });

  it("should say when its batch is decoded, with the packed bytes it holds, and read none of the batch's records after", async () => {
    const store = openStore({ path: tempDir(), writerThread });
    opened.push(store);
    const applied: unknown[] = [];
    const handler = createIngestHandler({
      store,
      tables,
      metrics: createMetrics({ defaultMetrics: false }),
      logger: silentLogger,
      deadLetters: { outboxEntry: (entry) => toOutboxEntry(entry, '.dlq') },
      onApplied: (_batch, _result, newestEventMs, tail) => applied.push({ newestEventMs, tail }),
    });
    const b = batch('tweets', [
      ['t1', JSON.stringify({ userId: 'u1' })],
      ['t2', '{not json'],
      ['t3', JSON.stringify({ userId: 'u1' })],
    ]);
    const held: number[] = [];
    // As the Kafka source does: the records go once the handler says it decoded them.
    await handler(b, (bytes) => {
      held.push(bytes);
      (b.records as FeedRecord[]).length = 0;
    });
    // Decoded rows are not packed without the writer thread: nothing is said then, and the records stay.
    expect({ calls: held.length, positive: held.every((n) => n > 0) }).toEqual({
      calls: writerThread ? 1 : 0,
      positive: true,
    });
    expect({
      tweets: userCounts(store.activeGeneration().spaces('user-information'), 'u1')?.tweetCount,
      position: store.position('tweets', 0),
      deadLetters: outbox(store),
    }).toEqual({
      tweets: 2,
      position: '3',
      deadLetters: [{ topic: 'tweets.dlq', offset: '1', code: RecordErrorCode.JsonInvalid }],
    });
    // What onApplied is told of the batch comes from before its records went.
    expect(applied).toEqual([
      { newestEventMs: 1_700_000_000_000, tail: { timestamp: 1_700_000_000_000, next: '3' } },
    ]);
  });

  it('should move the position past records the source skipped (transaction markers), with or without records left', async () => {
    const { store, handler } = setup(undefined, writerThread);
    await handler({ ...batch('tweets', [['t0', JSON.stringify({ userId: 'u1' })]]), nextOffset: '2' });
    expect(store.position('tweets', 0)).toBe('2');
    await handler({ ...batch('tweets', []), nextOffset: '5' });
    expect(store.position('tweets', 0)).toBe('5');
    const sequence = store.sequence();
    await handler({ ...batch('tweets', []), nextOffset: '4' }); // behind: nothing to commit
    expect({ next: store.position('tweets', 0), sequence: store.sequence() }).toEqual({
      next: '5',
      sequence,
    });
    await store.close();
  });

  it('should store no dead letter twice when a batch is delivered again', async () => {
    const { store, handler } = setup(undefined, writerThread);
    const b = batch('tweets', [
      ['t1', JSON.stringify({ userId: 'u1' })],
      ['t2', 'garbage'],
      ['t3', JSON.stringify({ userId: 'u1' })],
    ]);
    await handler(b);
    await handler(b);
    expect(outbox(store).map((d) => d.offset)).toEqual(['1']);
    await store.close();
  });

  describe('records per commit', () => {
    const tweets = (n: number, partition = 0, first = 0): FeedBatch => {
      const b = batch(
        'tweets',
        Array.from({ length: n }, (_, i): [string, string] => [
          `t${partition}-${first + i}`,
          JSON.stringify({ userId: `u${i % 7}` }),
        ]),
        first,
      );
      return { ...b, partition, records: b.records.map((r) => ({ ...r, partition })) };
    };
    /** Spies on applyBatch: records handed over per call, and records per commit. */
    function watch(store: ReturnType<typeof setup>['store'], failCall?: number) {
      const apply = store.applyBatch.bind(store);
      const seen = { calls: [] as number[], packed: [] as boolean[], commits: new Map<bigint, number>() };
      store.applyBatch = async (input, target) => {
        seen.packed.push('packed' in input);
        seen.calls.push('packed' in input ? input.packed.table.length : recordsOf(input));
        if (seen.calls.length === failCall) throw new Error('disk on fire');
        const result = await apply(input, target);
        seen.commits.set(result.sequence, result.accepted + result.skipped);
        return result;
      };
      return seen;
    }
    const counts = (store: ReturnType<typeof setup>['store']) => ({
      get: (id: string) => userCounts(store.activeGeneration().spaces('user-information'), id),
    });
    const tweetCounts = (store: ReturnType<typeof setup>['store']) =>
      Array.from({ length: 7 }, (_, i) => counts(store).get(`u${i}`)?.tweetCount ?? 0);

    it('should apply a batch bigger than the limit in chunks, storing the offset after each', async () => {
      const { store, handler } = setup(100, writerThread);
      const seen = watch(store);
      await handler(tweets(230));
      expect(seen.calls).toEqual([100, 100, 30]);
      // Packed as decoded exactly when the commits cross to the writer thread.
      expect(seen.packed).toEqual([writerThread, writerThread, writerThread]);
      expect(store.position('tweets', 0)).toBe('230');
      expect(tweetCounts(store).reduce((a, b) => a + b, 0)).toBe(230);
      await store.close();
    });

    it('should commit batches of several partitions together, never more than the limit in one commit', async () => {
      const { store, handler } = setup(100, writerThread);
      const seen = watch(store);
      await Promise.all([0, 1, 2, 3].map((p) => handler(tweets(45, p))));
      // The first commits alone; the three that waited for it fit two to a commit.
      expect([...seen.commits.values()]).toEqual([45, 90, 45]);
      expect([0, 1, 2, 3].map((p) => store.position('tweets', p))).toEqual(['45', '45', '45', '45']);
      expect(tweetCounts(store).reduce((a, b) => a + b, 0)).toBe(180);
      await store.close();
    });

    it('should keep the chunks committed before a failed one and apply the rest exactly once on redelivery', async () => {
      const { store, handler } = setup(100, writerThread);
      const seen = watch(store, 3);
      const b = tweets(230);
      await expect(handler(b)).rejects.toThrow('disk on fire');
      expect(store.position('tweets', 0)).toBe('200');
      await handler(b);
      expect(seen.calls).toEqual([100, 100, 30, 30]);
      expect(store.position('tweets', 0)).toBe('230');
      expect(tweetCounts(store)).toEqual(
        Array.from(
          { length: 7 },
          (_, u) => Array.from({ length: 230 }, (_, i) => i % 7).filter((x) => x === u).length,
        ),
      );
      await store.close();
    });

    it('should commit each dead letter with the chunk that passes it, so a failed chunk stores neither and a redelivery stores each once', async () => {
      const { store, handler } = setup(2, writerThread); // chunks of 2 valid records
      const seen = watch(store, 2);
      const b = batch('tweets', [
        ['t1', JSON.stringify({ userId: 'u1' })],
        ['bad1', 'garbage'],
        ['t3', JSON.stringify({ userId: 'u1' })],
        ['t4', JSON.stringify({ userId: 'u1' })],
        ['bad2', 'garbage'],
        ['t6', JSON.stringify({ userId: 'u1' })],
      ]);
      await expect(handler(b)).rejects.toThrow('disk on fire');
      // The first chunk (t1, bad1, t3) committed with bad1; the second (t4, bad2, t6) did not.
      expect({ next: store.position('tweets', 0), dead: outbox(store).map((d) => d.offset) }).toEqual({
        next: '3',
        dead: ['1'],
      });
      await handler(b);
      expect(seen.calls).toEqual([2, 2, 2]);
      expect({ next: store.position('tweets', 0), dead: outbox(store).map((d) => d.offset) }).toEqual({
        next: '6',
        dead: ['1', '4'],
      });
      await store.close();
    });

    it('should store the offset of trailing invalid records with the last chunk', async () => {
      const { store, handler } = setup(4, writerThread);
      const b = batch('tweets', [
        ['t1', JSON.stringify({ userId: 'u1' })],
        ['t2', JSON.stringify({ userId: 'u1' })],
        ['t3', JSON.stringify({ userId: 'u1' })],
        ['t4', 'garbage'],
        ['t5', 'garbage'],
      ]);
      await handler(b);
      expect(outbox(store).map((d) => d.offset)).toEqual(['3', '4']);
      expect(store.position('tweets', 0)).toBe('5');
      expect(counts(store).get('u1')?.tweetCount).toBe(3);
      await store.close();
    });
  });
});

describe('ingest of pipelined batches', () => {
  const counts = (store: LmdbStore) => ({
    get: (id: string) => userCounts(store.activeGeneration().spaces('user-information'), id),
  });
  /**
   * A handler whose tweets decoder waits in `prepare` for the first batch starting at offset 0 until
   * `release`, then fails it if so told (a registry outage, say).
   */
  function gated(outcome: 'ok' | 'fail') {
    const store = openStore({ path: tempDir() });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const json = jsonDecoder('tweets');
    let gated = true;
    const decoder: FormatDecoder = {
      format: json.format,
      decode: (record) => json.decode(record),
      async prepare(records) {
        if (records[0]?.offset !== '0' || !gated) return;
        gated = false;
        await gate;
        if (outcome === 'fail') throw new Error('registry unavailable');
      },
    };
    const handler = createIngestHandler({
      store,
      tables,
      decoders: new Map([['tweets', decoder]]),
      metrics: createMetrics({ defaultMetrics: false }),
      logger: silentLogger,
      deadLetters: { outboxEntry: (entry) => toOutboxEntry(entry, '.dlq') },
    });
    return { store, handler, release };
  }
  const tweets = (first: number, count: number) =>
    batch(
      'tweets',
      Array.from({ length: count }, (_, i) => [`t${first + i}`, JSON.stringify({ userId: 'u1' })]),
      first,
    );

  it("should hand a partition's batches to the store in the order the source handed them out", async () => {
    const { store, handler, release } = gated('ok');
    try {
      const first = handler(tweets(0, 2));
      // Handed out while the first is still being applied (its decoding waits): it continues from 2.
      const second = handler({ ...tweets(2, 2), continuesFrom: '2' });
      // The second decoded at once, but waits for the first to reach the store before it goes.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(store.position('tweets', 0)).toBeUndefined();
      release();
      await Promise.all([first, second]);
      expect({ position: store.position('tweets', 0), tweets: counts(store).get('u1')?.tweetCount }).toEqual({
        position: '4',
        tweets: 4,
      });
    } finally {
      await store.close();
    }
  });

  it('should refuse a batch whose predecessor failed, and apply both exactly once delivered again', async () => {
    const { store, handler, release } = gated('fail');
    try {
      const first = handler(tweets(0, 2));
      const second = handler({ ...tweets(2, 2), continuesFrom: '2' });
      release();
      const settled = await Promise.allSettled([first, second]);
      expect(
        settled.map((r) =>
          r.status === 'fulfilled' ? 'applied' : ((r.reason as { code?: string }).code ?? String(r.reason)),
        ),
      ).toEqual(['Error: registry unavailable', 'MV_ERR_BATCH_OUT_OF_ORDER']);
      expect(store.position('tweets', 0)).toBeUndefined();
      expect(counts(store).get('u1')).toBeUndefined();
      // The source reads the partition again from the store's position: one batch, no condition.
      const again = tweets(0, 4);
      await handler(again);
      expect({ position: store.position('tweets', 0), tweets: counts(store).get('u1')?.tweetCount }).toEqual({
        position: '4',
        tweets: 4,
      });
    } finally {
      await store.close();
    }
  });
});
