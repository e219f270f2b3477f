/**
 * The verifier of the fault tests, modelled on Kafka's exactly-once system test: after the faults, read
 * every source topic back from the cluster, recompute the view from scratch with CONTRACT.md §2's SQL
 * over the latest row per key, and diff it against what the server serves and what its store holds.
 *
 * Deliberately independent of matview's code: it neither decodes with src/views nor materializes with
 * src/materializer. Records the caller knows to be invalid (poison tests) are excluded by a predicate.
 */
import kafkajs from 'kafkajs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { FeedRecord } from '../../../src/feed/types.js';
import { openStore } from '../../../src/store/lmdb-store.js';
import { PROFILE_FIELDS, USER_INFORMATION_VERSION, type Table } from '../../../src/views/user-information.js';
import { consumeAll } from '../../utils/kafka-mock.js';
import { eventually, graphql, type TestTopics } from '../../utils/server.js';

const { Kafka, logLevel } = kafkajs;

export const TABLE_LIST: readonly Table[] = ['users', 'tweets', 'follows', 'likes'];

/** Counts of one user: `SELECT COUNT(*)` over the current rows (CONTRACT.md §2). */
export interface Counts {
  tweetCount: number;
  followingCount: number;
  followerCount: number;
  likeCount: number;
}

/** What `users(ids)` must return for one id: null without a users row. */
export type ExpectedUser = (Record<string, unknown> & Counts & { userId: string }) | null;

export interface Reference {
  /** Every userId ever mentioned (users keys, tweets/likes userId, follows both ends). */
  readonly userIds: readonly string[];
  /** The served view per userId. */
  readonly users: ReadonlyMap<string, ExpectedUser>;
  /** Counts per userId, also for users without a users row (the store keeps them). */
  readonly counts: ReadonlyMap<string, Counts>;
  /** Keys with a current (non-deleted) row, per table. */
  readonly liveKeys: Readonly<Record<Table, ReadonlySet<string>>>;
  /** Records per topic that were read back. */
  readonly recordCount: number;
}

/** High watermark of every partition of `topic`. */
export async function endOffsets(
  brokers: readonly string[],
  topic: string,
): Promise<{ partition: number; next: string }[]> {
  const admin = new Kafka({
    brokers: [...brokers],
    clientId: 'matview-verifier',
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.map((o) => ({ partition: o.partition, next: o.high }));
  } finally {
    await admin.disconnect();
  }
}

/** Every record of `topic` up to its current end offsets, by partition then offset. */
export async function readTopic(brokers: readonly string[], topic: string): Promise<FeedRecord[]> {
  const ends = await endOffsets(brokers, topic);
  const total = ends.reduce((n, e) => n + Number(e.next), 0);
  if (total === 0) return [];
  const records = await consumeAll(brokers, topic, total, 120_000);
  return records.filter(
    (r) => BigInt(r.offset) < BigInt(ends.find((e) => e.partition === r.partition)?.next ?? '0'),
  );
}

/** Reads the four topics back. */
export async function readTopics(
  brokers: readonly string[],
  topics: TestTopics,
): Promise<Record<Table, FeedRecord[]>> {
  const read = await Promise.all(TABLE_LIST.map((table) => readTopic(brokers, topics[table])));
  return Object.fromEntries(TABLE_LIST.map((table, i) => [table, read[i]!])) as Record<Table, FeedRecord[]>;
}

/**
 * The reference view. `valid(table, record)` says which records to apply (default: all). Values are
 * parsed with JSON.parse; the tests only produce canonical ISO dates, so no date normalization is needed.
 */
export function computeReference(
  records: Readonly<Record<Table, readonly FeedRecord[]>>,
  valid: (table: Table, record: FeedRecord) => boolean = () => true,
): Reference {
  const latest = {} as Record<Table, Map<string, Record<string, unknown> | null>>;
  const ids = new Set<string>();
  let recordCount = 0;
  for (const table of TABLE_LIST) {
    const rows = (latest[table] = new Map());
    // Records arrive sorted by partition then offset, and a key always lives in one partition.
    for (const r of records[table]) {
      recordCount++;
      if (!valid(table, r)) continue;
      const key = r.key!.toString('utf8');
      const value =
        r.value === null || r.value.length === 0
          ? null
          : (JSON.parse(r.value.toString('utf8')) as Record<string, unknown>);
      rows.set(key, value);
      if (table === 'users') ids.add(key);
      for (const f of ['userId', 'followerId', 'followeeId'])
        if (typeof value?.[f] === 'string') ids.add(value[f] as string);
    }
  }
  const current = (t: Table) =>
    [...latest[t].values()].filter((v): v is Record<string, unknown> => v !== null);
  const countBy = (t: Table, field: string): Map<string, number> => {
    const m = new Map<string, number>();
    for (const v of current(t)) m.set(v[field] as string, (m.get(v[field] as string) ?? 0) + 1);
    return m;
  };
  const tweets = countBy('tweets', 'userId');
  const following = countBy('follows', 'followerId');
  const followers = countBy('follows', 'followeeId');
  const likes = countBy('likes', 'userId');
  const counts = new Map<string, Counts>();
  const users = new Map<string, ExpectedUser>();
  const userIds = [...ids].sort();
  for (const id of userIds) {
    const c: Counts = {
      tweetCount: tweets.get(id) ?? 0,
      followingCount: following.get(id) ?? 0,
      followerCount: followers.get(id) ?? 0,
      likeCount: likes.get(id) ?? 0,
    };
    counts.set(id, c);
    const row = latest.users.get(id);
    if (row === undefined || row === null) {
      users.set(id, null);
      continue;
    }
    const profile: Record<string, unknown> = {};
    for (const f of PROFILE_FIELDS) profile[f] = row[f] ?? null;
    users.set(id, { userId: id, ...profile, ...c });
  }
  const liveKeys = {} as Record<Table, Set<string>>;
  for (const table of TABLE_LIST)
    liveKeys[table] = new Set([...latest[table]].filter(([, v]) => v !== null).map(([k]) => k));
  return { userIds, users, counts, liveKeys, recordCount };
}

const USERS_QUERY = `query($ids: [ID!]!) { users(ids: $ids) { userId ${PROFILE_FIELDS.join(' ')} tweetCount followingCount followerCount likeCount } }`;

/** What the server serves for `ids`, through `users(ids)` in chunks the default MAX_IDS allows. */
export async function servedView(url: string, ids: readonly string[]): Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  for (let i = 0; i < ids.length; i += 400) {
    const chunk = ids.slice(i, i + 400);
    const r = await graphql<{ users: unknown[] }>(url, USERS_QUERY, { ids: chunk });
    if (r.errors !== undefined || r.data === undefined)
      throw new Error(`users(ids) failed: ${JSON.stringify(r.errors)}`);
    chunk.forEach((id, k) => out.set(id, r.data!.users[k] ?? null));
  }
  return out;
}

