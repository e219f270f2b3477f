/**
 * Issue 19 on the mock cluster, in-process: a materializing instance publishes its view (VIEW_TOPIC_OUT) and a
 * replica (VIEW_TOPIC_IN) serves it: the replica equals the reference model (CONTRACT.md §2 over the
 * changelogs read back) through `users`, REST, federation, the rankings and the totals; a subscriber on the
 * replica sees its users' changes in order and ends where a subscriber on the materializer ends; a record it
 * cannot decode goes to `<topic>.dlq`. A materializer whose cold start loads the history in bulk publishes
 * what it loaded, and a replica serves it. Then a replica fed by an independent producer (this test writes the
 * view topic from the reference model, as another engine would) serves it just the same.
 *
 * The multi-process faults (SIGKILL of the materializer and of replicas, a replica started late) are in
 * test/faults/view-topic-replicas.test.ts.
 */
import type { Client } from 'graphql-ws';
import kafkajs from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { expectServedViewEquals, readTopics, servedView } from '../faults/support/reference.js';
import { changeStream, produceContinuously } from '../faults/support/workload.js';
import {
  lastOf,
  orderProblem,
  prng,
  record,
  USERS_CHANGED,
  wsClient,
  type Recording,
} from '../live/helpers.js';
import { consumeAll, consumeUpTo, uniqueTopic, useKafka } from '../utils/kafka-mock.js';
import { userChanges } from '../../src/store/types.js';
import { encodeUserValue } from '../../src/views/view-record.js';
import {
  computeReference,
  PROFILE,
  REFERENCE_TABLES,
  type RefRecord,
  type Reference,
} from '../utils/reference.js';
import { eventually, freshTopics, graphql, startTestServer, type TestServer } from '../utils/server.js';

const { Kafka, logLevel } = kafkajs;

const kafka = useKafka();
const servers: TestServer[] = [];
const clients: Client[] = [];
afterAll(async () => {
  for (const c of clients) await c.dispose();
  for (const s of servers) await s.close();
});

async function serve(env: Record<string, string>): Promise<TestServer> {
  const server = await startTestServer({ brokers: kafka.brokers, topics: freshTopics(), env });
  servers.push(server);
  return server;
}

/** The served view equals the reference, eventually (the view topic is a hop behind the materializer). */
async function converged(server: TestServer, reference: Reference, what: string): Promise<void> {
  await eventually(
    async () => {
      const served = await servedView(server.url, reference.userIds);
      return reference.userIds.every(
        (id) => JSON.stringify(served.get(id) ?? null) === JSON.stringify(reference.users.get(id) ?? null),
      )
        ? true
        : undefined;
    },
    90_000,
    what,
  );
  await expectServedViewEquals(server.url, reference);
}

function expectDashboardEquals(server: TestServer, reference: Reference): void {
  const { store } = server.running;
  expect(store.totals()).toMatchObject(reference.totals);
  for (const ranking of ['FOLLOWERS', 'TWEETS', 'LIKES', 'FOLLOWING'] as const)
    expect(store.topUserIds(ranking, 100), `top users by ${ranking}`).toEqual(reference.top(ranking, 100));
}

async function produce(
  topic: string,
  messages: { key: Buffer | string; value: string | null; headers?: Record<string, string> }[],
) {
  const producer = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING }).producer({
    allowAutoTopicCreation: true,
  });
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages });
  } finally {
    await producer.disconnect();
  }
}

