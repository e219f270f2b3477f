/**
 * Scenario view-topic (issue 19, the figures of docs/scaling.md): what each role costs here.
 * - materializer: a changelog workload (users first, then 40 % tweets, 30 % follows, 20 % likes, 10 % profile
 *   edits) produced into the mock cluster, then `matview serve` consumes it, with and without VIEW_TOPIC_OUT,
 *   twice each in turn (the box is shared: medians): records/s until the stored positions reach the end
 *   offsets, and until every commit is published; RSS; then, stopped, the bytes of each LMDB database of its
 *   store (rows, views, counts, rankings, the published index), per row and per user.
 * - replica, end to end: `matview serve` with VIEW_TOPIC_IN reads a view topic from the start (the one the
 *   materializer published, and one holding a single record per user, as compaction leaves it): records/s,
 *   RSS, store bytes per user.
 * - replica, the store alone: a replica's commits (src/materializer/replicate.ts through `LmdbStore`, writer
 *   thread on, as in `serve`) for many more users than the mock can hold: users/s and bytes per user.
 *
 * librdkafka's mock cluster keeps about 5 MB per partition and deletes older records (its auto-created topics
 * have 4 partitions), so every topic here is written gzip-compressed and kept under that, and each is checked
 * to still start at offset 0 before its figures are used: a figure over a truncated topic would count records
 * never read.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import kafkajs from 'kafkajs';
import { open } from 'lmdb';
import { ReplicaBatch } from '../../src/materializer/change-batch.js';
import { createKafkaWriter } from '../../src/feed/kafka-writer.js';
import { silentLogger } from '../../src/ops/logger.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { createViewTopicOut } from '../../src/sink/view-topic-out.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { commitInput, profile, tweet } from '../../test/utils/changes.js';
import { encodeUserValue } from '../../src/views/view-record.js';
import { startKafka } from '../../test/utils/kafka-mock.js';
import { median, round, sleep, type Scenario, type ScenarioContext } from '../lib/common.js';
import { followerCounts, viewOf } from '../lib/dataset.js';
import {
  endOffsets,
  freshTopics,
  quietKafka,
  recordAt,
  rssOf,
  startMatviewProcess,
  valueOf,
  type ServerProcess,
  type Topics,
} from '../lib/records.js';
import { prng } from '../lib/common.js';

/** Records written to the partitions, in all (end offsets summed). */
const totalHigh = (ends: readonly { readonly high: bigint }[]): bigint =>
  ends.reduce((n, p) => n + p.high, 0n);

const { CompressionTypes } = kafkajs;

type DbBytes = Map<string, { bytes: number; entries: number }>;

/** Bytes and entries of every database of a stopped instance's store. */
function storeBytes(dataDir: string): DbBytes {
  const env = open({ path: join(dataDir, 'view'), readOnly: true, maxDbs: 128 });
  const out: DbBytes = new Map();
  try {
    // Names first: opening a database renews the read transaction, which must not happen under an open cursor.
    const names = [...env.getKeys()].filter((n): n is string => typeof n === 'string');
    for (const name of names) {
      const stats = env.openDB({ name }).getStats() as {
        pageSize: number;
        treeBranchPageCount: number;
        treeLeafPageCount: number;
        overflowPages: number;
        entryCount: number;
      };
      const pages = stats.treeBranchPageCount + stats.treeLeafPageCount + stats.overflowPages;
      out.set(name, { bytes: pages * stats.pageSize, entries: stats.entryCount });
    }
  } finally {
    void env.close();
  }
  return out;
}

const sum = (dbs: DbBytes, match: RegExp) =>
  [...dbs]
    .filter(([n]) => match.test(n))
    .reduce((a, [, v]) => ({ bytes: a.bytes + v.bytes, entries: a.entries + v.entries }), {
      bytes: 0,
      entries: 0,
    });
const total = (dbs: DbBytes) => [...dbs.values()].reduce((n, v) => n + v.bytes, 0);
const VIEWS_DB = /^g\d+\/user-information#\d+\/views$/;

