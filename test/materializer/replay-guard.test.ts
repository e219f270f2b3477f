/**
 * The replay guard: a record applies only at or after its partition's stored next offset (and after every
 * record of that partition already accepted in the same commit). Offsets are compared as decimal strings
 * (no BigInt per record), across digit-count boundaries too.
 */
import { describe, expect, it } from 'vitest';
import { offsetBefore } from '../../src/materializer/change-batch.js';
import { commitBatch, commitPlan } from '../../src/materializer/commit.js';
import { MemoryState } from '../../src/materializer/memory-state.js';
import { createRegistry } from '../../src/views/registry.js';
import { commitInput, tweet } from '../utils/changes.js';

const registry = createRegistry();
const plan = commitPlan(registry);

/** Applies a tweet at `first`, then one at `next` (same or other partition); returns whether the second applied. */
function applied(first: string, next: string, partition = 0): boolean {
  const state = new MemoryState(registry);
  commitBatch(
    state,
    plan,
    commitInput([{ table: 'tweets', key: 't1', row: tweet('u1'), offset: first }]),
    1n,
    0,
  );
  const outcome = commitBatch(
    state,
    plan,
    commitInput([{ table: 'tweets', key: 't1', row: tweet(`u${next}`), partition, offset: next }]),
    2n,
    0,
  );
  return outcome.accepted === 1;
}

describe('replay guard', () => {
  it.each([
    ['10', '9', false],
    ['10', '10', false],
    ['9', '10', true],
    ['99', '100', true],
    ['100', '99', false],
    ['12345678901234567890', '12345678901234567889', false],
    ['12345678901234567889', '12345678901234567890', true],
    ['0', '0', false],
    ['0', '1', true],
  ])('first at %s, then at %s: applied %s', (first, at, expected) => {
    expect(applied(first, at)).toBe(expected);
  });

  it('never treats another partition as a replay', () => {
    expect(applied('10', '9', 1)).toBe(true);
  });

  it('compares offsets like integers', () => {
    const pairs: [string, string][] = [
      ['9', '10'],
      ['10', '9'],
      ['5', '5'],
      ['18446744073709551615', '18446744073709551616'],
    ];
    expect(pairs.map(([a, b]) => offsetBefore(a, b))).toEqual(pairs.map(([a, b]) => BigInt(a) < BigInt(b)));
  });
});
