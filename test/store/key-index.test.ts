/**
 * KeyIndex (src/store/key-index.ts) holds what a Map of the same keys holds: after random sets, deletes and
 * sets again, through the table's growth, each key gives back its value or none, and its size and entries are
 * the Map's; keys of several forms (digits, a prefix, non-ASCII and surrogate pairs, the empty key, long
 * ones), and two keys of one hash. Its entries come in the order keys were first set, which a deleted key
 * keeps.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { hashOf, KeyIndex } from '../../src/store/key-index.js';

const sorted = (entries: Iterable<[string, number]>) => [...entries].sort(([a], [b]) => (a < b ? -1 : 1));

describe("a rebuild chunk's index of buffered keys", () => {
  it('should hold what a Map holds through sets, deletes and growth', () => {
    const random = prng(41);
    const forms = [
      (n: number) => `t${n}`,
      (n: number) => String(n),
      (n: number) => `follows-${n}-x`,
      (n: number) => `\u00e9\u{1f600}${n}`,
      (n: number) => (n === 0 ? '' : `${'k'.repeat(n % 40)}${n}`),
    ];
    const index = new KeyIndex();
    const reference = new Map<string, number>();
    // Past several doublings of the table (1,024 slots at first, at most half full).
    for (let i = 0; i < 30_000; i++) {
      const key = forms[Math.floor(random() * forms.length)]!(Math.floor(random() * 12_000));
      if (random() < 0.2) {
        index.delete(key);
        reference.delete(key);
      } else {
        const value = Math.floor(random() * 2 ** 31);
        index.set(key, value);
        reference.set(key, value);
      }
      if (i % 2_000 === 0) {
        expect(index.size).toBe(reference.size);
        expect(sorted(index.entries())).toEqual(sorted(reference));
      }
    }
    expect(index.size).toBe(reference.size);
    expect(sorted(index.entries())).toEqual(sorted(reference));
    expect([...index.liveKeys()].sort()).toEqual([...reference.keys()].sort());
    for (let n = 0; n < 12_000; n++)
      for (const form of forms) expect(index.get(form(n))).toBe(reference.get(form(n)));
  });

  it('should give entries in the order keys were first set, a key deleted and set again in its first place', () => {
    const index = new KeyIndex();
    index.set('b', 1);
    index.set('a', 2);
    index.set('c', 3);
    index.delete('b');
    index.delete('missing');
    expect([...index.entries()]).toEqual([
      ['a', 2],
      ['c', 3],
    ]);
    index.set('b', 4);
    index.set('a', 5);
    expect([...index.entries()]).toEqual([
      ['b', 4],
      ['a', 5],
      ['c', 3],
    ]);
    expect(index.size).toBe(3);
    expect(index.get('b')).toBe(4);
    expect(index.get('d')).toBeUndefined();
  });

  it('should tell apart keys of the same hash', () => {
    // Found by search: two keys of the bench's form whose 32-bit hashes are equal.
    expect(hashOf('t439599')).toBe(hashOf('t622382'));
    const index = new KeyIndex();
    index.set('t439599', 1);
    expect(index.get('t622382')).toBeUndefined();
    index.set('t622382', 2);
    index.delete('t439599');
    expect([...index.entries()]).toEqual([['t622382', 2]]);
    expect(index.get('t439599')).toBeUndefined();
  });
});
