/**
 * Whether a rebuild from the changelogs replays its rows first (src/wiring/rebuild.ts, `rowsFirstPays`): by
 * default when the live generation's largest view holds an entry for every ROWS_FIRST_RECORDS_PER_ENTRY records
 * of a commit, always or never when REBUILD_ROWS_FIRST says so. Seen on the shadow as begun: a rows-first one
 * starts with its views marked behind its rows (`viewsPending`), and its feed here never delivers, so nothing
 * builds them meanwhile.
 */
import { describe, expect, it } from 'vitest';
import type { FeedSource } from '../../src/feed/types.js';
import { openStore, type LmdbStore } from '../../src/store/lmdb-store.js';
import { ROWS_FIRST_RECORDS_PER_ENTRY, type RebuildControllerOptions } from '../../src/wiring/rebuild.js';
import { commitInput, tweetRecord } from '../utils/changes.js';
import { tweetsRebuild } from '../utils/rebuild-controller.js';
import { tempDir } from '../utils/tmp.js';

/** A source that delivers nothing until stopped. */
const silentSource: FeedSource = {
  kind: 'embedded',
  start: () => Promise.resolve(),
  endOffsets: () => Promise.resolve([]),
  status: () => ({ state: 'running' }) as ReturnType<FeedSource['status']>,
  stop: () => Promise.resolve(),
};

/** A store whose active generation holds the views of `users` users (a tweet each). */
async function storeWithUsers(users: number): Promise<LmdbStore> {
  const store = openStore({ path: tempDir(), writerThread: false });
  const records = Array.from({ length: users }, (_, i) => tweetRecord(`t${i}`, `u${i}`, i));
  await store.applyBatch(commitInput(records, [{ topic: 'tweets', partition: 0, next: String(users) }]));
  return store;
}

/**
 * Whether the shadow a rebuild begins on a store holding `users` users' views replays its rows first (a new
 * store each time: a rebuild begun again resumes the shadow there as it was begun).
 */
async function beginsRowsFirst(
  users: number,
  options: Partial<Pick<RebuildControllerOptions, 'rowsFirst' | 'maxRecordsPerCommit'>>,
): Promise<boolean> {
  const store = await storeWithUsers(users);
  const fatal: Error[] = [];
  const controller = tweetsRebuild(store, {
    openSource: () => Promise.resolve({ source: silentSource, close: () => Promise.resolve() }),
    // Beyond what the store holds: the shadow stays short of its targets.
    endOffsets: () => Promise.resolve([{ topic: 'tweets', partition: 0, next: '1000000' }]),
    onFatal: (e) => fatal.push(e),
    ...options,
  });
  await controller.start('requested');
  const pending = store.shadowGeneration()?.info.viewsPending === true;
  await controller.stop();
  await store.close();
  expect(fatal).toEqual([]);
  return pending;
}

describe('a rebuild replaying its rows first', () => {
  it('should by default when the live view holds an entry for every 8 records of a commit, and not below', async () => {
    expect(ROWS_FIRST_RECORDS_PER_ENTRY).toBe(8);
    const store = await storeWithUsers(5);
    // The users' views are the largest space (the counts as many, the totals one).
    expect(store.largestViewSpace()).toBe(5);
    await store.close();
    expect(await beginsRowsFirst(5, { maxRecordsPerCommit: 40 })).toBe(true);
    expect(await beginsRowsFirst(5, { maxRecordsPerCommit: 41 })).toBe(false);
    // The shipped commit size (250k): an empty store, or a small one, applies views commit by commit.
    expect(await beginsRowsFirst(0, {})).toBe(false);
    expect(await beginsRowsFirst(5, {})).toBe(false);
  });

  it('should always or never when REBUILD_ROWS_FIRST says so', async () => {
    expect(await beginsRowsFirst(5, { rowsFirst: true, maxRecordsPerCommit: 1_000 })).toBe(true);
    expect(await beginsRowsFirst(0, { rowsFirst: true })).toBe(true);
    expect(await beginsRowsFirst(5, { rowsFirst: false, maxRecordsPerCommit: 10 })).toBe(false);
  });
});
