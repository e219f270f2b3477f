/**
 * The TopUsers view (issue 16): for each ranking (followers, tweets, likes, following), users with a users
 * row ordered by that count descending, then by userId ascending (Unicode code point order): the SQL
 * `SELECT userId FROM <view> WHERE <users row exists> ORDER BY <count> DESC, userId ASC LIMIT n`.
 *
 * Kept incrementally as an ordered index of keys `<ranking digit><ffffffff - count, 8 hex digits><userId>`,
 * which sort by ranking, then count descending, then userId, so the top n of a ranking is the first n keys
 * under its digit: O(n) to read. Since version 2 the index holds only a prefix of each ranking, its first
 * MAX_TOP_LIMIT to RANK_PREFIX_CAP keys (rank-prefix.ts): a commit writes a key only for the users it moves
 * inside a prefix, where every changed count of every ranked user used to delete and write one; a commit that
 * moves many users of a ranking (a catch-up's) moves its prefix in memory and writes the difference. Beside it,
 * `meta` holds the number of ranked users and the length of each prefix. The moves come from
 * UserInformation's `downstream`: the users whose counts or users row the commit changed. An emptied prefix
 * is refilled (the one scan, at most once per RANK_PREFIX_CAP - MAX_TOP_LIMIT users moving out) from
 * UserInformation's `views`: the ranked users are those with a users row, so with a view, and each view holds
 * its user's counts. Version 2 kept its own copy of the ranked users' counts for that: at 1M users, a third of
 * the pages a commit of 10k records wrote (README "Benchmarks").
 *
 * Its event names each ranking whose first MAX_TOP_LIMIT entries changed in the commit (member or order),
 * with the new list of ids; subscribers asking for fewer entries compare their own prefix, and the users'
 * own changes reach them through UserInformation's events.
 */
import { compareCodePoints } from '../materializer/memory-state.js';
import { RankPrefix, type PrefixStore } from './rank-prefix.js';
import type { Applied, ApplyInput, IndexSpace, KvSpace, Spaces, ValueCodec, ViewModule } from './types.js';
import {
  countsOfView,
  USER_INFORMATION,
  type Counts,
  type UserInformation,
  type UserMove,
} from './user-information.js';

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
/**
 * 2: each ranking stored as a prefix (rank-prefix.ts) with the ranked users' counts beside it. 3: without
 * those counts (refilled from UserInformation's views).
 */
export const TOP_USERS_VERSION = 3;

/** Keys each ranking's prefix holds at most (at least MAX_TOP_LIMIT while more users are ranked). */
export const RANK_PREFIX_CAP = 1_000;

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

/** The meta space's keys: how many users are ranked, and how many keys each ranking's prefix holds. */
const RANKED = 'ranked';
const lengthKey = (ranking: Ranking): string => `length:${DIGIT[ranking]}`;

/** A count as 4 bytes (uint32 LE). */
const uint32Codec: ValueCodec<number> = {
  encode(n) {
    const out = Buffer.allocUnsafe(4);
    out.writeUInt32LE(n, 0);
    return out;
  },
  decode: (b) => b.readUInt32LE(0),
};

/**
 * One ranking's prefix as a commit moves it: the moves themselves go through RankPrefix, which sees the prefix
 * through PrefixStore; `finish` then ends them and names the ranking's new first MAX_TOP_LIMIT users when
 * they changed.
 */
interface RankingStore extends PrefixStore {
  /** Starts noting writes that may change the first MAX_TOP_LIMIT keys (called before each move). */
  watch(): void;
  /**
   * After the commit's moves, whatever they left unwritten written (a buffered prefix's difference); the new
   * first MAX_TOP_LIMIT userIds when they changed, else undefined.
   */
  finish(): string[] | undefined;
}

/**
 * One ranking's prefix in the `rank` index, its length kept by the caller. Once watching (`watch`), it reads
 * the first MAX_TOP_LIMIT keys before its first write (`top`) and notes whether a write may have changed them
 * (`touched`): a key removed at or before the last of them, one added before it, anything while they were all
 * the ranking had, or a refill. Until then the first MAX_TOP_LIMIT keys are what they were: every one of them
 * is still there, and nothing sorts in between. Read at the first write rather than at `watch`: the index is
 * the same then (nothing wrote this ranking's keys in between), and most moves of a large ranking write
 * nothing (they sort past the prefix), so most commits do not read the list at all.
 */
class IndexPrefix implements RankingStore {
  /** The first MAX_TOP_LIMIT keys before the first write since watching began (undefined: none yet). */
  top: readonly string[] | undefined;
  private watching = false;
  touched = false;

