/**
 * A buffered generation's rows (src/store/buffered-generation.ts) take a rows-only commit in one pass
 * (`applyRecords`, what a rebuild's shadow replays before it builds its views): checked against the same
 * commits resolved and written transition by transition (`commitBatch`'s general path, over the same buffer
 * without that method), over random commits with updates, deletes, no-ops, rows brought back to what they
 * were before their commit, redelivered records and truncates, with and without a filter of the stored keys.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { TRUNCATE } from '../../src/materializer/change-batch.js';
import { commitBatch, commitPlan, type GenerationState } from '../../src/materializer/commit.js';
import { MemoryState } from '../../src/materializer/memory-state.js';
import { BufferedGeneration } from '../../src/store/buffered-generation.js';
import { RowKeyFilter } from '../../src/store/row-key-filter.js';
import { createRegistry } from '../../src/views/registry.js';
import { TABLES, type Row, type Table } from '../../src/views/source.js';
import { commitInput, follow, like, profile, storedForm, tweet, type TestRecord } from '../utils/changes.js';

const registry = createRegistry();
const plan = commitPlan(registry);

/** A row of `table` from a few values; `note` changes a field the store does not keep (equal rows apart). */
const rowOf = (table: Table, v: number, note: number): Row =>
  table === 'users'
    ? profile(`n${v}`)
    : table === 'follows'
      ? follow(`u${v}`, 'u0')
      : table === 'tweets'
        ? { table: 'tweets', userId: `u${v}`, text: `text ${note}` }
        : like(`u${v}`, `t${note}`);

/** A row as the buffer keeps it: its stored fields. */
const kept = (row: Row) => storedForm(registry.storedFields, row);

/** The same buffer, seen through a state whose rows resolve and write transition by transition. */
function transitionByTransition(buffer: BufferedGeneration): GenerationState {
  const rows = buffer.rows;
  return {
    position: (topic, partition) => buffer.position(topic, partition),
    setPosition: (topic, partition, next) => buffer.setPosition(topic, partition, next),
    spaces: (view) => buffer.spaces(view),
    rows: {
      row: (table, key) => rows.row(table, key),
      keys: (table) => rows.keys(table),
      put: (table, key, row, partition, offset, eventTime) =>
        rows.put(table, key, row, partition, offset, eventTime),
      remove: (table, key) => rows.remove(table, key),
    },
  };
}

/** What a buffer holds: per table and key, the row and its origin, or null (removed). */
function held(buffer: BufferedGeneration) {
  return TABLES.map((table) =>
    [...buffer.rows.held(table)]
      .map(([key, stored]) => ({
        table,
        key,
        row: stored?.row ?? null,
        ...(stored === null
          ? {}
          : { origin: [stored.origin.partition, stored.origin.offset, stored.origin.eventTime] }),
      }))
      .sort((a, b) => (a.key < b.key ? -1 : 1)),
  );
}

/** Stored states alike: each holds `rows`, and a filter of their keys when `filtered`. */
function storedAlike(rows: readonly [Table, string, Row][], filtered: boolean) {
  const state = new MemoryState(registry);
  const filter = filtered ? new RowKeyFilter(32) : undefined;
  for (const [table, key, row] of rows) {
    state.rows.put(table, key, row);
    filter?.add(table, key);
  }
  return { state, filter };
}