describe('a view topic between a materializer and a replica', () => {
  it('should serve on the replica what the materializer serves, subscriptions included', async () => {
    const viewTopic = uniqueTopic('user-information');
    const materializer = await serve({ VIEW_TOPIC_OUT: viewTopic, VIEW_TOPIC_HEARTBEAT_MS: '500' });
    const replica = await serve({ VIEW_TOPIC_IN: viewTopic });
    const ids = Array.from({ length: 30 }, (_, i) => `u${i}`);
    const subscribe = (server: TestServer): Recording => {
      const c = wsClient(server.url);
      clients.push(c);
      return record(c, USERS_CHANGED, { ids });
    };
    const onReplica = subscribe(replica);
    const onMaterializer = subscribe(materializer);
    await eventually(() => (onReplica.events.length >= ids.length ? true : undefined), 30_000, 'snapshots');

    const topics = materializer.config.topics;
    const producing = produceContinuously(kafka.brokers, topics, changeStream(1919, ids.length), {
      perChunk: 150,
      pauseMs: 100,
      maxRecords: 1_500,
      maxMs: 60_000,
    });
    await eventually(() => (producing.produced() >= 1_500 ? true : undefined), 90_000, 'the traffic');
    await producing.stop();
    const reference = computeReference(await referenceRecords(topics));

    await converged(materializer, reference, 'the materializer to equal the reference');
    await converged(replica, reference, 'the replica to equal the reference');
    expectDashboardEquals(replica, reference);

    // REST: the same bytes as the materializer's; federation resolves entities from the replica.
    for (const id of ids.slice(0, 5)) {
      const [a, b] = await Promise.all(
        [materializer, replica].map((s) =>
          fetch(`${s.url}/users/${id}`).then(async (r) => [r.status, await r.text()]),
        ),
      );
      expect(b, `GET /users/${id}`).toEqual(a);
    }
    const present = ids.find((id) => reference.users.get(id) !== null)!;
    const entities = await graphql<{ _entities: { userId: string; followerCount: number }[] }>(
      replica.url,
      'query($r: [_Any!]!) { _entities(representations: $r) { ... on User { userId followerCount } } }',
      { r: [{ __typename: 'User', userId: present }] },
    );
    expect(entities.data?._entities).toEqual([
      { userId: present, followerCount: reference.users.get(present)!.followerCount },
    ]);

    // Every user's versions are the materializer's; the subscriber on the replica saw them in order and ends
    // with the same state as the one on the materializer.
    const served = await servedVersions(materializer, ids);
    expect(await servedVersions(replica, ids)).toEqual(served);
    await eventually(
      () =>
        ids.every(
          (id) =>
            JSON.stringify(lastOf(id, onReplica.events)?.user ?? null) ===
            JSON.stringify(lastOf(id, onMaterializer.events)?.user ?? null),
        )
          ? true
          : undefined,
      30_000,
      'the last events to agree',
    );
    expect(onReplica.events.filter((e) => e.kind !== 'SNAPSHOT').length).toBeGreaterThan(ids.length);
    for (const id of ids) {
      expect(orderProblem(id, onReplica.events)).toBeUndefined();
      const last = lastOf(id, onReplica.events)!;
      expect(last.user === null ? null : last.user.version.sequence).toBe(served.get(id) ?? null);
    }
    const seenOnMaterializer = new Map(
      onMaterializer.events.flatMap((e) =>
        e.user === null ? [] : [[`${e.userId}@${e.user.version.sequence}`, e.user]],
      ),
    );
    for (const e of onReplica.events) {
      if (e.user === null || e.kind === 'SNAPSHOT') continue;
      const same = seenOnMaterializer.get(`${e.userId}@${e.user.version.sequence}`);
      // Each state the replica shows is one the materializer committed (unless its subscriber conflated it).
      if (same !== undefined) expect(e.user).toEqual(same);
    }

    const status = await graphql<{
      feedStatus: { ready: boolean; reason: string | null; partitions: { topic: string }[] };
    }>(replica.url, '{ feedStatus { ready reason partitions { topic } } }');
    expect(status.data?.feedStatus.ready).toBe(true);
    expect(new Set(status.data?.feedStatus.partitions.map((p) => p.topic))).toEqual(new Set([viewTopic]));
    const metrics = await (await fetch(`${replica.url}/metrics`)).text();
    expect(metrics).toMatch(/^matview_view_topic_producer_age_seconds \d/m);
    const published = await (await fetch(`${materializer.url}/metrics`)).text();
    expect(published).toMatch(/^matview_view_topic_records_published_total\{kind="view"\} [1-9]/m);

    // A record the replica cannot decode goes to the DLQ, and the replica goes on.
    await produce(viewTopic, [{ key: 'broken', value: '{"username": 42}' }]);
    const [dlq] = await consumeAll(kafka.brokers, `${viewTopic}.dlq`, 1, 60_000);
    expect(dlq!.key?.toString()).toBe('broken');
    expect(dlq!.headers['matview.error.code']?.toString()).toBe('MV_ERR_RECORD_FIELD_TYPE');
    expect(dlq!.headers['matview.source.topic']?.toString()).toBe(viewTopic);
  }, 240_000);

  it('should carry every value the materializer committed, in order, through a rebuild and its swap', async () => {
    const viewTopic = uniqueTopic('user-information');
    const materializer = await serve({ VIEW_TOPIC_OUT: viewTopic });
    const { store } = materializer.running;
    // Every value committed per user, as the topic carries it (a swap's commit included: its event is the diff).
    const committed = new Map<string, (Record<string, unknown> | null)[]>();
    store.onCommit((event) => {
      for (const [userId, view] of userChanges(event)) {
        const list = committed.get(userId) ?? [];
        list.push(view === null ? null : (JSON.parse(encodeUserValue(view)) as Record<string, unknown>));
        committed.set(userId, list);
      }
    });
    const producing = produceContinuously(kafka.brokers, materializer.config.topics, changeStream(2323, 25), {
      perChunk: 60,
      pauseMs: 80,
      maxRecords: 1_500,
      maxMs: 90_000,
    });
    await eventually(() => (producing.produced() >= 500 ? true : undefined), 60_000, 'traffic');
    // A rebuild while the traffic goes on: its swap is published exactly as it read.
    await materializer.running.rebuild.start('requested');
    await eventually(
      () =>
        materializer.running.rebuild.state() === 'idle' && store.activeGeneration().id > 1 ? true : undefined,
      60_000,
      'the rebuild to swap',
    );
    await eventually(() => (producing.produced() >= 1_500 ? true : undefined), 90_000, 'the traffic');
    await producing.stop();
    const reference = computeReference(await referenceRecords(materializer.config.topics));
    await converged(materializer, reference, 'the materializer to equal the reference');
    await eventually(
      async () => {
        const text = await (await fetch(`${materializer.url}/metrics`)).text();
        return /^matview_view_topic_outbox_changes 0$/m.test(text) &&
          /^matview_view_topic_unpublished_commits 0$/m.test(text)
          ? true
          : undefined;
      },
      60_000,
      'everything to be published',
    );

    // The whole topic as it is now (status records keep coming after it: read up to these offsets).
    const admin = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(viewTopic);
    await admin.disconnect();
    const records = await consumeUpTo(
      kafka.brokers,
      viewTopic,
      ends.map((e) => ({ partition: e.partition, next: e.high })),
    );
    const carried = new Map<string, (Record<string, unknown> | null)[]>();
    const raw = new Map<string, string>();
    for (const r of records) {
      if (r.headers['matview.view']?.toString() === 'status') continue;
      const key = r.key!.toString();
      const bytes = r.value === null || r.value.length === 0 ? 'null' : r.value.toString();
      // A repeat (after a crash or a capture of a user with changes waiting) follows the same value.
      if (raw.get(key) === bytes) continue;
      raw.set(key, bytes);
      const list = carried.get(key) ?? [];
      list.push(JSON.parse(bytes) as Record<string, unknown> | null);
      carried.set(key, list);
    }
    expect(committed.size).toBeGreaterThan(20);
    expect(Object.fromEntries(carried)).toEqual(Object.fromEntries(committed));
  }, 240_000);

  it("should publish a cold start's bulk load, so that a replica serves what the materializer loaded", async () => {
    // The history first: the materializer's store is empty, so it loads it as a rebuild
    // (COLD_START_BULK_LOAD, src/wiring/cold-start.ts; the setting is the point: 2,000 records are below the
    // `auto` threshold) and publishes the loaded view when it swaps in.
    const topics = freshTopics();
    const producing = produceContinuously(kafka.brokers, topics, changeStream(4141, 30), {
      perChunk: 200,
      pauseMs: 0,
      maxRecords: 2_000,
      maxMs: 60_000,
    });
    await eventually(() => (producing.produced() >= 2_000 ? true : undefined), 60_000, 'the history');
    await producing.stop();
    const viewTopic = uniqueTopic('user-information');
    const materializer = await startTestServer({
      brokers: kafka.brokers,
      topics,
      env: { VIEW_TOPIC_OUT: viewTopic, COLD_START_BULK_LOAD: 'true' },
    });
    servers.push(materializer);
    const reference = computeReference(await referenceRecords(topics));
    await converged(materializer, reference, 'the materializer to equal the reference');
    const metrics = await (await fetch(`${materializer.url}/metrics`)).text();
    expect(metrics).toMatch(/^matview_view_swaps_total\{reason="cold-start"\} 1$/m);

    const replica = await serve({ VIEW_TOPIC_IN: viewTopic });
    await converged(replica, reference, 'the replica to equal the reference');
    expectDashboardEquals(replica, reference);
  }, 180_000);

  it('should serve a view topic written by another producer (the reference model, as any engine would)', async () => {
    const random = prng(77);
    const records: RefRecord[] = [];
    for (let i = 0; i < 400; i++) records.push(randomRecord(random, i));
    const reference = computeReference(records);
    const viewTopic = uniqueTopic('engine-views');
    // Values as another engine writes them: seed 002's fields and a version with only a sequence; every user
    // first appears with stale counts (repeated later with the right ones), deleted users get a tombstone.
    const messages: { key: Buffer | string; value: string | null; headers?: Record<string, string> }[] = [];
    let sequence = 1000;
    for (const id of reference.userIds) {
      const user = reference.users.get(id) ?? null;
      const row = {
        userId: id,
        username: `gone_${id}`,
        tweetCount: 99,
        followingCount: 0,
        followerCount: 0,
        likeCount: 0,
      };
      messages.push({
        key: id,
        value: JSON.stringify({ ...row, version: { sequence: String(sequence++) } }),
      });
      messages.push({
        key: id,
        value: user === null ? null : JSON.stringify({ ...user, version: { sequence: String(sequence++) } }),
      });
    }
    messages.push({
      key: Buffer.alloc(0),
      value: JSON.stringify({
        producer: { id: 'ksqldb', at: new Date().toISOString(), ready: true },
        totals: { ...reference.totals, version: { sequence: String(sequence) } },
      }),
      headers: { 'matview.view': 'status' },
    });
    messages.push({ key: 'FOLLOWERS', value: '["a"]', headers: { 'matview.view': 'top-users' } });
    await produce(viewTopic, messages);

    const replica = await serve({ VIEW_TOPIC_IN: viewTopic, VIEW_TOPIC_MAX_SILENCE_MS: '0' });
    await converged(replica, reference, 'the replica to serve the independent topic');
    expectDashboardEquals(replica, reference);
    const user = reference.userIds.find((id) => reference.users.get(id) !== null)!;
    const view = await graphql<{
      user: { version: { source: { topic: string } }; joinedDate: string | null };
    }>(
      replica.url,
      'query($id: ID!) { user(id: $id) { joinedDate version { sequence appliedAt eventTime source { topic partition offset } } } }',
      { id: user },
    );
    // What the engine left out is filled from the record itself (docs/view-topic.md).
    expect(view.data?.user.version.source.topic).toBe(viewTopic);
    expect(view.data?.user.joinedDate).toBe(reference.users.get(user)!['joinedDate']);
    const metrics = await (await fetch(`${replica.url}/metrics`)).text();
    expect(metrics).toMatch(/^matview_view_topic_records_ignored_total\{view="top-users"\} 1$/m);

    // A rebuild reads the topic again into a shadow and swaps it in: same view, no version going back.
    const before = await servedVersions(replica, reference.userIds);
    await replica.running.rebuild.start('requested');
    await eventually(
      () =>
        replica.running.rebuild.state() === 'idle' && replica.running.store.activeGeneration().id > 1
          ? true
          : undefined,
      60_000,
      'the rebuild to swap',
    );
    await expectServedViewEquals(replica.url, reference);
    expectDashboardEquals(replica, reference);
    for (const [id, sequence] of await servedVersions(replica, reference.userIds))
      expect(BigInt(sequence), id).toBeGreaterThanOrEqual(BigInt(before.get(id)!));
  }, 120_000);
});