  constructor(
    private readonly index: IndexSpace,
    private readonly digit: string,
    public length: number,
  ) {}
  /** Starts noting writes that may change the first MAX_TOP_LIMIT keys. */
  watch(): void {
    this.watching = true;
  }
  /** The first MAX_TOP_LIMIT keys before this write (undefined: not watching). */
  private before(): readonly string[] | undefined {
    if (!this.watching) return undefined;
    return (this.top ??= this.index.first(this.digit, MAX_TOP_LIMIT));
  }
  private note(key: string, removed: boolean): void {
    if (this.touched) return;
    const top = this.before();
    if (top === undefined) return;
    if (top.length < MAX_TOP_LIMIT) {
      this.touched = true;
      return;
    }
    const order = compareCodePoints(key, top[top.length - 1]!);
    if (order < 0 || (removed && order === 0)) this.touched = true;
  }
  last(): string | undefined {
    return this.index.last(this.digit);
  }
  add(key: string): void {
    this.note(key, false);
    this.index.add(key);
    this.length++;
  }
  remove(key: string): void {
    this.note(key, true);
    this.index.remove(key);
    this.length--;
  }
  replace(keys: readonly string[]): void {
    if (this.before() !== undefined) this.touched = true;
    for (const key of this.index.first(this.digit, Number.MAX_SAFE_INTEGER)) this.index.remove(key);
    for (const key of keys) this.index.add(key);
    this.length = keys.length;
  }
  finish(): string[] | undefined {
    // Read again only when a write may have changed the list (most moves of a large ranking are past it).
    const { top } = this;
    if (top === undefined || !this.touched) return undefined;
    const now = this.index.first(this.digit, MAX_TOP_LIMIT).map(userOfRankKey);
    return sameIds(top.map(userOfRankKey), now) ? undefined : now;
  }
}

/**
 * One ranking's prefix read whole into memory when a commit moves many of its users (`bufferMoves`), moved
 * there, and written back as the difference: each of those moves that lands inside the prefix costs the
 * index an add, a remove past CAP and a lookup of the new last key where this costs a search of at most
 * RANK_PREFIX_CAP keys in an array. The keys stored in the end are the same (RankPrefix decides every move
 * from the length and the last key, which the array answers as the index would). On the catch-up's commits
 * (446k records over 22.3k users, in process, LMDB), 5.6 against 5.9 µs per record (medians of 8 alternated
 * runs).
 */
class BufferedPrefix implements RankingStore {
  /** The keys as stored, in key order. */
  private readonly stored: readonly string[];
  /** The keys as the moves leave them, in key order. */
  private keys: string[];

  constructor(
    private readonly index: IndexSpace,
    digit: string,
  ) {
    this.stored = index.first(digit, Number.MAX_SAFE_INTEGER);
    this.keys = this.stored.slice();
  }
  get length(): number {
    return this.keys.length;
  }
  watch(): void {}
  last(): string | undefined {
    return this.keys[this.keys.length - 1];
  }
  add(key: string): void {
    this.keys.splice(searchKeys(this.keys, key), 0, key);
  }
  remove(key: string): void {
    const at = searchKeys(this.keys, key);
    if (this.keys[at] === key) this.keys.splice(at, 1);
  }
  replace(keys: readonly string[]): void {
    this.keys = keys.slice();
  }
  /** Writes the difference to the index, then compares the lists. */
  finish(): string[] | undefined {
    const { stored, keys, index } = this;
    let i = 0;
    let j = 0;
    while (i < stored.length || j < keys.length) {
      const order =
        i === stored.length ? 1 : j === keys.length ? -1 : compareCodePoints(stored[i]!, keys[j]!);
      if (order < 0) index.remove(stored[i++]!);
      else if (order > 0) index.add(keys[j++]!);
      else {
        i++;
        j++;
      }
    }
    const before = stored.slice(0, MAX_TOP_LIMIT).map(userOfRankKey);
    const now = keys.slice(0, MAX_TOP_LIMIT).map(userOfRankKey);
    return sameIds(before, now) ? undefined : now;
  }
}

