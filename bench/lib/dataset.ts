/**
 * The benchmark's data set, defined by formulas so every peer holds exactly the same users and counts
 * without shipping files around:
 * - users 0..n-1, profile fields derived from the number;
 * - user k has k % 5 tweets and k % 2 likes;
 * - user k follows (k*31 + j) % n for j = 1..k % 3, and every user but 0 also follows user 0:
 *   user 0 is the heavy user with about n followers (seed 002's "Katy Perry").
 * Postgres builds the same rows with generate_series (see peers.ts); the LMDB view and Redis are written
 * from `viewOf`, whose counts are the COUNT(*)s of those rows.
 */
import { buildView } from '../../src/views/user-information.js';
import type { Counts, Profile, UserInformation } from '../../src/views/user-information.js';

export const HEAVY_USER = 0;
const JOINED_BASE = Date.UTC(2008, 0, 22, 15, 14, 44);

export function profileOf(k: number): Profile {
  return {
    username: `user${k}`,
    name: `User Number ${k}`,
    description: 'Engineering @Uptake',
    location: 'Chicago, IL',
    webPageUrl: `https://example.com/${k}`,
    joinedDate: new Date(JOINED_BASE + k * 60_000).toISOString(),
    profileImageUrl: `https://pbs.twimg.com/profile_images/${k}/NCpgt2Iz.jpg`,
    backgroundImageUrl: `https://pbs.twimg.com/profile_banners/${k}/1350571359/1500x500`,
  };
}

/** Follower counts of every user (the only count that is not a function of the user alone). */
export function followerCounts(n: number): Int32Array {
  const followers = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    for (let j = 1; j <= k % 3; j++) followers[(k * 31 + j) % n]! += 1;
    if (k !== HEAVY_USER) followers[HEAVY_USER]! += 1;
  }
  return followers;
}

export function countsOf(k: number, followers: Int32Array): Counts {
  return {
    tweetCount: k % 5,
    followingCount: (k % 3) + (k === HEAVY_USER ? 0 : 1),
    followerCount: followers[k] ?? 0,
    likeCount: k % 2,
  };
}

export function viewOf(k: number, followers: Int32Array): UserInformation {
  return buildView(String(k), profileOf(k), countsOf(k, followers), {
    sequence: '1',
    appliedAt: '2024-01-01T00:00:00.000Z',
    eventTime: null,
    source: { topic: 'users', partition: 0, offset: String(k) },
  });
}

/** Rows per table the formulas give for n users (for the records counts in the results). */
export function rowTotals(n: number): { users: number; tweets: number; follows: number; likes: number } {
  let tweets = 0;
  let follows = 0;
  let likes = 0;
  for (let k = 0; k < n; k++) {
    tweets += k % 5;
    follows += (k % 3) + (k === HEAVY_USER ? 0 : 1);
    likes += k % 2;
  }
  return { users: n, tweets, follows, likes };
}
