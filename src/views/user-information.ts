/**
 * The UserInformation view (CONTRACT.md section 2): profile fields from the `users` row plus four
 * counts, each equal to `SELECT COUNT(*)` over the current rows of one topic.
 *
 * Terminology:
 * - record: one changelog message (key = primary key, value = full row or null for a delete).
 * - row: the latest value per key per topic; we keep only the fields the view needs.
 * - user state: the four counts of a userId and the version of its last change; exists before the users row does.
 * - view: what readers see; present only while the users row exists.
 * - sequence: the store commit number that last changed a user (one commit per applied batch).
 */

export const TABLES = ['users', 'tweets', 'follows', 'likes'] as const;
export type Table = (typeof TABLES)[number];

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

/** Where a row came from; replays of a position at or before it are no-ops. */
export interface RowOrigin {
  readonly partition: number;
  readonly offset: string;
}

export type UserRow = { readonly table: 'users' } & Profile;
export interface TweetRow {
  readonly table: 'tweets';
  readonly userId: string;
}
export interface FollowRow {
  readonly table: 'follows';
  readonly followerId: string;
  readonly followeeId: string;
}
export interface LikeRow {
  readonly table: 'likes';
  readonly userId: string;
}
export type Row = UserRow | TweetRow | FollowRow | LikeRow;

/** A row as stored: the row (null after a tombstone, kept so older replays stay no-ops) and its origin. */
export interface StoredRow {
  readonly row: Row | null;
  readonly origin: RowOrigin;
}

export interface SourcePosition {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

export interface ViewVersion {
  /** Store commit sequence that last changed this user (uint64 as decimal string). */
  readonly sequence: string;
  /** ISO-8601 time that commit was applied here. */
  readonly appliedAt: string;
  /** ISO-8601 event time of the record that last changed this user: its source commit time (Debezium `source.ts_ms`) where the format has one, else its Kafka timestamp. */
  readonly eventTime: string | null;
  readonly source: SourcePosition;
}

export interface Counts {
  readonly tweetCount: number;
  readonly followingCount: number;
  readonly followerCount: number;
  readonly likeCount: number;
}

export interface UserState {
  readonly counts: Counts;
  readonly version: ViewVersion;
}

/** The view served by `user(id)` and `GET /users/:id` (plus `version`, GraphQL only). */
export interface UserInformation extends Profile, Counts {
  readonly userId: string;
  readonly version: ViewVersion;
}

export const ZERO_COUNTS: Counts = Object.freeze({
  tweetCount: 0,
  followingCount: 0,
  followerCount: 0,
  likeCount: 0,
});

/** The profile fields, in seed 002's order. */
export const PROFILE_FIELDS = [
  'username',
  'name',
  'description',
  'location',
  'webPageUrl',
  'joinedDate',
  'profileImageUrl',
  'backgroundImageUrl',
] as const satisfies readonly (keyof Profile)[];

/** The four counts, in seed 002's order. */
export const COUNT_FIELDS = [
  'tweetCount',
  'followingCount',
  'followerCount',
  'likeCount',
] as const satisfies readonly (keyof Counts)[];

/** Field order of seed 002's JSON object (`GET /users/:userId`). */
export const REST_FIELDS = [
  'userId',
  ...PROFILE_FIELDS,
  ...COUNT_FIELDS,
] as const satisfies readonly (keyof UserInformation)[];

/** Bump when the view's definition changes: a stored view of another version is rebuilt. */
export const USER_INFORMATION_VERSION = 1;
