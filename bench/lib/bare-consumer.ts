/**
 * A bare kafkajs consumer in its own process: what the Kafka client alone gets out of the mock cluster, with
 * nothing of matview on the path (no decode, no materializer, no store), so the bench can tell the client's
 * and the broker's share of a figure from ours.
 *
 *   node --import tsx bench/lib/bare-consumer.ts '<json BareConsumerOptions>'
 *
 * Readers:
 * - `group`: a kafkajs consumer group, as matview's feed uses today (eachBatch, 16 partitions at once, no
 *   offset commits), subscribed to every topic;
 * - `fetch`: kafkajs' raw fetch path (its internal Cluster and Broker.fetch, the protocol decoding included):
 *   one loop per leader broker, each with one Fetch in flight for all of its partitions, no group.
 * Modes:
 * - `drain`: from the earliest offsets until the end offsets; sends `{ drained }` with the times, and exits;
 * - `latency`: from the end offsets on; every record's Kafka timestamp and receive time − that timestamp are
 *   kept, and each `take` message from the parent is answered with `{ samples }` (and the lists restart).
 * Sends `{ started }` once it is fetching. Times are epoch milliseconds (performance.timeOrigin + now).
 */
import { createRequire } from 'node:module';
import kafkajs from 'kafkajs';
import type { Broker } from 'kafkajs';

export interface BareConsumerOptions {
  readonly brokers: readonly string[];
  readonly topics: readonly string[];
  readonly reader: 'group' | 'fetch';
  readonly mode: 'drain' | 'latency';
  /** Fetch max wait (ms), as matview's KAFKA_FETCH_MAX_WAIT_MS. */
  readonly maxWaitMs: number;
}

export type BareConsumerMessage =
  | { readonly started: number }
  | { readonly drained: { records: number; startedAt: number; firstAt: number; doneAt: number } }
  | { readonly samples: { timestamps: number[]; latencies: number[] } };

const { Kafka, logLevel } = kafkajs;
const now = () => performance.timeOrigin + performance.now();
const send = (m: BareConsumerMessage) => process.send?.(m);

interface Position {
  readonly topic: string;
  readonly partition: number;
  next: bigint;
  readonly end: bigint;
}

/** Per-record hook of both readers: offsets and Kafka timestamps of one partition's fetched records. */
type OnRecords = (count: number, timestamps: () => Iterable<string>) => void;

async function positions(options: BareConsumerOptions): Promise<Position[]> {
  const admin = new Kafka({ brokers: [...options.brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const out: Position[] = [];
    for (const topic of options.topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        const start = options.mode === 'drain' ? p.low : p.high;
        out.push({ topic, partition: p.partition, next: BigInt(start), end: BigInt(p.high) });
      }
    }
    return out;
  } finally {
    await admin.disconnect();
  }
}

async function runGroup(options: BareConsumerOptions, onRecords: OnRecords): Promise<void> {
  const consumer = new Kafka({
    brokers: [...options.brokers],
    clientId: 'matview-bench-bare',
    logLevel: logLevel.NOTHING,
  }).consumer({
    groupId: `matview-bench-bare-${process.pid}-${Date.now().toString(36)}`,
    maxWaitTimeInMs: options.maxWaitMs,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [...options.topics], fromBeginning: options.mode === 'drain' });
  let started = false;
  consumer.on(consumer.events.FETCH, () => {
    if (!started) send({ started: now() });
    started = true;
  });
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: 16,
    eachBatch: async ({ batch }) => {
      onRecords(batch.messages.length, () => batch.messages.map((m) => m.timestamp));
    },
  });
}