/** Where `key` is in `keys` (in key order), or where it would go. */
function searchKeys(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareCodePoints(keys[mid]!, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Whether a commit that moves `moves` users of a ranking whose prefix holds `length` keys moves them in memory
 * (BufferedPrefix): when reading the prefix costs at most four keys per move.
 */
export const bufferMoves = (moves: number, length: number): boolean => moves > 0 && 4 * moves >= length;

/**
 * Every ranked user with its counts, from UserInformation's spaces (a refill, or `matview verify`'s recomputed
 * spaces): each user with a view is ranked, with the counts in its view.
 */
function* rankedUsers(userInformation: Spaces): Iterable<readonly [string, Counts]> {
  const views = userInformation['views'] as KvSpace<UserInformation>;
  for (const userId of views.keys()) yield [userId, countsOfView(views, userId)];
}

/** Every ranked user's count of `field` (a refill). */
function* rankedCounts(userInformation: Spaces, field: keyof Counts): Iterable<readonly [string, number]> {
  for (const [userId, counts] of rankedUsers(userInformation)) yield [userId, counts[field]];
}

/** The rankings (bit i: RANKINGS[i], whose count is RANKED_BY's) whose count differs between `a` and `b`. */
function changedRankings(a: Counts, b: Counts): number {
  return (
    (a.followerCount !== b.followerCount ? 1 : 0) |
    (a.tweetCount !== b.tweetCount ? 2 : 0) |
    (a.likeCount !== b.likeCount ? 4 : 0) |
    (a.followingCount !== b.followingCount ? 8 : 0)
  );
}

function applyTopUsers(input: ApplyInput, spaces: Spaces): Applied {
  const moves = input.upstream(USER_INFORMATION) as readonly UserMove[] | undefined;
  if (moves === undefined || moves.length === 0) return {};
  const index = spaces['rank'] as IndexSpace;
  const meta = spaces['meta'] as KvSpace<number>;
  // Which rankings each move moves (bit i: RANKINGS[i]), and how many moves each ranking has: the counts read
  // once per move, by name.
  const moved = new Uint8Array(moves.length);
  const movesOf = [0, 0, 0, 0];
  for (let i = 0; i < moves.length; i++) {
    const { before, after } = moves[i]!;
    const bits = before === null || after === null ? 0b1111 : changedRankings(before, after);
    moved[i] = bits;
    for (let r = 0; r < RANKINGS.length; r++) if ((bits & (1 << r)) !== 0) movesOf[r]!++;
  }
  const ranked = meta.get(RANKED) ?? 0;
  let rankedAfter = ranked;
  let event: Map<string, string[]> | undefined;
  for (let r = 0; r < RANKINGS.length; r++) {
    const ranking = RANKINGS[r]!;
    const field = RANKED_BY[ranking];
    const length = meta.get(lengthKey(ranking)) ?? 0;
    const store: RankingStore = bufferMoves(movesOf[r]!, length)
      ? new BufferedPrefix(index, DIGIT[ranking])
      : new IndexPrefix(index, DIGIT[ranking], length);
    const prefix = new RankPrefix(store, ranked, {
      k: MAX_TOP_LIMIT,
      cap: RANK_PREFIX_CAP,
      keyOf: (count, userId) => rankKey(ranking, count, userId),
    });
    const bit = 1 << r;
    for (let i = 0; i < moves.length; i++) {
      if ((moved[i]! & bit) === 0) continue;
      const m = moves[i]!;
      store.watch();
      prefix.move(
        m.userId,
        m.before === null ? null : m.before[field],
        m.after === null ? null : m.after[field],
      );
    }
    if (prefix.needsRefill()) prefix.refill(rankedCounts(input.upstreamSpaces(USER_INFORMATION), field));
    rankedAfter = prefix.rankedUsers;
    const now = store.finish();
    if (store.length !== length) meta.put(lengthKey(ranking), store.length);
    if (now !== undefined) (event ??= new Map()).set(ranking, now);
  }
  if (rankedAfter !== ranked) meta.put(RANKED, rankedAfter);
  return event === undefined ? {} : { event };
}

/**
 * `matview verify`: the number of ranked users must equal the recomputed one (UserInformation's recomputed
 * views); each ranking's stored prefix must be the first keys of the full ranking their recomputed counts give
 * (its length is history: any from MAX_TOP_LIMIT to RANK_PREFIX_CAP, all of them when fewer are ranked), and
 * its recorded length its own. UserInformation's own check compares its stored views, which a refill reads.
 * Returns the keys checked: the ranked number, one length per ranking and every stored rank key.
 */
function compareTopUsers(
  _expected: Spaces,
  stored: Spaces,
  note: (key: string, problems: readonly string[]) => void,
  upstream: (view: string) => Spaces,
): number {
  const want = [...rankedUsers(upstream(USER_INFORMATION))];
  const meta = stored['meta'] as KvSpace<number>;
  const index = stored['rank'] as IndexSpace;
  let keys = 1 + RANKINGS.length;
  for (const ranking of RANKINGS) {
    const field = RANKED_BY[ranking];
    const full = want.map(([u, c]) => rankKey(ranking, c[field], u)).sort(compareCodePoints);
    const prefix = index.first(DIGIT[ranking], Number.MAX_SAFE_INTEGER);
    keys += prefix.length;
    const at = prefix.findIndex((key, i) => key !== full[i]);
    if (at !== -1)
      note(prefix[at]!, [`rank: ${ranking} holds this key where the rows give ${full[at] ?? 'none'}`]);
    if (prefix.length < Math.min(MAX_TOP_LIMIT, full.length) || prefix.length > RANK_PREFIX_CAP)
      note(lengthKey(ranking), [`rank: ${ranking} holds ${prefix.length} keys of ${full.length}`]);
    const length = meta.get(lengthKey(ranking)) ?? 0;
    if (length !== prefix.length)
      note(lengthKey(ranking), [`meta: says ${length} keys, ${ranking} holds ${prefix.length}`]);
  }
  const ranked = meta.get(RANKED) ?? 0;
  if (ranked !== want.length) note(RANKED, [`meta: ${ranked} users ranked, rows say ${want.length}`]);
  return keys;
}

export const topUsers: ViewModule = {
  name: TOP_USERS,
  version: TOP_USERS_VERSION,
  // It reads UserInformation's moves and, to refill a prefix, its views (`upstreamSpaces`): no rows.
  reads: {},
  dependsOn: [USER_INFORMATION],
  spaces: {
    rank: { kind: 'index' },
    meta: { kind: 'kv', codec: uint32Codec as ValueCodec<unknown> },
  },
  apply: applyTopUsers,
  compareSpaces: compareTopUsers,
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
