/**
 * The writer thread (WRITER_THREAD): batches committed on the worker must be exactly the batches committed
 * on the calling thread — same state, same sequences, same commit events in the same order — readable by
 * the caller as soon as `applyBatch` resolves, with failures reported the same way.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { openStore, type LmdbStore } from '../../src/store/lmdb-store.js';
import { userChanges } from '../../src/store/types.js';
import type { Row, Table } from '../../src/views/source.js';
import type { UserInformation } from '../../src/views/user-information.js';
import { StoreStoppingError, StoreWriteError } from '../../src/errors.js';
import { commitInput, profile, type TestRecord } from '../utils/changes.js';
import { storeState } from '../utils/store-state.js';
import { tempDir } from '../utils/tmp.js';

const TABLES: readonly Table[] = ['users', 'tweets', 'follows', 'likes'];

/** Random batches over few users and keys (so rows are updated, re-owned and deleted), per table partition. */
function randomBatches(seed: number, count: number): { table: Table; changes: TestRecord[]; next: string }[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const users = Array.from({ length: 8 }, (_, i) => `u${i}`);
  const offsets = new Map<Table, number>();
  const rowOf = (table: Table): Row => {
    switch (table) {
      case 'users':
        return profile(`name-${Math.floor(rnd() * 3)}`, { location: rnd() < 0.5 ? null : 'Chicago, IL' });
      case 'tweets':
        // A value no row of a decoder holds: its batch cannot be packed (src/store/packed-changes.ts) and
        // crosses to the worker as plain columns.
        return rnd() < 0.05
          ? ({ table, userId: pick(users), text: 42 } as unknown as Row)
          : { table, userId: pick(users) };
      case 'follows':
        return { table, followerId: pick(users), followeeId: pick(users) };
      case 'likes':
        return { table, userId: pick(users), tweetId: 't' };
    }
  };
  return Array.from({ length: count }, () => {
    const table = pick(TABLES);
    const changes: TestRecord[] = Array.from({ length: 1 + Math.floor(rnd() * 20) }, () => {
      const offset = offsets.get(table) ?? 0;
      offsets.set(table, offset + 1);
      const key = table === 'users' ? pick(users) : `${table[0]}${Math.floor(rnd() * 12)}`;
      return {
        table,
        key,
        row: rnd() < 0.15 ? null : rowOf(table),
        offset,
        eventTime: 1_700_000_000_000 + offset,
      };
    });
    return { table, changes, next: String(offsets.get(table)) };
  });
}

/** A view without the wall-clock time of its commit (the two stores commit at different instants). */
const timeless = (v: UserInformation | null | undefined) =>
  v === null || v === undefined ? v : { ...v, version: { ...v.version, appliedAt: '' } };

interface Seen {
  events: [string, [string, ReturnType<typeof timeless>][]][];
  results: [string, number, number, boolean][];
}

/**
 * Applies the batches `parallel` at a time (like that many partitions), checking each commit is readable on
 * resolve. One at a time, every batch is its own commit; several at a time, how they are grouped into
 * commits depends on timing.
 */
async function feed(
  store: LmdbStore,
  batches: ReturnType<typeof randomBatches>,
  parallel: number,
): Promise<Seen> {
  const seen: Seen = { events: [], results: [] };
  store.onCommit((e) =>
    seen.events.push([e.sequence.toString(), [...userChanges(e)].map(([k, v]) => [k, timeless(v)])]),
  );
  for (let i = 0; i < batches.length; i += parallel) {
    const group = batches.slice(i, i + parallel).map(async ({ table, changes, next }) => {
      const result = await store.applyBatch(commitInput(changes, [{ topic: table, partition: 0, next }]));
      // Readable here: the caller's snapshot already includes this commit.
      expect(store.sequence()).toBeGreaterThanOrEqual(result.sequence);
      return result;
    });
    for (const r of await Promise.all(group))
      seen.results.push([r.sequence.toString(), r.changed, r.accepted, r.visible]);
    // The group's last commit is every one of its users' current state, readable as soon as it resolved.
    const [, last] = seen.events[seen.events.length - 1] ?? ['', []];
    for (const [id, view] of last) expect(timeless(store.getUser(id) ?? null)).toEqual(view);
  }
  return seen;
}

const stateOf = storeState;

