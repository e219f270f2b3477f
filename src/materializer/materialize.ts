/**
 * The materializer: pure functions from (current rows, a batch of decoded changes) to the writes
 * that make the view equal CONTRACT.md section 2, and the users whose visible view changed.
 *
 * Every count is derived from row transitions (old row's contribution out, new row's in), never a
 * blind increment, so the view is a function of the latest row per key:
 * - a row remembers its origin (partition, offset); a change at or before it is a replay and a no-op;
 * - an identical row (in the fields the view uses) is a no-op for the view; it still moves the row's origin;
 * - a tombstone removes the row's contribution once; the second finds no row and does nothing;
 * - an update that changes userId / followerId / followeeId moves the count between users;
 * - a truncate (a source `TRUNCATE`, Debezium `op: "t"`) deletes every current row of its table, each
 *   exactly as a tombstone of its key would, and keeps each row's origin, so a replay of a record that row
 *   came from stays a no-op. The truncate itself is remembered per (table, partition) like a row origin, so a
 *   replay of it is a no-op too, and never deletes rows written after it.
 * No I/O: the caller reads state through `StateReader` (inside the store's write transaction).
 */
import { InvariantError } from '../errors.js';
import {
  ZERO_COUNTS,
  type Counts,
  type FollowRow,
  type LikeRow,
  type Profile,
  type Row,
  type RowOrigin,
  type SourcePosition,
  type StoredRow,
  type Table,
  type TweetRow,
  type UserInformation,
  type UserState,
  type ViewVersion,
  TABLES,
} from '../views/user-information.js';

export interface StateReader {
  row(table: Table, key: string): StoredRow | undefined;
  user(userId: string): UserState | undefined;
  /** Keys of every stored row of `table`, deleted ones included (read by truncates only). */
  keys(table: Table): Iterable<string>;
  /** Where the last truncate of `table` applied from `partition` came from (truncates only). */
  truncation(table: Table, partition: number): RowOrigin | undefined;
}

/** One valid record, decoded: an upsert, or a tombstone (row null) of one key. */
export interface RowChange {
  readonly table: Table;
  readonly key: string;
  /** null: tombstone. */
  readonly row: Row | null;
  readonly position: SourcePosition;
  /** Event time, ms since epoch (decimal string): the source commit time when the format has it, else the Kafka timestamp. */
  readonly timestamp: string;
}

/** A truncate of `table` at the source: every current row of the table is deleted. */
export interface TruncateChange {
  readonly table: Table;
  readonly truncate: true;
  readonly position: SourcePosition;
  readonly timestamp: string;
}

export type Change = RowChange | TruncateChange;

export const isTruncate = (change: Change): change is TruncateChange => 'truncate' in change;

export interface CommitInfo {
  readonly sequence: bigint;
  /** ISO-8601. */
  readonly appliedAt: string;
}

export interface RowWrite {
  readonly table: Table;
  readonly key: string;
  readonly stored: StoredRow;
}

export interface Writes {
  /** Latest stored row per changed (table, key), each (table, key) once. */
  readonly rows: readonly RowWrite[];
  /** New state of every user whose counts or profile changed. */
  readonly users: Map<string, UserState>;
  /** Users whose visible view changed: the new view, or null when the users row is gone. */
  readonly views: Map<string, UserInformation | null>;
  /** Changes that were replays or identical rows (already reflected in the view). */
  readonly noops: number;
  /** Truncates applied: the new truncation origin of each (table, partition), written with the rows. */
  readonly truncations: readonly { readonly table: Table; readonly origin: RowOrigin }[];
}

type CountField = keyof Counts;

/** A user touched by the batch: mutable counts (a copy), the change that last moved it, and its profile before the batch. */
interface Touched {
  /** The user's profile before the batch (null: no users row, the view was not visible). */
  readonly profileBefore: Profile | null;
  tweetCount: number;
  followingCount: number;
  followerCount: number;
  likeCount: number;
  /** The last change of the batch that moved this user's counts or profile. */
  last: Change;
  /** ISO form of `last.timestamp`. */
  eventTime: string;
}

/** Equality in the fields the view uses (rows are normalized by decode, so field-wise is exact). */
export function sameRow(a: Row | null, b: Row | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.table !== b.table) return false;
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  const keys = Object.keys(x);
  if (keys.length !== Object.keys(y).length) return false;
  for (const k of keys) if (x[k] !== y[k]) return false;
  return true;
}

