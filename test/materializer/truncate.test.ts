/**
 * Issue 15: a truncate (Debezium `op: "t"`) empties its table, so every count it fed falls to zero, and it
 * is idempotent like every other record: a replayed truncate (at or below its partition's position)
 * deletes nothing written after it, and a replayed record from before it stays deleted.
 */
import { describe, expect, it } from 'vitest';
import { TRUNCATE } from '../../src/materializer/change-batch.js';
import { commitBatch, commitPlan, type CommitOutcome } from '../../src/materializer/commit.js';
import { MemoryState } from '../../src/materializer/memory-state.js';
import { createRegistry } from '../../src/views/registry.js';
import type { Row, Table } from '../../src/views/source.js';
import type { UserInformation } from '../../src/views/user-information.js';
import { commitInput, profile, type TestRecord } from '../utils/changes.js';
import { userCounts } from '../utils/store-state.js';

const registry = createRegistry();
const plan = commitPlan(registry);

const put = (table: Table, key: string, row: Row | null, offset: number, partition = 0): TestRecord => ({
  table,
  key,
  row,
  offset,
  partition,
  eventTime: 1_700_000_000_000,
});
const truncate = (table: Table, offset: number, partition = 0): TestRecord => ({
  table,
  key: '',
  row: TRUNCATE,
  offset,
  partition,
  eventTime: 1_700_000_009_000,
});
const tweet = (key: string, userId: string, offset: number, partition = 0) =>
  put('tweets', key, { table: 'tweets', userId }, offset, partition);

let seq = 0n;
const apply = (s: MemoryState, ...records: TestRecord[]): CommitOutcome =>
  commitBatch(s, plan, commitInput(records), ++seq, 0);
const counts = (s: MemoryState, id: string) => userCounts(s.spaces('user-information'), id);
const views = (s: MemoryState) => s.kv<UserInformation>('user-information', 'views');
const event = (o: CommitOutcome, id: string) =>
  (o.events.get('user-information') as Map<string, UserInformation | null> | undefined)?.get(id);

describe('truncate', () => {
  it('should delete every stored row and every row of the same commit before it, and count what comes after', () => {
    const s = new MemoryState(registry);
    apply(s, put('users', 'a', profile('a'), 0), put('users', 'b', profile('b'), 1));
    apply(s, tweet('t1', 'a', 0), tweet('t2', 'b', 0, 1), tweet('t3', 'a', 0, 2));
    const o = apply(s, tweet('t4', 'b', 1), truncate('tweets', 2), tweet('t5', 'a', 3));
    expect([counts(s, 'a')?.tweetCount, counts(s, 'b')?.tweetCount ?? 0]).toEqual([1, 0]);
    expect([...s.rows.tables.tweets.keys()]).toEqual(['t5']);
    // The users it moved name the truncate (or the row after it) as their version's source.
    expect(event(o, 'b')?.version.source).toEqual({ topic: 'tweets', partition: 0, offset: '2' });
    expect(event(o, 'b')?.version.eventTime).toBe(new Date(1_700_000_009_000).toISOString());
    expect(event(o, 'a')?.version.source).toEqual({ topic: 'tweets', partition: 0, offset: '3' });
  });

  it('should skip a replayed truncate and the records before it: rows written after it stay, deleted rows stay deleted', () => {
    const s = new MemoryState(registry);
    apply(s, put('users', 'a', profile('a'), 0));
    apply(s, tweet('t1', 'a', 0), truncate('tweets', 1), tweet('t2', 'a', 2), tweet('t3', 'a', 0, 1));
    expect(counts(s, 'a')?.tweetCount).toBe(2);
    const again = apply(s, tweet('t1', 'a', 0), truncate('tweets', 1), truncate('tweets', 0, 1));
    expect({ accepted: again.accepted, skipped: again.skipped, count: counts(s, 'a')?.tweetCount }).toEqual({
      accepted: 0,
      skipped: 3,
      count: 2,
    });
    // A new truncate, twice in one commit: the second is a replay of the first.
    const same = apply(s, truncate('tweets', 3), truncate('tweets', 3));
    expect({ accepted: same.accepted, count: counts(s, 'a')?.tweetCount ?? 0 }).toEqual({
      accepted: 1,
      count: 0,
    });
  });

  it('should keep truncates of different partitions and tables apart', () => {
    const s = new MemoryState(registry);
    apply(
      s,
      tweet('t1', 'a', 0),
      put('likes', 'l1', { table: 'likes', userId: 'a', tweetId: 't1' }, 0),
      truncate('tweets', 9, 1),
    );
    // A truncate from partition 0 at an offset below partition 1's is no replay of it.
    apply(s, tweet('t2', 'a', 1), truncate('tweets', 2, 0));
    expect(counts(s, 'a')).toMatchObject({ tweetCount: 0, likeCount: 1 });
  });

  it('should hide every user when the users table is truncated and keep their counts', () => {
    const s = new MemoryState(registry);
    apply(s, put('users', 'a', profile('a'), 0), tweet('t1', 'a', 0));
    const o = apply(s, truncate('users', 1));
    expect({ event: event(o, 'a'), stored: views(s).has('a'), counts: counts(s, 'a')?.tweetCount }).toEqual({
      event: null,
      stored: false,
      counts: 1,
    });
  });

  it('should change nothing but the position on an empty table', () => {
    const s = new MemoryState(registry);
    const o = apply(s, truncate('follows', 4));
    expect({ events: o.events.size, accepted: o.accepted, position: s.position('follows', 0) }).toEqual({
      events: 0,
      accepted: 1,
      position: '5',
    });
  });
});
