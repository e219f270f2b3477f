/**
 * OFFSET_RESET_POLICY: a stored position outside what a topic holds (here: consumed past its end, as after
 * a topic was recreated) is never skipped silently. `fail` stops with a message naming the partition;
 * `rebuild` rebuilds from the earliest offsets in a shadow, not ready until it is swapped in, and the
 * view then equals the log. Against the Kafka mock and the embedded changelog (whose rebuild reads the
 * log through a second handle).
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OffsetOutOfRangeError } from '../../src/errors.js';
import { openEmbeddedChangelog } from '../../src/feed/embedded-changelog.js';
import { createKafkaSource } from '../../src/feed/kafka-source.js';
import { silentLogger } from '../../src/ops/logger.js';
import { startServer } from '../../src/wiring/runtime.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { commitInput, profile } from '../utils/changes.js';
import { produce, uniqueTopic, useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics, graphql, type TestTopics } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';
import { scrape, startOpsServer, testConfig, type OpsServer } from './helpers.js';

const kafka = useKafka();
const servers: OpsServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

const json = (o: object) => JSON.stringify(o);
const USERS = ['o1', 'o2', 'o3'];
const QUERY = `query($ids: [ID!]!) { users(ids: $ids) { userId tweetCount } }`;
const ghost = profile('ghost');

/** A store that claims to have consumed tweets[0] up to offset 5000 and holds a user the log does not have. */
async function storeAheadOfTheLog(dataDir: string, topics: TestTopics): Promise<void> {
  const store = openStore({ path: join(dataDir, 'view') });
  await store.applyBatch(
    commitInput(
      // Filed under the tweets partition's position, which is all this store claims to have consumed.
      [{ table: 'users', key: 'ghost', row: ghost, topic: topics.tweets, offset: 0 }],
      [{ topic: topics.tweets, partition: 0, next: '5000' }],
    ),
  );
  await store.close();
}

async function produceLog(topics: TestTopics) {
  await produce(
    kafka.brokers,
    topics.users,
    USERS.map((u) => ({ key: u, value: json({ username: u }) })),
  );
  await produce(
    kafka.brokers,
    topics.tweets,
    Array.from({ length: 30 }, (_, i) => ({
      key: `t${i}`,
      value: json({ userId: USERS[i % 3] }),
      partition: 0,
    })),
  );
}

const expected = [
  { userId: 'o1', tweetCount: 10 },
  { userId: 'o2', tweetCount: 10 },
  { userId: 'o3', tweetCount: 10 },
  null,
];