/** Sum of the next offsets a server has stored (feedStatus). */
async function applied(server: ServerProcess): Promise<bigint> {
  const res = await fetch(`${server.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ feedStatus { partitions { next } } }' }),
  });
  const body = (await res.json()) as { data?: { feedStatus: { partitions: { next: string }[] } } };
  return (body.data?.feedStatus.partitions ?? []).reduce((n, p) => n + BigInt(p.next), 0n);
}

async function metric(server: ServerProcess, name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m?.[1] === undefined ? NaN : Number(m[1]);
}

/** Polls until `done`, returning the seconds it took (NaN after `limitMs`). */
async function timeUntil(done: () => Promise<boolean>, limitMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < limitMs) {
    if (await done().catch(() => false)) return (performance.now() - t0) / 1000;
    await sleep(100);
  }
  return NaN;
}

/** Throws when the mock dropped the start of a topic (its ~5 MB per partition): the figures would be wrong. */
async function checkWhole(brokers: readonly string[], topics: readonly string[]): Promise<void> {
  const admin = quietKafka(brokers).admin();
  await admin.connect();
  try {
    for (const topic of topics)
      for (const p of await admin.fetchTopicOffsets(topic))
        if (p.low !== '0')
          throw new Error(
            `the mock cluster dropped ${topic}[${p.partition}] below offset ${p.low} (it keeps ~5 MB per partition): use fewer records`,
          );
  } finally {
    await admin.disconnect();
  }
}

/** The changelog workload, gzip-compressed (so the mock keeps it whole), in batches of 10,000. */
async function produceChangelogs(brokers: readonly string[], topics: Topics, records: number, users: number) {
  const producer = quietKafka(brokers).producer({ allowAutoTopicCreation: true });
  await producer.connect();
  const random = prng(19);
  try {
    for (let start = 0; start < records; start += 10_000) {
      const byTopic = new Map<string, { key: string; value: string }[]>();
      for (let i = start; i < Math.min(records, start + 10_000); i++) {
        const r = recordAt(i, users, random);
        const list = byTopic.get(topics[r.table]) ?? [];
        byTopic.set(topics[r.table], list);
        list.push({ key: r.key, value: valueOf(r.key, r.row) });
      }
      await producer.sendBatch({
        acks: 1,
        compression: CompressionTypes.GZIP,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

/** One view record per user of the bench data set (what a compacted topic holds), gzip, 2,000 per request. */
async function produceViews(brokers: readonly string[], topic: string, users: number): Promise<void> {
  const followers = followerCounts(users);
  const producer = quietKafka(brokers).producer({ allowAutoTopicCreation: true });
  await producer.connect();
  try {
    for (let start = 0; start < users; start += 2_000) {
      const messages = [];
      for (let k = start; k < Math.min(users, start + 2_000); k++)
        messages.push({ key: String(k), value: encodeUserValue(viewOf(k, followers)) });
      await producer.send({ topic, acks: 1, compression: CompressionTypes.GZIP, messages });
    }
  } finally {
    await producer.disconnect();
  }
}

const serverEnv = (dir: string) => ({
  DATA_DIR: dir,
  KAFKA_FETCH_MAX_WAIT_MS: '50',
  LMDB_MAP_SIZE_MB: '4096',
});

interface Materialized {
  readonly dir: string;
  readonly seconds: number;
  readonly publishedSeconds: number;
  readonly rss: number;
}

async function materialize(
  ctx: ScenarioContext,
  brokers: string,
  topics: Topics,
  end: bigint,
  viewTopic: string | undefined,
  run: number,
): Promise<Materialized> {
  const dir = `${ctx.tmp}/materializer-${run}`;
  const t0 = performance.now();
  const server = await startMatviewProcess({
    ...serverEnv(dir),
    KAFKA_BROKERS: brokers,
    TOPIC_USERS: topics.users,
    TOPIC_TWEETS: topics.tweets,
    TOPIC_FOLLOWS: topics.follows,
    TOPIC_LIKES: topics.likes,
    ...(viewTopic === undefined ? {} : { VIEW_TOPIC_OUT: viewTopic }),
  });
  ctx.defer(() => server.stop());
  const limit = ctx.quick ? 120_000 : 1_800_000;
  const seconds = await timeUntil(async () => (await applied(server)) >= end, limit);
  const took = (performance.now() - t0) / 1000;
  const published =
    viewTopic === undefined
      ? NaN
      : await timeUntil(
          async () =>
            (await metric(server, 'matview_view_topic_unpublished_commits')) === 0 &&
            (await metric(server, 'matview_view_topic_outbox_changes')) === 0,
          limit,
        );
  const rss = rssOf(server.pid, (p) => readFileSync(p, 'utf8'));
  await server.stop();
  if (Number.isNaN(seconds)) throw new Error('the materializer did not catch up within the time limit');
  return { dir, seconds: took, publishedSeconds: took + published, rss };
}

/** A replica on `topic` from an empty store: catch-up time to `records`, RSS, store bytes. */
async function replicaCatchUp(ctx: ScenarioContext, brokers: string, topic: string, records: bigint) {
  const dir = `${ctx.tmp}/replica-${topic}`;
  const t0 = performance.now();
  const replica = await startMatviewProcess({
    ...serverEnv(dir),
    KAFKA_BROKERS: brokers,
    VIEW_TOPIC_IN: topic,
  });
  ctx.defer(() => replica.stop());
  const caughtUp = await timeUntil(
    async () => (await applied(replica)) >= records,
    ctx.quick ? 120_000 : 1_800_000,
  );
  const seconds = (performance.now() - t0) / 1000;
  const rss = rssOf(replica.pid, (p) => readFileSync(p, 'utf8'));
  await replica.stop();
  if (Number.isNaN(caughtUp))
    throw new Error(`the replica of ${topic} did not catch up within the time limit`);
  const dbs = storeBytes(dir);
  return { seconds, rss, bytes: total(dbs), views: sum(dbs, VIEWS_DB) };
}

/** A replica's commits alone, into a fresh store on the writer thread: users/s and bytes per user. */
async function replicaStore(ctx: ScenarioContext, users: number) {
  const dir = `${ctx.tmp}/replica-store`;
  const store = openStore({ path: join(dir, 'view'), writerThread: true, mapSize: 16 * 2 ** 30 });
  const followers = followerCounts(users);
  const BATCH = 5_000;
  const t0 = performance.now();
  const pending: Promise<unknown>[] = [];
  for (let start = 0; start < users; start += BATCH) {
    const batch = new ReplicaBatch();
    for (let k = start; k < Math.min(users, start + BATCH); k++)
      batch.push('user-information', String(k), viewOf(k, followers), 'views', 0, String(k));
    const next = String(Math.min(users, start + BATCH));
    pending.push(
      store.applyBatch({ replica: batch.columns(), positions: [{ topic: 'views', partition: 0, next }] }),
    );
    // A few batches in flight, as a feed with several partitions hands them over (group commit merges them).
    if (pending.length >= 4) await pending.shift();
  }
  await Promise.all(pending);
  const seconds = (performance.now() - t0) / 1000;
  await store.close();
  const dbs = storeBytes(dir);
  return { seconds, bytes: total(dbs), views: sum(dbs, VIEWS_DB) };
}

/**
 * One user changed by every commit: the publisher sends it one value per round (a produce round trip and one
 * store transaction), so this is how many commits per second a single user can take before it falls behind.
 * In process: a store, `commits` single-record commits one after another, the publisher writing to the mock.
 */
async function hotUser(ctx: ScenarioContext, brokers: readonly string[], commits: number) {
  const store = openStore({ path: `${ctx.tmp}/hot-user` });
  const writer = createKafkaWriter({
    brokers,
    clientId: 'bench-hot-user',
    connectionTimeoutMs: 10_000,
    logger: silentLogger,
    compression: 'gzip',
  });
  const topic = `hot-user-${Date.now().toString(36)}`;
  const { index, fresh } = await store.publishedIndex(topic);
  const out = createViewTopicOut({
    store,
    index,
    fresh,
    writer,
    topic,
    heartbeatMs: 2_000,
    status: () => ({ ready: true, lag: '0' }),
    metrics: createMetrics({ defaultMetrics: false }),
    logger: silentLogger,
  });
  try {
    out.start();
    await out.capture();
    let offset = 0;
    await store.applyBatch(
      commitInput([{ table: 'users', key: 'hot', row: profile('hot'), offset: offset++ }]),
    );
    await out.flush();
    const t0 = performance.now();
    for (let i = 0; i < commits; i++)
      await store.applyBatch(
        commitInput([{ table: 'tweets', key: `t${i}`, row: tweet('hot'), offset: offset++ }]),
      );
    const committed = (performance.now() - t0) / 1000;
    await out.flush();
    const drained = (performance.now() - t0) / 1000;
    return { committed, drained };
  } finally {
    await out.close();
    await writer.close();
    await store.close();
  }
}

export const viewTopic: Scenario = {
  name: 'view-topic',
  description:
    'what a materializer (VIEW_TOPIC_OUT) and a replica (VIEW_TOPIC_IN) cost: records/s, store bytes, RSS',
  async run(ctx) {
    // The published topic carries every committed value (about 0.8 per source record while catching up), and
    // the mock keeps ~5 MB per partition of its 4: 600,000 records (the size before issue 19's view outbox)
    // no longer fit whole.
    const users = ctx.quick ? 5_000 : Number(process.env['BENCH_VIEW_TOPIC_USERS'] ?? 10_000);
    const records = ctx.quick ? 60_000 : Number(process.env['BENCH_VIEW_TOPIC_RECORDS'] ?? 200_000);
    const kafka = await startKafka();
    ctx.defer(() => kafka.stop());
    const brokers = kafka.brokers.join(',');
    const topics = freshTopics('view-topic');
    await produceChangelogs(kafka.brokers, topics, records, users);
    await checkWhole(kafka.brokers, Object.values(topics));
    const end = totalHigh(await endOffsets(kafka.brokers, Object.values(topics)));
    ctx.log(`produced ${records} records over ${users} users`);

    // In turn, so both see the same load on a shared box: plain, publishing, plain, publishing.
    const runs: { plain: Materialized[]; publishing: Materialized[] } = { plain: [], publishing: [] };
    const out: string[] = [];
    for (let i = 0; i < (ctx.quick ? 1 : 2); i++) {
      runs.plain.push(await materialize(ctx, brokers, topics, end, undefined, 2 * i));
      out.push(`user-information-${i}-${Date.now().toString(36)}`);
      runs.publishing.push(await materialize(ctx, brokers, topics, end, out[i], 2 * i + 1));
      ctx.log(
        `round ${i}: ${round(runs.plain[i]!.seconds, 1)} s plain, ${round(runs.publishing[i]!.seconds, 1)} s publishing`,
      );
    }
    await checkWhole(kafka.brokers, [out[0]!]);
    const viewRecords = totalHigh(await endOffsets(kafka.brokers, [out[0]!]));
    const rate = (m: Materialized[]) => median(m.map((r) => Number(end) / r.seconds));
    ctx.row('materializer: ingest (median of runs)', {
      records: Number(end),
      users,
      'records/s': round(rate(runs.plain), 0),
      'records/s with VIEW_TOPIC_OUT': round(rate(runs.publishing), 0),
      'all published after (s)': round(median(runs.publishing.map((r) => r.publishedSeconds)), 1),
      'view records': Number(viewRecords),
      'RSS MB': round(median(runs.plain.map((r) => r.rss)) / 2 ** 20, 0),
      'RSS MB with VIEW_TOPIC_OUT': round(median(runs.publishing.map((r) => r.rss)) / 2 ** 20, 0),
    });
    const m = storeBytes(runs.publishing[0]!.dir);
    const rows = sum(m, /^g\d+\/rows$/);
    const views = sum(m, VIEWS_DB);
    const published = sum(m, /^view-topic\//);
    ctx.row('materializer: store', {
      MB: round(total(m) / 2 ** 20, 1),
      rows: rows.entries,
      'rows: bytes/row': round(rows.bytes / rows.entries, 1),
      'views: bytes/user': round(views.bytes / views.entries, 1),
      'counts: bytes/user': round(sum(m, /^g\d+\/user-information#\d+\/counts$/).bytes / users, 1),
      'rankings: bytes/user': round(sum(m, /^g\d+\/top-users#\d+\//).bytes / users, 1),
      'published index: bytes/user': round(published.bytes / Math.max(1, published.entries), 1),
    });

    const replica = await replicaCatchUp(ctx, brokers, out[0]!, viewRecords);
    ctx.row('replica: catch-up from the published topic', {
      'view records': Number(viewRecords),
      users: replica.views.entries,
      seconds: round(replica.seconds, 1),
      'view records/s': round(Number(viewRecords) / replica.seconds, 0),
      'RSS MB': round(replica.rss / 2 ** 20, 0),
      'store bytes/user': round(replica.bytes / replica.views.entries, 1),
    });

    const compactedUsers = ctx.quick ? 10_000 : 60_000;
    const compacted = `compacted-${Date.now().toString(36)}`;
    await produceViews(kafka.brokers, compacted, compactedUsers);
    await checkWhole(kafka.brokers, [compacted]);
    const fromCompacted = await replicaCatchUp(ctx, brokers, compacted, BigInt(compactedUsers));
    ctx.row('replica: catch-up from a compacted topic', {
      users: fromCompacted.views.entries,
      seconds: round(fromCompacted.seconds, 1),
      'users/s': round(compactedUsers / fromCompacted.seconds, 0),
      'RSS MB': round(fromCompacted.rss / 2 ** 20, 0),
      'store bytes/user': round(fromCompacted.bytes / fromCompacted.views.entries, 1),
    });

    const hotCommits = ctx.quick ? 500 : 2_000;
    const hot = await hotUser(ctx, kafka.brokers, hotCommits);
    ctx.row('materializer: one user changed by every commit', {
      records: hotCommits,
      users: 1,
      'records/s': round(hotCommits / hot.committed, 0),
      'all published after (s)': round(hot.drained, 2),
      'view records/s': round(hotCommits / hot.drained, 0),
    });

    const many = ctx.quick ? 50_000 : Number(process.env['BENCH_VIEW_TOPIC_REPLICA_USERS'] ?? 1_000_000);
    const alone = await replicaStore(ctx, many);
    ctx.row('replica: store alone (writer thread)', {
      users: alone.views.entries,
      seconds: round(alone.seconds, 1),
      'users/s': round(many / alone.seconds, 0),
      'store MB': round(alone.bytes / 2 ** 20, 1),
      'store bytes/user': round(alone.bytes / alone.views.entries, 1),
      'views: bytes/user': round(alone.views.bytes / alone.views.entries, 1),
    });
    ctx.note(
      'view-topic: each replica starts from an empty store, and its time includes process start and joining the consumer group (a few seconds)',
    );
  },
};