const FEED_QUERY =
  '{ feedStatus { state reason ready newestEventAgeSeconds feedDownSeconds sequence partitions { topic partition next } } }';

export interface FeedStatusView {
  state: string;
  reason: string | null;
  ready: boolean;
  newestEventAgeSeconds: number | null;
  feedDownSeconds: number | null;
  sequence: string;
  partitions: { topic: string; partition: number; next: string }[];
}

export async function feedStatus(url: string): Promise<FeedStatusView> {
  const r = await graphql<{ feedStatus: FeedStatusView }>(url, FEED_QUERY);
  if (r.data === undefined) throw new Error(`feedStatus failed: ${JSON.stringify(r.errors)}`);
  return r.data.feedStatus;
}

/** Waits until the server's stored positions reached the topics' current end offsets. */
export async function waitCaughtUp(
  url: string,
  brokers: readonly string[],
  topics: TestTopics,
  timeoutMs = 120_000,
): Promise<void> {
  const targets: { topic: string; partition: number; next: string }[] = [];
  for (const table of TABLE_LIST)
    for (const e of await endOffsets(brokers, topics[table])) targets.push({ topic: topics[table], ...e });
  let last: FeedStatusView | undefined;
  await eventually(
    async () => {
      last = await feedStatus(url);
      const at = new Map(last.partitions.map((p) => [`${p.topic}/${p.partition}`, BigInt(p.next)]));
      return targets.every(
        (t) => t.next === '0' || (at.get(`${t.topic}/${t.partition}`) ?? -1n) >= BigInt(t.next),
      )
        ? true
        : undefined;
    },
    timeoutMs,
    `positions at the end offsets ${JSON.stringify(targets)} (last feedStatus: ${JSON.stringify(last)})`,
  );
}

/** Asserts that the served view equals the reference for every userId ever mentioned. */
export async function expectServedViewEquals(url: string, reference: Reference): Promise<void> {
  const served = await servedView(url, reference.userIds);
  const diff: string[] = [];
  for (const id of reference.userIds) {
    const want = reference.users.get(id) ?? null;
    const got = served.get(id) ?? null;
    if (JSON.stringify(got) !== JSON.stringify(want))
      diff.push(`${id}: served ${JSON.stringify(got)}, reference ${JSON.stringify(want)}`);
  }
  expect(diff.slice(0, 20), `${diff.length} of ${reference.userIds.length} users differ`).toEqual([]);
}

/**
 * Opens the (stopped) instance's LMDB store and asserts it holds exactly the reference: counts of every
 * user (also those without a users row), never negative, and the set of current rows of every table.
 */
export async function expectStoreEquals(
  dataDir: string,
  topics: TestTopics,
  reference: Reference,
): Promise<void> {
  const store = openStore({ path: join(dataDir, 'view'), viewVersion: USER_INFORMATION_VERSION });
  try {
    const zero: Counts = { tweetCount: 0, followingCount: 0, followerCount: 0, likeCount: 0 };
    const stored = new Map<string, Counts>();
    for (const [id, state] of store.allUserStates()) stored.set(id, { ...state.counts });
    const diff: string[] = [];
    for (const id of new Set([...stored.keys(), ...reference.counts.keys()])) {
      const got = stored.get(id) ?? zero;
      const want = reference.counts.get(id) ?? zero;
      if (Object.values(got).some((n) => n < 0)) diff.push(`${id}: negative count ${JSON.stringify(got)}`);
      if (JSON.stringify(got) !== JSON.stringify(want))
        diff.push(`${id}: stored ${JSON.stringify(got)}, reference ${JSON.stringify(want)}`);
    }
    expect(diff.slice(0, 20), `${diff.length} user states differ`).toEqual([]);
    for (const table of TABLE_LIST) {
      const live = new Set<string>();
      for (const [key, row] of store.allRows(table)) if (row.row !== null) live.add(key);
      expect([...live].sort(), `current ${table} rows (topic ${topics[table]})`).toEqual(
        [...reference.liveKeys[table]].sort(),
      );
    }
  } finally {
    await store.close();
  }
}