describe('OFFSET_RESET_POLICY', () => {
  it('fail: should refuse to start, naming the partition and what to do', async () => {
    const topics = freshTopics();
    await produceLog(topics);
    const dataDir = tempDir();
    await storeAheadOfTheLog(dataDir, topics);
    const config = testConfig({
      brokers: kafka.brokers,
      topics,
      dataDir,
      env: { OFFSET_RESET_POLICY: 'fail' },
    });
    const error = await startServer(config, silentLogger).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OffsetOutOfRangeError);
    expect((error as OffsetOutOfRangeError).message).toBe(
      `Stored positions are out of range: ${topics.tweets}[0] was consumed up to offset 5000 but the topic now ends at 30 ` +
        '(it was deleted and recreated, or the log was replaced). Set OFFSET_RESET_POLICY=rebuild to rebuild the view from the ' +
        'earliest offsets, or restore a newer snapshot (matview restore).',
    );
    // Nothing was changed and the store is released: it opens again.
    const store = openStore({ path: join(dataDir, 'view'), create: false });
    expect({ pos: store.position(topics.tweets, 0), owner: store.liveOwner() }).toEqual({
      pos: '5000',
      owner: undefined,
    });
    await store.close();
  });

  it('rebuild (default): should rebuild from the earliest offsets, not ready until the shadow is swapped in', async () => {
    const topics = freshTopics();
    await produceLog(topics);
    const dataDir = tempDir();
    await storeAheadOfTheLog(dataDir, topics);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const atSwap = new Promise<void>((r) => (holding = r));
    const server = await startOpsServer(
      { brokers: kafka.brokers, topics, dataDir },
      {
        beforeSwap: async () => {
          holding();
          await held;
        },
      },
    );
    servers.push(server);
    await atSwap;
    const notReady = await fetch(`${server.url}/health/ready`);
    expect({ status: notReady.status, body: await notReady.text() }).toEqual({
      status: 503,
      body: expect.stringContaining('stored positions were out of range') as unknown as string,
    });
    release();
    await eventually(
      async () => ((await fetch(`${server.url}/health/ready`)).status === 200 ? true : undefined),
      45_000,
      'ready',
    );
    expect((await graphql(server.url, QUERY, { ids: [...USERS, 'ghost'] })).data).toEqual({
      users: expected,
    });
    expect(
      (await scrape(server.url)).sum('matview_view_swaps_total', { reason: 'offset-out-of-range' }),
    ).toBe(1);
    expect(server.running.store.position(topics.tweets, 0)).toBe('30');
  });

  it('rebuild with the embedded changelog: a replaced log is rebuilt through a second handle on it', async () => {
    const topics = freshTopics();
    const dataDir = tempDir();
    const log = await openEmbeddedChangelog({
      dir: join(dataDir, 'changelog'),
      logger: silentLogger,
      partitions: 1,
    });
    await log.send(
      topics.users,
      USERS.map((u) => ({ key: u, value: json({ username: u }) })),
    );
    await log.send(
      topics.tweets,
      Array.from({ length: 30 }, (_, i) => ({ key: `t${i}`, value: json({ userId: USERS[i % 3] }) })),
    );
    await log.close();
    await storeAheadOfTheLog(dataDir, topics);

    const server = await startOpsServer({ topics, dataDir });
    servers.push(server);
    await eventually(
      async () => ((await fetch(`${server.url}/health/ready`)).status === 200 ? true : undefined),
      45_000,
      'ready',
    );
    expect((await graphql(server.url, QUERY, { ids: [...USERS, 'ghost'] })).data).toEqual({
      users: expected,
    });
    // The live feed goes on in the new generation.
    await (server.running.writer as { send: typeof log.send }).send(topics.tweets, [
      { key: 't99', value: json({ userId: 'o1' }) },
    ]);
    await eventually(
      async () => {
        const r = await graphql<{ users: { tweetCount: number }[] }>(server.url, QUERY, { ids: ['o1'] });
        return r.data?.users[0]?.tweetCount === 11 ? true : undefined;
      },
      30_000,
      'a record after the swap',
    );
  });

  it('Kafka source: should report a stored position the broker answers OFFSET_OUT_OF_RANGE for (kafkajs only logs it)', async () => {
    const topics = freshTopics();
    await produce(
      kafka.brokers,
      topics.tweets,
      [0, 1, 2].map((i) => ({ key: `t${i}`, value: json({ userId: 'x' }), partition: 0 })),
    );
    const source = createKafkaSource({
      brokers: kafka.brokers,
      clientId: 'matview-test',
      connectionTimeoutMs: 3000,
      logger: silentLogger,
      groupId: uniqueTopic('reset'),
      fetchMaxWaitMs: 50,
    });
    const reported: string[] = [];
    try {
      await source.start({
        topics: [topics.tweets],
        resumeFrom: (_topic, partition) => (partition === 0 ? '1000' : undefined),
        handler: async () => undefined,
        onFatal: () => undefined,
        onOffsetOutOfRange: (topic, partition) => reported.push(`${topic}[${partition}]`),
      });
      await eventually(() => (reported.length > 0 ? true : undefined), 30_000, 'the reset to be reported');
    } finally {
      await source.stop();
    }
    expect(reported[0]).toBe(`${topics.tweets}[0]`);
  });
});
