/**
 * A buffered KV space (src/store/buffered-generation.ts) writes what is buffered to the stored space in key
 * order, the last put or removal of each key, whether the keys were buffered in that order or not.
 */
import { describe, expect, it } from 'vitest';
import { MemoryKv } from '../../src/materializer/memory-state.js';
import { bufferedSpaces } from '../../src/store/buffered-generation.js';
import type { KvSpace } from '../../src/views/types.js';

/** A stored space that records each write. */
class Recording extends MemoryKv<unknown> {
  readonly writes: string[] = [];
  override put(key: string, value: unknown): void {
    this.writes.push(`put ${key}=${String(value)}`);
    super.put(key, value);
  }
  override remove(key: string): void {
    this.writes.push(`remove ${key}`);
    super.remove(key);
  }
}

/** Buffers `steps` over a stored space holding a, c and e, writes them, returns what was written and kept. */
function written(steps: readonly (readonly [string, number | null])[]) {
  const stored = new Recording();
  for (const k of ['a', 'c', 'e']) stored.map.set(k, 0);
  const space = bufferedSpaces({ s: stored })['s'] as KvSpace<unknown> & { write(): void };
  for (const [k, v] of steps) {
    if (v === null) space.remove(k);
    else space.put(k, v);
  }
  space.write();
  return { writes: stored.writes, kept: [...stored.entries()].map(([k, v]) => `${k}=${String(v)}`) };
}

describe('a buffered KV space written to the stored one', () => {
  const expected = {
    writes: ['put b=1', 'remove c', 'put d=3', 'put e=5', 'put f=6'],
    kept: ['a=0', 'b=1', 'd=3', 'e=5', 'f=6'],
  };

  it('should write keys buffered in key order, the last value or removal of each', () => {
    expect(
      written([
        ['b', 1],
        ['c', null],
        ['d', 2],
        ['d', 3],
        ['e', 5],
        ['f', 6],
      ]),
    ).toEqual(expected);
  });

  it('should write keys buffered out of order in key order', () => {
    expect(
      written([
        ['f', 6],
        ['d', 3],
        ['b', 1],
        ['e', 4],
        ['c', null],
        ['e', 5],
      ]),
    ).toEqual(expected);
  });

  it('should write keys buffered in key order but the last in key order', () => {
    expect(
      written([
        ['b', 1],
        ['c', null],
        ['e', 5],
        ['f', 6],
        ['d', 3],
      ]),
    ).toEqual(expected);
  });
});
