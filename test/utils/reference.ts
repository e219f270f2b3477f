/**
 * THE reference model of every test: CONTRACT.md §2's SQL (and issue 16's rankings and totals) evaluated
 * over the latest row per key, from raw records. Deliberately independent of matview's code: it neither
 * decodes with src/views nor materializes with src/materializer; it parses JSON values itself and knows
 * only the contract's field names.
 *
 * Used by the materializer's property test (random changelogs delivered with duplicates), the fault suite's
 * verifier (topics read back from the cluster after crashes), and the dashboard views' tests.
 */

export const REFERENCE_TABLES = ['users', 'tweets', 'follows', 'likes'] as const;
export type RefTable = (typeof REFERENCE_TABLES)[number];

/** One record: its table, key and value (null or absent: a delete; 'truncate': the table emptied). */
export interface RefRecord {
  readonly table: RefTable;
  readonly key: string;
  readonly value: Record<string, unknown> | null | 'truncate';
}

/** Counts of one user: `SELECT COUNT(*)` over the current rows. */
export interface RefCounts {
  tweetCount: number;
  followingCount: number;
  followerCount: number;
  likeCount: number;
}

/** What `users(ids)` returns for one id without `version`: null without a users row. */
export type ExpectedUser = (Record<string, unknown> & RefCounts & { userId: string }) | null;

export const PROFILE = [
  'username',
  'name',
  'description',
  'location',
  'webPageUrl',
  'joinedDate',
  'profileImageUrl',
  'backgroundImageUrl',
] as const;

export const RANKING_FIELD = {
  FOLLOWERS: 'followerCount',
  TWEETS: 'tweetCount',
  LIKES: 'likeCount',
  FOLLOWING: 'followingCount',
} as const satisfies Record<string, keyof RefCounts>;
export type RefRanking = keyof typeof RANKING_FIELD;

export interface Reference {
  /** Every userId ever mentioned (users keys, tweets/likes userId, follows both ends), sorted. */
  readonly userIds: readonly string[];
  /** The served view per userId (no `version`). */
  readonly users: ReadonlyMap<string, ExpectedUser>;
  /** Counts per userId, also for users without a users row. */
  readonly counts: ReadonlyMap<string, RefCounts>;
  /** Keys with a current row, per table. */
  readonly liveKeys: Readonly<Record<RefTable, ReadonlySet<string>>>;
  /** `SELECT COUNT(*)` per table (users: users with a users row). */
  readonly totals: { users: number; tweets: number; follows: number; likes: number };
  /** `ORDER BY <count> DESC, userId ASC LIMIT n` over users with a users row (userId by code point). */
  top(ranking: RefRanking, limit: number): string[];
}

const ZERO: RefCounts = { tweetCount: 0, followingCount: 0, followerCount: 0, likeCount: 0 };

/** Two date-time forms the contract accepts, as ISO-8601 UTC (the model's own reading, not matview's). */
function normalizeDate(v: unknown): unknown {
  if (typeof v !== 'string') return v ?? null;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? v : new Date(ms).toISOString();
}

/** Code point order (UTF-8 byte order), the order rankings break ties by. */
export const byCodePoint = (a: string, b: string): number => {
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
};

/** Evaluates the reference over `records`, each key's records in their partition's order. */
export function computeReference(records: Iterable<RefRecord>): Reference {
  const latest = {} as Record<RefTable, Map<string, Record<string, unknown>>>;
  for (const t of REFERENCE_TABLES) latest[t] = new Map();
  const ids = new Set<string>();
  for (const r of records) {
    if (r.value === 'truncate') {
      latest[r.table].clear();
      continue;
    }
    if (r.value === null) latest[r.table].delete(r.key);
    else latest[r.table].set(r.key, r.value);
    if (r.table === 'users') ids.add(r.key);
    for (const f of ['userId', 'followerId', 'followeeId'])
      if (r.table !== 'users' && typeof r.value?.[f] === 'string') ids.add(r.value[f] as string);
  }
  const countBy = (t: RefTable, field: string): Map<string, number> => {
    const m = new Map<string, number>();
    for (const v of latest[t].values()) m.set(v[field] as string, (m.get(v[field] as string) ?? 0) + 1);
    return m;
  };
  const tweets = countBy('tweets', 'userId');
  const following = countBy('follows', 'followerId');
  const followers = countBy('follows', 'followeeId');
  const likes = countBy('likes', 'userId');
  const counts = new Map<string, RefCounts>();
  const users = new Map<string, ExpectedUser>();
  const userIds = [...ids].sort();
  for (const id of userIds) {
    const c: RefCounts = {
      tweetCount: tweets.get(id) ?? 0,
      followingCount: following.get(id) ?? 0,
      followerCount: followers.get(id) ?? 0,
      likeCount: likes.get(id) ?? 0,
    };
    counts.set(id, c);
    const row = latest.users.get(id);
    if (row === undefined) {
      users.set(id, null);
      continue;
    }
    const profile: Record<string, unknown> = {};
    for (const f of PROFILE) profile[f] = f === 'joinedDate' ? normalizeDate(row[f]) : (row[f] ?? null);
    users.set(id, { userId: id, ...profile, ...c });
  }
  const liveKeys = {} as Record<RefTable, Set<string>>;
  for (const t of REFERENCE_TABLES) liveKeys[t] = new Set(latest[t].keys());
  const ranked = [...latest.users.keys()];
  return {
    userIds,
    users,
    counts,
    liveKeys,
    totals: {
      users: latest.users.size,
      tweets: latest.tweets.size,
      follows: latest.follows.size,
      likes: latest.likes.size,
    },
    top(ranking, limit) {
      const field = RANKING_FIELD[ranking];
      return [...ranked]
        .sort((a, b) => (counts.get(b) ?? ZERO)[field] - (counts.get(a) ?? ZERO)[field] || byCodePoint(a, b))
        .slice(0, limit);
    },
  };
}
