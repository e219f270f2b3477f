/**
 * TopUsers with its rankings kept as prefixes (rank-prefix.ts), at a size where that matters: more ranked users
 * than RANK_PREFIX_CAP, tweets created and deleted so that users move up and down, out of a prefix, and
 * prefixes run short and are refilled. Through the commit body over the in-memory state, against the rankings
 * computed from scratch after every commit; and `matview verify`'s comparison (`compareSpaces`) of that state
 * with one built in a single commit, whose prefixes have other lengths, finds nothing until a key is broken.
 * Its commits move a ranking's prefix in the index (few moves) and in memory (many: `bufferMoves`); two tests
 * pin each path down by the reads and writes of the index.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { commitBatch, commitPlan } from '../../src/materializer/commit.js';
import { compareCodePoints, MemoryState } from '../../src/materializer/memory-state.js';
import { createRegistry } from '../../src/views/registry.js';
import {
  MAX_TOP_LIMIT,
  bufferMoves,
  RANK_PREFIX_CAP,
  rankKey,
  topOf,
  topUsers,
  userOfRankKey,
} from '../../src/views/top-users.js';
import type { IndexSpace, KvSpace } from '../../src/views/types.js';
import { commitInput, profile, tweet, type TestRecord } from '../utils/changes.js';

const USERS = RANK_PREFIX_CAP + 500;

/** The first `limit` users by tweets (desc), then userId, among `tweets` (every user ranked). */
function topByTweets(tweets: ReadonlyMap<string, number>, limit: number): string[] {
  return [...tweets]
    .sort(([a, x], [b, y]) => y - x || compareCodePoints(a, b))
    .slice(0, limit)
    .map(([u]) => u);
}

/** A fresh in-memory state, and a commit into it (offsets numbered in order) that returns TopUsers' event. */
function fresh() {
  const registry = createRegistry();
  const plan = commitPlan(registry);
  const state = new MemoryState(registry);
  let offset = 0;
  const commit = (records: Omit<TestRecord, 'offset'>[], sequence: number) =>
    commitBatch(
      state,
      plan,
      commitInput(records.map((r) => ({ ...r, offset: offset++ }))),
      BigInt(sequence),
      0,
    ).events.get('top-users');
  return { state, commit };
}

/**
 * USERS users, the first RANK_PREFIX_CAP of them with two tweets each (the TWEETS prefix holds them, and a user
 * with fewer sorts past its last key), and from then on every read and write of the rank index noted.
 */
function twoTweetsEach() {
  const { state, commit } = fresh();
  const users = Array.from({ length: USERS }, (_, i) => `u${String(i).padStart(4, '0')}`);
  commit(
    users.map((u) => ({ table: 'users', key: u, row: profile(u) })),
    1,
  );
  let next = 0;
  const tweets = (owners: readonly string[]) =>
    owners.map((u) => ({ table: 'tweets' as const, key: `t${next++}`, row: tweet(u) }));
  commit(tweets(users.slice(0, RANK_PREFIX_CAP).flatMap((u) => [u, u])), 2);
  // Reads: `last` (a ranking's last stored key), `first` (a list, with its limit); writes: adds and removes.
  const rank = state.spaces('top-users')['rank'] as IndexSpace;
  const reads = { last: [] as string[], first: [] as string[] };
  const writes = { add: 0, remove: 0 };
  const { last, first, add, remove } = rank;
  rank.last = (prefix, before) => (reads.last.push(prefix), last.call(rank, prefix, before));
  rank.first = (prefix, limit) => (
    reads.first.push(limit === MAX_TOP_LIMIT ? prefix : `${prefix} all`),
    first.call(rank, prefix, limit)
  );
  rank.add = (key) => (writes.add++, add.call(rank, key));
  rank.remove = (key) => (writes.remove++, remove.call(rank, key));
  const forget = () => {
    reads.last.length = reads.first.length = 0;
    writes.add = writes.remove = 0;
  };
  return { commit, users, tweets, rank, reads, writes, forget };
}

