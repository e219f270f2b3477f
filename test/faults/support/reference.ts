/**
 * The verifier of the fault tests, modelled on Kafka's exactly-once system test: after the faults, read
 * every source topic back from the cluster, recompute the view from scratch with the reference model
 * (test/utils/reference.ts: CONTRACT.md §2's SQL over the latest row per key), and diff it against what
 * the server serves and what its store holds.
 *
 * Deliberately independent of matview's code: it neither decodes with src/views nor materializes with
 * src/materializer. Records the caller knows to be invalid (poison tests) are excluded by a predicate.
 */
import kafkajs from 'kafkajs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { FeedRecord } from '../../../src/feed/types.js';
import { openStore } from '../../../src/store/lmdb-store.js';
import { allUserCounts } from '../../utils/store-state.js';
import { consumeUpTo } from '../../utils/kafka-mock.js';
import {
  PROFILE,
  RANKING_FIELD,
  REFERENCE_TABLES,
  computeReference as evaluate,
  type RefCounts,
  type RefRanking,
  type RefTable,
  type Reference,
} from '../../utils/reference.js';
import { eventually, graphql, type TestTopics } from '../../utils/server.js';

const { Kafka, logLevel } = kafkajs;

type Table = RefTable;
export const TABLE_LIST: readonly Table[] = REFERENCE_TABLES;
export type { Reference } from '../../utils/reference.js';

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
  return consumeUpTo(brokers, topic, await endOffsets(brokers, topic), 120_000);
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
 * The reference view of what was read back. `valid(table, record)` says which records to apply (default:
 * all). Records arrive sorted by partition then offset, and a key always lives in one partition.
 */
export function computeReference(
  records: Readonly<Record<Table, readonly FeedRecord[]>>,
  valid: (table: Table, record: FeedRecord) => boolean = () => true,
): Reference & { readonly recordCount: number } {
  let recordCount = 0;
  const all: { table: Table; key: string; value: Record<string, unknown> | null }[] = [];
  for (const table of TABLE_LIST)
    for (const r of records[table]) {
      recordCount++;
      if (!valid(table, r)) continue;
      const value =
        r.value === null || r.value.length === 0
          ? null
          : (JSON.parse(r.value.toString('utf8')) as Record<string, unknown>);
      all.push({ table, key: r.key!.toString('utf8'), value });
    }
  return Object.assign(evaluate(all), { recordCount });
}

const USERS_QUERY = `query($ids: [ID!]!) { users(ids: $ids) { userId ${PROFILE.join(' ')} tweetCount followingCount followerCount likeCount } }`;

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

const DASHBOARD_QUERY = `{
  ${Object.entries(RANKING_FIELD)
    .map(([ranking, count]) => `${ranking}: topUsers(by: ${ranking}, limit: 100) { userId ${count} }`)
    .join('\n  ')}
  totals { users tweets follows likes }
}`;

/**
 * Asserts that the served dashboard views equal the reference: the first 100 of every ranking (members,
 * order and the count they are ranked by) and the totals (issue 16).
 */
export async function expectServedDashboardEquals(url: string, reference: Reference): Promise<void> {
  const r = await graphql<Record<string, unknown>>(url, DASHBOARD_QUERY);
  if (r.errors !== undefined || r.data === undefined)
    throw new Error(`topUsers/totals failed: ${JSON.stringify(r.errors)}`);
  const want: Record<string, unknown> = { totals: reference.totals };
  for (const [ranking, count] of Object.entries(RANKING_FIELD))
    want[ranking] = reference
      .top(ranking as RefRanking, 100)
      .map((userId) => ({ userId, [count]: reference.counts.get(userId)![count] }));
  expect(r.data).toEqual(want);
}

/**
 * Opens the (stopped) instance's LMDB store and asserts it holds exactly the reference: counts of every
 * user (also those without a users row), never negative, the set of current rows of every table, the totals
 * and the rankings.
 */
export async function expectStoreEquals(
  dataDir: string,
  topics: TestTopics,
  reference: Reference,
): Promise<void> {
  const store = openStore({ path: join(dataDir, 'view') });
  try {
    const zero: RefCounts = { tweetCount: 0, followingCount: 0, followerCount: 0, likeCount: 0 };
    const stored = new Map<string, RefCounts>();
    for (const [id, c] of allUserCounts(store.activeGeneration().spaces('user-information')))
      stored.set(id, c);
    const diff: string[] = [];
    for (const id of new Set([...stored.keys(), ...reference.counts.keys()])) {
      const got = stored.get(id) ?? zero;
      const want = reference.counts.get(id) ?? zero;
      if (Object.values(got).some((n) => n < 0)) diff.push(`${id}: negative count ${JSON.stringify(got)}`);
      if (JSON.stringify(got) !== JSON.stringify(want))
        diff.push(`${id}: stored ${JSON.stringify(got)}, reference ${JSON.stringify(want)}`);
    }
    expect(diff.slice(0, 20), `${diff.length} user counts differ`).toEqual([]);
    for (const table of TABLE_LIST) {
      const live = [...store.activeGeneration().rows.keys(table)];
      expect(live.sort(), `current ${table} rows (topic ${topics[table]})`).toEqual(
        [...reference.liveKeys[table]].sort(),
      );
    }
    expect(store.totals() ?? { users: 0, tweets: 0, follows: 0, likes: 0 }).toMatchObject(reference.totals);
    for (const ranking of ['FOLLOWERS', 'TWEETS', 'LIKES', 'FOLLOWING'] as const)
      expect(store.topUserIds(ranking, 100), `top users by ${ranking}`).toEqual(reference.top(ranking, 100));
  } finally {
    await store.close();
  }
}