describe("a buffered generation's rows in a rows-only commit", () => {
  it('should hold and write what resolving and writing transition by transition does, and count the same noops', () => {
    const next = prng(23);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
    for (let round = 0; round < 400; round++) {
      const rows: [Table, string, Row][] = [];
      for (let k = 0; k < 10; k++) {
        const table = pick(TABLES);
        if (next() < 0.6)
          rows.push([table, `k${Math.floor(next() * 8)}`, rowOf(table, Math.floor(next() * 3), 0)]);
      }
      const filtered = next() < 0.5;
      const [d, g] = [storedAlike(rows, filtered), storedAlike(rows, filtered)];
      const direct = new BufferedGeneration(d.state, 1, registry.storedFields, undefined, d.filter);
      const general = new BufferedGeneration(g.state, 1, registry.storedFields, undefined, g.filter);
      const offsets = new Map<string, number>();
      for (let c = 0; c < 1 + Math.floor(next() * 5); c++) {
        const records: TestRecord[] = Array.from({ length: 1 + Math.floor(next() * 20) }, (_, i) => {
          const table = pick(TABLES);
          const partition = Math.floor(next() * 2);
          const at = `${table}/${partition}`;
          // Now and then a record already applied (redelivered): skipped.
          const offset = Math.max(0, (offsets.get(at) ?? -1) + (next() < 0.1 ? -1 : 1));
          offsets.set(at, Math.max(offsets.get(at) ?? -1, offset));
          const r = next();
          const row =
            r < 0.03
              ? TRUNCATE
              : r < 0.3
                ? null
                : rowOf(table, Math.floor(next() * 3), Math.floor(next() * 2));
          return { table, key: `k${Math.floor(next() * 8)}`, row, partition, offset, eventTime: c * 100 + i };
        });
        const input = commitInput(records);
        const a = commitBatch(direct, plan, input, BigInt(c + 1), 0, true);
        const b = commitBatch(transitionByTransition(general), plan, input, BigInt(c + 1), 0, true);
        expect(a).toEqual(b);
        expect(held(direct)).toEqual(held(general));
      }
      direct.writeRowsTo();
      general.writeRowsTo();
      expect(TABLES.map((t) => [...d.state.rows.tables[t]].sort())).toEqual(
        TABLES.map((t) => [...g.state.rows.tables[t]].sort()),
      );
      expect([...d.state.positions].sort()).toEqual([...g.state.positions].sort());
    }
  });

  it('should keep the entry from before a commit that brings a row back, its origin with it', () => {
    for (const filtered of [false, true]) {
      const { state, filter } = storedAlike([['tweets', 'stored', tweet('u1')]], filtered);
      const buffer = new BufferedGeneration(state, 1, registry.storedFields, undefined, filter);
      const at = (offset: number) => ({ partition: 0, offset, eventTime: offset * 10 });
      commitBatch(
        buffer,
        plan,
        commitInput([{ table: 'tweets', key: 'k', row: tweet('u1'), ...at(0) }]),
        1n,
        0,
        true,
      );
      const { noops } = commitBatch(
        buffer,
        plan,
        commitInput([
          // Back and forth: what the buffer held before the commit stays, with its origin.
          { table: 'tweets', key: 'k', row: tweet('u2'), ...at(1) },
          { table: 'tweets', key: 'k', row: tweet('u1'), ...at(2) },
          // The stored row, removed and put back: nothing buffered for it.
          { table: 'tweets', key: 'stored', row: null, ...at(3) },
          { table: 'tweets', key: 'stored', row: tweet('u1'), ...at(4) },
          // A new row, removed in the same commit: nothing buffered either.
          { table: 'tweets', key: 'new', row: tweet('u3'), ...at(5) },
          { table: 'tweets', key: 'new', row: null, ...at(6) },
          // Changed, brought back, changed again: the last change's origin.
          { table: 'likes', key: 'l', row: like('u1'), ...at(7) },
          { table: 'likes', key: 'l', row: null, ...at(8) },
          { table: 'likes', key: 'l', row: like('u2'), ...at(9) },
          { table: 'likes', key: 'l', row: like('u2'), ...at(10) },
        ]),
        2n,
        0,
        true,
      );
      expect(noops).toBe(1);
      expect(held(buffer).flat()).toEqual([
        { table: 'tweets', key: 'k', row: kept(tweet('u1')), origin: [0, '0', 0] },
        { table: 'likes', key: 'l', row: kept(like('u2')), origin: [0, '9', 90] },
      ]);
    }
  });

  it('should hold rows over many slabs, one bigger than a slab, and thousands of entries, each as it was put', () => {
    // Slabs are 4 MiB: descriptions of 300k to 400k characters (some not ASCII: up to 3 bytes each) fill
    // several, and one of 5M characters needs a slab of its own.
    const description = (n: number) =>
      (n % 3 === 0 ? 'é' : 'a').repeat(n === 7 ? 5_000_000 : 300_000 + n * 2_000);
    const records: TestRecord[] = Array.from({ length: 40 }, (_, n) => ({
      table: 'users',
      key: `u${n % 30}`,
      row: profile(`n${n}`, { description: description(n) }),
      partition: 0,
      offset: n,
      eventTime: n,
    }));
    const { state } = storedAlike([], false);
    const buffer = new BufferedGeneration(state, 1, registry.storedFields, undefined, undefined);
    commitBatch(buffer, plan, commitInput(records.slice(0, 25)), 1n, 0, true);
    commitBatch(buffer, plan, commitInput(records.slice(25)), 2n, 0, true);
    // More entries than the buffer starts with room for (1,024).
    const tweets = Array.from({ length: 3_000 }, (_, n) => ({
      table: 'tweets' as const,
      key: `t${n}`,
      row: tweet(`u${n}`),
      partition: 1,
      offset: n,
      eventTime: n,
    }));
    commitBatch(buffer, plan, commitInput(tweets), 3n, 0, true);
    // The last record of each key: u0-u9 (records 30-39) and u25-u29 from the second commit, u10-u24 from
    // the first.
    const last = (k: number) => (k < 10 ? 30 + k : k);
    const want = Array.from({ length: 30 }, (_, k) => ({
      table: 'users',
      key: `u${k}`,
      row: kept(records[last(k)]!.row as Row),
      origin: [0, String(last(k)), last(k)],
    })).sort((a, b) => (a.key < b.key ? -1 : 1));
    expect(held(buffer)[0]).toEqual(want);
    expect(held(buffer)[1]).toEqual(
      tweets
        .map(({ key, row, offset }) => ({
          table: 'tweets',
          key,
          row: kept(row),
          origin: [1, String(offset), offset],
        }))
        .sort((a, b) => (a.key < b.key ? -1 : 1)),
    );
    for (const { key, row } of want) expect(buffer.rows.row('users', key)).toEqual(row);
    buffer.writeRowsTo();
    expect([...state.rows.tables.users].sort()).toEqual(want.map(({ key, row }) => [key, row]));
  });
});
