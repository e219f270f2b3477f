/**
 * TopUsers' index keys (top-users.ts): `<ranking digit><ffffffff - count, 8 lowercase hex digits><userId>`,
 * the stored layout of the `rank` space (an LMDB store written before keeps being read with these keys).
 */
import { describe, expect, it } from 'vitest';
import { rankKey, RANKINGS, userOfRankKey } from '../../src/views/top-users.js';

describe('rankKey', () => {
  it('writes the ranking digit, the inverted count in 8 hex digits, then the userId', () => {
    expect(rankKey('FOLLOWERS', 0, 'u1')).toBe('0ffffffffu1');
    expect(rankKey('TWEETS', 1, 'x')).toBe('1fffffffex');
    expect(rankKey('LIKES', 0xffffffff, 'a')).toBe('200000000a');
    expect(rankKey('FOLLOWING', 0x12345678, '\u{1f600}')).toBe('3edcba987\u{1f600}');
    expect(rankKey('FOLLOWERS', 255, '')).toBe('0ffffff00');
  });

  it('agrees with the padded hex of the inverted count on every byte boundary', () => {
    const counts = [
      0,
      1,
      15,
      16,
      255,
      256,
      4095,
      4096,
      65535,
      65536,
      1_000_000,
      2 ** 24 - 1,
      2 ** 24,
      2 ** 31,
      2 ** 32 - 1,
    ];
    for (const ranking of RANKINGS)
      for (const count of counts) {
        const key = rankKey(ranking, count, 'id');
        // Again: small counts come from the prefix cache the first call filled.
        expect(rankKey(ranking, count, 'other')).toBe(key.slice(0, 9) + 'other');
        expect(key.slice(1, 9)).toBe((0xffffffff - count).toString(16).padStart(8, '0'));
        expect(userOfRankKey(key)).toBe('id');
      }
  });
});
