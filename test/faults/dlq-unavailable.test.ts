/**
 * Issue 8.3, second half: when the dead-letter topic cannot be written, the feed pauses — it neither
 * drops the invalid record nor applies the records after it — says so in `feedStatus`, retries, and
 * once the DLQ accepts writes again it carries on with nothing lost.
 *
 * The failure is injected in-process: the serve runtime's Kafka writer (the DLQ producer) is wrapped so
 * that its sends reject while `dlq.failing` is set, like a producer whose broker refuses the topic
 * (authorization, record too large, topic deleted). The mock cluster itself cannot refuse one topic
 * only. Everything else — kafkajs consumer, ingest handler, dead-letter sink, store — is the real code.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type * as KafkaWriterModule from '../../src/feed/kafka-writer.js';
import type { KafkaWriter } from '../../src/feed/kafka-writer.js';
import { consumeAll, produce, startKafka, type KafkaHandle } from '../utils/kafka-mock.js';
import { eventually, freshTopics, graphql, startTestServer, type TestServer } from '../utils/server.js';
import { feedStatus } from './support/reference.js';

const dlq = vi.hoisted(() => ({ failing: false, refused: 0 }));

vi.mock('../../src/feed/kafka-writer.js', async (importOriginal) => {
  const real = await importOriginal<typeof KafkaWriterModule>();
  return {
    ...real,
    createKafkaWriter: (...args: Parameters<typeof real.createKafkaWriter>): KafkaWriter => {
      const writer = real.createKafkaWriter(...args);
      return {
        ...writer,
        async send(topic, messages) {
          if (dlq.failing) {
            dlq.refused++;
            throw Object.assign(new Error(`injected: broker refuses writes to ${topic}`), {
              retriable: true,
            });
          }
          return writer.send(topic, messages);
        },
      };
    },
  };
});

let kafka: KafkaHandle;
let server: TestServer | undefined;
beforeAll(async () => {
  kafka = await startKafka();
});
afterAll(async () => {
  await server?.close();
  await kafka?.stop();
});

const json = (o: object) => JSON.stringify(o);
const tweetCount = async (url: string) =>
  (await graphql<{ user: { tweetCount: number } | null }>(url, '{ user(id: "u1") { tweetCount } }')).data
    ?.user?.tweetCount;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('dead-letter topic unavailable', () => {
  it('should pause the feed and say so while the DLQ refuses writes, then apply everything once it accepts them', async () => {
    const topics = freshTopics();
    server = await startTestServer({ brokers: kafka.brokers, topics });
    const url = server.url;
    const tweets = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, k) => ({
        key: `t${from + k}`,
        value: json({ userId: 'u1' }),
        partition: 0,
      }));
    await produce(kafka.brokers, topics.users, [{ key: 'u1', value: json({ username: 'zcox' }) }]);
    await produce(kafka.brokers, topics.tweets, tweets(0, 10));
    await eventually(
      async () => ((await tweetCount(url)) === 10 ? true : undefined),
      30_000,
      '10 tweets applied',
    );

    // One partition, so "after the invalid record" is well defined.
    dlq.failing = true;
    await produce(kafka.brokers, topics.tweets, [
      { key: 'bad', value: '{"userId":', partition: 0 },
      ...tweets(10, 20),
    ]);
    const positionOf = async () =>
      (await feedStatus(url)).partitions.find((p) => p.topic === topics.tweets && p.partition === 0)?.next;

    // The feed says why it is not moving ...
    const stalled = await eventually(
      async () => {
        const s = await feedStatus(url);
        return s.state === 'RETRYING' && /dead-letter/i.test(s.reason ?? '') ? s : undefined;
      },
      90_000,
      'feedStatus to name the dead-letter failure',
    );
    expect(stalled.reason).toContain(`${topics.tweets}.dlq`);
    // ... and, however long it lasts, nothing at or after the invalid record is applied or skipped.
    for (let i = 0; i < 5; i++) {
      expect(await tweetCount(url)).toBe(10);
      expect(await positionOf()).toBe('10');
      await sleep(500);
    }
    expect(dlq.refused).toBeGreaterThan(1); // it kept retrying
    expect(server.running.source.status().state).not.toBe('crashed');

    dlq.failing = false;
    await eventually(
      async () => ((await tweetCount(url)) === 20 ? true : undefined),
      90_000,
      'the rest applied once the DLQ accepts writes',
    );
    expect(await positionOf()).toBe('21');
    const dead = await consumeAll(kafka.brokers, `${topics.tweets}.dlq`, 1, 30_000);
    expect(
      dead.map((d) => [
        d.key?.toString(),
        d.value?.toString(),
        d.headers['matview.source.offset']?.toString(),
      ]),
    ).toEqual([['bad', '{"userId":', '10']]);
    await eventually(
      async () => ((await feedStatus(url)).state === 'RUNNING' ? true : undefined),
      60_000,
      'running again',
    );
  }, 240_000);
});
