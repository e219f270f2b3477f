/**
 * Issue 8.3 second half, as issue 14.4 changed it: when the dead-letter topic cannot be written (a managed
 * cluster without `<topic>.dlq`, a broker refusing the writes), the feed does not wait for it. The invalid
 * record is stored in the store's outbox with the batch that consumed it, the records after it are applied,
 * `feedStatus.deadLettersWaiting` and `matview_dlq_outbox_records` say how many wait, the outbox survives a
 * restart, and once the topic accepts writes the record arrives there, nothing lost.
 *
 * The failure is injected in-process: the serve runtime's Kafka writer (the DLQ producer) is wrapped so
 * that its sends reject while `dlq.failing` is set, like a producer whose broker refuses the topic
 * (authorization, record too large, topic missing). The mock cluster itself cannot refuse one topic only.
 * Everything else — Kafka source, ingest handler, outbox, drainer, store — is the real code.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import type * as KafkaWriterModule from '../../src/feed/kafka-writer.js';
import type { KafkaWriter } from '../../src/feed/kafka-writer.js';
import { consumeAll, produce, useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics, graphql, startTestServer, type TestServer } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';

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

const kafka = useKafka();
let server: TestServer | undefined;
afterAll(async () => {
  await server?.close();
});

const json = (o: object) => JSON.stringify(o);

interface Status {
  feedStatus: {
    state: string;
    deadLettersWaiting: number;
    partitions: { topic: string; partition: number; next: string }[];
  };
  user: { tweetCount: number } | null;
}
const status = async (url: string) =>
  (
    await graphql<Status>(
      url,
      '{ feedStatus { state deadLettersWaiting partitions { topic partition next } } user(id: "u1") { tweetCount } }',
    )
  ).data!;
const gauge = async (url: string, name: string) =>
  Number(
    new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(
      await (await fetch(`${url}/metrics`)).text(),
    )?.[1] ?? NaN,
  );

describe('dead-letter topic unavailable', () => {
  it('should go on applying while the DLQ refuses writes, keep the invalid record through a restart, and send it once the DLQ accepts', async () => {
    const topics = freshTopics();
    const dataDir = tempDir();
    server = await startTestServer({ brokers: kafka.brokers, topics, dataDir });
    const tweets = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, k) => ({
        key: `t${from + k}`,
        value: json({ userId: 'u1' }),
        partition: 0,
      }));
    await produce(kafka.brokers, topics.users, [{ key: 'u1', value: json({ username: 'zcox' }) }]);
    await produce(kafka.brokers, topics.tweets, tweets(0, 10));
    await eventually(
      async () => ((await status(server!.url)).user?.tweetCount === 10 ? true : undefined),
      30_000,
      '10 tweets',
    );

    dlq.failing = true;
    await produce(kafka.brokers, topics.tweets, [
      { key: 'bad', value: '{"userId":', partition: 0 },
      ...tweets(10, 20),
    ]);
    // The feed does not wait for the dead-letter topic: everything after the invalid record is applied.
    const applied = await eventually(
      async () => {
        const s = await status(server!.url);
        return s.user?.tweetCount === 20 ? s : undefined;
      },
      60_000,
      'the records after the invalid one applied',
    );
    expect(applied.feedStatus.state).toBe('RUNNING');
    expect(
      applied.feedStatus.partitions.find((p) => p.topic === topics.tweets && p.partition === 0)?.next,
    ).toBe('21');
    expect(applied.feedStatus.deadLettersWaiting).toBe(1);
    await eventually(async () => (dlq.refused > 1 ? true : undefined), 30_000, 'the drainer to keep trying');
    await eventually(
      async () => ((await gauge(server!.url, 'matview_dlq_outbox_records')) === 1 ? true : undefined),
      30_000,
      'the gauge',
    );
    expect(await gauge(server!.url, 'matview_dlq_write_failures_total')).toBeGreaterThan(0);

    // Still refused across a restart: the invalid record waits in the store, not in memory.
    await server.close();
    server = await startTestServer({ brokers: kafka.brokers, topics, dataDir });
    expect((await status(server.url)).feedStatus.deadLettersWaiting).toBe(1);

    dlq.failing = false;
    await eventually(
      async () => ((await status(server!.url)).feedStatus.deadLettersWaiting === 0 ? true : undefined),
      90_000,
      'the dead letter sent once the DLQ accepts writes',
    );
    const dead = await consumeAll(kafka.brokers, `${topics.tweets}.dlq`, 1, 30_000);
    expect(
      dead.map((d) => [
        d.key?.toString(),
        d.value?.toString(),
        d.headers['matview.source.offset']?.toString(),
      ]),
    ).toEqual([['bad', '{"userId":', '10']]);
    expect((await status(server.url)).user?.tweetCount).toBe(20);
  }, 240_000);
});
