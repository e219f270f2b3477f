/**
 * A commit input's records packed for the writer thread (src/store/packed-changes.ts) come out as they went
 * in: random columns of every kind of record (rows with null and absent fields, deletes, truncates), strings
 * from the whole of UTF-16 (Latin-1, wide characters, lone surrogates, empty), many topics, any int32
 * partition and any event time, through a real transfer. What the layout cannot carry is refused, so the
 * caller sends the columns as they are.
 */
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { ChangeBatch, TRUNCATE, type ChangeColumns } from '../../src/materializer/change-batch.js';
import { concatInputs } from '../../src/materializer/change-batch.js';
import {
  ChangesPacker,
  mergePackedChanges,
  PackingChangeBatch,
  packChanges,
  packedChangesTransferables,
  unpackChanges,
  type CrossingFields,
  type PackedChanges,
} from '../../src/store/packed-changes.js';
import type { OutboxEntry } from '../../src/store/outbox.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { mergeMaybePacked, plainStoreInput, type PackedStoreInput } from '../../src/store/write.js';
import { VIEWS } from '../../src/views/registry.js';
import type { ViewModule } from '../../src/views/types.js';
import { tempDir } from '../utils/tmp.js';
import { ROW_FIELDS, TABLES, type Row, type Table } from '../../src/views/source.js';
import { ALPHABET } from '../utils/alphabet.js';

function randomString(next: () => number, max = 12): string {
  const n = Math.floor(next() * (max + 1));
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(next() * ALPHABET.length)]!;
  return s;
}

function randomRow(next: () => number, table: Table): Row | null | typeof TRUNCATE {
  const r = next();
  if (r < 0.1) return null;
  if (r < 0.13) return TRUNCATE;
  const row: Record<string, string | null> = { table };
  for (const f of ROW_FIELDS[table]) {
    const v = next();
    if (v < 0.2) row[f] = null;
    else if (v < 0.3)
      continue; // absent
    else row[f] = randomString(next);
  }
  return row as unknown as Row;
}

function randomColumns(seed: number, n: number): ChangeColumns {
  const next = prng(seed);
  const c = new ChangeBatch().columns();
  const topics = Array.from({ length: 1 + Math.floor(next() * 5) }, () => randomString(next, 20));
  const times = [Number.NaN, 0, -1, 1.5, 8.64e15, Date.UTC(2026, 11, 5)];
  for (let i = 0; i < n; i++) {
    const table = TABLES[Math.floor(next() * TABLES.length)]!;
    c.table.push(table);
    c.key.push(randomString(next, 30));
    c.row.push(randomRow(next, table));
    c.topic.push(topics[Math.floor(next() * topics.length)]!);
    c.partition.push(next() < 0.1 ? 2 ** 31 - 1 : Math.floor(next() * 64));
    c.offset.push(String(Math.floor(next() * 2 ** 53)));
    c.eventTime.push(next() < 0.3 ? times[Math.floor(next() * times.length)]! : Math.floor(next() * 2e12));
  }
  return c;
}

/** Across a port, transferred as the writer thread receives it. */
function acrossAPort(packed: PackedChanges): PackedChanges {
  const { port1, port2 } = new MessageChannel();
  try {
    port1.postMessage(packed, packedChangesTransferables(packed));
    expect(packed.bytes.byteLength).toBe(0); // transferred, not copied
    return receiveMessageOnPort(port2)!.message as PackedChanges;
  } finally {
    port1.close();
    port2.close();
  }
}

