/**
 * Pipelined batches (src/feed/partition-feed.ts: a partition's next batch goes out while the one before it is
 * applied) carry where they continue from, and the commit refuses one whose partition's position has not
 * reached that offset (commit.ts `checkContinuity`): nothing of it applies, and a merged commit gives way to
 * the batches that can go alone. Checked on the commit body, on the store with and without the writer
 * thread, and on a rebuild's chunk, which must keep what it holds.
 */
import { describe, expect, it } from 'vitest';
import { BatchOutOfOrderError, type MatviewError } from '../../src/errors.js';
import type { PartitionPosition } from '../../src/materializer/change-batch.js';
import { checkContinuity, commitBatch, commitPlan } from '../../src/materializer/commit.js';
import { MemoryState } from '../../src/materializer/memory-state.js';
import { openStore, type LmdbStore } from '../../src/store/lmdb-store.js';
import { createRegistry } from '../../src/views/registry.js';
import { USER_INFORMATION } from '../../src/views/user-information.js';
import { userCounts } from '../utils/store-state.js';
import { commitInput, tweetRecord } from '../utils/changes.js';
import { tempDir } from '../utils/tmp.js';

const registry = createRegistry();
const plan = commitPlan(registry);

/** Tweets of u1 at offsets [from, to) of tweets[0], reaching `to`, continuing from `continues` if given. */
function tweets(from: number, to: number, continues?: string) {
  const records = Array.from({ length: to - from }, (_, i) => tweetRecord(`t${from + i}`, 'u1', from + i));
  const position: PartitionPosition = { topic: 'tweets', partition: 0, next: String(to) };
  return commitInput(records, [continues === undefined ? position : { ...position, from: continues }]);
}

/** u1's tweets as the active generation counts them, and whether row `key` of tweets is stored. */
const tweetsOf = (store: LmdbStore): number | undefined =>
  userCounts(store.activeGeneration().spaces(USER_INFORMATION), 'u1')?.tweetCount;
const stored = (store: LmdbStore, key: string): boolean =>
  store.activeGeneration().rows.row('tweets', key) !== undefined;

const refusal = (e: unknown) => ({
  type: (e as Error).constructor.name,
  code: (e as MatviewError).code,
  retriable: (e as MatviewError).retriable,
  message: (e as Error).message,
});

describe('continuity of pipelined batches', () => {
  it('should refuse an input past its partition position before applying anything of it', () => {
    const state = new MemoryState(registry);
    commitBatch(state, plan, tweets(0, 3), 1n, 0);
    const before = JSON.stringify([...state.positions]);
    let thrown: unknown;
    try {
      commitBatch(state, plan, tweets(5, 7, '5'), 2n, 0);
    } catch (e) {
      thrown = e;
    }
    expect(refusal(thrown)).toEqual({
      type: 'BatchOutOfOrderError',
      code: 'MV_ERR_BATCH_OUT_OF_ORDER',
      retriable: true,
      message:
        "tweets[0]: the batch continues from offset 5, but the store's position is 3: the batch before it was not applied, so this one was not either; the partition is read again from the store's position",
    });
    expect(JSON.stringify([...state.positions])).toBe(before);
    expect(state.rows.row('tweets', 't5')).toBeUndefined();
    // Continuing from where the position is (or from before it: a redelivery) applies.
    expect(commitBatch(state, plan, tweets(3, 5, '3'), 2n, 0).accepted).toBe(2);
    expect(commitBatch(state, plan, tweets(4, 6, '4'), 3n, 0).accepted).toBe(1);
  });

  it('should count what the inputs before it in the same commit reach, partition by partition', () => {
    const state = new MemoryState(registry);
    const at = (next: string, from?: string, partition = 0): PartitionPosition => ({
      topic: 'tweets',
      partition,
      next,
      ...(from === undefined ? {} : { from }),
    });
    // Nothing stored: only an input without a condition, or after one in the same commit, goes.
    expect(() => checkContinuity(state, [at('4'), at('9', '4')])).not.toThrow();
    expect(() => checkContinuity(state, [at('9', '4')])).toThrow(BatchOutOfOrderError);
    expect(() => checkContinuity(state, [at('4'), at('9', '5')])).toThrow(
      "tweets[0]: the batch continues from offset 5, but the store's position is 4",
    );
    // Another partition's position does not count; a position never goes back.
    expect(() => checkContinuity(state, [at('4', undefined, 1), at('9', '4')])).toThrow(BatchOutOfOrderError);
    expect(() => checkContinuity(state, [at('9'), at('4', '3'), at('12', '9')])).not.toThrow();
  });

  it.each([{ writerThread: false }, { writerThread: true }])(
    'should commit the batches around a refused one, in one commit when they continue each other (%o)',
    async (mode) => {
      const store = openStore({ ...mode, path: tempDir() });
      try {
        // Submitted while a commit is in flight, as the feed pipelines them: they wait and go in together
        // (on this thread deterministically; the writer thread's groups depend on when its messages arrive).
        const together = await Promise.all([
          store.applyBatch(tweets(0, 2)),
          store.applyBatch(tweets(2, 4, '2')),
          store.applyBatch(tweets(4, 6, '4')),
        ]);
        if (!mode.writerThread) expect(together.map((r) => r.sequence)).toEqual([1n, 2n, 2n]);
        // One past a gap among others: merged, the commit fails, and each is tried alone.
        const results = await Promise.allSettled([
          store.applyBatch(tweets(6, 7, '6')),
          store.applyBatch(tweets(7, 8, '7')),
          store.applyBatch(tweets(9, 10, '9')),
          store.applyBatch(tweets(8, 9, '8')),
        ]);
        expect(results.map((r) => (r.status === 'fulfilled' ? 'applied' : refusal(r.reason)))).toEqual([
          'applied',
          'applied',
          {
            type: mode.writerThread ? 'MatviewError' : 'BatchOutOfOrderError',
            code: 'MV_ERR_BATCH_OUT_OF_ORDER',
            retriable: true,
            message:
              "tweets[0]: the batch continues from offset 9, but the store's position is 8: the batch before it was not applied, so this one was not either; the partition is read again from the store's position",
          },
          'applied',
        ]);
        expect(store.position('tweets', 0)).toBe('9');
        expect({ t8: stored(store, 't8'), t9: stored(store, 't9'), tweets: tweetsOf(store) }).toEqual({
          t8: true,
          t9: false,
          tweets: 9,
        });
      } finally {
        await store.close();
      }
    },
  );

  it.each([{ writerThread: false }, { writerThread: true }])(
    "should refuse a rebuild's input past a gap and keep the chunk it would have joined (%o)",
    async (mode) => {
      const store = openStore({ ...mode, path: tempDir(), rebuildChunkRecords: 1_000 });
      try {
        const { generation } = await store.beginShadow('requested');
        await store.applyBatch(tweets(0, 3), generation);
        await expect(store.applyBatch(tweets(5, 6, '5'), generation)).rejects.toMatchObject({
          code: 'MV_ERR_BATCH_OUT_OF_ORDER',
        });
        // The chunk holding the first batch is whole: the next batch joins it, and the swap stores both.
        await store.applyBatch(tweets(3, 5, '3'), generation);
        const swap = await store.trySwap(generation, [{ topic: 'tweets', partition: 0, next: '5' }]);
        expect(swap.swapped).toBe(true);
        expect(store.position('tweets', 0)).toBe('5');
        expect(tweetsOf(store)).toBe(5);
      } finally {
        await store.close();
      }
    },
  );
});
