/**
 * The UserInformation view (CONTRACT.md section 2): for every userId, the profile fields of its `users`
 * row plus four counts, each equal to `SELECT COUNT(*)` over the current rows of one table.
 *
 * Spaces:
 * - `views`: userId → the served view (codec.ts: seed 002's JSON ready to send, then the version), present
 *   only while the users row exists. Its counts are where a user with a users row keeps them.
 * - `counts`: userId → the four counts of a user some row counts that has no users row (a user's counts
 *   exist before its users row does, and survive its deletion: they move out of the view and back); absent
 *   while all four are zero. Until version 2 it held every user's counts, the visible users' beside their
 *   views: at 1M users a commit of 10k records then rewrote most of its 7.9k pages besides a page of the views
 *   per user it touched, where a user's counts now cost nothing but its view's page (README "Benchmarks").
 *
 * Every count moves with row transitions (the old row's contribution out, the new row's in), so the view is
 * a function of the current rows whatever the order, replays and redeliveries of the records. A user is
 * rewritten (and its `version` moves) only when its profile or one of its counts really changed: a follow
 * created and deleted in one commit, or a tweet moved away and another moved in, leaves it alone.
 */
import { InvariantError } from '../errors.js';
import { countsOfStoredView, decodeView, encodeViewOnce, encodeViewOver, restJsonOf } from './codec.js';
import { IdSlots } from './id-slots.js';
import { ROW_FIELDS, type FollowRow, type LikeRow, type Profile, type Row, type TweetRow } from './source.js';
import type {
  Applied,
  ApplyInput,
  CommitInfo,
  KvSpace,
  RowReplay,
  Spaces,
  ValueCodec,
  ViewModule,
} from './types.js';

export type { Profile } from './source.js';

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
  /**
   * ISO-8601 event time of the record that last changed this user: its source commit time (Debezium
   * `source.ts_ms`) where the format has one, else its Kafka timestamp.
   */
  readonly eventTime: string | null;
  readonly source: SourcePosition;
}

