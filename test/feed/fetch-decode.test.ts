/**
 * The Fetch response decoding that takes turns of the event loop (kafkajs-internals.ts `decodeFetchV11`)
 * against kafkajs' own, on responses of a real Kafka protocol endpoint (the librdkafka mock cluster, or
 * KAFKA_BROKERS): the same fetch decoded both ways gives the same result, field for field (ours decodes
 * the records straight into the feed's records, so kafkajs' go through the feed's conversion first), for
 * record batches written by kafkajs (plain and gzip) and by librdkafka (lz4, headers, a tombstone), and for a
 * partition whose data the broker cut inside a record batch (maxBytes). And it takes a turn between every
 * two record batches once its slice is spent, none within its slice.
 */
import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClusterClient } from '../../src/feed/kafka-client.js';
import {
  READ_COMMITTED,
  fetchLenient,
  type FetchResponse,
  type KafkajsBroker,
  type KafkajsCluster,
} from '../../src/feed/kafkajs-internals.js';
import type { DecodeTurns } from '../../src/feed/loop-turns.js';
import { toFeedBatch } from '../../src/feed/partition-feed.js';
import { FetchedRecord } from '../../src/feed/record-batch.js';
import { silentLogger } from '../../src/ops/logger.js';
import { plainRecord } from '../utils/feed-records.js';
import { produce, uniqueTopic, useKafka } from '../utils/kafka-mock.js';
import { kcatProduce } from '../utils/kcat.js';

const { CompressionTypes } = kafkajs;

const kafka = useKafka();
const topic = uniqueTopic('fetch-decode');
let cluster: KafkajsCluster;
/** The leader of each partition. */
const leaders = new Map<number, KafkajsBroker>();

const row = (i: number) => JSON.stringify({ id: `k${i}`, text: 'abc '.repeat(20 + (i % 7)) });
const rows = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i}`, value: row(i) }));

beforeAll(async () => {
  // One kafkajs send is one record batch per partition; one kcat run with few records is one batch. Each is
  // written twice: the mock answers a fetch with one record batch per partition, a real broker with more.
  const writes = [
    () =>
      produce(
        kafka.brokers,
        topic,
        rows('a', 25).map((m) => ({ ...m, partition: 0 })),
      ),
    () =>
      produce(
        kafka.brokers,
        topic,
        rows('b', 25).map((m) => ({ ...m, partition: 1 })),
        { compression: CompressionTypes.GZIP },
      ),
    () =>
      produce(kafka.brokers, topic, [
        { key: 'gone', value: null, partition: 2 },
        ...rows('c', 5).map((m) => ({ ...m, partition: 2 })),
      ]),
    () =>
      kcatProduce(
        kafka.brokers,
        topic,
        rows('d', 20).map((m) => ({ ...m, headers: { source: 'kcat' } })),
        { compression: 'lz4', partition: 3 },
      ),
  ];
  for (let round = 0; round < 2; round++) for (const write of writes) await write();
  cluster = createClusterClient({
    brokers: kafka.brokers,
    clientId: 'matview-test',
    connectionTimeoutMs: 3_000,
    logger: silentLogger,
    allowAutoTopicCreation: true,
  });
  await cluster.connect();
  await cluster.addTargetTopic(topic);
  for (const p of cluster.findTopicPartitionMetadata(topic))
    leaders.set(p.partitionId, await cluster.findBroker({ nodeId: p.leader }));
});

afterAll(async () => {
  await cluster?.disconnect();
});

/** One Fetch from offset 0 of the partitions led by the broker that leads most of them. */
const fetchOnce = (maxBytes: number, turns?: DecodeTurns): Promise<FetchResponse> => {
  const led = (b: KafkajsBroker) => [...leaders].filter(([, l]) => l === b).map(([p]) => p);
  const broker = [...new Set(leaders.values())].sort((a, b) => led(b).length - led(a).length)[0]!;
  const partitions = led(broker);
  return fetchLenient(
    broker,
    {
      maxWaitTime: 100,
      minBytes: 1,
      maxBytes: 50 * 1024 * 1024,
      isolationLevel: READ_COMMITTED,
      topics: [
        { topic, partitions: partitions.map((partition) => ({ partition, fetchOffset: '0', maxBytes })) },
      ],
    },
    turns,
  );
};

/** Turns of slices of `sliceMs` (0: spent after any record batch), counting the turns taken. */
function countingTurns(sliceMs: number) {
  const counted = { turns: 0 };
  const turns: DecodeTurns = {
    sliceMs,
    next: async () => {
      counted.turns++;
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
  return { counted, turns };
}

const messagesOf = (response: FetchResponse) =>
  response.responses.flatMap((t) => t.partitions.flatMap((p) => p.messages));

/**
 * The response with each partition's records as the feed gets them: ours as decoded (every one a
 * FetchedRecord), kafkajs' through the feed's conversion of a kafkajs record (`toFeedBatch`).
 */
const delivered = (response: FetchResponse, decodedByUs: boolean) => ({
  ...response,
  responses: response.responses.map((t) => ({
    ...t,
    partitions: t.partitions.map((p) => ({
      ...p,
      messages: decodedByUs
        ? p.messages.map((m) => {
            expect(m).toBeInstanceOf(FetchedRecord);
            return plainRecord(m as FetchedRecord, m.isControlRecord);
          })
        : toFeedBatch(t.topicName, p.partition, p.messages, p.highWatermark).records.map((r, i) =>
            plainRecord(r, p.messages[i]!.isControlRecord),
          ),
    })),
  })),
});
/** One batch context per record batch (kafkajs gives every record of a batch the same object). */
const batchesOf = (response: FetchResponse) =>
  new Set(messagesOf(response).map((m) => (m as unknown as { batchContext: object }).batchContext)).size;

describe('decodeFetchV11', () => {
  it('should decode a response exactly as kafkajs does, taking a turn between every two record batches', async () => {
    const theirs = await fetchOnce(1024 * 1024);
    const { counted, turns } = countingTurns(0);
    const ours = await fetchOnce(1024 * 1024, turns);
    expect(delivered(ours, true)).toEqual(delivered(theirs, false));
    const messages = messagesOf(ours);
    // Whatever this broker put in one response (the mock: one record batch per partition), each kind of
    // record it holds came through: gzip and lz4 batches, a tombstone, headers written by kcat.
    const fetched = ours.responses[0]!.partitions.map((p) => p.partition);
    expect(messages.length).toBeGreaterThan(0);
    if (fetched.includes(2)) expect(messages.find((m) => m.key?.toString() === 'gone')?.value).toBeNull();
    if (fetched.includes(3))
      expect(messages.find((m) => m.key?.toString() === 'd0')?.headers).toEqual({
        source: Buffer.from('kcat'),
      });
    expect(batchesOf(theirs)).toBeGreaterThan(1);
    expect(counted.turns).toBe(batchesOf(theirs) - 1);
  });

  it('should take no turn within its slice', async () => {
    const theirs = await fetchOnce(1024 * 1024);
    const { counted, turns } = countingTurns(60_000);
    const ours = await fetchOnce(1024 * 1024, turns);
    expect(delivered(ours, true)).toEqual(delivered(theirs, false));
    expect(batchesOf(theirs)).toBeGreaterThan(1);
    expect(counted.turns).toBe(0);
  });

  it('should decode a fetch limited by maxBytes as kafkajs does', async () => {
    const theirs = await fetchOnce(1_500);
    const ours = await fetchOnce(1_500, countingTurns(0).turns);
    expect(delivered(ours, true)).toEqual(delivered(theirs, false));
    expect(messagesOf(ours).length).toBeGreaterThan(0);
  });
});
