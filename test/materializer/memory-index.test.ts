/**
 * The in-memory index (memory-state.ts): an ordered set of strings in Unicode code point order, the order
 * LMDB gives the same keys. Checked against a sorted array under random adds and removes, across block
 * splits and merges, with keys whose UTF-16 order differs from their code point order.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { compareCodePoints, MemoryIndex } from '../../src/materializer/memory-state.js';

/** The reference: a sorted array of distinct keys. */
class SortedArray {
  readonly keys: string[] = [];
  add(key: string): void {
    if (!this.keys.includes(key)) {
      this.keys.push(key);
      this.keys.sort(compareCodePoints);
    }
  }
  remove(key: string): void {
    const i = this.keys.indexOf(key);
    if (i !== -1) this.keys.splice(i, 1);
  }
  first(prefix: string, limit: number): string[] {
    return this.keys.filter((k) => compareCodePoints(k, prefix) >= 0 && k.startsWith(prefix)).slice(0, limit);
  }
  last(prefix: string, before?: string): string | undefined {
    return this.keys
      .filter((k) => k.startsWith(prefix) && (before === undefined || compareCodePoints(k, before) < 0))
      .at(-1);
  }
}

/**
 * Random keys over a small alphabet (so prefixes repeat); `wide` adds an astral character and U+FF5E. A third
 * of them start with 14 equal units, so that many differ only after the units the index packs into numbers.
 */
function keyMaker(random: () => number, wide: boolean): () => string {
  const alphabet = wide ? ['a', 'b', 'c', '\u{1f600}', '\uff5e'] : ['a', 'b', 'c', 'd'];
  return () => {
    let key = random() < 0.33 ? 'a'.repeat(14) : '';
    const n = 1 + Math.floor(random() * 6);
    for (let i = 0; i < n; i++) key += alphabet[Math.floor(random() * alphabet.length)]!;
    return key;
  };
}

function check(
  index: MemoryIndex,
  reference: SortedArray,
  random: () => number,
  nextKey: () => string,
): void {
  expect([...index.all()]).toEqual(reference.keys);
  expect(index.size).toBe(reference.keys.length);
  for (let q = 0; q < 5; q++) {
    const prefix = nextKey().slice(0, 1 + Math.floor(random() * 14));
    const limit = Math.floor(random() * 40);
    expect(index.first(prefix, limit)).toEqual(reference.first(prefix, limit));
  }
  expect(index.first('', 10)).toEqual(reference.keys.slice(0, 10));
  for (let q = 0; q < 5; q++) {
    const prefix = nextKey().slice(0, 1 + Math.floor(random() * 14));
    const before = random() < 0.5 ? undefined : nextKey();
    expect({ prefix, before, last: index.last(prefix, before) }).toEqual({
      prefix,
      before,
      last: reference.last(prefix, before),
    });
  }
}

describe('MemoryIndex', () => {
  it.each([
    [1, false, 8],
    [2, false, 3],
    [3, true, 8],
    [4, true, 16],
    [5, false, 512],
  ])(
    'agrees with a sorted array under random adds and removes (seed %i, wide keys %s, blocks of %i)',
    (seed, wide, blockMax) => {
      const random = prng(seed);
      const nextKey = keyMaker(random, wide);
      const index = new MemoryIndex(blockMax);
      const reference = new SortedArray();
      // Grow past several block splits, then shrink through merges down to empty, then grow again.
      for (const [steps, addShare] of [
        [3000, 0.8],
        [4000, 0.2],
        [1500, 0.7],
      ] as const) {
        for (let s = 0; s < steps; s++) {
          const key =
            reference.keys.length > 0 && random() < 0.5
              ? reference.keys[Math.floor(random() * reference.keys.length)]!
              : nextKey();
          if (random() < addShare) {
            index.add(key);
            reference.add(key);
          } else {
            index.remove(key);
            reference.remove(key);
          }
          if (s % 500 === 0) check(index, reference, random, nextKey);
        }
        check(index, reference, random, nextKey);
      }
    },
  );

  it('orders by code point, not by UTF-16 unit', () => {
    const index = new MemoryIndex(2);
    for (const key of ['b', '\uff5e', 'a', '\u{1f600}', 'a\u{1f600}', 'a\uff5e']) index.add(key);
    expect([...index.all()]).toEqual(['a', 'a\uff5e', 'a\u{1f600}', 'b', '\uff5e', '\u{1f600}']);
    expect(index.first('a', 10)).toEqual(['a', 'a\uff5e', 'a\u{1f600}']);
  });

  it('holds each key once and ignores removing a key it does not hold', () => {
    const index = new MemoryIndex();
    index.add('x');
    index.add('x');
    index.remove('y');
    expect([...index.all()]).toEqual(['x']);
    index.remove('x');
    index.remove('x');
    expect([...index.all()]).toEqual([]);
    expect(index.first('', 5)).toEqual([]);
  });
});