/** The changelogs read back, in the form the reference model takes. */
async function referenceRecords(topics: Parameters<typeof readTopics>[1]): Promise<RefRecord[]> {
  const read = await readTopics(kafka.brokers, topics);
  return REFERENCE_TABLES.flatMap((table) =>
    read[table].map((r) => ({
      table,
      key: r.key!.toString(),
      value:
        r.value === null || r.value.length === 0
          ? null
          : (JSON.parse(r.value.toString()) as Record<string, unknown>),
    })),
  );
}

async function servedVersions(server: TestServer, ids: readonly string[]): Promise<Map<string, string>> {
  const r = await graphql<{ users: ({ userId: string; version: { sequence: string } } | null)[] }>(
    server.url,
    'query($ids: [ID!]!) { users(ids: $ids) { userId version { sequence } } }',
    { ids },
  );
  return new Map((r.data?.users ?? []).flatMap((u) => (u === null ? [] : [[u.userId, u.version.sequence]])));
}

/** A random contract record over 25 users (the reference model's input; never decoded by matview here). */
function randomRecord(random: () => number, i: number): RefRecord {
  const user = () => `e${Math.floor(random() * 25)}`;
  const r = random();
  if (r < 0.25) {
    const id = user();
    if (random() < 0.15) return { table: 'users', key: id, value: null };
    const profile: Record<string, unknown> = { userId: id, username: `name_${id}` };
    for (const f of PROFILE)
      if (f !== 'username' && f !== 'joinedDate' && random() < 0.3) profile[f] = `${f} ${i} "é"`;
    if (random() < 0.3) profile['joinedDate'] = new Date(Date.UTC(2010, 0, 1) + i * 86_400_000).toISOString();
    return { table: 'users', key: id, value: profile };
  }
  if (r < 0.55)
    return {
      table: 'tweets',
      key: `t${Math.floor(random() * 60)}`,
      value: random() < 0.1 ? null : { userId: user() },
    };
  if (r < 0.8)
    return {
      table: 'follows',
      key: `f${Math.floor(random() * 60)}`,
      value: random() < 0.1 ? null : { followerId: user(), followeeId: user() },
    };
  return {
    table: 'likes',
    key: `l${Math.floor(random() * 60)}`,
    value: random() < 0.1 ? null : { userId: user(), tweetId: 't' },
  };
}