async function runFetch(
  options: BareConsumerOptions,
  onRecords: OnRecords,
  all: readonly Position[],
): Promise<void> {
  // kafkajs keeps its protocol client internal; it has no `exports` map, so its modules can be required.
  const require = createRequire(import.meta.url);
  const Cluster = require('kafkajs/src/cluster/index.js') as new (o: object) => {
    connect(): Promise<void>;
    addMultipleTargetTopics(topics: string[]): Promise<void>;
    findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
    findBroker(o: { nodeId: string }): Promise<Broker>;
  };
  const { createLogger, LEVELS } = require('kafkajs/src/loggers/index.js') as {
    createLogger(o: object): unknown;
    LEVELS: { NOTHING: number };
  };
  const LoggerConsole = require('kafkajs/src/loggers/console.js') as unknown;
  const socketFactory = (require('kafkajs/src/network/socketFactory.js') as () => unknown)();
  const cluster = new Cluster({
    logger: createLogger({ level: LEVELS.NOTHING, logCreator: LoggerConsole }),
    socketFactory,
    brokers: [...options.brokers],
    clientId: 'matview-bench-fetch',
    connectionTimeout: 3_000,
    allowAutoTopicCreation: false,
  });
  await cluster.connect();
  await cluster.addMultipleTargetTopics([...options.topics]);
  const byLeader = new Map<string, Position[]>();
  for (const topic of options.topics) {
    const mine = all.filter((p) => p.topic === topic);
    const leaders = cluster.findLeaderForPartitions(
      topic,
      mine.map((p) => p.partition),
    );
    for (const [nodeId, partitions] of Object.entries(leaders)) {
      const list = byLeader.get(nodeId) ?? [];
      list.push(...mine.filter((p) => partitions.includes(p.partition)));
      byLeader.set(nodeId, list);
    }
  }
  send({ started: now() });
  await Promise.all(
    [...byLeader].map(async ([nodeId, partitions]) => {
      const broker = await cluster.findBroker({ nodeId });
      for (;;) {
        const wanted = options.mode === 'drain' ? partitions.filter((p) => p.next < p.end) : partitions;
        if (wanted.length === 0) return;
        const topics = options.topics
          .map((topic) => ({
            topic,
            partitions: wanted
              .filter((p) => p.topic === topic)
              .map((p) => ({ partition: p.partition, fetchOffset: String(p.next), maxBytes: 1_048_576 })),
          }))
          .filter((t) => t.partitions.length > 0);
        // The kafkajs consumer's defaults: 1 MB per partition, 10 MB per response, read uncommitted.
        const res = (await broker.fetch({
          replicaId: -1,
          isolationLevel: 0,
          maxWaitTime: options.maxWaitMs,
          minBytes: 1,
          maxBytes: 10_485_760,
          topics,
        } as never)) as unknown as {
          responses: {
            topicName: string;
            partitions: { partition: number; messages: { offset: string; timestamp: string }[] }[];
          }[];
        };
        for (const t of res.responses) {
          for (const p of t.partitions) {
            const at = partitions.find((x) => x.topic === t.topicName && x.partition === p.partition);
            if (at === undefined) continue;
            // A record batch starts where it starts: skip what precedes the offset asked for.
            const fresh = p.messages.filter((m) => BigInt(m.offset) >= at.next);
            if (fresh.length === 0) continue;
            at.next = BigInt(fresh[fresh.length - 1]!.offset) + 1n;
            onRecords(fresh.length, () => fresh.map((m) => m.timestamp));
          }
        }
      }
    }),
  );
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as BareConsumerOptions;
  process.on('disconnect', () => process.exit(0));
  let samples = { timestamps: [] as number[], latencies: [] as number[] };
  process.on('message', () => {
    send({ samples });
    samples = { timestamps: [], latencies: [] };
  });
  const all = await positions(options);
  let total = 0n;
  for (const p of all) total += p.end - p.next;
  const startedAt = now();
  let records = 0;
  let firstAt = 0;
  const onRecords: OnRecords = (count, timestamps) => {
    const at = now();
    if (options.mode === 'latency') {
      for (const t of timestamps()) {
        samples.timestamps.push(Number(t));
        samples.latencies.push(at - Number(t));
      }
      return;
    }
    if (records === 0) firstAt = at;
    records += count;
    if (BigInt(records) >= total) {
      send({ drained: { records, startedAt, firstAt, doneAt: at } });
      setTimeout(() => process.exit(0), 50);
    }
  };
  await (options.reader === 'group' ? runGroup(options, onRecords) : runFetch(options, onRecords, all));
}

await main();
