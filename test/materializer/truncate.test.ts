/**
 * Issue 15: a truncate (Debezium `op: "t"`) empties its table, so every count it fed falls to zero, and
 * it is idempotent like every other change: a replayed truncate deletes nothing written after it, and a
 * replayed record from before it stays deleted. These pin the semantics for any materializer.
 */
import { describe, expect, it } from 'vitest';
import { materialize, type Change } from '../../src/materializer/materialize.js';
import type { Row, Table } from '../../src/views/user-information.js';
import { MemoryState } from '../utils/memory-state.js';
import { userRow } from '../utils/rows.js';

const pos = (table: Table, offset: number, partition = 0) => ({
  topic: table,
  partition,
  offset: String(offset),
});
const put = (table: Table, key: string, row: Row | null, offset: number, partition = 0): Change => ({
  table,
  key,
  row,
  position: pos(table, offset, partition),
  timestamp: '1700000000000',
});
const truncate = (table: Table, offset: number, partition = 0): Change => ({
  table,
  truncate: true,
  position: pos(table, offset, partition),
  timestamp: '1700000009000',
});
const tweet = (key: string, userId: string, offset: number, partition = 0) =>
  put('tweets', key, { table: 'tweets', userId }, offset, partition);

let seq = 0n;
const apply = (s: MemoryState, ...changes: Change[]) => {
  const w = materialize(s, changes, { sequence: ++seq, appliedAt: '2026-01-01T00:00:00.000Z' });
  s.apply(w);
  return w;
};
const counts = (s: MemoryState, id: string) => s.users.get(id)?.counts;

describe('truncate', () => {
  it('should delete every stored row and every row of the same batch before it, and count what comes after', () => {
    const s = new MemoryState();
    apply(s, put('users', 'a', userRow('a'), 0), put('users', 'b', userRow('b'), 1));
    apply(s, tweet('t1', 'a', 0), tweet('t2', 'b', 0, 1), tweet('t3', 'a', 0, 2));
    const w = apply(s, tweet('t4', 'b', 1), truncate('tweets', 2), tweet('t5', 'a', 3));
    expect([counts(s, 'a')?.tweetCount, counts(s, 'b')?.tweetCount]).toEqual([1, 0]);
    expect([...s.keys('tweets')].sort().map((k) => [k, s.row('tweets', k)?.row ?? null])).toEqual([
      ['t1', null],
      ['t2', null],
      ['t3', null],
      ['t4', null],
      ['t5', { table: 'tweets', userId: 'a' }],
    ]);
    // Views moved, with the truncate (or the row after it) as their version's source.
    expect(w.views.get('b')?.version.source).toEqual(pos('tweets', 2));
    expect(w.views.get('b')?.version.eventTime).toBe(new Date(1_700_000_009_000).toISOString());
    expect(w.noops).toBe(0);
  });

  it("should keep each deleted row's origin, so replaying the records the rows came from changes nothing", () => {
    const s = new MemoryState();
    apply(s, tweet('t1', 'a', 5, 1), tweet('t2', 'a', 6, 1));
    apply(s, truncate('tweets', 0, 0));
    const replay = apply(s, tweet('t1', 'a', 5, 1), tweet('t2', 'a', 6, 1));
    expect({ noops: replay.noops, users: replay.users.size, count: counts(s, 'a')?.tweetCount }).toEqual({
      noops: 2,
      users: 0,
      count: 0,
    });
    // A newer record of a truncated key is a new row.
    apply(s, tweet('t1', 'a', 7, 1));
    expect(counts(s, 'a')?.tweetCount).toBe(1);
  });

  it('should keep a row deleted when a record that left it unchanged is replayed (found by the reference model, seed 87)', () => {
    const s = new MemoryState();
    // @6 changes only what the view does not keep (the text): a no-op for the view, yet the row's origin now.
    apply(s, tweet('t1', 'a', 5));
    apply(s, tweet('t1', 'a', 6));
    apply(s, truncate('tweets', 7));
    apply(s, tweet('t1', 'a', 6));
    expect({ count: counts(s, 'a')?.tweetCount, row: s.row('tweets', 't1') }).toEqual({
      count: 0,
      row: { row: null, origin: { partition: 0, offset: '6' } },
    });
  });

  it('should be a no-op when replayed, in a later batch or the same one, and never delete rows written after it', () => {
    const s = new MemoryState();
    apply(s, tweet('t1', 'a', 0), truncate('tweets', 1), tweet('t2', 'a', 2), tweet('t3', 'a', 0, 1));
    expect(counts(s, 'a')?.tweetCount).toBe(2);
    const again = apply(s, truncate('tweets', 1), truncate('tweets', 0));
    expect({ noops: again.noops, rows: again.rows.length, count: counts(s, 'a')?.tweetCount }).toEqual({
      noops: 2,
      rows: 0,
      count: 2,
    });
    const same = apply(s, truncate('tweets', 3), truncate('tweets', 3));
    expect({ noops: same.noops, count: counts(s, 'a')?.tweetCount }).toEqual({ noops: 1, count: 0 });
  });

  it('should keep truncates of different partitions and tables apart', () => {
    const s = new MemoryState();
    apply(
      s,
      tweet('t1', 'a', 0),
      put('likes', 'l1', { table: 'likes', userId: 'a' }, 0),
      truncate('tweets', 9, 1),
    );
    // A truncate from partition 0 at an offset below partition 1's is not a replay of it.
    apply(s, tweet('t2', 'a', 1), truncate('tweets', 2, 0));
    expect(counts(s, 'a')).toMatchObject({ tweetCount: 0, likeCount: 1 });
    expect([s.truncation('tweets', 0), s.truncation('tweets', 1), s.truncation('likes', 0)]).toEqual([
      { partition: 0, offset: '2' },
      { partition: 1, offset: '9' },
      undefined,
    ]);
  });

  it('should hide every user when the users table is truncated and keep their counts', () => {
    const s = new MemoryState();
    apply(s, put('users', 'a', userRow('a'), 0), tweet('t1', 'a', 0));
    const w = apply(s, truncate('users', 1));
    expect({ view: w.views.get('a'), stored: s.views.has('a'), counts: counts(s, 'a')?.tweetCount }).toEqual({
      view: null,
      stored: false,
      counts: 1,
    });
  });

  it('should do nothing but remember itself on an empty table', () => {
    const s = new MemoryState();
    const w = apply(s, truncate('follows', 4));
    expect({ rows: w.rows.length, users: w.users.size, noops: w.noops, truncations: w.truncations }).toEqual({
      rows: 0,
      users: 0,
      noops: 0,
      truncations: [{ table: 'follows', origin: { partition: 0, offset: '4' } }],
    });
  });
});
