/**
 * The source side of every view: the four changelog tables of CONTRACT.md section 1 and their rows.
 *
 * Terminology (used across src/views, src/materializer and src/store):
 * - record: one changelog message (key = primary key, value = the full row, or a delete).
 * - row: the latest value per key per table. The store keeps, per table, only the fields some registered
 *   view reads (`storedFields` in registry.ts); a deleted row is removed, not kept as a marker (replays are
 *   caught by the partition's stored position, checked in the same transaction that moves it).
 * - transition: what one commit did to one row, net: the row before the commit and after it. A key changed
 *   five times in a commit is one transition; a row created and deleted in the same commit is none.
 * - view: a projection of the rows (or of another view) kept incrementally, one module per view under
 *   src/views, registered in registry.ts.
 * - sequence: the store's commit counter; a view's `version.sequence` is the commit that last changed it.
 */

export const TABLES = ['users', 'tweets', 'follows', 'likes'] as const;
export type Table = (typeof TABLES)[number];

/** The key field of each table (CONTRACT.md section 1); a value that carries it must match the record key. */
export const KEY_FIELD: Readonly<Record<Table, string>> = Object.freeze({
  users: 'userId',
  tweets: 'tweetId',
  follows: 'followId',
  likes: 'likeId',
});

export interface Profile {
  readonly username: string;
  readonly name: string | null;
  readonly description: string | null;
  readonly location: string | null;
  readonly webPageUrl: string | null;
  /** ISO-8601 UTC. */
  readonly joinedDate: string | null;
  readonly profileImageUrl: string | null;
  readonly backgroundImageUrl: string | null;
}

export type UserRow = { readonly table: 'users' } & Profile;
export interface TweetRow {
  readonly table: 'tweets';
  readonly userId: string;
  readonly text?: string | null;
  /** ISO-8601 UTC. */
  readonly createdAt?: string | null;
}
export interface FollowRow {
  readonly table: 'follows';
  readonly followerId: string;
  readonly followeeId: string;
  readonly createdAt?: string | null;
}
export interface LikeRow {
  readonly table: 'likes';
  readonly userId: string;
  readonly tweetId?: string;
  readonly createdAt?: string | null;
}
/** A decoded row of one of the four tables (all of its contract fields; null or absent when not given). */
export type Row = UserRow | TweetRow | FollowRow | LikeRow;

/** Every contract field of each table's rows besides the key, in a fixed order (the stored layout's order). */
export const ROW_FIELDS = {
  users: [
    'username',
    'name',
    'description',
    'location',
    'webPageUrl',
    'joinedDate',
    'profileImageUrl',
    'backgroundImageUrl',
  ],
  tweets: ['userId', 'text', 'createdAt'],
  follows: ['followerId', 'followeeId', 'createdAt'],
  likes: ['userId', 'tweetId', 'createdAt'],
} as const satisfies Record<Table, readonly string[]>;

export type RowField<T extends Table> = (typeof ROW_FIELDS)[T][number];

/** The fields of each table a view reads, or the union the store keeps (registry.ts). */
export type FieldsByTable = { readonly [T in Table]?: readonly RowField<T>[] };

/** Fields the contract requires (never null in a decoded row). */
export const REQUIRED_FIELDS: { readonly [T in Table]: readonly RowField<T>[] } = {
  users: ['username'],
  tweets: ['userId'],
  follows: ['followerId', 'followeeId'],
  likes: ['userId', 'tweetId'],
};

/** Reads field `field` of a row as a string or null (absent fields are null). */
export function fieldOf(row: Row, field: string): string | null {
  const v = (row as unknown as Record<string, unknown>)[field];
  return typeof v === 'string' ? v : null;
}
