/**
 * A feed whose later batches change rows its earlier ones stored (a tweet moved to another user, tweets and a
 * users row deleted), then a new tweet: committed with the rows of each batch stored before the next, a row
 * not found where it is stored leaves a count wrong (test/store/row-key-filter.test.ts,
 * test/store/shadow-chunks.test.ts).
 */
import { vi } from 'vitest';
import { LmdbRows } from '../../src/store/generation.js';
import { openStore, type StoreOptions } from '../../src/store/lmdb-store.js';
import { commitInput, profile, record, tweetRecord } from './changes.js';

export const OVER_STORED_ROWS = [
  [record('users', 'u0', profile('zero'), 0), record('users', 'u1', profile('one'), 1)],
  [tweetRecord('t0', 'u0', 0), tweetRecord('t1', 'u0', 1)],
  [tweetRecord('t2', 'u1', 2), tweetRecord('t1', 'u1', 3)],
  [record('tweets', 't0', null, 4), record('tweets', 't2', null, 5)],
  [record('users', 'u0', null, 2), tweetRecord('t3', 'u1', 6)],
].map((records) => commitInput(records));

/** The positions the whole feed reaches. */
export const OVER_STORED_ROWS_END = [
  { topic: 'users', partition: 0, next: '3' },
  { topic: 'tweets', partition: 0, next: '7' },
];

/** What a store at `options.path` serves of the feed's users (without versions) and its tweets total. */
export async function servedOverStoredRows(options: StoreOptions) {
  const store = openStore(options);
  const served = {
    users: ['u0', 'u1'].map((id) => {
      const view = store.getUser(id);
      if (view === undefined) return null;
      const { version: _v, ...rest } = view;
      return rest;
    }),
    tweets: store.totals()!.tweets,
  };
  await store.close();
  return served;
}

/**
 * The tweets rows the feed looks up where each commit knows which rows are stored: only those it changes
 * that an earlier batch stored (t1 moved by the third batch, t0 and t2 deleted by the fourth), none it creates.
 */
export const STORED_TWEETS_LOOKED_UP = ['tweets/t1', 'tweets/t0', 'tweets/t2'];

/** The feed's end as served: u0 deleted; u1 with t1 (moved to it) and t3. */
export const OVER_STORED_ROWS_SERVED = {
  users: [null, { userId: 'u1', username: 'one', tweetCount: 2 }],
  tweets: 2,
};

/** The rows (`table/key`) looked up in LMDB on this thread while `run` runs (not the writer thread's). */
export async function rowLookups(run: () => Promise<void>): Promise<string[]> {
  const lookedUp: string[] = [];
  const row = LmdbRows.prototype.row;
  const spy = vi.spyOn(LmdbRows.prototype, 'row').mockImplementation(function (this: LmdbRows, t, k) {
    lookedUp.push(`${t}/${k}`);
    return row.call(this, t, k);
  });
  try {
    await run();
  } finally {
    spy.mockRestore();
  }
  return lookedUp;
}
