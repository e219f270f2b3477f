/** The fast path's document cache stays bounded and keeps what is used. */
import { describe, expect, it } from 'vitest';
import { ClockCache } from '../../api/fast-path/clock-cache.js';

describe('ClockCache', () => {
  it('never holds more than its capacity', () => {
    const cache = new ClockCache<number, number>(3);
    for (let i = 0; i < 100; i++) cache.set(i, i);
    expect(cache.size).toBe(3);
    expect([97, 98, 99].map((k) => cache.get(k))).toEqual([97, 98, 99]);
  });

  it('evicts an entry not used since it was stored before one that was', () => {
    const cache = new ClockCache<string, number>(2);
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1);
    cache.set('c', 3);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(1);
    expect(cache.get('c')).toBe(3);
  });

  it('evicts the oldest when everything was used', () => {
    const cache = new ClockCache<string, number>(2);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.get('a');
    cache.get('b');
    cache.set('c', 3);
    expect(cache.size).toBe(2);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('c')).toBe(3);
  });
});