describe('writer thread', () => {
  it('should commit exactly what the calling thread commits: same state, sequences and events, in commit order', async () => {
    const batches = randomBatches(11, 120);
    const here = openStore({ path: tempDir() });
    const worker = openStore({ path: tempDir(), writerThread: true });
    try {
      const a = await feed(here, batches, 1);
      const b = await feed(worker, batches, 1);
      expect(b.events.map(([s]) => s)).toEqual(b.events.map((_, i) => String(i + 1)));
      expect(b).toEqual(a);
      expect(stateOf(worker)).toEqual(stateOf(here));
      // Not a vacuous comparison: the workload changed, deleted and no-op'ed views.
      expect(a.results.some(([, changed]) => changed > 0)).toBe(true);
      expect(a.events.some(([, changes]) => changes.some(([, v]) => v === null))).toBe(true);
    } finally {
      await here.close();
      await worker.close();
    }
  });

  it('should reach the same state when batches are committed together, however they were grouped', async () => {
    const batches = randomBatches(12, 120);
    const here = openStore({ path: tempDir() });
    const worker = openStore({ path: tempDir(), writerThread: true });
    // Versions and row origins name the commit and the record that last changed a value: they depend on
    // the grouping (a row set and set back within one commit is not rewritten, and keeps its origin).
    const grouping = (state: unknown): unknown =>
      JSON.parse(JSON.stringify(state), (key, value: unknown) =>
        key === 'sequence' || key === 'version' || key === 'origin' ? undefined : value,
      );
    try {
      const a = await feed(here, batches, 4);
      await feed(worker, batches, 4);
      // Fewer commits than batches: some went in together.
      expect(Number(a.results[a.results.length - 1]![0])).toBeLessThan(batches.length);
      expect(grouping(stateOf(worker))).toEqual(grouping(stateOf(here)));
    } finally {
      await here.close();
      await worker.close();
    }
  });

  it('should fail a batch whose transaction throws with the same StoreWriteError, commit nothing of it, and go on', async () => {
    const failures: string[] = [];
    const finals: unknown[] = [];
    for (const writerThread of [false, true]) {
      const store = openStore({ path: tempDir(), writerThread });
      try {
        const [{ changes }] = randomBatches(3, 1) as [ReturnType<typeof randomBatches>[number]];
        const at = (next: string, records = changes) =>
          commitInput(records, [{ topic: 'users', partition: 0, next }]);
        await store.applyBatch(at('5'));
        // A userId longer than LMDB keys may be (decode refuses it; a batch built by hand gets through):
        // the transaction throws while writing that user's counts.
        const huge: Row = { table: 'tweets', userId: 'x'.repeat(5_000) };
        const bad = store.applyBatch(
          at('6', [{ table: 'tweets', key: 'big', row: huge, partition: 1, offset: 0 }]),
        );
        const good = store.applyBatch(at('7'));
        const error = await bad.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(StoreWriteError);
        failures.push((error as Error).message);
        // Merged with the failing one, the good batch was retried alone: the failed one took no sequence.
        expect((await good).sequence).toBe(2n);
        expect(store.position('users', 0)).toBe('7');
        expect(store.position('tweets', 1)).toBeUndefined();
        finals.push(stateOf(store));
      } finally {
        await store.close();
      }
    }
    expect(failures[0]).toMatch(/^LMDB write failed, nothing of the batch was applied: .*does not fit/);
    expect(failures[1]).toBe(failures[0]);
    expect(finals[1]).toEqual(finals[0]);
  });

  it('should refuse batches once the store is closing', async () => {
    const store = openStore({ path: tempDir(), writerThread: true });
    await store.close();
    await expect(store.applyBatch(commitInput([]))).rejects.toThrow(StoreWriteError);
  });
});

describe('a store that stops committing', () => {
  const tweets = (from: number, count: number) =>
    commitInput(
      Array.from({ length: count }, (_, i) => ({
        table: 'tweets' as const,
        key: `t${from + i}`,
        row: { table: 'tweets' as const, userId: `u${(from + i) % 7}` },
        offset: from + i,
        eventTime: 1_700_000_000_000,
      })),
      [{ topic: 'tweets', partition: 0, next: String(from + count) }],
    );

  it.each([true, false])(
    'should finish the commit in progress and refuse what waits behind it and what comes later (writer thread: %s)',
    async (writerThread) => {
      const store = openStore({ path: tempDir(), writerThread });
      try {
        const inProgress = store.applyBatch(tweets(0, 2_000));
        // Submitted while the first one commits: they wait for the next commit.
        const waiting = [store.applyBatch(tweets(2_000, 10)), store.applyBatch(tweets(2_010, 10))];
        store.stopCommitting();
        const later = store.applyBatch(tweets(2_020, 10));
        const settled = await Promise.allSettled([inProgress, ...waiting, later]);
        expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected']);
        for (const s of settled.slice(1)) {
          const reason = (s as PromiseRejectedResult).reason as Error;
          expect(reason).toBeInstanceOf(StoreStoppingError);
          expect(reason.message).toBe(
            'the store is stopping: the batch was not applied; it is read again at the next start',
          );
        }
        expect(store.position('tweets', 0)).toBe('2000');
      } finally {
        await store.close();
      }
    },
  );
});
