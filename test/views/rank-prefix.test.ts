/**
 * A ranking kept as a prefix (src/views/rank-prefix.ts) against the full ranking: after every commit of random
 * moves (counts up and down, with ties; users ranked and unranked), the stored keys are exactly the first M
 * keys of the full ranking, K <= M <= CAP unless every ranked user is stored, and the number of ranked users
 * is right; a prefix holding every ranked user keeps doing so without a refill while they fit. Small K and
 * CAP, so that prefixes fill, shrink below K and are refilled many times.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { compareCodePoints } from '../../src/materializer/memory-state.js';
import { RankPrefix, type PrefixStore, type RankPrefixOptions } from '../../src/views/rank-prefix.js';
import { rankKey } from '../../src/views/top-users.js';

const options = (k: number, cap: number): RankPrefixOptions => ({
  k,
  cap,
  keyOf: (count, userId) => rankKey('FOLLOWERS', count, userId),
});

/** A prefix store over a sorted array, counting its writes. */
class ArrayStore implements PrefixStore {
  writes = 0;
  constructor(readonly keys: string[] = []) {}
  get length(): number {
    return this.keys.length;
  }
  last(): string | undefined {
    return this.keys[this.keys.length - 1];
  }
  add(key: string): void {
    this.writes++;
    if (this.keys.includes(key)) throw new Error(`${key} is stored already`);
    this.keys.push(key);
    this.keys.sort(compareCodePoints);
  }
  remove(key: string): void {
    this.writes++;
    const at = this.keys.indexOf(key);
    if (at < 0) throw new Error(`${key} is not stored`);
    this.keys.splice(at, 1);
  }
  replace(keys: readonly string[]): void {
    this.writes++;
    this.keys.splice(0, this.keys.length, ...keys);
  }
}

/** Every ranked user's key, in key order. */
function fullRanking(counts: ReadonlyMap<string, number>, o: RankPrefixOptions): string[] {
  return [...counts].map(([u, c]) => o.keyOf(c, u)).sort(compareCodePoints);
}

describe('RankPrefix', () => {
  it('should hold exactly the first keys of the full ranking after every commit of random moves', () => {
    let refills = 0;
    let shortOfCap = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const random = prng(seed);
      const o = options(1 + Math.floor(random() * 4), 5 + Math.floor(random() * 6));
      const users = Array.from({ length: 5 + Math.floor(random() * 40) }, (_, i) => `u${i}`);
      const counts = new Map<string, number>();
      const store = new ArrayStore();
      for (let commit = 0; commit < 60; commit++) {
        const stored = [...store.keys];
        const prefix = new RankPrefix(store, counts.size, o);
        // Every ranked user stored: it stays so while they fit (at every move), without a refill (no scan).
        const complete = stored.length === counts.size;
        let peak = counts.size;
        const moves = 1 + Math.floor(random() * 8);
        for (let m = 0; m < moves; m++) {
          const user = users[Math.floor(random() * users.length)]!;
          const before = counts.get(user) ?? null;
          const r = random();
          // Mostly small steps (what commits do), sometimes a jump, sometimes (un)ranking.
          const after =
            r < 0.1
              ? null
              : before === null
                ? Math.floor(random() * 6)
                : r < 0.2
                  ? Math.floor(random() * 12)
                  : Math.max(0, before + (random() < 0.5 ? -1 : 1));
          if (before === null && after === null) continue;
          prefix.move(user, before, after);
          if (after === null) counts.delete(user);
          else counts.set(user, after);
          peak = Math.max(peak, counts.size);
        }
        if (complete && peak <= o.cap) {
          expect({ seed, commit, refill: prefix.needsRefill() }).toEqual({ seed, commit, refill: false });
          expect(store.length).toBe(counts.size);
        }
        if (prefix.needsRefill()) {
          refills++;
          prefix.refill(counts);
        }
        const want = fullRanking(counts, o);
        const got = store.keys;
        const context = { seed, commit, k: o.k, cap: o.cap };
        expect({ ...context, stored: got }).toEqual({ ...context, stored: want.slice(0, got.length) });
        expect(got.length).toBeLessThanOrEqual(o.cap);
        expect(got.length).toBeGreaterThanOrEqual(Math.min(o.k, want.length));
        expect(prefix.rankedUsers).toBe(counts.size);
        if (got.length < Math.min(o.cap, want.length)) shortOfCap++;
      }
    }
    // The cases that matter happened: prefixes short of CAP (users moved out) and refills.
    expect(shortOfCap).toBeGreaterThan(100);
    expect(refills).toBeGreaterThan(20);
  });

  it('should answer most moves of a long ranking without a change to the stored keys', () => {
    const o = options(2, 4);
    const counts = new Map(Array.from({ length: 50 }, (_, i) => [`u${i}`, i] as const));
    const store = new ArrayStore();
    const prefix = new RankPrefix(store, 0, o);
    prefix.refill(counts);
    expect(store.keys).toEqual(fullRanking(counts, o).slice(0, 4));
    // u10 .. u39 gain a follower each: none reaches the top four (u46 .. u49), and nothing is written.
    const written = store.writes;
    for (let i = 10; i < 40; i++) prefix.move(`u${i}`, i, i + 1);
    expect(store.writes).toBe(written);
    // u45 overtakes u46 (tie on 46, lower userId first): it enters and u46 is pushed out.
    prefix.move('u45', 45, 46);
    const want: [string, number][] = [
      ['u49', 49],
      ['u48', 48],
      ['u47', 47],
      ['u45', 46],
    ];
    expect(store.keys).toEqual(want.map(([u, c]) => o.keyOf(c, u)));
  });
});