export interface Counts {
  readonly tweetCount: number;
  readonly followingCount: number;
  readonly followerCount: number;
  readonly likeCount: number;
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

/** The profile fields, in seed 002's order: the users row's fields. */
export const PROFILE_FIELDS = ROW_FIELDS.users satisfies readonly (keyof Profile)[];

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

/**
 * Bump when the view's definition or stored form changes: this view alone is rebuilt from the rows. 2: the
 * counts of a user with a users row stored in its view alone (the module comment).
 */
export const USER_INFORMATION_VERSION = 2;

export const USER_INFORMATION = 'user-information';

/**
 * What UserInformation passes downstream (to the rankings): every user whose counts or visibility changed
 * in the commit, with its counts before and after (null: no users row, not ranked).
 */
export interface UserMove {
  readonly userId: string;
  readonly before: Counts | null;
  readonly after: Counts | null;
}

/** Counts as 4 × uint32 LE: 16 bytes, no per-read parsing beyond four integer loads. */
export const countsCodec: ValueCodec<Counts> = {
  encode(c) {
    const out = Buffer.allocUnsafe(16);
    out.writeUInt32LE(c.tweetCount, 0);
    out.writeUInt32LE(c.followingCount, 4);
    out.writeUInt32LE(c.followerCount, 8);
    out.writeUInt32LE(c.likeCount, 12);
    return out;
  },
  decode(b) {
    return {
      tweetCount: b.readUInt32LE(0),
      followingCount: b.readUInt32LE(4),
      followerCount: b.readUInt32LE(8),
      likeCount: b.readUInt32LE(12),
    };
  },
};

/** The stored view bytes (codec.ts); the in-memory spaces keep the decoded view. */
export const viewCodec: ValueCodec<UserInformation> = {
  encode: encodeViewOnce,
  decode: decodeView,
  encodeOver: encodeViewOver,
};

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

/** The version a commit gives to what record `record` changed. */
export function versionOf(commit: CommitInfo, record: number): ViewVersion {
  const { records } = commit;
  return {
    sequence: commit.sequenceText,
    appliedAt: commit.appliedAt,
    eventTime: isoOf(records.eventTime(record)),
    source: {
      topic: records.topic(record),
      partition: records.partition(record),
      offset: records.offset(record),
    },
  };
}

/** Records of a commit mostly share their timestamp: format each distinct one once. */
let lastMs = Number.NaN;
let lastIso = '';
function isoOf(ms: number): string | null {
  if (!Number.isFinite(ms)) return null;
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/**
 * Per-user accumulation of one commit, in columns indexed by a small integer per touched user (no object
 * per user until the view is built).
 */
class Touched {
  readonly ids: string[] = [];
  readonly slot = new Map<string, number>();
  readonly tweets: number[] = [];
  readonly following: number[] = [];
  readonly followers: number[] = [];
  readonly likes: number[] = [];
  /** The users-row transition's index, or -1. */
  readonly profile: number[] = [];
  /** The latest record that moved the user. */
  readonly last: number[] = [];

  at(userId: string, record: number): number {
    let s = this.slot.get(userId);
    if (s === undefined) {
      s = this.ids.length;
      this.slot.set(userId, s);
      this.ids.push(userId);
      this.tweets.push(0);
      this.following.push(0);
      this.followers.push(0);
      this.likes.push(0);
      this.profile.push(-1);
      this.last.push(record);
    } else if (record > this.last[s]!) this.last[s] = record;
    return s;
  }
}

/**
 * The counts of a user that has a view: read from the view's stored bytes where the space stores bytes
 * (LMDB: no JSON parse, codec.ts), else from the view. Throws when it has none (a users row without a view
 * is a broken invariant).
 */
export function countsOfView(views: KvSpace<UserInformation>, userId: string): Counts {
  if (views.readStored !== undefined) {
    const counts = views.readStored(userId, countsOfStoredView);
    if (counts !== undefined) return counts;
  } else {
    const view = views.get(userId);
    if (view !== undefined) return countsOf(view);
  }
  throw new InvariantError(`user ${userId} has a users row but no view`);
}

/** The four counts of a view (or anything that has them), as a Counts object of their own. */
export const countsOf = (v: Counts): Counts => ({
  tweetCount: v.tweetCount,
  followingCount: v.followingCount,
  followerCount: v.followerCount,
  likeCount: v.likeCount,
});

const add = (column: number[], s: number, by: number): void => {
  column[s] = column[s]! + by;
};

function applyUserInformation(input: ApplyInput, spaces: Spaces): Applied {
  const counts = spaces['counts'] as KvSpace<Counts>;
  const views = spaces['views'] as KvSpace<UserInformation>;
  const { transitions: tx, commit, rows } = input;
  const t = new Touched();

  for (let i = 0; i < tx.length; i++) {
    const last = tx.last[i]!;
    const before = tx.before[i]!;
    const after = tx.after[i]!;
    switch (tx.table[i]!) {
      case 'tweets':
      case 'likes': {
        const column = tx.table[i] === 'tweets' ? t.tweets : t.likes;
        const from = (before as TweetRow | LikeRow | null)?.userId;
        const to = (after as TweetRow | LikeRow | null)?.userId;
        if (from === to) break;
        if (from !== undefined) add(column, t.at(from, last), -1);
        if (to !== undefined) add(column, t.at(to, last), +1);
        break;
      }
      case 'follows': {
        const b = before as FollowRow | null;
        const a = after as FollowRow | null;
        if (b?.followerId !== a?.followerId) {
          if (b !== null) add(t.following, t.at(b.followerId, last), -1);
          if (a !== null) add(t.following, t.at(a.followerId, last), +1);
        }
        if (b?.followeeId !== a?.followeeId) {
          if (b !== null) add(t.followers, t.at(b.followeeId, last), -1);
          if (a !== null) add(t.followers, t.at(a.followeeId, last), +1);
        }
        break;
      }
      case 'users':
        t.profile[t.at(tx.key[i]!, last)] = i;
        break;
    }
  }

  let event: Map<string, UserInformation | null> | undefined;
  const moves: UserMove[] = [];
  // Users in key order where the spaces write through to LMDB, so the commit writes their views and counts
  // page after page rather than one random page per user: a commit touching most users copies most of the
  // views' pages anyway, but in order each page is found once and written while it is at hand. 17 commits of
  // 4k records over 22k users (each touching ~4k of them) took 2.94-3.03 s against 3.10-3.32 s (4 alternated
  // runs; LMDB's own put time 278 ms instead of 460). In memory (a rebuild's buffer, which sorts its own
  // writes) they go in the order first touched: the sort was ~7 % of building 200k users' views from their
  // rows. The ids of one commit are distinct.
  const order = Array.from({ length: t.ids.length }, (_, i) => i);
  if (order.length > 1 && views.writesThrough === true)
    order.sort((a, b) => (t.ids[a]! < t.ids[b]! ? -1 : 1));
  for (const s of order) {
    const userId = t.ids[s]!;
    const profileAt = t.profile[s]!;
    const moved = t.tweets[s] !== 0 || t.following[s] !== 0 || t.followers[s] !== 0 || t.likes[s] !== 0;
    // Moves that cancel out (a follow created and deleted in one commit) leave the user as it was.
    if (!moved && profileAt === -1) continue;
    const profileBefore =
      profileAt === -1 ? profileOf(rows.row('users', userId)) : profileOf(tx.before[profileAt]!);
    const profileAfter = profileAt === -1 ? profileBefore : profileOf(tx.after[profileAt]!);
    // A user with a users row has its counts in its view, the others in `counts` (absent: all zero).
    const stored = profileBefore !== null ? countsOfView(views, userId) : counts.get(userId);
    const old = stored ?? ZERO_COUNTS;
    const next: Counts = moved
      ? {
          tweetCount: old.tweetCount + t.tweets[s]!,
          followingCount: old.followingCount + t.following[s]!,
          followerCount: old.followerCount + t.followers[s]!,
          likeCount: old.likeCount + t.likes[s]!,
        }
      : old;
    if (
      moved &&
      (next.tweetCount < 0 || next.followingCount < 0 || next.followerCount < 0 || next.likeCount < 0)
    )
      throw new InvariantError(`a count of user ${userId} would become negative`);
    if (profileAfter !== null) {
      const view = buildView(userId, profileAfter, next, versionOf(commit, t.last[s]!));
      views.put(userId, view);
      (event ??= new Map()).set(userId, view);
      // Its counts move into the view.
      if (profileBefore === null && stored !== undefined) counts.remove(userId);
    } else {
      if (profileBefore !== null) {
        views.remove(userId);
        (event ??= new Map()).set(userId, null);
      }
      // Its counts (out of the view it had, or moved) are kept in `counts`, unless all zero.
      if (profileBefore !== null || moved) {
        if (next.tweetCount + next.followingCount + next.followerCount + next.likeCount === 0) {
          if (stored !== undefined && profileBefore === null) counts.remove(userId);
        } else counts.put(userId, next);
      }
    }
    noteMove(moves, userId, moved, profileBefore === null ? null : old, profileAfter === null ? null : next);
  }
  return appliedOf(event, moves);
}

/**
 * Notes for the rankings a user whose counts or visibility changed (`before`, `after`: its counts while it
 * has a users row, else null).
 */
function noteMove(
  moves: UserMove[],
  userId: string,
  moved: boolean,
  before: Counts | null,
  after: Counts | null,
): void {
  if ((before !== null || after !== null) && (moved || (before === null) !== (after === null)))
    moves.push({ userId, before, after });
}

function appliedOf(event: Map<string, UserInformation | null> | undefined, moves: UserMove[]): Applied {
  return {
    ...(event === undefined ? {} : { event }),
    ...(moves.length === 0 ? {} : { downstream: moves }),
  };
}

/** A count column of UserInformationReplay's `counts` (each user's four counts side by side). */
const TWEETS = 0;
const FOLLOWING = 1;
const FOLLOWERS = 2;
const LIKES = 3;

/**
 * UserInformation through a replay of the stored rows (RowReplay, store/view-rebuild.ts): what `apply` does
 * page by page, with every user's counts kept in typed arrays by an integer per user. A replay's pages
 * insert, so counts only grow, and nothing reads the `counts` space meanwhile but this view: where `apply`
 * touches a user, reads its counts, makes a Counts object and puts it in the space for each row that counts
 * for it, this looks the user up once in one Map and adds 1 in an array. The replay inserts the users rows
 * last (REPLAY_ORDER), so until then no user has a view and a page of other rows moves nothing but the
 * arrays; a users row then builds the view from the counts at hand, and `finish` puts the counts of the
 * users with no users row. So after every page the views are what `apply` leaves, which is what a dependent
 * view reads (TopUsers' refill; types.ts, RowReplay). What `apply` returns (the views' events, the moves
 * passed downstream to the rankings) is the same, page by page, in the same order; the reference-model test
 * in test/views/user-information-replay.test.ts holds it. 9.1M rows over 1M users rebuilt (a version bump,
 * in process, profiled once each): the pages' apply 26.3 s against 34.8 s, UserInformation's part 21.2 s
 * against 29.1 s, of which 15.0 s is `touch`: the Map lookup of each row's user id, in a Map of a million
 * (since then ids that are integers go by their value, id-slots.ts: `touch` 4.1 s against 15.7 s, the
 * views built from the rows 30.1 s against 50.6 s, profiled once each).
 */
class UserInformationReplay implements RowReplay {
  /** userId → its integer (the user's index in the arrays below). */
  private readonly slot = new IdSlots();
  private readonly ids: string[] = [];
  /** Each user's four counts (TWEETS, FOLLOWING, FOLLOWERS, LIKES at 4 × its integer). */
  private counts = new Uint32Array(4 * 1024);
  /** Its counts before the page that last touched it. */
  private before = new Uint32Array(4 * 1024);
  /** 1 while its users row is replayed (it has a view). */
  private visible = new Uint8Array(1024);
  /** The page that last touched it (pages count from 1). */
  private touchedBy = new Uint32Array(1024);
  /** In that page: the latest record that moved it, and its users row's transition (-1: none). */
  private last = new Int32Array(1024);
  private profileAt = new Int32Array(1024);
  private page = 0;

  /** The integer of `userId`, touched by the page's record `record`. */
  private touch(userId: string, record: number, touched: number[]): number {
    let s = this.slot.get(userId);
    if (s === undefined) {
      s = this.ids.length;
      if (s === this.visible.length) this.grow();
      this.slot.add(userId, s);
      this.ids.push(userId);
    }
    if (this.touchedBy[s] !== this.page) {
      this.touchedBy[s] = this.page;
      touched.push(s);
      this.last[s] = record;
      this.profileAt[s] = -1;
      const { counts, before } = this;
      before[4 * s] = counts[4 * s]!;
      before[4 * s + 1] = counts[4 * s + 1]!;
      before[4 * s + 2] = counts[4 * s + 2]!;
      before[4 * s + 3] = counts[4 * s + 3]!;
    } else if (record > this.last[s]!) this.last[s] = record;
    return s;
  }

  private grow(): void {
    const size = 2 * this.visible.length;
    const wider = <T extends Uint32Array | Int32Array | Uint8Array>(from: T, to: T): T => {
      to.set(from);
      return to;
    };
    this.counts = wider(this.counts, new Uint32Array(4 * size));
    this.before = wider(this.before, new Uint32Array(4 * size));
    this.visible = wider(this.visible, new Uint8Array(size));
    this.touchedBy = wider(this.touchedBy, new Uint32Array(size));
    this.last = wider(this.last, new Int32Array(size));
    this.profileAt = wider(this.profileAt, new Int32Array(size));
  }

  private countsOf(column: Uint32Array, s: number): Counts {
    return {
      tweetCount: column[4 * s + TWEETS]!,
      followingCount: column[4 * s + FOLLOWING]!,
      followerCount: column[4 * s + FOLLOWERS]!,
      likeCount: column[4 * s + LIKES]!,
    };
  }

  /** Whether the user has a count above zero (a `counts` entry). */
  private counted(s: number): boolean {
    const c = this.counts;
    return c[4 * s] !== 0 || c[4 * s + 1] !== 0 || c[4 * s + 2] !== 0 || c[4 * s + 3] !== 0;
  }

  apply(input: ApplyInput, spaces: Spaces): Applied {
    const views = spaces['views'] as KvSpace<UserInformation>;
    const { transitions: tx, commit, rows } = input;
    this.page++;
    const touched: number[] = [];
    for (let i = 0; i < tx.length; i++) {
      const after = tx.after[i];
      if (tx.before[i] !== null || after === null || after === undefined)
        throw new InvariantError('a replay of the stored rows inserts each row once');
      const last = tx.last[i]!;
      // The user's integer first: `touch` may grow the arrays.
      switch (after.table) {
        case 'tweets': {
          const s = this.touch(after.userId, last, touched);
          this.counts[4 * s + TWEETS]! += 1;
          break;
        }
        case 'likes': {
          const s = this.touch(after.userId, last, touched);
          this.counts[4 * s + LIKES]! += 1;
          break;
        }
        case 'follows': {
          const follower = this.touch(after.followerId, last, touched);
          this.counts[4 * follower + FOLLOWING]! += 1;
          const followee = this.touch(after.followeeId, last, touched);
          this.counts[4 * followee + FOLLOWERS]! += 1;
          break;
        }
        case 'users': {
          const s = this.touch(tx.key[i]!, last, touched);
          this.profileAt[s] = i;
          break;
        }
      }
    }

    let event: Map<string, UserInformation | null> | undefined;
    const moves: UserMove[] = [];
    // As `apply` orders them.
    if (touched.length > 1 && views.writesThrough === true)
      touched.sort((a, b) => (this.ids[a]! < this.ids[b]! ? -1 : 1));
    for (const s of touched) {
      const profileAt = this.profileAt[s]!;
      const wasVisible = this.visible[s] === 1;
      // A user with no users row before or after the page: its counts wait in the arrays.
      if (profileAt === -1 && !wasVisible) continue;
      const userId = this.ids[s]!;
      const moved =
        this.counts[4 * s + TWEETS] !== this.before[4 * s + TWEETS] ||
        this.counts[4 * s + FOLLOWING] !== this.before[4 * s + FOLLOWING] ||
        this.counts[4 * s + FOLLOWERS] !== this.before[4 * s + FOLLOWERS] ||
        this.counts[4 * s + LIKES] !== this.before[4 * s + LIKES];
      const old = this.countsOf(this.before, s);
      const next = moved ? this.countsOf(this.counts, s) : old;
      const profileBefore = profileAt === -1 ? profileOf(rows.row('users', userId)) : null;
      const profileAfter = profileAt === -1 ? profileBefore : profileOf(tx.after[profileAt]!);
      if (profileAfter !== null) {
        const view = buildView(userId, profileAfter, next, versionOf(commit, this.last[s]!));
        views.put(userId, view);
        (event ??= new Map()).set(userId, view);
      }
      this.visible[s] = profileAfter === null ? 0 : 1;
      noteMove(
        moves,
        userId,
        moved,
        profileBefore === null ? null : old,
        profileAfter === null ? null : next,
      );
    }
    return appliedOf(event, moves);
  }

  /** The counts of the users with no users row: those of the others are in their views. */
  finish(spaces: Spaces): void {
    const counts = spaces['counts'] as KvSpace<Counts>;
    for (let s = 0; s < this.ids.length; s++)
      if (this.visible[s] === 0 && this.counted(s)) counts.put(this.ids[s]!, this.countsOf(this.counts, s));
  }
}

/** The profile of a users row (the row itself carries the profile fields), or null. */
export function profileOf(row: Row | null | undefined): Profile | null {
  if (row === null || row === undefined || row.table !== 'users') return null;
  return row;
}

export const userInformation: ViewModule = {
  name: USER_INFORMATION,
  version: USER_INFORMATION_VERSION,
  reads: {
    users: PROFILE_FIELDS,
    tweets: ['userId'],
    follows: ['followerId', 'followeeId'],
    likes: ['userId'],
  },
  dependsOn: [],
  spaces: {
    counts: { kind: 'kv', codec: countsCodec as ValueCodec<unknown> },
    views: { kind: 'kv', codec: viewCodec as ValueCodec<unknown> },
  },
  apply: applyUserInformation,
  replay: () => new UserInformationReplay(),
  // The REST JSON is the whole view but its version, written by one encoder (codec.ts): equal bytes are
  // equal profiles and counts.
  versioned: { views: (a, b) => restJsonOf(a).equals(restJsonOf(b)) },
  differences(space, expected, actual) {
    if (space === 'counts') {
      if (expected === undefined && actual !== undefined)
        return [
          'has a counts entry the rows do not give (a user keeps its counts in its view while it has a users row, and none while all are zero)',
        ];
      const want = (expected as Counts | undefined) ?? ZERO_COUNTS;
      const have = (actual as Counts | undefined) ?? ZERO_COUNTS;
      return COUNT_FIELDS.filter((f) => want[f] !== have[f]).map(
        (f) => `stored ${f} is ${have[f]}, rows say ${want[f]}`,
      );
    }
    const want = expected as UserInformation | undefined;
    const have = actual as UserInformation | undefined;
    if (want === undefined) return have === undefined ? [] : ['has a view but no users row'];
    if (have === undefined) return ['has a users row but no view'];
    const out: string[] = [];
    if (have.userId !== want.userId) out.push(`view userId is ${JSON.stringify(have.userId)}`);
    for (const f of COUNT_FIELDS)
      if (have[f] !== want[f]) out.push(`view ${f} is ${have[f]}, rows say ${want[f]}`);
    for (const f of PROFILE_FIELDS)
      if (have[f] !== want[f])
        out.push(`view ${f} is ${JSON.stringify(have[f])}, users row says ${JSON.stringify(want[f])}`);
    return out;
  },
};
