/**
 * Commit inputs for store and materializer tests, written the way tests think: one record per entry, with
 * its table, key, row (null: delete) and position, and the next offsets the batch reaches.
 */
import type { TRUNCATE } from '../../src/materializer/change-batch.js';
import { ChangeBatch, type CommitInput } from '../../src/materializer/change-batch.js';
import type { PartitionPosition } from '../../src/feed/types.js';
import { fieldOf, type Profile, type Row, type Table } from '../../src/views/source.js';

export interface TestRecord {
  readonly table: Table;
  readonly key: string;
  /** null: a delete; 'truncate': the whole table emptied. */
  readonly row: Row | null | typeof TRUNCATE;
  /** Default: the table's name. */
  readonly topic?: string;
  readonly partition?: number;
  readonly offset: number | string;
  /** ms; default 1_700_000_000_000. */
  readonly eventTime?: number;
}

/**
 * A commit input for `records`. Positions: each (topic, partition) reaches its last record's offset + 1,
 * unless `positions` says otherwise.
 */
export function commitInput(
  records: readonly TestRecord[],
  positions?: readonly PartitionPosition[],
): CommitInput {
  const batch = new ChangeBatch();
  const next = new Map<string, PartitionPosition>();
  for (const r of records) {
    const topic = r.topic ?? r.table;
    const partition = r.partition ?? 0;
    const offset = String(r.offset);
    batch.push(r.table, r.key, r.row, topic, partition, offset, r.eventTime ?? 1_700_000_000_000);
    const key = `${topic}\u0000${partition}`;
    const reached = BigInt(offset) + 1n;
    if (BigInt(next.get(key)?.next ?? '0') < reached)
      next.set(key, { topic, partition, next: String(reached) });
  }
  return { changes: batch.columns(), positions: positions ?? [...next.values()] };
}

/** Records numbered in order from `start` on partition 0 of each table's topic. */
export function sequential(entries: readonly [Table, string, Row | null][], start = 0): TestRecord[] {
  let offset = start;
  return entries.map(([table, key, row]) => ({ table, key, row, offset: offset++ }));
}

export const profile = (username: string, extra: Partial<Profile> = {}): Row => ({
  table: 'users',
  username,
  name: null,
  description: null,
  location: null,
  webPageUrl: null,
  joinedDate: null,
  profileImageUrl: null,
  backgroundImageUrl: null,
  ...extra,
});
/**
 * A row as a store keeps it: its table and the fields `storedFields` names for it (a registry's), each its
 * value or null; what an LMDB row, or a rebuild chunk's buffered one, reads back.
 */
export const storedForm = (storedFields: Readonly<Record<Table, readonly string[]>>, row: Row) =>
  Object.fromEntries([['table', row.table], ...storedFields[row.table].map((f) => [f, fieldOf(row, f)])]);

export const tweet = (userId: string): Row => ({ table: 'tweets', userId });
export const follow = (followerId: string, followeeId: string): Row => ({
  table: 'follows',
  followerId,
  followeeId,
});
export const like = (userId: string, tweetId = 't'): Row => ({ table: 'likes', userId, tweetId });

/** One record at `offset` on partition 0 of the table's topic. */
export const record = (table: Table, key: string, row: Row | null, offset: number): TestRecord => ({
  table,
  key,
  row,
  offset,
});

/** A tweets record of `userId`. */
export const tweetRecord = (key: string, userId: string, offset: number): TestRecord =>
  record('tweets', key, { table: 'tweets', userId }, offset);

/** The small feed the generation tests share: users u1 and u2, then three tweets of u1 and one of u2. */
export const TWO_USERS: readonly TestRecord[] = [
  record('users', 'u1', profile('one'), 0),
  record('users', 'u2', profile('two'), 1),
];
export const FOUR_TWEETS: readonly TestRecord[] = [
  tweetRecord('t1', 'u1', 0),
  tweetRecord('t2', 'u1', 1),
  tweetRecord('t3', 'u1', 2),
  tweetRecord('t4', 'u2', 3),
];
