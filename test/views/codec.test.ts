import { describe, expect, it } from 'vitest';
import {
  countsOfStoredView,
  decodeView,
  encodeView,
  encodeViewOnce,
  encodeViewOver,
  restJsonOf,
  uncachedEncoding,
} from '../../src/views/codec.js';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { serializableUsers } from '../utils/testkit.js';
import { REST_FIELDS, userInformation, type UserInformation } from '../../src/views/user-information.js';

const view: UserInformation = {
  userId: 'u-ü1',
  username: 'zoë',
  name: 'Zoë "Z" Ünal',
  description: 'línea\nnueva 🚀',
  location: null,
  webPageUrl: 'https://example.com/zoë',
  joinedDate: '2020-01-02T03:04:05.000Z',
  profileImageUrl: null,
  backgroundImageUrl: null,
  tweetCount: 3,
  followingCount: 0,
  followerCount: 1_000_000,
  likeCount: 7,
  version: {
    sequence: '18446744073709551615',
    appliedAt: '2026-01-01T00:00:00.000Z',
    eventTime: null,
    source: { topic: 'tweets', partition: 3, offset: '42' },
  },
};

describe('stored view codec', () => {
  it("should store seed 002's object in REST_FIELDS order, byte for byte, then the version", () => {
    const bytes = encodeView(view);
    const rest = Object.fromEntries(REST_FIELDS.map((f) => [f, view[f]]));
    expect(restJsonOf(bytes).toString('utf8')).toBe(JSON.stringify(rest));
    expect(bytes.subarray(4 + bytes.readUInt32LE(0)).toString('utf8')).toBe(JSON.stringify(view.version));
    expect(bytes.length).toBe(
      4 + Buffer.byteLength(JSON.stringify(rest)) + Buffer.byteLength(JSON.stringify(view.version)),
    );
  });

  it('should encode a view object once, except inside uncachedEncoding, which keeps nothing', () => {
    const a = { ...view };
    const inside = uncachedEncoding(() => [encodeViewOnce(a), encodeViewOnce(a)]);
    expect(inside[0]).not.toBe(inside[1]);
    expect(inside[0]).toEqual(encodeView(view));
    // Nothing was kept: the first call outside encodes again, and the next one returns those bytes.
    const outside = encodeViewOnce(a);
    expect(outside).not.toBe(inside[0]);
    expect(outside).not.toBe(inside[1]);
    expect(encodeViewOnce(a)).toBe(outside);
    // A view encoded before keeps its bytes inside too.
    expect(uncachedEncoding(() => encodeViewOnce(a))).toBe(outside);
  });

  it('should decode to the same view, multi-byte characters included', () => {
    expect(decodeView(encodeView(view))).toEqual(view);
  });
});

describe('countsOfStoredView', () => {
  it("should read the four counts a stored view's JSON ends with, whatever its strings hold", () => {
    const random = prng(11);
    /** Text that looks like the end of a view's JSON: digits, commas, colons, quotes, escapes, multi-byte. */
    const tricky = ['', '1', ',"likeCount":9}', '\\"', '3,4:5', '🚀"x":2', 'ü,', '\u0000'];
    const pick = <T>(of: readonly T[]): T => of[Math.floor(random() * of.length)]!;
    const count = (): number =>
      pick([0, 1, 9, 10, 99, 1_000, 2 ** 31, 2 ** 32 - 1, Math.floor(random() * 1e6)]);
    const users = [view, ...serializableUsers(random)];
    for (let i = 0; i < 2_000; i++)
      users.push({
        ...pick(users),
        userId: `u${pick(tricky)}${i}`,
        description: pick([null, pick(tricky), `${pick(tricky)}${pick(tricky)}`]),
        backgroundImageUrl: pick([null, pick(tricky)]),
        tweetCount: count(),
        followingCount: count(),
        followerCount: count(),
        likeCount: count(),
      });
    for (const u of users)
      expect(countsOfStoredView(encodeView(u))).toEqual({
        tweetCount: u.tweetCount,
        followingCount: u.followingCount,
        followerCount: u.followerCount,
        likeCount: u.likeCount,
      });
  });
});

describe('encodeViewOver', () => {
  it('should give what a rebuild stored before it: the old version when the REST JSON is the same, else the view encoded', () => {
    const users = [view, ...serializableUsers(prng(11))];
    const same = userInformation.versioned!['views']!;
    const other = { ...view.version, sequence: '77', source: { topic: 't', partition: 3, offset: '9' } };
    let kept = 0;
    let sameLength = 0;
    let checked = 0;
    for (const a of users) {
      // A count of the same width changed: a REST JSON as long as the old one, and not the same.
      const recounted = { ...a, likeCount: a.likeCount === 1 ? 2 : 1, version: other };
      for (const b of [a, { ...a, version: other }, recounted, users[(checked * 5) % users.length]!]) {
        const bytes = encodeView(a);
        const old = encodeView(b);
        const over = encodeViewOver(a, old);
        if (same(old, bytes)) {
          // The bytes encodeView writes for `a` carrying `b`'s version.
          kept++;
          expect(over.equals(encodeView({ ...a, version: b.version }))).toBe(true);
          expect(decodeView(over)).toEqual({ ...a, version: b.version });
        } else {
          if (restJsonOf(old).length === restJsonOf(bytes).length) sameLength++;
          expect(over.equals(bytes)).toBe(true);
        }
        checked++;
      }
    }
    // Every branch ran: kept versions (the same user), and new encodings of a REST JSON as long as the old one
    // and of another length.
    expect(kept).toBeGreaterThanOrEqual(2 * users.length);
    expect(sameLength).toBeGreaterThan(0);
    expect(checked - kept - sameLength).toBeGreaterThan(0);
  });
});
