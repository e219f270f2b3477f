/**
 * The writer thread (WRITER_THREAD): batches committed on the worker must be exactly the batches committed
 * on the calling thread — same state, same sequences, same commit events in the same order — readable by
 * the caller as soon as `applyBatch` resolves, with failures reported the same way.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import type { Change } from '../../src/materializer/materialize.js';
import { openStore, type LmdbStore } from '../../src/store/lmdb-store.js';
import type { UserInformation, Table, Row } from '../../src/views/user-information.js';
import { StoreWriteError } from '../../src/errors.js';
import { tempDir } from '../utils/tmp.js';

const TABLES: readonly Table[] = ['users', 'tweets', 'follows', 'likes'];

/** Random batches over few users and keys (so rows are updated, re-owned and deleted), per table partition. */
function randomBatches(seed: number, count: number): { table: Table; changes: Change[]; next: string }[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const users = Array.from({ length: 8 }, (_, i) => `u${i}`);
  const offsets = new Map<Table, number>();
  const rowOf = (table: Table): Row => {
    switch (table) {
      case 'users':
        return {
          table,
          username: `name-${Math.floor(rnd() * 3)}`,
          name: null,
          description: null,
          location: rnd() < 0.5 ? null : 'Chicago, IL',
          webPageUrl: null,
          joinedDate: null,
          profileImageUrl: null,
          backgroundImageUrl: null,
        };
      case 'tweets':
        return { table, userId: pick(users) };
      case 'follows':
        return { table, followerId: pick(users), followeeId: pick(users) };
      case 'likes':
        return { table, userId: pick(users) };
    }
  };
  return Array.from({ length: count }, () => {
    const table = pick(TABLES);
    const changes: Change[] = Array.from({ length: 1 + Math.floor(rnd() * 20) }, () => {
      const offset = offsets.get(table) ?? 0;
      offsets.set(table, offset + 1);
      const key = table === 'users' ? pick(users) : `${table[0]}${Math.floor(rnd() * 12)}`;
      return {
        table,
        key,
        row: rnd() < 0.15 ? null : rowOf(table),
        position: { topic: table, partition: 0, offset: String(offset) },
        timestamp: String(1_700_000_000_000 + offset),
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

/** Applies the batches four at a time (like four partitions), checking each commit is readable on resolve. */
async function feed(store: LmdbStore, batches: ReturnType<typeof randomBatches>): Promise<Seen> {
  const seen: Seen = { events: [], results: [] };
  store.onCommit((e) =>
    seen.events.push([e.sequence.toString(), [...e.changes].map(([k, v]) => [k, timeless(v)])]),
  );
  for (let i = 0; i < batches.length; i += 4) {
    const group = batches.slice(i, i + 4).map(async ({ table, changes, next }) => {
      const result = await store.applyBatch({ changes, positions: [{ topic: table, partition: 0, next }] });
      // Readable here: the caller's snapshot already includes this commit.
      expect(store.sequence()).toBeGreaterThanOrEqual(result.sequence);
      return result;
    });
    for (const r of await Promise.all(group))
      seen.results.push([r.sequence.toString(), r.changed, r.noops, r.visible]);
    // The group's last commit is every one of its users' current state, readable as soon as it resolved.
    const [, last] = seen.events[seen.events.length - 1] ?? ['', []];
    for (const [id, view] of last) expect(timeless(store.getUser(id) ?? null)).toEqual(view);
  }
  return seen;
}

/** Everything stored, with the commit instants (`appliedAt`, in views and user states) blanked. */
const stateOf = (store: LmdbStore): unknown =>
  JSON.parse(
    JSON.stringify(
      {
        views: [...store.allViews()],
        users: [...store.allUserStates()],
        rows: TABLES.map((t) => [...store.allRows(t)]),
        positions: store.positions(),
        sequence: store.sequence(),
      },
      (key, value: unknown) => (key === 'appliedAt' ? '' : typeof value === 'bigint' ? String(value) : value),
    ),
  );

describe('writer thread', () => {
  it('should commit exactly what the calling thread commits: same state, sequences and events, in commit order', async () => {
    const batches = randomBatches(11, 120);
    const here = openStore({ path: tempDir(), viewVersion: 1 });
    const worker = openStore({ path: tempDir(), viewVersion: 1, writerThread: true });
    try {
      const a = await feed(here, batches);
      const b = await feed(worker, batches);
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

  it('should fail a batch whose transaction throws with the same StoreWriteError, commit nothing of it, and go on', async () => {
    const failures: string[] = [];
    const finals: unknown[] = [];
    for (const writerThread of [false, true]) {
      const store = openStore({ path: tempDir(), viewVersion: 1, writerThread });
      try {
        const [{ changes }] = randomBatches(3, 1) as [ReturnType<typeof randomBatches>[number]];
        const at = (next: string) => ({ changes, positions: [{ topic: 'users', partition: 0, next }] });
        await store.applyBatch(at('5'));
        // Offsets are compared as integers inside the transaction: this one throws there.
        const bad = store.applyBatch(at('not-a-number'));
        const good = store.applyBatch(at('7'));
        const error = await bad.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(StoreWriteError);
        failures.push((error as Error).message);
        expect((await good).sequence).toBe(2n); // the failed batch took no sequence number
        expect(store.position('users', 0)).toBe('7');
        finals.push(stateOf(store));
      } finally {
        await store.close();
      }
    }
    expect(failures[0]).toMatch(/^LMDB write failed, nothing of the batch was applied: .*BigInt/);
    expect(failures[1]).toBe(failures[0]);
    expect(finals[1]).toEqual(finals[0]);
  });

  it('should refuse batches once the store is closing', async () => {
    const store = openStore({ path: tempDir(), viewVersion: 1, writerThread: true });
    await store.close();
    await expect(store.applyBatch({ changes: [], positions: [] })).rejects.toThrow(StoreWriteError);
  });
});
