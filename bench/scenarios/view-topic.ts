/**
 * Scenario view-topic (issue 19, the figures of docs/scaling.md): what each role costs here.
 * - materializer: a changelog workload (users first, then 40 % tweets, 30 % follows, 20 % likes, 10 % profile
 *   edits) produced into the mock cluster, then `matview serve` with VIEW_TOPIC_OUT consumes it: records/s
 *   until the stored positions reach the end offsets, then until every commit is published; its RSS; and,
 *   once stopped, the bytes of each LMDB database of its store (rows, views, counts, rankings, the published
 *   index), per row and per user. Run once more without VIEW_TOPIC_OUT: what publishing costs the ingest.
 * - replica: `matview serve` with VIEW_TOPIC_IN reads the view topic from the start: view records/s until
 *   caught up (what a new replica's catch-up costs), its RSS, and its store's bytes per user.
 * Both servers are child processes (`node bin/matview.js serve`, the flags matview ships with).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { startKafka } from '../../test/utils/kafka-mock.js';
import { encodeUserValue } from '../../src/views/view-record.js';
import { followerCounts, viewOf } from '../lib/dataset.js';
import { round, sleep, type Scenario, type ScenarioContext } from '../lib/common.js';
import {
  endOffsetsTotal,
  freshTopics,
  produceWorkload,
  quietKafka,
  rssOf,
  startMatviewProcess,
  type ServerProcess,
  type Topics,
} from '../lib/records.js';

/** Bytes and entries of every database of a stopped instance's store. */
function storeBytes(dataDir: string): Map<string, { bytes: number; entries: number }> {
  const env = open({ path: join(dataDir, 'view'), readOnly: true, maxDbs: 128 });
  const out = new Map<string, { bytes: number; entries: number }>();
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

/** Sums the databases whose name matches. */
const sum = (dbs: Map<string, { bytes: number; entries: number }>, match: RegExp) =>
  [...dbs]
    .filter(([n]) => match.test(n))
    .reduce((a, [, v]) => ({ bytes: a.bytes + v.bytes, entries: a.entries + v.entries }), {
      bytes: 0,
      entries: 0,
    });

/** The sum of the next offsets a server has stored, from its metrics-free feedStatus. */
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

/** Polls until `done`, returning the seconds it took (or NaN after `limitMs`). */
async function timeUntil(done: () => Promise<boolean>, limitMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < limitMs) {
    if (await done().catch(() => false)) return (performance.now() - t0) / 1000;
    await sleep(100);
  }
  return NaN;
}

const common = (dir: string) => ({
  DATA_DIR: dir,
  KAFKA_FETCH_MAX_WAIT_MS: '50',
  LMDB_MAP_SIZE_MB: '4096',
});
const topicEnv = (t: Topics) => ({
  TOPIC_USERS: t.users,
  TOPIC_TWEETS: t.tweets,
  TOPIC_FOLLOWS: t.follows,
  TOPIC_LIKES: t.likes,
});

async function materialize(
  ctx: ScenarioContext,
  brokers: string,
  topics: Topics,
  end: bigint,
  viewTopic: string | undefined,
): Promise<{ dir: string; seconds: number; publishedSeconds: number; rss: number }> {
  const dir = `${ctx.tmp}/materializer-${viewTopic === undefined ? 'plain' : 'publishing'}`;
  const t0 = performance.now();
  const server = await startMatviewProcess({
    ...common(dir),
    KAFKA_BROKERS: brokers,
    ...topicEnv(topics),
    ...(viewTopic === undefined ? {} : { VIEW_TOPIC_OUT: viewTopic }),
  });
  ctx.defer(() => server.stop());
  const limit = ctx.quick ? 120_000 : 1_800_000;
  await timeUntil(async () => (await applied(server)) >= end, limit);
  const seconds = (performance.now() - t0) / 1000;
  const publishedSeconds =
    viewTopic === undefined
      ? NaN
      : (await timeUntil(
          async () =>
            (await metric(server, 'matview_view_topic_unpublished_commits')) === 0 &&
            (await metric(server, 'matview_view_topic_pending_users')) === 0,
          limit,
        )) + seconds;
  const rss = rssOf(server.pid, (p) => readFileSync(p, 'utf8'));
  await server.stop();
  return { dir, seconds, publishedSeconds, rss };
}

