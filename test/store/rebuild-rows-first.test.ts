/**
 * Whether a rebuild from the changelogs replays its rows first (src/wiring/rebuild.ts, `rowsFirstPays`): by
 * default when the live generation's largest view holds an entry for every ROWS_FIRST_RECORDS_PER_ENTRY records
 * of a commit, always or never when REBUILD_ROWS_FIRST says so. Seen on the shadow as begun: a rows-first one
 * starts with its views marked behind its rows (`viewsPending`), and its feed here never delivers, so nothing
 * builds them meanwhile.
 */
import { describe, expect, it } from 'vitest';
import { openStore, type LmdbStore } from '../../src/store/lmdb-store.js';
import { VIEWS } from '../../src/views/registry.js';
import { ROWS_FIRST_RECORDS_PER_ENTRY, type RebuildControllerOptions } from '../../src/wiring/rebuild.js';
import type { Row, Table } from '../../src/views/source.js';
import { commitInput, profile, sequential, tweet, tweetRecord } from '../utils/changes.js';
import { quietSource, tweetsRebuild } from '../utils/rebuild-controller.js';
import { tempDir } from '../utils/tmp.js';

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
    openSource: () => Promise.resolve({ source: quietSource, close: () => Promise.resolve() }),
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
    expect(store.largestView()).toBe(5);
    await store.close();
    expect(await beginsRowsFirst(5, { maxRecordsPerCommit: 40 })).toBe(true);
    expect(await beginsRowsFirst(5, { maxRecordsPerCommit: 41 })).toBe(false);
    // The shipped commit size (250k): an empty store, or a small one, applies views commit by commit.
    expect(await beginsRowsFirst(0, {})).toBe(false);
    expect(await beginsRowsFirst(5, {})).toBe(false);
  });

  it("should count the users' rows when the views are held at another version", async () => {
    // 7 users rows, 3 of them with a tweet; then the per-user views' versions bumped (a rebuild for fields the
    // stored rows lack comes with that): their builds are not opened, the users' rows stand for them.
    const path = tempDir();
    const store = openStore({ path, writerThread: false });
    const entries: [Table, string, Row][] = [
      ...Array.from({ length: 7 }, (_, i): [Table, string, Row] => ['users', `u${i}`, profile(`n${i}`)]),
      ...Array.from({ length: 3 }, (_, i): [Table, string, Row] => ['tweets', `t${i}`, tweet(`u${i}`)]),
    ];
    await store.applyBatch(commitInput(sequential(entries)));
    expect(store.largestView()).toBe(7);
    await store.close();
    const bumped = VIEWS.map((v) => (v.name === 'totals' ? v : { ...v, version: v.version + 1 }));
    const reopened = openStore({ path, writerThread: false, views: bumped });
    expect(reopened.largestView()).toBe(7);
    // The rows are counted only when the views at their version hold fewer entries than asked (the totals: 1).
    expect(reopened.largestView(2)).toBe(7);
    expect(reopened.largestView(1)).toBe(1);
    await reopened.close();
  });

  it('should always or never when REBUILD_ROWS_FIRST says so', async () => {
    expect(await beginsRowsFirst(5, { rowsFirst: true, maxRecordsPerCommit: 1_000 })).toBe(true);
    expect(await beginsRowsFirst(0, { rowsFirst: true })).toBe(true);
    expect(await beginsRowsFirst(5, { rowsFirst: false, maxRecordsPerCommit: 10 })).toBe(false);
  });
});