export const rowKey = (table: Table, key: string): string => `${table}\u0000${key}`;

/**
 * Where the truncation origin of (table, partition) is stored, next to the rows: `\u0001` instead of the
 * rows' `\u0000` after the table name, so it is never a row key and never inside a table's row range.
 */
export const truncationKey = (table: Table, partition: number): string =>
  `${table}\u0001truncate\u0000${partition}`;

/** True when `position` is at or before the origin of the stored row (same partition): a replay. */
function isReplay(stored: StoredRow | undefined, position: SourcePosition): boolean {
  return (
    stored !== undefined &&
    stored.origin.partition === position.partition &&
    offsetAtOrAfter(stored.origin.offset, position.offset)
  );
}

/**
 * `a >= b` for Kafka offsets as decimal strings (no sign, no leading zeros): a longer string is larger,
 * equal lengths compare like text. No BigInt per record.
 */
function offsetAtOrAfter(a: string, b: string): boolean {
  return a.length !== b.length ? a.length > b.length : a >= b;
}

/** The profile fields of a users row (the row itself: buildView reads the profile fields by name). */
export function profileOf(row: Row | null | undefined): Profile | null {
  if (!row || row.table !== 'users') return null;
  return row;
}

/** Builds the served view (field order = seed 002's JSON, then version). */
export function buildView(
  userId: string,
  profile: Profile,
  counts: Counts,
  version: ViewVersion,
): UserInformation {
  return {
    userId,
    username: profile.username,
    name: profile.name,
    description: profile.description,
    location: profile.location,
    webPageUrl: profile.webPageUrl,
    joinedDate: profile.joinedDate,
    profileImageUrl: profile.profileImageUrl,
    backgroundImageUrl: profile.backgroundImageUrl,
    tweetCount: counts.tweetCount,
    followingCount: counts.followingCount,
    followerCount: counts.followerCount,
    likeCount: counts.likeCount,
    version,
  };
}

/**
 * Computes the writes for one batch. `changes` are applied in order; later ones see earlier ones.
 *
 * Hot path of ingest and rebuild: per change one overlay lookup plus one store read of the row, and per
 * moved user one lookup in the batch's users (the store is read at the first touch only). Counts are
 * mutated in a per-batch copy; versions and stored user states are built once per user at the end.
 */
