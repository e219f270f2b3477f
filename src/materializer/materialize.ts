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
  type Profile,
  type Row,
  type SourcePosition,
  type StoredRow,
  type Table,
  type UserInformation,
  type UserState,
  type ViewVersion,
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
  /** Latest stored row per changed (table, key). */
  readonly rows: Map<string, RowWrite>;
  /** New state of every user whose counts or profile changed. */
  readonly users: Map<string, UserState>;
  /** Users whose visible view changed: the new view, or null when the users row is gone. */
  readonly views: Map<string, UserInformation | null>;
  /** Changes that were replays or identical rows (already reflected in the view). */
  readonly noops: number;
}

type CountField = keyof Counts;

/** The (user, count) pairs a row adds 1 to. */
function contributions(row: Row | null, out: [string, CountField][]): void {
  if (row === null) return;
  switch (row.table) {
    case 'tweets':
      out.push([row.userId, 'tweetCount']);
      return;
    case 'follows':
      out.push([row.followerId, 'followingCount'], [row.followeeId, 'followerCount']);
      return;
    case 'likes':
      out.push([row.userId, 'likeCount']);
      return;
    case 'users':
      return;
  }
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

/** Computes the writes for one batch. `changes` are applied in order; later ones see earlier ones. */
export function materialize(reader: StateReader, changes: Iterable<Change>, commit: CommitInfo): Writes {
  const rows = new Map<string, RowWrite>();
  const users = new Map<string, UserState>();
  /** Users touched in this batch → was their view visible before the batch? */
  const visibleBefore = new Map<string, boolean>();
  const sequence = commit.sequence.toString();
  let noops = 0;
  // Records of one batch mostly share a timestamp (producers batch): format it once.
  let lastTimestamp: string | undefined;
  let lastEventTime = '';

  const currentRow = (table: Table, key: string): StoredRow | undefined =>
    rows.get(rowKey(table, key))?.stored ?? reader.row(table, key);
  const currentUser = (userId: string): UserState | undefined => users.get(userId) ?? reader.user(userId);
  const touch = (userId: string): void => {
    if (!visibleBefore.has(userId))
      visibleBefore.set(userId, profileOf(currentRow('users', userId)?.row) !== null);
  };

  const pairs: [string, CountField][] = [];
  const deltas = new Map<string, Map<CountField, number>>();

  for (const change of changes) {
    const previous = currentRow(change.table, change.key);
    if (isReplay(previous, change.position)) {
      noops++;
      continue;
    }
    const before = previous?.row ?? null;
    if (sameRow(before, change.row)) {
      noops++;
      continue;
    }
    if (change.timestamp !== lastTimestamp) {
      lastTimestamp = change.timestamp;
      lastEventTime = new Date(Number(change.timestamp)).toISOString();
    }
    const version: ViewVersion = {
      sequence,
      appliedAt: commit.appliedAt,
      eventTime: lastEventTime,
      source: change.position,
    };

    // Net count deltas of this one change, per user (a follow a→b updated to b→a touches both).
    deltas.clear();
    pairs.length = 0;
    contributions(before, pairs);
    for (const [userId, field] of pairs) bump(deltas, userId, field, -1);
    pairs.length = 0;
    contributions(change.row, pairs);
    for (const [userId, field] of pairs) bump(deltas, userId, field, +1);

    for (const [userId, fields] of deltas) {
      let counts = (currentUser(userId) ?? { counts: ZERO_COUNTS }).counts;
      let moved = false;
      for (const [field, delta] of fields) {
        if (delta === 0) continue;
        const next = counts[field] + delta;
        if (next < 0) throw new InvariantError(`${field} of user ${userId} would become negative`);
        counts = { ...counts, [field]: next };
        moved = true;
      }
      if (!moved) continue;
      touch(userId);
      users.set(userId, { counts, version });
    }

    if (change.table === 'users') {
      touch(change.key);
      users.set(change.key, { counts: (currentUser(change.key) ?? { counts: ZERO_COUNTS }).counts, version });
    }
    rows.set(rowKey(change.table, change.key), {
      table: change.table,
      key: change.key,
      stored: {
        row: change.row,
        origin: { partition: change.position.partition, offset: change.position.offset },
      },
    });
  }

  const views = new Map<string, UserInformation | null>();
  for (const [userId, wasVisible] of visibleBefore) {
    const profile = profileOf(currentRow('users', userId)?.row);
    const state = users.get(userId);
    if (profile !== null && state !== undefined)
      views.set(userId, buildView(userId, profile, state.counts, state.version));
    else if (wasVisible) views.set(userId, null);
  }
  return { rows, users, views, noops };
}

function bump(
  deltas: Map<string, Map<CountField, number>>,
  userId: string,
  field: CountField,
  by: number,
): void {
  let fields = deltas.get(userId);
  if (!fields) deltas.set(userId, (fields = new Map()));
  fields.set(field, (fields.get(field) ?? 0) + by);
}
