/**
 * The filter of a generation's row keys (src/store/row-key-filter.ts): no key added is ruled out, most keys
 * never added are; a committing context has one for each generation it found without rows, and its commits
 * find every row stored before them, whether the filter knows them or they were stored before it was made.
 */
import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/lmdb-store.js';
import { KnownRows, MAX_SEGMENTS, RowKeyFilter, SEGMENT_KEYS } from '../../src/store/row-key-filter.js';
import { TABLES } from '../../src/views/source.js';
import {
  OVER_STORED_ROWS,
  OVER_STORED_ROWS_SERVED,
  rowLookups,
  servedOverStoredRows,
  STORED_TWEETS_LOOKED_UP,
} from '../utils/over-stored-rows.js';
import { tempDir } from '../utils/tmp.js';

describe('RowKeyFilter (src/store/row-key-filter.ts)', () => {
  it('should hold every key added, across its segments, and rule out most keys never added', () => {
    // Segments of 1,024, 2,048 and 4,096 keys: the first two full, an eighth of the third.
    const filter = new RowKeyFilter(1_024);
    const n = 3.5 * 1_024;
    for (let i = 0; i < n; i++) filter.add(TABLES[i % 4]!, `k${i}`);
    expect(filter.added).toBe(n);
    let missed = 0;
    for (let i = 0; i < n; i++) if (!filter.mayHold(TABLES[i % 4]!, `k${i}`)) missed++;
    expect(missed).toBe(0);
    // Never added: other keys, and the same keys under another table.
    let held = 0;
    const probes = 200_000;
    for (let i = 0; i < probes / 2; i++) {
      if (filter.mayHold(TABLES[i % 4]!, `x${i}`)) held++;
      if (filter.mayHold(TABLES[(i + 1) % 4]!, `k${i}`)) held++;
    }
    // Three segments, each at most at its capacity: ~1 % each at worst.
    expect(held / probes).toBeLessThan(0.03);
  });

  it('should tell keys apart by every character, their length and their table', () => {
    const filter = new RowKeyFilter();
    filter.add('tweets', 'abc');
    expect(filter.mayHold('tweets', 'abc')).toBe(true);
    for (const [table, key] of [
      ['likes', 'abc'],
      ['tweets', 'abd'],
      ['tweets', 'bbc'],
      ['tweets', 'abc\u0000'],
      ['tweets', 'ab'],
      ['tweets', ''],
      ['tweets', 'abc\u{1f600}'],
    ] as const)
      expect({ table, key, may: filter.mayHold(table, key) }).toEqual({ table, key, may: false });
  });

  it('should hold everything once more keys were added than its segments hold, and stop growing', () => {
    const filter = new RowKeyFilter(32, 2);
    expect(filter.maxKeys).toBe(96);
    for (let i = 0; i < 96; i++) filter.add('users', `u${i}`);
    expect(filter.saturated).toBe(false);
    expect(filter.mayHold('users', 'u')).toBe(false);
    filter.add('users', 'u96');
    expect(filter.saturated).toBe(true);
    expect(filter.mayHold('users', 'u')).toBe(true);
    expect(filter.mayHold('likes', 'anything')).toBe(true);
  });

  it('should hold 29M keys by default, and refuse sizes that are not a power of two or that its hash cannot index', () => {
    expect(new RowKeyFilter().maxKeys).toBe(SEGMENT_KEYS * (2 ** MAX_SEGMENTS - 1));
    expect(SEGMENT_KEYS * (2 ** MAX_SEGMENTS - 1)).toBe(29_360_128);
    for (const [first, segments] of [
      [48, 3],
      [16, 3],
      [2 ** 27, 3],
    ] as const)
      expect(() => new RowKeyFilter(first, segments)).toThrow(
        `no row key filter of ${segments} segments from ${first} keys`,
      );
  });
});

describe('KnownRows', () => {
  const rows = (empty: boolean) => {
    const asked = { count: 0 };
    return {
      asked,
      empty: () => {
        asked.count++;
        return empty;
      },
    };
  };

  it('should give a filter to a generation first seen without rows, none to one seen with rows, and remember both', () => {
    const known = new KnownRows();
    const fresh = rows(true);
    const filled = rows(false);
    const filter = known.of(1, fresh);
    expect(filter).toBeInstanceOf(RowKeyFilter);
    expect(known.of(2, filled)).toBeUndefined();
    // Remembered: the rows are not asked again, and the filter is the same one (what earlier commits added).
    expect(known.of(1, rows(false))).toBe(filter);
    expect(known.of(2, rows(true))).toBeUndefined();
    expect([fresh.asked.count, filled.asked.count]).toEqual([1, 1]);
  });

  it('should forget all but the two generations last asked for, which are then seen as new', () => {
    const known = new KnownRows();
    const first = known.of(1, rows(true));
    known.of(2, rows(true));
    expect(known.of(1, rows(false))).toBe(first);
    known.of(3, rows(true));
    // 2 was the least recently asked for: forgotten, and now found with rows, it has no filter.
    const again = rows(false);
    expect(known.of(2, again)).toBeUndefined();
    expect(again.asked.count).toBe(1);
    // 1 was forgotten by asking for 2: empty rows again give it a new filter.
    const renewed = known.of(1, rows(true));
    expect(renewed).toBeInstanceOf(RowKeyFilter);
    expect(renewed).not.toBe(first);
  });
});

describe.each([{ writerThread: false }, { writerThread: true }])(
  'commits into a generation whose row keys are known (%o)',
  (mode) => {
    it('should find every row an earlier commit stored, in this process and after a restart, and look up no new one', async () => {
      // A fresh store: its rows are empty at the first commit, and known from then on.
      const path = tempDir();
      const lookedUp = await rowLookups(async () => {
        const store = openStore({ ...mode, path });
        for (const input of OVER_STORED_ROWS) await store.applyBatch(input);
        await store.close();
      });
      const served = await servedOverStoredRows({ ...mode, path });
      expect(served).toMatchObject(OVER_STORED_ROWS_SERVED);
      // The writer thread looks its rows up in its own copy of the module.
      if (!mode.writerThread) {
        expect(lookedUp).toContain('users/u0');
        expect(lookedUp.filter((k) => k.startsWith('tweets/'))).toEqual(STORED_TWEETS_LOOKED_UP);
      }

      // Reopened after each batch: every commit after the first finds rows it did not store.
      const reopened = tempDir();
      const reopenedLookups = await rowLookups(async () => {
        for (const input of OVER_STORED_ROWS) {
          const store = openStore({ ...mode, path: reopened });
          await store.applyBatch(input);
          await store.close();
        }
      });
      expect(await servedOverStoredRows({ ...mode, path: reopened })).toEqual(served);
      // No filter there after the first batch (its store held rows when it opened): every tweet is looked up.
      if (!mode.writerThread)
        expect(reopenedLookups.filter((k) => k.startsWith('tweets/'))).toEqual(
          ['t0', 't1', 't1', 't2', 't0', 't2', 't3'].map((k) => `tweets/${k}`),
        );
    });
  },
);
