/**
 * A rebuild whose source hits OFFSET_OUT_OF_RANGE on a partition it already applied records of fails, even
 * when those records are still in the shadow's chunk (src/store/shadow-chunks.ts) and nothing of the
 * partition is stored yet: continuing from the earliest offset would leave a hole behind the chunk. One that
 * applied nothing of the partition continues, as reading from the earliest offset is what it asked for.
 */
import { describe, expect, it } from 'vitest';
import type { FeedBatch, FeedSource, FeedStartOptions } from '../../src/feed/types.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { tweetsRebuild } from '../utils/rebuild-controller.js';
import { eventually } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';

/** A source that hands the rebuild one batch of `tweets[0]`, then reports the given partition out of range. */
function fakeSource(outOfRange: { topic: string; partition: number }): FeedSource {
  return {
    kind: 'embedded',
    async start(options: FeedStartOptions) {
      const batch: FeedBatch = {
        topic: 'tweets',
        partition: 0,
        highWatermark: '2',
        records: ['t1', 't2'].map((key, i) => ({
          topic: 'tweets',
          partition: 0,
          offset: String(i),
          timestamp: '1700000000000',
          key: Buffer.from(key),
          value: Buffer.from(JSON.stringify({ tweetId: key, userId: 'u1' })),
          headers: {},
        })),
      };
      await options.handler(batch);
      options.onOffsetOutOfRange?.(outOfRange.topic, outOfRange.partition);
    },
    endOffsets: () => Promise.resolve([]),
    status: () => ({ state: 'running' }) as ReturnType<FeedSource['status']>,
    stop: () => Promise.resolve(),
  };
}

async function rebuildWith(outOfRange: { topic: string; partition: number }) {
  const store = openStore({ path: tempDir(), writerThread: false });
  const fatal: Error[] = [];
  const controller = tweetsRebuild(store, {
    openSource: () => Promise.resolve({ source: fakeSource(outOfRange), close: () => Promise.resolve() }),
    endOffsets: () => Promise.resolve([{ topic: 'tweets', partition: 0, next: '10' }]),
    onFatal: (e) => fatal.push(e),
  });
  await controller.start('requested');
  const shadow = store.shadowGeneration()!;
  const stored = store.position('tweets', 0, shadow);
  return { store, controller, fatal, stored };
}

describe('a rebuild and OFFSET_OUT_OF_RANGE', () => {
  it('should fail when the partition out of range has records of this run in the chunk, not yet stored', async () => {
    const { store, controller, fatal, stored } = await rebuildWith({ topic: 'tweets', partition: 0 });
    // Applied to the chunk, not stored: the failure cannot come from the stored position.
    expect(stored).toBeUndefined();
    await eventually(
      () => Promise.resolve(fatal.length > 0 ? true : undefined),
      5_000,
      'the rebuild to fail',
    );
    expect(fatal.map((e) => e.message)).toEqual([
      expect.stringContaining('OFFSET_OUT_OF_RANGE for tweets[0] at the stored position 2'),
    ]);
    await controller.stop();
    await store.close();
  });

  it('should go on when the partition out of range has nothing of this run', async () => {
    const { store, controller, fatal } = await rebuildWith({ topic: 'tweets', partition: 1 });
    // The chunk is written once the source goes quiet: the rebuild got this far without failing.
    await eventually(
      () =>
        Promise.resolve(store.position('tweets', 0, store.shadowGeneration()!) === '2' ? true : undefined),
      5_000,
      'the chunk to be written',
    );
    expect(fatal).toEqual([]);
    await controller.stop();
    await store.close();
  });
});
