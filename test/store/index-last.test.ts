/**
 * `IndexSpace.last` on the stored rankings (LMDB) and on a rebuild's buffer over them: the last key of a
 * ranking, and the last one before a given key, as `first` lists them.
 */
import { describe, expect, it } from 'vitest';
import { BufferedIndex } from '../../src/store/buffered-generation.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { rankKey } from '../../src/views/top-users.js';
import type { IndexSpace } from '../../src/views/types.js';
import { commitInput, follow, profile, sequential, tweet } from '../utils/changes.js';
import { tempDir } from '../utils/tmp.js';

/** Checks `last` against `first` for every ranking digit, with and without `before`. */
function expectLastAgreesWithFirst(index: IndexSpace): void {
  for (const digit of ['0', '1', '2', '3', '4']) {
    const keys = index.first(digit, 1_000_000);
    expect(index.last(digit)).toBe(keys.at(-1));
    keys.forEach((key, i) => expect(index.last(digit, key)).toBe(keys[i - 1]));
    // `before` after the ranking's keys, inside them but between two, and before them all.
    expect(index.last(digit, '9')).toBe(keys.at(-1));
    if (keys.length > 0) expect(index.last(digit, `${keys.at(-1)}\u0000`)).toBe(keys.at(-1));
    expect(index.last(digit, ' ')).toBeUndefined();
  }
}

describe('the last key of a stored ranking', () => {
  it('should agree with the keys `first` lists, in LMDB and in a buffer over it', async () => {
    const store = openStore({ path: tempDir(), writerThread: false });
    try {
      const users = ['a', 'b', 'c', 'd', 'e'];
      await store.applyBatch(
        commitInput(
          sequential([
            ...users.map((u): ['users', string, ReturnType<typeof profile>] => ['users', u, profile(u)]),
            ['tweets', 't1', tweet('b')],
            ['tweets', 't2', tweet('b')],
            ['tweets', 't3', tweet('d')],
            ['follows', 'f1', follow('a', 'b')],
            ['follows', 'f2', follow('c', 'b')],
          ]),
        ),
      );
      const rank = store.activeGeneration().spaces('top-users')['rank'] as IndexSpace;
      // Every ranking holds every user; the tweets ranking starts with b (2), d (1), then a, c, e (0).
      expect(rank.first('1', 10)).toEqual([
        rankKey('TWEETS', 2, 'b'),
        rankKey('TWEETS', 1, 'd'),
        ...['a', 'c', 'e'].map((u) => rankKey('TWEETS', 0, u)),
      ]);
      expectLastAgreesWithFirst(rank);
      // A buffer over it: the stored last key removed, keys added after and between the stored ones.
      const buffered = new BufferedIndex(rank);
      buffered.remove(rankKey('TWEETS', 0, 'e'));
      buffered.remove(rankKey('TWEETS', 0, 'c'));
      buffered.add(rankKey('TWEETS', 0, 'bb'));
      buffered.add(rankKey('FOLLOWERS', 0, 'z'));
      expect(buffered.last('1')).toBe(rankKey('TWEETS', 0, 'bb'));
      expect(buffered.first('0', 10).at(-1)).toBe(rankKey('FOLLOWERS', 0, 'z'));
      expectLastAgreesWithFirst(buffered);
      // Removed, nothing added in its place: the key before the removed ones.
      const onlyRemoved = new BufferedIndex(rank);
      for (const u of ['c', 'e']) onlyRemoved.remove(rankKey('TWEETS', 0, u));
      expect(onlyRemoved.last('1')).toBe(rankKey('TWEETS', 0, 'a'));
      expectLastAgreesWithFirst(onlyRemoved);
    } finally {
      await store.close();
    }
  });
});
