import { describe, expect, it } from 'vitest';
import { MAX_KEYS, RowKeyFilter, SEGMENT_KEYS } from '../../src/store/row-key-filter.js';
import { TABLES } from '../../src/views/source.js';

describe('RowKeyFilter (src/store/row-key-filter.ts)', () => {
  it('should hold every key added, across its segments, and rule out most keys never added', () => {
    const filter = new RowKeyFilter();
    // The first two segments full (SEGMENT_KEYS, then twice as many), an eighth of the third.
    const n = 3.5 * SEGMENT_KEYS;
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

  it('should hold everything once more than MAX_KEYS were added, and stop growing', () => {
    const filter = new RowKeyFilter();
    expect(filter.mayHold('users', 'u')).toBe(false);
    for (let i = 0; i <= MAX_KEYS; i++) filter.add('users', 'same');
    expect(filter.saturated).toBe(true);
    expect(filter.mayHold('users', 'u')).toBe(true);
    expect(filter.mayHold('likes', 'anything')).toBe(true);
  });
});
