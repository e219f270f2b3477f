/**
 * The replay guard compares Kafka offsets as decimal strings (no BigInt per record): a change at or
 * before a row's origin on the same partition is a no-op, across digit-count boundaries too.
 */
import { describe, expect, it } from 'vitest';
import { materialize, type Change } from '../../src/materializer/materialize.js';
import { MemoryState } from '../utils/memory-state.js';

const tweet = (offset: string, partition = 0): Change => ({
  table: 'tweets',
  key: 't1',
  row: { table: 'tweets', userId: `u${offset}` },
  position: { topic: 'tweets', partition, offset },
  timestamp: '1700000000000',
});

/** Applies `origin`, then `next`; returns whether `next` was applied (not a no-op). */
function applied(origin: Change, next: Change): boolean {
  const state = new MemoryState();
  state.apply(materialize(state, [origin], { sequence: 1n, appliedAt: '2026-01-01T00:00:00.000Z' }));
  return materialize(state, [next], { sequence: 2n, appliedAt: '2026-01-01T00:00:00.000Z' }).noops === 0;
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
  ])('origin %s, change at %s: applied %s', (origin, at, expected) => {
    expect(applied(tweet(origin), tweet(at))).toBe(expected);
  });

  it('never treats another partition as a replay', () => {
    expect(applied(tweet('10', 0), tweet('9', 1))).toBe(true);
  });
});
