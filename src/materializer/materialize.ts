/**
 * The materializer: pure functions from (current rows, a batch of decoded changes) to the writes
 * that make the view equal CONTRACT.md section 2, and the users whose visible view changed.
 *
 * Every count is derived from row transitions (old row's contribution out, new row's in), never a
 * blind increment, so the view is a function of the latest row per key:
 * - a row remembers its origin (partition, offset); a change at or before it is a replay and a no-op;
 * - an identical row (in the fields the view uses) is a no-op;
 * - a tombstone removes the row's contribution once; the second finds no row and does nothing;
 * - an update that changes userId / followerId / followeeId moves the count between users.
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
  type SourcePosition,
  type StoredRow,
  type Table,
  type TweetRow,
  type UserInformation,
  type UserState,
  type ViewVersion,
  PROFILE_FIELDS,
  TABLES,
} from '../views/user-information.js';

export interface StateReader {
  row(table: Table, key: string): StoredRow | undefined;
  user(userId: string): UserState | undefined;
}

/** One valid record, decoded. */
export interface Change {
  readonly table: Table;
  readonly key: string;
  /** null: tombstone. */
  readonly row: Row | null;
  readonly position: SourcePosition;
  /** Kafka timestamp, ms since epoch (decimal string). */
  readonly timestamp: string;
}

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
}

type CountField = keyof Counts;

/** A user touched by the batch: mutable counts (a copy), the change that last moved it, and its state before the batch. */
interface Touched {
  /** The user's profile before the batch (null: no users row, the view was not visible). */
  readonly profileBefore: Profile | null;
  /** The user's counts before the batch. */
  readonly countsBefore: Counts;
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

function sameCounts(a: Counts, b: Counts): boolean {
  return (
    a.tweetCount === b.tweetCount &&
    a.followingCount === b.followingCount &&
    a.followerCount === b.followerCount &&
    a.likeCount === b.likeCount
  );
}

/** Equality of two profiles in every field the view shows (null: no users row). */
function sameProfile(a: Profile | null, b: Profile | null): boolean {
  if (a === null || b === null) return a === b;
  for (const field of PROFILE_FIELDS) if (a[field] !== b[field]) return false;
  return true;
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
        countsBefore: counts,
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

  for (const change of changes) {
    const previous = latest(change.table, change.key);
    if (isReplay(previous, change.position)) {
      noops++;
      continue;
    }
    const before = previous?.row ?? null;
    const after = change.row;
    if (sameRow(before, after)) {
      noops++;
      continue;
    }
    if (change.timestamp !== lastTimestamp) {
      lastTimestamp = change.timestamp;
      eventTime = new Date(Number(change.timestamp)).toISOString();
    }

    // The old row's contribution out, the new row's in; a user whose count would move by -1 and +1 in the
    // same field (a follow a→b updated to a→c keeps a's followingCount) is not moved at all.
    switch (change.table) {
      case 'tweets':
      case 'likes': {
        const field: CountField = change.table === 'tweets' ? 'tweetCount' : 'likeCount';
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
        touch(change.key, change);
        break;
    }
    overlay[change.table].set(change.key, {
      table: change.table,
      key: change.key,
      stored: {
        row: after,
        origin: { partition: change.position.partition, offset: change.position.offset },
      },
    });
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
    // The profile after the batch: the batch's own users row if it has one, else the one read at first touch.
    const written = overlay.users.get(userId);
    const profile = written === undefined ? t.profileBefore : profileOf(written.stored.row);
    // No empty pushes (issue 18): a batch whose changes cancel out for this user (a follow created and
    // deleted, a row moved away and back) leaves its view as it was, so neither its version nor a commit
    // event moves. Its rows are still written above: their origins keep replays no-ops.
    if (sameCounts(counts, t.countsBefore) && sameProfile(profile, t.profileBefore)) continue;
    const version: ViewVersion = {
      sequence,
      appliedAt: commit.appliedAt,
      eventTime: t.eventTime,
      source: t.last.position,
    };
    users.set(userId, { counts, version });
    if (profile !== null) views.set(userId, buildView(userId, profile, counts, version));
    else if (t.profileBefore !== null) views.set(userId, null);
  }
  const rows: RowWrite[] = [];
  for (const table of TABLES) for (const w of overlay[table].values()) rows.push(w);
  return { rows, users, views, noops };
}