export function materialize(reader: StateReader, changes: Iterable<Change>, commit: CommitInfo): Writes {
  /** The batch's latest row per key, one map per table (keyed by the record key: no composite string). */
  const overlay: Record<Table, Map<string, RowWrite>> = {
    users: new Map(),
    tweets: new Map(),
    follows: new Map(),
    likes: new Map(),
  };
  const latest = (table: Table, key: string): StoredRow | undefined =>
    overlay[table].get(key)?.stored ?? reader.row(table, key);
  /** Users touched in this batch, in order of first touch (the order of `views`). */
  const touched = new Map<string, Touched>();
  let noops = 0;
  // Records of one batch mostly share a timestamp (producers batch): format it once.
  let lastTimestamp: string | undefined;
  let eventTime = '';

  /** The batch's entry for a user, created from the store at its first touch. */
  const touch = (userId: string, change: Change): Touched => {
    let t = touched.get(userId);
    if (t === undefined) {
      const counts = reader.user(userId)?.counts ?? ZERO_COUNTS;
      t = {
        // Read before this change is in the overlay, and no earlier change of the batch touched the
        // user (a users row change touches it): the profile as it was before the batch.
        profileBefore: profileOf(latest('users', userId)?.row),
        tweetCount: counts.tweetCount,
        followingCount: counts.followingCount,
        followerCount: counts.followerCount,
        likeCount: counts.likeCount,
        last: change,
        eventTime,
      };
      touched.set(userId, t);
    } else {
      t.last = change;
      t.eventTime = eventTime;
    }
    return t;
  };
  const move = (userId: string, field: CountField, by: 1 | -1, change: Change): void => {
    const t = touch(userId, change);
    const next = t[field] + by;
    if (next < 0) throw new InvariantError(`${field} of user ${userId} would become negative`);
    t[field] = next;
  };

  /**
   * Moves the view from the row `before` to the row `after` of (table, key) because of `change`, and stores
   * `after` with `origin`. False when the rows are the same to the view (a no-op, nothing stored).
   */
  const transition = (
    table: Table,
    key: string,
    before: Row | null,
    after: Row | null,
    change: Change,
    origin: RowOrigin,
  ): boolean => {
    if (sameRow(before, after)) return false;
    if (change.timestamp !== lastTimestamp) {
      lastTimestamp = change.timestamp;
      eventTime = new Date(Number(change.timestamp)).toISOString();
    }

    // The old row's contribution out, the new row's in; a user whose count would move by -1 and +1 in the
    // same field (a follow a→b updated to a→c keeps a's followingCount) is not moved at all.
    switch (table) {
      case 'tweets':
      case 'likes': {
        const field: CountField = table === 'tweets' ? 'tweetCount' : 'likeCount';
        const from = (before as TweetRow | LikeRow | null)?.userId;
        const to = (after as TweetRow | LikeRow | null)?.userId;
        if (from !== to) {
          if (from !== undefined) move(from, field, -1, change);
          if (to !== undefined) move(to, field, +1, change);
        }
        break;
      }
      case 'follows': {
        const b = before as FollowRow | null;
        const a = after as FollowRow | null;
        const sameFollower = b?.followerId === a?.followerId;
        const sameFollowee = b?.followeeId === a?.followeeId;
        if (b !== null) {
          if (!sameFollower) move(b.followerId, 'followingCount', -1, change);
          if (!sameFollowee) move(b.followeeId, 'followerCount', -1, change);
        }
        if (a !== null) {
          if (!sameFollower) move(a.followerId, 'followingCount', +1, change);
          if (!sameFollowee) move(a.followeeId, 'followerCount', +1, change);
        }
        break;
      }
      case 'users':
        touch(key, change);
        break;
    }
    overlay[table].set(key, { table, key, stored: { row: after, origin } });
    return true;
  };

  /** The batch's truncation origins, by table and partition. */
  const truncations = new Map<string, { table: Table; origin: RowOrigin }>();
  const truncate = (change: TruncateChange): void => {
    const { table, position } = change;
    const at = `${table}\u0000${position.partition}`;
    const previous = truncations.get(at)?.origin ?? reader.truncation(table, position.partition);
    if (previous !== undefined && offsetAtOrAfter(previous.offset, position.offset)) {
      noops++;
      return;
    }
    const keys = new Set(reader.keys(table));
    for (const key of overlay[table].keys()) keys.add(key);
    for (const key of keys) {
      const stored = latest(table, key);
      // Each row keeps its origin: a replay of the record it came from must stay a no-op.
      if (stored !== undefined && stored.row !== null)
        transition(table, key, stored.row, null, change, stored.origin);
    }
    truncations.set(at, { table, origin: { partition: position.partition, offset: position.offset } });
  };

  for (const change of changes) {
    if (isTruncate(change)) {
      truncate(change);
      continue;
    }
    const previous = latest(change.table, change.key);
    if (isReplay(previous, change.position)) {
      noops++;
      continue;
    }
    const origin = { partition: change.position.partition, offset: change.position.offset };
    if (!transition(change.table, change.key, previous?.row ?? null, change.row, change, origin)) {
      noops++;
      // The view does not move, but the key's origin does: a truncate keeps each row's origin, and a replay
      // of this record after a truncate must be a no-op (not a row come back). Unknown keys stay unstored.
      if (previous !== undefined)
        overlay[change.table].set(change.key, {
          table: change.table,
          key: change.key,
          stored: { row: change.row, origin },
        });
    }
  }

  const sequence = commit.sequence.toString();
  const users = new Map<string, UserState>();
  const views = new Map<string, UserInformation | null>();
  for (const [userId, t] of touched) {
    const counts: Counts = {
      tweetCount: t.tweetCount,
      followingCount: t.followingCount,
      followerCount: t.followerCount,
      likeCount: t.likeCount,
    };
    const version: ViewVersion = {
      sequence,
      appliedAt: commit.appliedAt,
      eventTime: t.eventTime,
      source: t.last.position,
    };
    users.set(userId, { counts, version });
    // The profile after the batch: the batch's own users row if it has one, else the one read at first touch.
    const written = overlay.users.get(userId);
    const profile = written === undefined ? t.profileBefore : profileOf(written.stored.row);
    if (profile !== null) views.set(userId, buildView(userId, profile, counts, version));
    else if (t.profileBefore !== null) views.set(userId, null);
  }
  const rows: RowWrite[] = [];
  for (const table of TABLES) for (const w of overlay[table].values()) rows.push(w);
  return { rows, users, views, noops, truncations: [...truncations.values()] };
}
