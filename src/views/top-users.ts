/**
 * The TopUsers view (issue 16): for each ranking (followers, tweets, likes, following), users with a users
 * row ordered by that count descending, then by userId ascending (Unicode code point order): the SQL
 * `SELECT userId FROM <view> WHERE <users row exists> ORDER BY <count> DESC, userId ASC LIMIT n`.
 *
 * Kept incrementally as an ordered index, one entry per ranked user and ranking:
 * `<ranking digit><ffffffff - count, 8 hex digits><userId>`. Keys sort by ranking, then count descending,
 * then userId, so the top n of a ranking is the first n keys under its digit: O(n) to read, and a commit
 * moves only the entries of the users whose counts or users row it changed (UserInformation's `downstream`),
 * never a scan.
 *
 * Its event names each ranking whose first MAX_TOP_LIMIT entries changed in the commit (member or order),
 * with the new list of ids; subscribers asking for fewer entries compare their own prefix, and the users'
 * own changes reach them through UserInformation's events.
 */
import type { Applied, ApplyInput, IndexSpace, Spaces, ViewModule } from './types.js';
import { USER_INFORMATION, type Counts, type UserMove } from './user-information.js';

export const RANKINGS = ['FOLLOWERS', 'TWEETS', 'LIKES', 'FOLLOWING'] as const;
export type Ranking = (typeof RANKINGS)[number];

/** The count each ranking orders by. */
export const RANKED_BY: Readonly<Record<Ranking, keyof Counts>> = Object.freeze({
  FOLLOWERS: 'followerCount',
  TWEETS: 'tweetCount',
  LIKES: 'likeCount',
  FOLLOWING: 'followingCount',
});

/** The largest `limit` a reader may ask for (issue 16: 1 <= limit <= 100). */
export const MAX_TOP_LIMIT = 100;

export const TOP_USERS = 'top-users';
export const TOP_USERS_VERSION = 1;

const DIGIT: Readonly<Record<Ranking, string>> = { FOLLOWERS: '0', TWEETS: '1', LIKES: '2', FOLLOWING: '3' };
const MAX_U32 = 0xffffffff;
/** Prefix length of a rank key before the userId. */
const HEAD = 9;

/** Two lowercase hex digits for each byte value. */
const HEX2: readonly string[] = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/** Counts below this keep their key prefix once built (most counts are small and repeat across commits). */
const CACHED_COUNTS = 1 << 12;
const PREFIXES: Readonly<Record<Ranking, (string | undefined)[]>> = {
  FOLLOWERS: new Array<string | undefined>(CACHED_COUNTS).fill(undefined),
  TWEETS: new Array<string | undefined>(CACHED_COUNTS).fill(undefined),
  LIKES: new Array<string | undefined>(CACHED_COUNTS).fill(undefined),
  FOLLOWING: new Array<string | undefined>(CACHED_COUNTS).fill(undefined),
};

function rankPrefix(ranking: Ranking, count: number): string {
  const x = MAX_U32 - count;
  return (
    DIGIT[ranking] + HEX2[x >>> 24]! + HEX2[(x >>> 16) & 0xff]! + HEX2[(x >>> 8) & 0xff]! + HEX2[x & 0xff]!
  );
}

/**
 * The index key of `userId` with `count` in `ranking`. Two keys per changed count in every commit: the prefix
 * of a small count is built once (`Number#toString(16)` and `padStart` took ~0.2 µs a key, a tenth of a move,
 * and each concatenation is an allocation).
 */
export function rankKey(ranking: Ranking, count: number, userId: string): string {
  if (count >= CACHED_COUNTS) return rankPrefix(ranking, count) + userId;
  const cache = PREFIXES[ranking];
  return (cache[count] ??= rankPrefix(ranking, count)) + userId;
}

/** The userId of a rank key. */
export const userOfRankKey = (key: string): string => key.slice(HEAD);

/** The top `limit` userIds of a ranking. */
export function topOf(index: IndexSpace, ranking: Ranking, limit: number): string[] {
  return index.first(DIGIT[ranking], limit).map(userOfRankKey);
}

const sameIds = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((id, i) => id === b[i]);

function applyTopUsers(input: ApplyInput, spaces: Spaces): Applied {
  const moves = input.upstream(USER_INFORMATION) as readonly UserMove[] | undefined;
  if (moves === undefined || moves.length === 0) return {};
  const index = spaces['rank'] as IndexSpace;
  let event: Map<string, string[]> | undefined;
  for (const ranking of RANKINGS) {
    const field = RANKED_BY[ranking];
    let touched = false;
    let top: string[] | undefined;
    for (const { userId, before, after } of moves) {
      if (before !== null && after !== null && before[field] === after[field]) continue;
      // Read the list before the first change of this ranking in this commit.
      top ??= topOf(index, ranking, MAX_TOP_LIMIT);
      if (before !== null) index.remove(rankKey(ranking, before[field], userId));
      if (after !== null) index.add(rankKey(ranking, after[field], userId));
      touched = true;
    }
    if (!touched) continue;
    const now = topOf(index, ranking, MAX_TOP_LIMIT);
    if (!sameIds(top!, now)) (event ??= new Map()).set(ranking, now);
  }
  return event === undefined ? {} : { event };
}

export const topUsers: ViewModule = {
  name: TOP_USERS,
  version: TOP_USERS_VERSION,
  // It reads UserInformation's moves, not rows.
  reads: {},
  dependsOn: [USER_INFORMATION],
  spaces: { rank: { kind: 'index' } },
  apply: applyTopUsers,
  swapEvent(before, after) {
    const event = new Map<string, string[]>();
    for (const ranking of RANKINGS) {
      const old = topOf(before['rank'] as IndexSpace, ranking, MAX_TOP_LIMIT);
      const now = topOf(after['rank'] as IndexSpace, ranking, MAX_TOP_LIMIT);
      if (!sameIds(old, now)) event.set(ranking, now);
    }
    return event.size === 0 ? undefined : event;
  },
};