describe('packed changes', () => {
  it('come out equal to the columns packed, null and absent fields apart, every string exact', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const columns = randomColumns(seed, 1 + (seed % 50) * 7);
      const expected = structuredClone(columns);
      const packed = packChanges(columns);
      expect(packed).toBeDefined();
      const out = unpackChanges(acrossAPort(packed!));
      // toStrictEqual: a field absent in one and null (or undefined) in the other differs.
      expect(out).toStrictEqual(expected);
      expect(Object.is(out.eventTime[0], expected.eventTime[0])).toBe(true);
    }
  });

  it('carries strings longer than the first buffer and no records at all', () => {
    const long = 'x'.repeat(100_000) + '\ud800' + 'é'.repeat(70_000);
    const columns: ChangeColumns = {
      table: ['users'],
      key: [long],
      row: [
        {
          table: 'users',
          username: long,
          name: null,
          description: long,
          location: null,
          webPageUrl: null,
          joinedDate: null,
          profileImageUrl: null,
          backgroundImageUrl: null,
        },
      ],
      topic: ['users'],
      partition: [0],
      offset: ['0'],
      eventTime: [1],
    };
    expect(unpackChanges(packChanges(columns)!)).toStrictEqual(structuredClone(columns));
    const empty = new ChangeBatch().columns();
    expect(unpackChanges(packChanges(empty)!)).toStrictEqual(empty);
  });

  it('refuses what the layout cannot carry', () => {
    const base = (): ChangeColumns => ({
      table: ['tweets'],
      key: ['t1'],
      row: [{ table: 'tweets', userId: 'u1', text: 'hi', createdAt: null }],
      topic: ['tweets'],
      partition: [3],
      offset: ['7'],
      eventTime: [1],
    });
    expect(packChanges(base())).toBeDefined();
    const numberField = base();
    (numberField.row[0] as unknown as Record<string, unknown>)['text'] = 42;
    expect(packChanges(numberField)).toBeUndefined();
    const otherTable = base();
    (otherTable.row[0] as unknown as Record<string, unknown>)['table'] = 'likes';
    expect(packChanges(otherTable)).toBeUndefined();
    const unknownTable = base();
    (unknownTable.table as string[])[0] = 'retweets';
    expect(packChanges(unknownTable)).toBeUndefined();
    const numberKey = base();
    (numberKey.key as unknown[])[0] = 7;
    expect(packChanges(numberKey)).toBeUndefined();
    const numberOffset = base();
    (numberOffset.offset as unknown[])[0] = 7;
    expect(packChanges(numberOffset)).toBeUndefined();
    const textTime = base();
    (textTime.eventTime as unknown[])[0] = '1';
    expect(packChanges(textTime)).toBeUndefined();
    const bigPartition = base();
    bigPartition.partition[0] = 2 ** 31;
    expect(packChanges(bigPartition)).toBeUndefined();
  });

  /** Pushes record `i` of `c` into anything with ChangeBatch's `push`. */
  const pushAt = (to: Pick<ChangeBatch, 'push'>, c: ChangeColumns, i: number): void =>
    to.push(c.table[i]!, c.key[i]!, c.row[i]!, c.topic[i]!, c.partition[i]!, c.offset[i]!, c.eventTime[i]!);
  const positions = [{ topic: 'tweets', partition: 0, next: '9' }];

  it('packs record by record into the same bytes as packing the columns at once, growing from nothing', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const columns = randomColumns(seed, seed * 13);
      const expected = structuredClone(columns);
      const batch = new PackingChangeBatch();
      for (let i = 0; i < columns.key.length; i++) pushAt(batch, columns, i);
      expect(batch.length).toBe(columns.key.length);
      const input = batch.input(positions);
      if (!('packed' in input)) throw new Error('expected a packed input');
      expect(input.positions).toBe(positions);
      const atOnce = packChanges(columns)!;
      // Buffer#equals: vitest's toEqual walks a buffer element by element (seconds for these).
      expect(Buffer.from(input.packed.bytes).equals(Buffer.from(atOnce.bytes))).toBe(true);
      expect(unpackChanges(acrossAPort(input.packed))).toStrictEqual(expected);
    }
  });

  it('keeps nothing of a record it refuses, and packs the next ones', () => {
    const columns = randomColumns(7, 3);
    const packer = new ChangesPacker();
    pushAt(packer, columns, 0);
    const refused = { table: 'tweets', userId: 'u1', text: 42, createdAt: null } as unknown as Row;
    expect(packer.push('tweets', 'long key '.repeat(20), refused, 'tweets', 0, '5', 1)).toBe(false);
    expect(packer.push('tweets', 't', { table: 'likes' } as unknown as Row, 'tweets', 0, '5', 1)).toBe(false);
    pushAt(packer, columns, 1);
    pushAt(packer, columns, 2);
    expect(packer.length).toBe(3);
    expect(unpackChanges(packer.finish())).toStrictEqual(structuredClone(columns));
  });

  it('turns into plain columns at the first record it cannot pack, every record kept in order', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const columns = randomColumns(seed, 40);
      const at = seed % 40;
      const odd = { table: columns.table[at]!, ...{ userId: 7, username: 7, followerId: 7 } };
      (columns.row as unknown[])[at] = odd;
      const expected = structuredClone(columns);
      const batch = new PackingChangeBatch();
      for (let i = 0; i < columns.key.length; i++) pushAt(batch, columns, i);
      expect(batch.length).toBe(40);
      const input = batch.input(positions);
      if (!('changes' in input)) throw new Error('expected plain columns');
      expect(input.changes).toStrictEqual(expected);
    }
  });

  it('merge end to end into the records of each, in order, their topics numbered again', () => {
    for (let seed = 1; seed <= 40; seed++) {
      // Inputs whose topics overlap in different orders, an empty one among them.
      const parts = Array.from({ length: 1 + (seed % 6) }, (_, i) =>
        randomColumns(seed * 10 + i, i === 2 ? 0 : 1 + ((seed + i) % 30)),
      );
      const expected = concatInputs(parts.map((changes) => ({ changes, positions: [] })));
      if (!('changes' in expected)) throw new Error('expected changelog columns');
      const packed = parts.map((c) => acrossAPort(packChanges(structuredClone(c))!));
      const merged = mergePackedChanges(packed);
      expect(unpackChanges(acrossAPort(merged))).toStrictEqual(structuredClone(expected.changes));
      expect(new Set(merged.topics).size).toBe(merged.topics.length);
    }
  });

  it('are merged packed by the group commit only when every input is, with their positions and dead letters', () => {
    const position = (next: string) => ({ topic: 't', partition: 0, next });
    const letter = (key: string): OutboxEntry => ({ topic: 'dlq', message: { key, value: null } });
    const a = randomColumns(1, 5);
    const b = randomColumns(2, 7);
    const inputs: PackedStoreInput[] = [
      { packed: packChanges(structuredClone(a))!, positions: [position('5')] },
      { packed: packChanges(structuredClone(b))!, positions: [position('9')], deadLetters: [letter('x')] },
    ];
    const merged = mergeMaybePacked(inputs);
    if (!('packed' in merged)) throw new Error('expected a packed input');
    expect(merged.positions).toEqual([position('5'), position('9')]);
    expect(merged.deadLetters).toEqual([letter('x')]);
    const plain = plainStoreInput(merged);
    const expected = concatInputs([
      { changes: structuredClone(a), positions: [] },
      { changes: structuredClone(b), positions: [] },
    ]);
    expect('changes' in plain && plain.changes).toStrictEqual('changes' in expected && expected.changes);
    // One input as plain columns: merged as plain columns, the same records.
    const mixed = mergeMaybePacked([inputs[0]!, { changes: structuredClone(b), positions: [position('9')] }]);
    expect('packed' in mixed).toBe(false);
    expect('changes' in mixed && mixed.changes).toStrictEqual('changes' in expected && expected.changes);
    expect(mixed.positions).toEqual([position('5'), position('9')]);
  });

  it('carry only the fields they are given, each exactly, the others undefined', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const next = prng(1000 + seed);
      // A random subset of each table's fields crosses (none, some, all).
      const crossing = Object.fromEntries(
        TABLES.map((t) => [t, ROW_FIELDS[t].filter(() => next() < 0.5)]),
      ) as unknown as CrossingFields;
      const columns = randomColumns(seed, 1 + (seed % 40) * 5);
      const expected = structuredClone(columns);
      const out = unpackChanges(acrossAPort(packChanges(columns, crossing)!));
      expect({ ...out, row: [] }).toStrictEqual({ ...expected, row: [] });
      for (let i = 0; i < expected.row.length; i++) {
        const want = expected.row[i]!;
        const got = out.row[i]!;
        if (want === null || want === TRUNCATE) {
          expect(got).toBe(want);
          continue;
        }
        const table = expected.table[i]!;
        const w = want as unknown as Record<string, unknown>;
        const g = got as unknown as Record<string, unknown>;
        expect(g['table']).toBe(table);
        for (const f of ROW_FIELDS[table]) {
          if (crossing[table].includes(f)) {
            // Absent stays absent, null null, a string the same string.
            expect(Object.hasOwn(g, f) && g[f] !== undefined).toBe(Object.hasOwn(w, f));
            if (Object.hasOwn(w, f)) expect(g[f]).toBe(w[f]);
          } else expect(g[f]).toBeUndefined();
        }
      }
    }
  });

  it('merge as plain columns when they carry different fields', () => {
    const a = randomColumns(3, 6);
    const b = randomColumns(4, 6);
    const some: CrossingFields = { users: ['username'], tweets: ['userId'], follows: [], likes: ['userId'] };
    const merged = mergeMaybePacked([
      { packed: packChanges(structuredClone(a))!, positions: [] },
      { packed: packChanges(structuredClone(b), some)!, positions: [] },
    ]);
    expect('packed' in merged).toBe(false);
    expect(() =>
      mergePackedChanges([packChanges(structuredClone(a))!, packChanges(structuredClone(b), some)!]),
    ).toThrow(/different fields/);
  });
});

describe("a store's packed fields", () => {
  it('are the fields its views read, and those its active generation keeps besides', async () => {
    const path = tempDir();
    const fresh = openStore({ path });
    expect(fresh.packedFields).toEqual(fresh.registry.storedFields);
    expect(fresh.packedFields.tweets).toEqual(['userId']);
    await fresh.close();
    // A generation made by code whose views also read likes.tweetId keeps storing it after that view is gone.
    const readsMore: ViewModule = {
      name: 'reads-tweet-ids',
      version: 1,
      reads: { likes: ['tweetId'] },
      dependsOn: [],
      spaces: {},
      apply: () => ({}),
    };
    const other = tempDir();
    const wider = openStore({ path: other, views: [...VIEWS, readsMore] });
    expect(wider.activeGeneration().info.rowFields.likes).toEqual(['userId', 'tweetId']);
    await wider.close();
    const narrower = openStore({ path: other });
    expect(narrower.registry.storedFields.likes).toEqual(['userId']);
    expect(narrower.packedFields.likes).toEqual(['userId', 'tweetId']);
    expect(narrower.packedFields.tweets).toEqual(['userId']);
    await narrower.close();
  });
});
