/**
 * Issue 19, what the store keeps for the view topic out (src/store/published.ts): the view outbox a commit
 * writes in its own transaction while the store publishes (every changed user with its new value, in commit
 * order; nothing from a shadow generation), what an acknowledgement records (entries removed, what the topic
 * holds, the mark), and how publishing starts over on another topic and stops.
 */
import { describe, expect, it } from 'vitest';
import { openStore, type LmdbStore } from '../../src/store/lmdb-store.js';
import type { PendingChange } from '../../src/store/published.js';
import { commitInput, profile, tweet, type TestRecord } from '../utils/changes.js';
import { tempDir } from '../utils/tmp.js';

let offset = 0;
const at = (records: Omit<TestRecord, 'offset'>[]) =>
  commitInput(records.map((r) => ({ ...r, offset: offset++ })));

/** The outbox as `[sequence, userId, tweetCount or null]`. */
const shape = (pending: readonly PendingChange[]) =>
  pending.map((c) => [
    Number(c.sequence),
    c.userId,
    c.value === null ? null : (JSON.parse(c.value.toString()) as { tweetCount: number }).tweetCount,
  ]);

async function publishing(store: LmdbStore, topic = 't') {
  return (await store.publishedIndex(topic)).index;
}

describe('the view outbox and the published index', () => {
  it('should write no outbox while the store does not publish', async () => {
    const store = openStore({ path: tempDir() });
    await store.applyBatch(at([{ table: 'users', key: 'a', row: profile('alice') }]));
    const index = await publishing(store);
    expect(index.pending(10)).toEqual([]);
    await store.close();
  });

  it('should write every changed user of each visible commit with its value, in commit order', async () => {
    const store = openStore({ path: tempDir() });
    const index = await publishing(store);
    await store.applyBatch(
      at([
        { table: 'users', key: 'b', row: profile('bob') },
        { table: 'users', key: 'a', row: profile('alice') },
      ]),
    );
    await store.applyBatch(at([{ table: 'tweets', key: 't1', row: tweet('b') }]));
    await store.applyBatch(at([{ table: 'users', key: 'a', row: null }]));
    // A commit that changes no view writes nothing.
    await store.applyBatch(at([{ table: 'tweets', key: 't-unknown', row: null }]));
    expect(shape(index.pending(10))).toEqual([
      [1, 'a', 0],
      [1, 'b', 0],
      [2, 'b', 1],
      [3, 'a', null],
    ]);
    // The value is what the topic carries: seed 002's JSON with the version of the commit that made it.
    const [, , second] = index.pending(10);
    expect(JSON.parse(second!.value!.toString())).toEqual(
      JSON.parse(JSON.stringify(store.getUser('b'))) as unknown,
    );
    expect(store.getUser('b')!.version.sequence).toBe('2');
    expect(shape(index.pending(2, index.pending(2)[1]!.key))).toEqual([
      [2, 'b', 1],
      [3, 'a', null],
    ]);
    await store.close();
  });

  it('should write nothing for a shadow generation, and keep what it wrote across reopen', async () => {
    const path = tempDir();
    const store = openStore({ path });
    const index = await publishing(store);
    await store.applyBatch(at([{ table: 'users', key: 'a', row: profile('alice') }]));
    const { generation } = await store.beginShadow('requested');
    await store.applyBatch(at([{ table: 'users', key: 'z', row: profile('zed') }]), generation);
    expect(shape(index.pending(10))).toEqual([[1, 'a', 0]]);
    await store.close();
    const again = openStore({ path });
    const reopened = await again.publishedIndex('t');
    expect({ fresh: reopened.fresh, pending: shape(reopened.index.pending(10)) }).toEqual({
      fresh: false,
      pending: [[1, 'a', 0]],
    });
    await again.close();
  });

  it('should remove what was sent, record what the topic holds, and mark up to the oldest change left', async () => {
    const store = openStore({ path: tempDir() });
    const index = await publishing(store);
    await store.applyBatch(at([{ table: 'users', key: 'a', row: profile('alice') }]));
    await store.applyBatch(at([{ table: 'tweets', key: 't1', row: tweet('a') }]));
    await store.applyBatch(at([{ table: 'users', key: 'b', row: profile('bob') }]));
    const [first] = index.pending(1);
    await index.record({ sent: [first!.key], held: new Map([['a', 1n]]), mark: {} });
    expect({ mark: index.mark(), pending: shape(index.pending(10)), held: index.held('a') }).toEqual({
      mark: 1n,
      pending: [
        [2, 'a', 1],
        [3, 'b', 0],
      ],
      held: 1n,
    });
    await index.record({ sent: index.pending(10).map((c) => c.key), mark: {} });
    // Nothing left: every commit is published, up to the store's sequence.
    await store.applyBatch(at([{ table: 'tweets', key: 't-unknown', row: null }]));
    await index.record({ mark: { layout: '0#1' } });
    expect({ mark: index.mark(), layout: index.layout(), size: index.outboxSize() }).toEqual({
      mark: 4n,
      layout: '0#1',
      size: 0,
    });
    // A capture's values (with their own versions) and tombstones, at one sequence.
    await index.enqueue(
      4n,
      new Map([
        ['a', { version: 2n, value: '{"tweetCount":1}' }],
        ['gone', null],
      ]),
    );
    expect(
      index.pending(10).map((c) => [c.sequence, c.userId, c.version, c.value?.toString() ?? null]),
    ).toEqual([
      [4n, 'a', 2n, '{"tweetCount":1}'],
      [4n, 'gone', 0n, null],
    ]);
    expect(index.pendingUsers()).toEqual(new Set(['a', 'gone']));
    await store.close();
  });

  it('should start over on another topic, and stop filling the outbox once publishing stops', async () => {
    const path = tempDir();
    const store = openStore({ path });
    const a = await publishing(store, 'a');
    await store.applyBatch(at([{ table: 'users', key: 'u1', row: profile('u1') }]));
    await a.record({ held: new Map([['u1', 1n]]) });
    await store.close();

    const reopened = openStore({ path });
    const again = await reopened.publishedIndex('a');
    expect({
      fresh: again.fresh,
      held: again.index.held('u1'),
      pending: again.index.pending(10).length,
    }).toEqual({ fresh: false, held: 1n, pending: 1 });
    const other = await reopened.publishedIndex('b');
    expect({
      fresh: other.fresh,
      mark: other.index.mark(),
      size: other.index.size(),
      pending: other.index.outboxSize(),
    }).toEqual({ fresh: true, mark: 0n, size: 0, pending: 0 });
    const back = await reopened.publishedIndex('a');
    expect({ fresh: back.fresh, size: back.index.size() }).toEqual({ fresh: true, size: 0 });

    expect(await reopened.stopPublishing()).toBe('a');
    await reopened.applyBatch(at([{ table: 'users', key: 'u2', row: profile('u2') }]));
    expect(back.index.outboxSize()).toBe(0);
    expect(await reopened.stopPublishing()).toBeUndefined();
    const restarted = await reopened.publishedIndex('a');
    expect(restarted.fresh).toBe(true);
    await reopened.close();
  });
});