/** Starts a replica on `topic`, times its catch-up to `records`, then measures its RSS and its store. */
async function replicaCatchUp(
  ctx: ScenarioContext,
  brokers: string,
  topic: string,
  name: string,
  records: bigint,
): Promise<{ seconds: number; rss: number; total: number; views: { bytes: number; entries: number } }> {
  const dir = `${ctx.tmp}/${name}`;
  const t0 = performance.now();
  const replica = await startMatviewProcess({ ...common(dir), KAFKA_BROKERS: brokers, VIEW_TOPIC_IN: topic });
  ctx.defer(() => replica.stop());
  const caughtUp = await timeUntil(
    async () => (await applied(replica)) >= records,
    ctx.quick ? 120_000 : 1_800_000,
  );
  const seconds = (performance.now() - t0) / 1000;
  if (Number.isNaN(caughtUp)) ctx.note(`view-topic: ${name} did not catch up within the time limit`);
  const rss = rssOf(replica.pid, (p) => readFileSync(p, 'utf8'));
  await replica.stop();
  const dbs = storeBytes(dir);
  return {
    seconds,
    rss,
    total: [...dbs.values()].reduce((n, v) => n + v.bytes, 0),
    views: sum(dbs, /^g\d+\/user-information#\d+\/views$/),
  };
}

/** Writes one view record per user (the bench data set's users) to `topic`, 4,000 per request (about 0.5 MB per partition batch). */
async function produceViews(brokers: readonly string[], topic: string, users: number): Promise<bigint> {
  const followers = followerCounts(users);
  const producer = quietKafka(brokers).producer({ allowAutoTopicCreation: true });
  await producer.connect();
  try {
    for (let start = 0; start < users; start += 4_000) {
      const messages = [];
      for (let k = start; k < Math.min(users, start + 4_000); k++)
        messages.push({ key: String(k), value: encodeUserValue(viewOf(k, followers)) });
      await producer.send({ topic, acks: 1, messages });
    }
  } finally {
    await producer.disconnect();
  }
  return endOffsetsTotal(brokers, [topic]);
}

export const viewTopic: Scenario = {
  name: 'view-topic',
  description:
    'what a materializer (VIEW_TOPIC_OUT) and a replica (VIEW_TOPIC_IN) cost: records/s, store bytes, RSS',
  async run(ctx) {
    const users = ctx.quick ? 5_000 : Number(process.env['BENCH_VIEW_TOPIC_USERS'] ?? 50_000);
    const records = ctx.quick ? 50_000 : Number(process.env['BENCH_VIEW_TOPIC_RECORDS'] ?? 1_000_000);
    const kafka = await startKafka();
    ctx.defer(() => kafka.stop());
    const brokers = kafka.brokers.join(',');
    const topics = freshTopics('view-topic');
    const produceMs = await produceWorkload(kafka.brokers, topics, 0, records, users, 19);
    const end = await endOffsetsTotal(kafka.brokers, Object.values(topics));
    ctx.log(`produced ${records} records over ${users} users in ${round(produceMs / 1000, 1)} s`);
    const out = `user-information-${Date.now().toString(36)}`;

    const plain = await materialize(ctx, brokers, topics, end, undefined);
    ctx.log(`materializer without VIEW_TOPIC_OUT: ${round(plain.seconds, 1)} s`);
    const publishing = await materialize(ctx, brokers, topics, end, out);
    ctx.log(`materializer with VIEW_TOPIC_OUT: ${round(publishing.seconds, 1)} s`);
    const viewRecords = await endOffsetsTotal(kafka.brokers, [out]);
    const m = storeBytes(publishing.dir);
    ctx.log(`store of the materializer: ${m.size} databases`);
    const rows = sum(m, /^g\d+\/rows$/);
    const views = sum(m, /^g\d+\/user-information#\d+\/views$/);
    const counts = sum(m, /^g\d+\/user-information#\d+\/counts$/);
    const rank = sum(m, /^g\d+\/top-users#\d+\//);
    const published = sum(m, /^view-topic\//);
    const total = [...m.values()].reduce((n, v) => n + v.bytes, 0);
    ctx.row('materializer: ingest', {
      records: Number(end),
      users,
      'records/s without VIEW_TOPIC_OUT': round(Number(end) / plain.seconds, 0),
      'records/s with VIEW_TOPIC_OUT': round(Number(end) / publishing.seconds, 0),
      'all published after (s)': round(publishing.publishedSeconds, 1),
      'view topic records': Number(viewRecords),
      'RSS MB without': round(plain.rss / 2 ** 20, 0),
      'RSS MB with': round(publishing.rss / 2 ** 20, 0),
    });
    ctx.row('materializer: store', {
      'total MB': round(total / 2 ** 20, 1),
      'rows: entries': rows.entries,
      'rows: bytes/row': round(rows.bytes / rows.entries, 1),
      'views: bytes/user': round(views.bytes / views.entries, 1),
      'counts: bytes/user': round(counts.bytes / counts.entries, 1),
      'rankings: bytes/user': round(rank.bytes / users, 1),
      'published index: bytes/user': round(published.bytes / Math.max(1, published.entries), 1),
    });

    const fromPublished = await replicaCatchUp(ctx, brokers, out, 'replica-published', viewRecords);
    ctx.row('replica: catch-up from the published topic', {
      'view records': Number(viewRecords),
      users,
      seconds: round(fromPublished.seconds, 1),
      'view records/s': round(Number(viewRecords) / fromPublished.seconds, 0),
      'RSS MB': round(fromPublished.rss / 2 ** 20, 0),
      'store MB': round(fromPublished.total / 2 ** 20, 1),
      'store bytes/user': round(fromPublished.total / users, 1),
      'views: bytes/user': round(fromPublished.views.bytes / fromPublished.views.entries, 1),
    });

    // A compacted view topic holds one record per user: written here in large batches (one user each), so the
    // figure is the replica's own rate rather than the mock's one-batch-per-fetch (see the note).
    const many = ctx.quick ? 20_000 : Number(process.env['BENCH_VIEW_TOPIC_REPLICA_USERS'] ?? 500_000);
    const compacted = `compacted-${Date.now().toString(36)}`;
    const produced = await produceViews(kafka.brokers, compacted, many);
    const fromCompacted = await replicaCatchUp(ctx, brokers, compacted, 'replica-compacted', produced);
    ctx.row('replica: catch-up from a compacted topic', {
      users: many,
      seconds: round(fromCompacted.seconds, 1),
      'users/s': round(many / fromCompacted.seconds, 0),
      'RSS MB': round(fromCompacted.rss / 2 ** 20, 0),
      'store MB': round(fromCompacted.total / 2 ** 20, 1),
      'store bytes/user': round(fromCompacted.total / many, 1),
      'views: bytes/user': round(fromCompacted.views.bytes / fromCompacted.views.entries, 1),
    });
    ctx.note(
      "view-topic: the mock cluster does not compact, so the replica read every view record published during the materializer's catch-up; a compacted topic holds about one per user",
    );
  },
};