describe('TopUsers kept as prefixes', () => {
  it('should serve the exact rankings after every commit while users move in and out of the prefix', () => {
    const registry = createRegistry();
    const plan = commitPlan(registry);
    const state = new MemoryState(registry);
    const random = prng(7);
    const all: TestRecord[] = [];
    let offset = 0;
    const users = Array.from({ length: USERS }, (_, i) => `u${String(i).padStart(4, '0')}`);
    const tweets = new Map(users.map((u) => [u, 0]));
    const owner = new Map<string, string>();
    let next = 0;
    const apply = (records: TestRecord[], sequence: number) => {
      all.push(...records);
      return commitBatch(state, plan, commitInput(records), BigInt(sequence), 0);
    };
    // With the users rows, tweets of users that have none: UserInformation counts them, and no ranking (nor
    // a refill, which reads its counts) may name them, however many tweets they have.
    const ghosts = Array.from({ length: 20 * 30 }, (_, i): TestRecord => {
      const key = `t${next++}`;
      return { table: 'tweets', key, row: tweet(`ghost${i % 20}`), offset: offset++ };
    });
    apply(
      [
        ...users.map((u): TestRecord => ({ table: 'users', key: u, row: profile(u), offset: offset++ })),
        ...ghosts,
      ],
      1,
    );
    const rank = state.spaces('top-users')['rank'] as IndexSpace;
    const deleteTweet = (key: string): TestRecord => {
      const u = owner.get(key)!;
      owner.delete(key);
      tweets.set(u, tweets.get(u)! - 1);
      return { table: 'tweets', key, row: null, offset: offset++ };
    };
    /** Commits `records`, checks the ranking against one from scratch; returns the keys its prefix holds. */
    let changedTops = 0;
    const commitAndCheck = (records: TestRecord[], commit: number): number => {
      const before = topOf(rank, 'TWEETS', MAX_TOP_LIMIT);
      const outcome = apply(records, commit);
      const after = topOf(rank, 'TWEETS', MAX_TOP_LIMIT);
      expect({ commit, top: after }).toEqual({ commit, top: topByTweets(tweets, MAX_TOP_LIMIT) });
      // The event names the ranking with its new list exactly when its first MAX_TOP_LIMIT changed.
      const changed = before.some((id, i) => id !== after[i]) || before.length !== after.length;
      if (changed) changedTops++;
      expect({ commit, event: outcome.events.get('top-users')?.get('TWEETS') }).toEqual({
        commit,
        event: changed ? after : undefined,
      });
      const held = rank.first('1', Number.MAX_SAFE_INTEGER).length;
      expect(held).toBeLessThanOrEqual(RANK_PREFIX_CAP);
      expect(held).toBeGreaterThanOrEqual(MAX_TOP_LIMIT);
      return held;
    };
    let shortPrefixes = 0;
    for (let commit = 2; commit < 160; commit++) {
      const records: TestRecord[] = [];
      for (let n = 0; n < 200; n++) {
        // Creations favour a moving set of users (so a top forms and changes); deletions hit anyone.
        if (owner.size > 0 && random() < 0.45) {
          const keys = [...owner.keys()];
          records.push(deleteTweet(keys[Math.floor(random() * keys.length)]!));
        } else {
          const base = (commit * 37) % USERS;
          const u = users[(base + Math.floor(random() * random() * USERS)) % USERS]!;
          const key = `t${next++}`;
          owner.set(key, u);
          tweets.set(u, tweets.get(u)! + 1);
          records.push({ table: 'tweets', key, row: tweet(u), offset: offset++ });
        }
      }
      if (commitAndCheck(records, commit) < RANK_PREFIX_CAP) shortPrefixes++;
    }
    // Users moved out of the prefix (it ran short of CAP) in most commits: the path that matters was taken.
    expect(shortPrefixes).toBeGreaterThan(50);
    expect(changedTops).toBeGreaterThan(10);

    // Commits that move users ranked past the first MAX_TOP_LIMIT only (some inside the prefix, some past
    // it): the index is written, the list stays as it was, and no event names it.
    const changedBefore = changedTops;
    for (let commit = 160; commit < 170; commit++) {
      const order = topByTweets(tweets, USERS);
      const moved = [...order.slice(400, 410), ...order.slice(order.length - 10)];
      const records = moved.map((u): TestRecord => {
        const key = `t${next++}`;
        owner.set(key, u);
        tweets.set(u, tweets.get(u)! + 1);
        return { table: 'tweets', key, row: tweet(u), offset: offset++ };
      });
      commitAndCheck(records, commit);
    }
    expect(changedTops - changedBefore).toBe(0);

    // The user last in the list loses every tweet, and nothing else moves: its key, the list's last one, is
    // the only write that changes the list (the next user takes its place).
    const last = topByTweets(tweets, MAX_TOP_LIMIT)[MAX_TOP_LIMIT - 1]!;
    const lost = [...owner].filter(([, u]) => u === last).map(([key]) => deleteTweet(key));
    expect(lost.length).toBeGreaterThan(0);
    commitAndCheck(lost, 170);
    expect(changedTops - changedBefore).toBe(1);

    // Every user of the prefix loses all its tweets in one commit: the prefix empties and is refilled from
    // the ranked users' counts (it would hold fewer than MAX_TOP_LIMIT keys otherwise), twice.
    for (let commit = 171; commit < 173; commit++) {
      const members = new Set(rank.first('1', RANK_PREFIX_CAP).map(userOfRankKey));
      const emptied = [...owner].filter(([, u]) => members.has(u)).map(([key]) => deleteTweet(key));
      commitAndCheck(emptied, commit);
    }

    // The same records in one commit: other prefix lengths, the same rankings, and verify sees no problem.
    const once = new MemoryState(registry);
    commitBatch(once, plan, commitInput(all), 1n, 0);
    const spaces = state.spaces('top-users');
    /** The keys verify's comparison finds a problem with. */
    const wrong = (): string[] => {
      const keys = new Set<string>();
      topUsers.compareSpaces!(
        once.spaces('top-users'),
        spaces,
        (key, problems) => {
          if (problems.length > 0) keys.add(key);
        },
        (view) => once.spaces(view),
      );
      return [...keys].sort();
    };
    expect(wrong()).toEqual([]);
    // A key the rows do not give in the prefix, and a number of ranked users out of step: both named.
    const second = rank.first('1', 2)[1]!;
    rank.remove(second);
    rank.add(rankKey('TWEETS', 999_999, 'nobody'));
    const meta = spaces['meta'] as KvSpace<number>;
    meta.put('ranked', meta.get('ranked')! + 1);
    expect(wrong()).toEqual([rankKey('TWEETS', 999_999, 'nobody'), 'ranked'].sort());
  });

  it('should name a ranking of fewer than MAX_TOP_LIMIT users in the event when a user joins at its end', () => {
    const { commit } = fresh();
    commit(
      ['u1', 'u2', 'u3'].map((u) => ({ table: 'users', key: u, row: profile(u) })),
      1,
    );
    expect(commit([{ table: 'tweets', key: 't1', row: tweet('u2') }], 2)?.get('TWEETS')).toEqual([
      'u2',
      'u1',
      'u3',
    ]);
    // u9 has no tweet: its key sorts after every key the ranking holds, and still joins the list.
    const joined = commit([{ table: 'users', key: 'u9', row: profile('u9') }], 3);
    expect(joined?.get('TWEETS')).toEqual(['u2', 'u1', 'u3', 'u9']);
  });

  it('should read a ranking only when a commit moves it, and its top only when a move writes its prefix', () => {
    const { commit, users, tweets, reads, writes, forget } = twoTweetsEach();
    // New tweets of users past the prefix: only TWEETS moves (its last key read once), nothing is written,
    // and its top is not read.
    const event = commit(tweets(users.slice(RANK_PREFIX_CAP, RANK_PREFIX_CAP + 20)), 3);
    expect(event).toBeUndefined();
    expect({ reads, writes }).toEqual({ reads: { last: ['1'], first: [] }, writes: { add: 0, remove: 0 } });

    // A third tweet for a user of the prefix moves it to the top: the top is read before that write, then
    // again for the event.
    forget();
    const top = commit(tweets([users[500]!]), 4);
    expect((top?.get('TWEETS') as string[] | undefined)?.slice(0, 2)).toEqual([users[500], users[0]]);
    expect({ reads, writes }).toEqual({
      reads: { last: ['1'], first: ['1', '1'] },
      writes: { add: 1, remove: 1 },
    });
  });

  it('should move a ranking in memory when a commit moves many of its users, and write only the difference', () => {
    const { commit, users, tweets, rank, reads, writes, forget } = twoTweetsEach();
    const held = rank.first('1', Number.MAX_SAFE_INTEGER).length;
    expect(held).toBeGreaterThan(RANK_PREFIX_CAP - 300);
    forget();
    // 300 users past the prefix get three tweets each: all of them go to the top, in userId order, and push
    // the prefix's last keys out past CAP. One read of the whole prefix, no lookup of its last key; each key
    // that joined written once, each that left removed once.
    const movers = users.slice(RANK_PREFIX_CAP, RANK_PREFIX_CAP + 300);
    expect(bufferMoves(movers.length, held)).toBe(true);
    const top = commit(tweets(movers.flatMap((u) => [u, u, u])), 3);
    expect({ reads, writes }).toEqual({
      reads: { last: [], first: ['1 all'] },
      writes: { add: 300, remove: held + 300 - RANK_PREFIX_CAP },
    });
    const expected = [...movers, ...users.slice(0, RANK_PREFIX_CAP - 300)];
    expect(top?.get('TWEETS')).toEqual(expected.slice(0, MAX_TOP_LIMIT));
    expect(rank.first('1', Number.MAX_SAFE_INTEGER).map(userOfRankKey)).toEqual(expected);

    // Moves of users past the prefix that stay past it: 200 users without a tweet get one, and 60 of the users
    // pushed out lose one of their two (t<2i> is the first tweet of users[i]). One read, nothing written.
    forget();
    const dropped = users
      .slice(RANK_PREFIX_CAP - 100, RANK_PREFIX_CAP - 40)
      .map((u) => ({ table: 'tweets' as const, key: `t${2 * users.indexOf(u)}`, row: null }));
    const quiet = commit([...tweets(users.slice(RANK_PREFIX_CAP + 300)), ...dropped], 4);
    expect(quiet).toBeUndefined();
    expect({ reads, writes }).toEqual({
      reads: { last: [], first: ['1 all'] },
      writes: { add: 0, remove: 0 },
    });
    expect(rank.first('1', Number.MAX_SAFE_INTEGER).map(userOfRankKey)).toEqual(expected);
  });
});
