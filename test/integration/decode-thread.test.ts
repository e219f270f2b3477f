/**
 * The decode thread (DECODE_THREAD, src/pipeline/decode-thread.ts) through the whole pipeline: a server that
 * starts behind a backlog produced in large sends (a fetch's batches hold hundreds of records per partition)
 * decodes them there, and ends with exact counts, its invalid records dead-lettered with their offsets, as
 * the event loop's decoding gives (test/pipeline/decode-thread.test.ts compares the two record by record).
 * On by default only on boxes with 4 cores or more (`auto`): set here, since it is the point of the test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumeAll, produce, useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics, graphql, startTestServer, type TestServer } from '../utils/server.js';

const kafka = useKafka();
const topics = freshTopics();
const USERS = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
const TWEETS = 3_000;
/** Every 97th tweet is broken JSON: dead-lettered, not counted. */
const broken = (i: number): boolean => i % 97 === 0;
let server: TestServer;

beforeAll(async () => {
  await produce(
    kafka.brokers,
    topics.users,
    USERS.map((u) => ({ key: u, value: JSON.stringify({ userId: u, username: u.toUpperCase() }) })),
  );
  await produce(
    kafka.brokers,
    topics.tweets,
    Array.from({ length: TWEETS }, (_, i) => ({
      key: `t${i}`,
      value: broken(i) ? '{"userId":' : JSON.stringify({ tweetId: `t${i}`, userId: USERS[i % USERS.length] }),
    })),
  );
  server = await startTestServer({ brokers: kafka.brokers, topics, env: { DECODE_THREAD: 'true' } });
});
afterAll(async () => {
  await server?.close();
});

const sum = async (counter: { get(): Promise<{ values: { value: number }[] }> }) =>
  (await counter.get()).values.reduce((n, v) => n + v.value, 0);

describe('the decode thread in a catch-up', () => {
  it('should decode the backlog there, to exact counts, with the broken records dead-lettered', async () => {
    const want = USERS.map((u, k) => ({
      userId: u,
      tweetCount: Array.from({ length: TWEETS }, (_, i) => i).filter(
        (i) => i % USERS.length === k && !broken(i),
      ).length,
    }));
    await eventually(
      async () => {
        const r = await graphql(
          server.url,
          'query($ids: [ID!]!) { users(ids: $ids) { userId tweetCount } }',
          {
            ids: USERS,
          },
        );
        return JSON.stringify(r.data) === JSON.stringify({ users: want }) ? true : undefined;
      },
      45_000,
      'the view of every tweet',
    );
    const metrics = server.running.metrics;
    await eventually(
      async () => ((await sum(metrics.recordsInvalid)) >= Math.ceil(TWEETS / 97) ? true : undefined),
      45_000,
      'the broken records counted',
    );
    // The tweets' batches went to the thread (the users' seven records are too few to cross).
    expect(await sum(metrics.recordsDecodedOffLoop)).toBeGreaterThan(TWEETS / 2);
    // Each broken record's copy names where it was read: the thread's verdicts kept their records.
    const source = await consumeAll(kafka.brokers, topics.tweets, TWEETS, 30_000);
    const at = new Map(source.map((r) => [r.key!.toString(), `${r.partition}/${r.offset}`]));
    const brokenKeys = Array.from({ length: TWEETS }, (_, i) => i)
      .filter(broken)
      .map((i) => `t${i}`);
    const dlq = await consumeAll(kafka.brokers, `${topics.tweets}.dlq`, brokenKeys.length, 30_000);
    const copies = dlq.map((r) => ({
      key: r.key!.toString(),
      value: r.value!.toString(),
      from: `${r.headers['matview.source.partition']?.toString()}/${r.headers['matview.source.offset']?.toString()}`,
    }));
    expect(copies.sort((a, b) => a.key.localeCompare(b.key))).toEqual(
      brokenKeys.sort().map((key) => ({ key, value: '{"userId":', from: at.get(key) })),
    );
  });
});
