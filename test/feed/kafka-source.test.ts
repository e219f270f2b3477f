/**
 * The Kafka source against a real Kafka protocol endpoint (the librdkafka mock cluster, or
 * KAFKA_BROKERS). Each test uses fresh topics and group ids; nothing asserts on timing: waits poll a
 * condition under a generous deadline. The source joins no consumer group, so a source started again
 * with the same group id fetches at once (no join delay, no session to wait out).
 */
import kafkajs from 'kafkajs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerCodecs, type KafkaCodec } from '../../src/feed/codecs.js';
import { createKafkaSource, toFeedBatch } from '../../src/feed/kafka-source.js';
import { MAX_BATCHES_OUT } from '../../src/feed/partition-feed.js';
import type {
  FeedBatch,
  FeedHandler,
  FeedRecord,
  FeedSource,
  FeedStartOptions,
} from '../../src/feed/types.js';
import { FeedCrashError, StoreStoppingError, StoreWriteError } from '../../src/errors.js';
import { silentLogger, type Logger } from '../../src/ops/logger.js';
import { produce, uniqueTopic, useKafka } from '../utils/kafka-mock.js';
import { kcatProduce } from '../utils/kcat.js';

const { CompressionCodecs, CompressionTypes } = kafkajs;

const kafka = useKafka();
const sources: FeedSource[] = [];

// Count real decompressions per codec, to prove each compressed path was exercised (librdkafka
// silently sends uncompressed when compression does not pay off, so payloads are compressible).
const decompressions = { gzip: 0, snappy: 0, lz4: 0, zstd: 0 };
const originalCodecs = new Map<number, () => unknown>();

beforeAll(async () => {
  registerCodecs();
  const types = {
    gzip: CompressionTypes.GZIP,
    snappy: CompressionTypes.Snappy,
    lz4: CompressionTypes.LZ4,
    zstd: CompressionTypes.ZSTD,
  } as const;
  const table = CompressionCodecs as unknown as Record<number, () => KafkaCodec>;
  for (const [name, type] of Object.entries(types) as [keyof typeof decompressions, number][]) {
    const original = table[type];
    if (original === undefined) throw new Error(`no codec registered for ${name}`);
    originalCodecs.set(type, original);
    table[type] = () => {
      const codec = original();
      return {
        compress: (encoder) => codec.compress(encoder),
        decompress: (buffer) => {
          decompressions[name]++;
          return codec.decompress(buffer);
        },
      };
    };
  }
});

afterAll(async () => {
  await Promise.allSettled(sources.map((s) => s.stop()));
  const table = CompressionCodecs as unknown as Record<number, () => unknown>;
  for (const [type, factory] of originalCodecs) table[type] = factory;
});

function newSource(
  groupId = uniqueTopic('matview-test-group'),
  over: Partial<Parameters<typeof createKafkaSource>[0]> = {},
): FeedSource {
  const source = createKafkaSource({
    brokers: kafka.brokers,
    clientId: 'matview-test',
    groupId,
    fetchMaxWaitMs: 50,
    connectionTimeoutMs: 2_000,
    logger: silentLogger,
    ...over,
  });
  sources.push(source);
  return source;
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
async function eventually<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Seen {
  partition: number;
  offset: string;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
}

/** The headers a record is expected to show in `seen`: those with a value. */
const withValues = (headers: Readonly<Record<string, string | null>> | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(headers ?? {}).filter((e): e is [string, string] => e[1] !== null));

const seen = (r: FeedRecord): Seen => ({
  partition: r.partition,
  offset: r.offset,
  key: r.key === null ? null : r.key.toString('utf8'),
  value: r.value === null ? null : r.value.toString('utf8'),
  headers: Object.fromEntries(
    Object.entries(r.headers).flatMap(([k, v]) => (v === undefined ? [] : [[k, v.toString('latin1')]])),
  ),
});

/** Collects batches; `handle` is overridable per test. */
function collector(handle?: (batch: FeedBatch, call: number) => Promise<void>) {
  const batches: FeedBatch[] = [];
  const failures: FeedBatch[] = [];
  let calls = 0;
  const handler: FeedHandler = async (batch) => {
    calls++;
    try {
      await handle?.(batch, calls);
    } catch (e) {
      failures.push(batch);
      throw e;
    }
    batches.push(batch);
  };
  const records = () => batches.flatMap((b) => b.records);
  return { handler, batches, failures, records };
}

function startOptions(
  topics: string[],
  handler: FeedHandler,
  over: Partial<FeedStartOptions> = {},
): FeedStartOptions & { fatal: Error[] } {
  const fatal: Error[] = [];
  return {
    topics,
    handler,
    resumeFrom: () => undefined,
    onFatal: (e) => fatal.push(e),
    fatal,
    ...over,
  };
}

const json = (o: unknown) => JSON.stringify(o);
/** Compressible, so librdkafka really compresses it. */
const row = (id: string) => json({ tweetId: id, userId: 'u1', text: `hello ${'lorem ipsum '.repeat(20)}` });

describe('toFeedBatch', () => {
  it('should keep the last value of a repeated header and normalise missing key/value to null', () => {
    const batch = toFeedBatch(
      't',
      3,
      [
        {
          offset: '7',
          timestamp: '1700000000000',
          key: null,
          value: null,
          headers: { dup: [Buffer.from('a'), Buffer.from('b')], one: Buffer.from('x') },
        },
      ],
      '8',
    );
    expect(batch).toMatchObject({ topic: 't', partition: 3, highWatermark: '8' });
    expect(batch.records.map(seen)).toEqual([
      { partition: 3, offset: '7', key: null, value: null, headers: { dup: 'b', one: 'x' } },
    ]);
  });
});

describe('Kafka source', () => {
  it('should deliver records from kafkajs and from kcat with every codec, exactly as written', async () => {
    const topic = uniqueTopic('feed-codecs');
    const expected: Seen[] = [];
    const next = [0, 0, 0, 0];
    const expect_ = (
      partition: number,
      key: string,
      value: string | null,
      headers: Record<string, string> = {},
    ) => expected.push({ partition, offset: String(next[partition]!++), key, value, headers });

    // kafkajs, uncompressed then gzip, with a binary header and a tombstone.
    await produce(kafka.brokers, topic, [
      {
        key: 'k1',
        value: row('k1'),
        headers: { trace: 'abc', bin: Buffer.from([0, 255, 10]) },
        partition: 0,
      },
      { key: 'k1', value: null, partition: 0 },
    ]);
    expect_(0, 'k1', row('k1'), { trace: 'abc', bin: Buffer.from([0, 255, 10]).toString('latin1') });
    expect_(0, 'k1', null);
    await produce(
      kafka.brokers,
      topic,
      [1, 2, 3].map((i) => ({ key: `gz${i}`, value: row(`gz${i}`), partition: 0 })),
      { compression: CompressionTypes.GZIP },
    );
    for (const i of [1, 2, 3]) expect_(0, `gz${i}`, row(`gz${i}`));

    // kcat (librdkafka): one codec per partition; headers, a tombstone, then a header-less record.
    const codecs = ['gzip', 'snappy', 'lz4', 'zstd'] as const;
    for (const [partition, codec] of codecs.entries()) {
      const records = [
        { key: `${codec}-a`, value: row(`${codec}-a`), headers: { codec, 'x-n': '1' } },
        { key: `${codec}-b`, value: row(`${codec}-b`), headers: { codec, 'x-n': '1' } },
        { key: `${codec}-a`, value: null, headers: { codec, 'x-n': '1' } },
        { key: `${codec}-c`, value: row(`${codec}-c`) },
        { key: `${codec}-d`, value: row(`${codec}-d`) },
        // A header without a value: librdkafka sends it as NULL.
        { key: `${codec}-e`, value: row(`${codec}-e`), headers: { codec, 'x-none': null } },
      ];
      await kcatProduce(kafka.brokers, topic, records, { compression: codec, partition });
      for (const r of records) expect_(partition, r.key, r.value, withValues(r.headers));
    }
    const before = { ...decompressions };

    const c = collector();
    const source = newSource();
    const options = startOptions([topic], c.handler);
    await source.start(options);
    await eventually('every record', () => c.records().length >= expected.length);

    const byPosition = (a: Seen, b: Seen) => a.partition - b.partition || Number(a.offset) - Number(b.offset);
    expect(c.records().map(seen).sort(byPosition)).toEqual(expected.sort(byPosition));
    for (const batch of c.batches) {
      const offsets = batch.records.map((r) => BigInt(r.offset));
      expect(offsets).toEqual([...offsets].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      expect(batch.records.every((r) => r.topic === topic && r.partition === batch.partition)).toBe(true);
      expect(batch.records.every((r) => /^\d+$/.test(r.timestamp))).toBe(true);
      expect(BigInt(batch.highWatermark)).toBeGreaterThan(offsets[offsets.length - 1]!);
    }
    for (const codec of codecs) expect(decompressions[codec] - before[codec], codec).toBeGreaterThan(0);
    // The header without a value is there, with none.
    const noValue = c.records().filter((r) => r.key?.toString('utf8').endsWith('-e'));
    expect(noValue.map((r) => [Object.keys(r.headers).sort(), r.headers['x-none']])).toEqual(
      codecs.map(() => [['codec', 'x-none'], undefined]),
    );
    expect(source.status().state).toBe('running');
    expect(options.fatal).toEqual([]);
    await source.stop();
    expect(source.status().state).toBe('stopped');
  });

  it('should start each partition at resumeFrom (or earliest), ignoring the group committed offsets', async () => {
    const topic = uniqueTopic('feed-resume');
    await produce(
      kafka.brokers,
      topic,
      Array.from({ length: 10 }, (_, i) => ({ key: `a${i}`, value: `v${i}`, partition: 0 })),
    );
    await produce(
      kafka.brokers,
      topic,
      [0, 1, 2].map((i) => ({ key: `b${i}`, value: `w${i}`, partition: 1 })),
    );
    const firstOffset = (c: ReturnType<typeof collector>, partition: number) =>
      c.records().find((r) => r.partition === partition)?.offset;

    // A fresh group with a stored position of 6 on partition 0: not from 0, not from the end.
    const fresh = collector();
    const a = newSource();
    await a.start(
      startOptions([topic], fresh.handler, { resumeFrom: (_t, p) => (p === 0 ? '6' : undefined) }),
    );
    await eventually('partition 0 up to its end', () =>
      fresh.records().some((r) => r.partition === 0 && r.offset === '9'),
    );
    await eventually('partition 1 from the beginning', () => firstOffset(fresh, 1));
    expect(BigInt(firstOffset(fresh, 0)!)).toBeGreaterThanOrEqual(6n);
    expect(firstOffset(fresh, 1)).toBe('0');
    await a.stop();

    // Same group again: its Kafka-committed offsets are now at the end (10 and 3), but the store
    // says 3 for partition 0 and nothing for partition 1, so both are read again from there.
    const groupId = uniqueTopic('matview-test-group');
    const consumeWith = async (
      resumeFrom: FeedStartOptions['resumeFrom'],
      until: (c: ReturnType<typeof collector>) => boolean,
    ) => {
      const c = collector();
      const source = createKafkaSource({
        brokers: kafka.brokers,
        clientId: 'matview-test',
        groupId,
        fetchMaxWaitMs: 50,
        connectionTimeoutMs: 2_000,
        logger: silentLogger,
      });
      sources.push(source);
      await source.start(startOptions([topic], c.handler, { resumeFrom }));
      await eventually('the records', () => until(c));
      await source.stop();
      return c;
    };
    await consumeWith(
      () => undefined,
      (c) => c.records().length >= 13,
    );
    const again = await consumeWith(
      (_t, p) => (p === 0 ? '3' : undefined),
      (c) =>
        c.records().some((r) => r.partition === 0 && r.offset === '9') && firstOffset(c, 1) !== undefined,
    );
    expect(firstOffset(again, 0)).toBe('3');
    expect(firstOffset(again, 1)).toBe('0');
  });

  it('should read partitions without a stored position again from 0 when the group committed their end', async () => {
    // kafkajs runs one fetcher per broker, and with autoCommit its seek was an OffsetCommit that
    // raced the other fetchers' OffsetFetch of the group's offsets: now and then a partition kept
    // the group's end offset and was never read again. The race needs many partitions per broker
    // to show up often, hence several auto-created 4-partition topics at once, and several starts.
    const topics = Array.from({ length: 8 }, (_, i) => uniqueTopic(`feed-replay-${i}`));
    const perPartition = 3;
    for (const topic of topics) {
      await produce(
        kafka.brokers,
        topic,
        Array.from({ length: 4 * perPartition }, (_, i) => ({
          key: `k${i}`,
          value: `v${i}`,
          partition: i % 4,
        })),
      );
    }
    const expected = topics.flatMap((topic) =>
      [0, 1, 2, 3].map((partition) => ({
        topic,
        partition,
        offsets: Array.from({ length: perPartition }, (_, i) => String(i)),
      })),
    );
    const delivered = (c: ReturnType<typeof collector>) =>
      expected.map(({ topic, partition }) => ({
        topic,
        partition,
        offsets: c
          .records()
          .filter((r) => r.topic === topic && r.partition === partition)
          .map((r) => r.offset),
      }));
    const groupId = uniqueTopic('matview-test-group');
    const committedAtEnd = async () => {
      const admin = new kafkajs.Kafka({ brokers: kafka.brokers, logLevel: kafkajs.logLevel.NOTHING }).admin();
      await admin.connect();
      try {
        const committed = await admin.fetchOffsets({ groupId, topics });
        return committed.every(({ partitions }) =>
          partitions.every((p) => p.offset === String(perPartition)),
        );
      } finally {
        await admin.disconnect();
      }
    };
    const readAll = async (waitForCommits = false) => {
      const c = collector();
      const source = newSource(groupId);
      const options = startOptions(topics, c.handler);
      await source.start(options);
      await eventually('every partition read from 0 to its end', () =>
        delivered(c).every((d, i) => d.offsets.length >= expected[i]!.offsets.length),
      );
      // The group's own commits are informational, sent at most once per commit interval: wait for the
      // last ones before stopping, so the group's offsets sit at the end for the replays below.
      if (waitForCommits) {
        await eventually(
          'the group committed every partition at its end',
          async () => (await committedAtEnd()) || undefined,
        );
      }
      await source.stop();
      expect(options.fatal).toEqual([]);
      return delivered(c);
    };

    expect(await readAll(true)).toEqual(expected);

    // Same group, still no stored positions: every partition is read again from offset 0. Each
    // start is a fresh roll of the race that used to lose a partition, so roll it a few times.
    for (let replay = 1; replay <= 3; replay++) expect(await readAll(), `replay ${replay}`).toEqual(expected);
    // Four starts of one group, each waiting for the mock's join delay: more than the default budget.
  }, 120_000);

  it('should commit the group offsets at most once per commit interval, and the newest ones when stopping', async () => {
    // Informational commits (positions live in the store) used to cost an OffsetCommit round trip per
    // batch, which capped throughput when batches are small.
    const topic = uniqueTopic('feed-commits');
    const groupId = uniqueTopic('matview-test-group');
    await produce(kafka.brokers, topic, [{ key: 'a', value: '1', partition: 0 }]);
    const committed = async () => {
      const admin = new kafkajs.Kafka({ brokers: kafka.brokers, logLevel: kafkajs.logLevel.NOTHING }).admin();
      await admin.connect();
      try {
        const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
        return (offsets?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
      } finally {
        await admin.disconnect();
      }
    };
    const c = collector();
    const source = newSource(groupId, { commitIntervalMs: 60_000 });
    const options = startOptions([topic], c.handler);
    await source.start(options);
    await eventually('the first record', () => c.records().length === 1);
    await eventually('the first batch committed at once', async () => (await committed()) === 1);
    await produce(kafka.brokers, topic, [
      { key: 'b', value: '2', partition: 1 },
      { key: 'c', value: '3', partition: 2 },
    ]);
    await eventually('all three records', () => c.records().length === 3);
    expect(await committed()).toBe(1);
    await source.stop();
    expect(await committed()).toBe(3);
    expect(options.fatal).toEqual([]);
  });

  it('should deliver the same records again after the handler rejected, and never skip', async () => {
    const topic = uniqueTopic('feed-redeliver');
    await produce(
      kafka.brokers,
      topic,
      Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: 2 })),
    );
    let failed = false;
    let statusOnRedelivery: { state: string; reason?: string } | undefined;
    const c = collector(async () => {
      if (!failed) {
        failed = true;
        throw new Error('store busy, try again');
      }
      // Until a batch succeeds the feed reports the failure, whatever kafkajs' joins and heartbeats say.
      statusOnRedelivery ??= source.status();
    });
    const source = newSource();
    const options = startOptions([topic], c.handler);
    await source.start(options);
    await eventually('all 5 records applied', () => c.records().length >= 5);

    const [rejected] = c.failures;
    const [retried] = c.batches;
    expect(rejected?.records.length).toBeGreaterThan(0);
    expect(retried?.records[0]?.offset).toBe(rejected?.records[0]?.offset);
    expect(retried?.records.map(seen).slice(0, rejected?.records.length)).toEqual(
      rejected?.records.map(seen),
    );
    expect(c.records().map((r) => r.offset)).toEqual(['0', '1', '2', '3', '4']);
    expect(options.fatal).toEqual([]);
    expect({ state: statusOnRedelivery?.state, reason: statusOnRedelivery?.reason }).toEqual({
      state: 'retrying',
      reason: `applying ${topic}[2] failed: Error: store busy, try again`,
    });
    expect(source.status().state).toBe('running');
  });

  it('should call onFatal when the handler fails with a non-retriable error', async () => {
    const topic = uniqueTopic('feed-fatal');
    await produce(kafka.brokers, topic, [{ key: 'k', value: 'v', partition: 0 }]);
    const c = collector(async () => {
      throw new StoreWriteError('MDB_MAP_FULL');
    });
    const source = newSource();
    const options = startOptions([topic], c.handler);
    await source.start(options);
    const [fatal] = await eventually('onFatal', () => (options.fatal.length > 0 ? options.fatal : undefined));
    expect(fatal).toBeInstanceOf(FeedCrashError);
    expect(fatal?.message).toMatch(/MDB_MAP_FULL/);
    expect(source.status()).toMatchObject({
      state: 'crashed',
      reason: expect.stringMatching(/MDB_MAP_FULL/),
    });
    expect(c.batches).toEqual([]);
  });

  it('should call onFatal rather than read from a wrong place when the stored position is unusable', async () => {
    const topic = uniqueTopic('feed-bad-position');
    await produce(kafka.brokers, topic, [{ key: 'k', value: 'v', partition: 0 }]);
    const c = collector();
    const source = newSource();
    const options = startOptions([topic], c.handler, { resumeFrom: () => 'not-an-offset' });
    await source.start(options);
    const [fatal] = await eventually('onFatal', () => (options.fatal.length > 0 ? options.fatal : undefined));
    expect(fatal).toBeInstanceOf(FeedCrashError);
    expect(fatal?.message).toMatch(/stored position/);
    expect(c.batches).toEqual([]);
  });

  it('should let the handler call in progress finish before stop() resolves', async () => {
    const topic = uniqueTopic('feed-stop');
    await produce(kafka.brokers, topic, [{ key: 'k', value: 'v', partition: 0 }]);
    const order: string[] = [];
    let entered!: () => void;
    const inHandler = new Promise<void>((r) => (entered = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const source = newSource();
    await source.start(
      startOptions([topic], async () => {
        entered();
        await gate;
        order.push('handler finished');
      }),
    );
    await inHandler;
    const stopped = source.stop().then(() => order.push('stopped'));
    setTimeout(release, 200);
    await stopped;
    expect(order).toEqual(['handler finished', 'stopped']);
  });

  it('should take a batch the stopping store refused as part of the stop: no warning, no retry, stopped', async () => {
    const topic = uniqueTopic('feed-stop-refused');
    await produce(kafka.brokers, topic, [{ key: 'k', value: 'v', partition: 0 }]);
    const lines: Record<string, unknown>[] = [];
    const logger: Logger = pino(
      { level: 'warn' },
      { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
    );
    let entered!: () => void;
    const inHandler = new Promise<void>((r) => (entered = r));
    let refuse!: () => void;
    const refused = new Promise<void>((_, reject) => (refuse = () => reject(new StoreStoppingError())));
    let calls = 0;
    const source = newSource(undefined, { logger });
    const options = startOptions([topic], async () => {
      calls++;
      entered();
      await refused;
    });
    await source.start(options);
    await inHandler;
    // The runtime's order: the store stops committing, then the feed stops; the refusal arrives after.
    const stopped = source.stop();
    refuse();
    await stopped;
    expect({ lines, calls, fatal: options.fatal, state: source.status().state }).toEqual({
      lines: [],
      calls: 1,
      fatal: [],
      state: 'stopped',
    });
  });

  it('should report the high watermark of every partition, creating missing topics on the mock', async () => {
    const topic = uniqueTopic('feed-end');
    const counts = [3, 0, 2, 1];
    for (const [partition, n] of counts.entries()) {
      if (n > 0)
        await produce(
          kafka.brokers,
          topic,
          Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: 'v', partition })),
        );
    }
    const empty = uniqueTopic('feed-end-empty');
    const source = newSource();
    const ends = await source.endOffsets([topic, empty]);
    const expected = [
      ...counts.map((n, partition) => ({ topic, partition, next: String(n) })),
      ...(process.env['KAFKA_BROKERS'] === undefined
        ? [0, 1, 2, 3].map((partition) => ({ topic: empty, partition, next: '0' }))
        : []),
    ];
    const sortKey = (p: { topic: string; partition: number }) => `${p.topic}/${p.partition}`;
    expect(
      ends
        .filter((e) => process.env['KAFKA_BROKERS'] === undefined || e.topic === topic)
        .sort((x, y) => sortKey(x).localeCompare(sortKey(y))),
    ).toEqual(expected.sort((x, y) => sortKey(x).localeCompare(sortKey(y))));
    await source.stop();
  });

  it('should report each Fetch request with the node id of the broker it went to: the leaders of the partitions', async () => {
    const topic = uniqueTopic('feed-fetches');
    for (const partition of [0, 1, 2, 3])
      await produce(kafka.brokers, topic, [{ key: `k${partition}`, value: 'v', partition }]);
    const admin = new kafkajs.Kafka({
      brokers: [...kafka.brokers],
      logLevel: kafkajs.logLevel.NOTHING,
    }).admin();
    await admin.connect();
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.disconnect();
    const leaders = new Set(topics[0]!.partitions.map((p) => p.leader));
    const asked: number[] = [];
    const source = newSource(undefined, { onFetch: (nodeId) => asked.push(nodeId) });
    const { handler, records } = collector();
    await source.start(startOptions([topic], handler));
    await eventually('every record delivered', () => records().length === 4);
    // Every leader was asked (its partition's record came from a fetch), and no other broker.
    expect(new Set(asked)).toEqual(leaders);
    await source.stop();
  });

  it('should hand out and fetch the next batches of a partition while one is being applied, up to the prefetch bound', async () => {
    // The handler holds every batch; meanwhile the source hands the partition's next batches out (each says
    // where it continues from) while those out hold less than KAFKA_PREFETCH_BYTES, and keeps fetching until
    // that much again waits (kafkajs' group consumer would wait for the batch to be applied first). On the
    // mock every produce call is one record batch and a fetch returns one.
    const topic = uniqueTopic('feed-prefetch');
    const value = 'x'.repeat(200);
    await produce(kafka.brokers, topic, [{ key: 'k0', value, partition: 0 }]);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const handed: FeedBatch[] = [];
    const c = collector(async (batch) => {
      handed.push(batch);
      await gate;
    });
    const prefetchBytes = 1024;
    const source = newSource(undefined, { prefetchBytes });
    await source.start(startOptions([topic], c.handler));
    await eventually('the first batch handed out', () => handed.length === 1);
    for (let i = 1; i <= 20; i++)
      await produce(kafka.brokers, topic, [{ key: `k${i}`, value, partition: 0 }]);
    const record = 64 + 3 + value.length;
    // Fetched while the batches out are held: the bytes wait in the source once those out reach the bound.
    await eventually('records fetched ahead', () => (source.status().prefetchedBytes ?? 0) >= prefetchBytes);
    // ... and no more than the bound plus the one fetch that crossed it (one 1-record batch here), with the
    // batches out no more than the bound plus the last one handed out.
    for (let i = 0; i < 10; i++) {
      expect(source.status().prefetchedBytes).toBeLessThanOrEqual(prefetchBytes + record);
      await new Promise((r) => setTimeout(r, 20));
    }
    const out = handed.map((b) => b.records.length * record);
    expect(out.slice(0, -1).reduce((a, b) => a + b, 0)).toBeLessThan(prefetchBytes);
    expect(handed.length).toBeGreaterThan(1);
    // Each batch after the first continues where the one before it ends.
    expect(handed.map((b) => b.continuesFrom)).toEqual(
      handed.map((_, i) =>
        i === 0
          ? undefined
          : String(Number(handed[i - 1]!.records[handed[i - 1]!.records.length - 1]!.offset) + 1),
      ),
    );
    expect(c.batches).toEqual([]);
    release();
    await eventually('all 21 records', () => c.records().length === 21);
    expect(c.records().map((r) => r.offset)).toEqual(Array.from({ length: 21 }, (_, i) => String(i)));
    await source.stop();
  });

  it('should let go of a decoded batch and count what its handler holds, so that more batches go out', async () => {
    // The handler reads its batch, says it holds nothing of it (FeedHandler's `decoded`), and waits: the records
    // are gone from the batch, and the partition keeps handing batches out past what the bound allows for
    // records out (MAX_BATCHES_OUT at most), each continuing where the one before it ends.
    const topic = uniqueTopic('feed-decoded');
    const value = 'x'.repeat(200);
    await produce(kafka.brokers, topic, [{ key: 'k0', value, partition: 0 }]);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const handed: { offsets: string[]; batch: FeedBatch }[] = [];
    const applied: string[] = [];
    const handler: FeedHandler = async (batch, decoded) => {
      const offsets = batch.records.map((r) => r.offset);
      handed.push({ offsets, batch });
      decoded?.(0);
      await gate;
      applied.push(...offsets);
    };
    const prefetchBytes = 1024;
    const source = newSource(undefined, { prefetchBytes });
    await source.start(startOptions([topic], handler));
    await eventually('the first batch handed out', () => handed.length === 1);
    for (let i = 1; i <= 20; i++)
      await produce(kafka.brokers, topic, [{ key: `k${i}`, value, partition: 0 }]);
    const record = 64 + 3 + value.length;
    await eventually('batches out past the bound', () => handed.length === MAX_BATCHES_OUT, 20_000);
    await new Promise((r) => setTimeout(r, 200));
    expect(handed).toHaveLength(MAX_BATCHES_OUT);
    const outRecords = handed.reduce((n, h) => n + h.offsets.length, 0);
    expect(outRecords * record).toBeGreaterThan(2 * prefetchBytes);
    expect(handed.every((h) => h.batch.records.length === 0)).toBe(true);
    expect(handed.map((h) => h.batch.continuesFrom)).toEqual(
      handed.map((_, i) => (i === 0 ? undefined : String(Number(handed[i - 1]!.offsets.at(-1)) + 1))),
    );
    release();
    await eventually('all 21 records', () => applied.length === 21);
    expect(applied).toEqual(Array.from({ length: 21 }, (_, i) => String(i)));
    await source.stop();
  });

  it('should let two instances with one group id each read every partition, and say loudly that they share it', async () => {
    const topic = uniqueTopic('feed-shared-group');
    const groupId = uniqueTopic('matview-test-group');
    const logs = (): { lines: Record<string, unknown>[]; logger: Logger } => {
      const lines: Record<string, unknown>[] = [];
      const logger: Logger = pino(
        { level: 'warn' },
        { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
      );
      return { lines, logger };
    };
    const a = logs();
    const b = logs();
    const first = collector();
    const second = collector();
    const sourceA = newSource(groupId, { instanceId: 'instance-a', logger: a.logger, commitIntervalMs: 0 });
    const sourceB = newSource(groupId, { instanceId: 'instance-b', logger: b.logger, commitIntervalMs: 0 });
    await sourceA.start(startOptions([topic], first.handler));
    // Instance A keeps running (as a crashed group member's session would): B starts at once anyway.
    await sourceB.start(startOptions([topic], second.handler));
    const expected: string[] = [];
    for (let round = 0; round < 5; round++) {
      const messages = [0, 1, 2, 3].map((partition) => ({
        key: `r${round}p${partition}`,
        value: 'v',
        partition,
      }));
      await produce(kafka.brokers, topic, messages);
      expected.push(...messages.map((m) => m.key));
      await eventually('both instances have every record so far', () =>
        [first, second].every((c) => c.records().length === expected.length),
      );
    }
    const keys = (c: ReturnType<typeof collector>) =>
      c
        .records()
        .map((r) => r.key!.toString())
        .sort();
    expect(keys(first)).toEqual([...expected].sort());
    expect(keys(second)).toEqual([...expected].sort());
    // Both commit after every batch, so each soon overwrites the other's offsets and one notices.
    const warning = await eventually('a shared-group warning', () =>
      [...a.lines, ...b.lines].find(
        (l) => (l['err'] as { code?: string } | undefined)?.code === 'MV_ERR_GROUP_SHARED',
      ),
    );
    expect(String(warning['msg'])).toMatch(/instance-a/);
    expect(String(warning['msg'])).toMatch(/instance-b/);
    expect(String(warning['msg'])).toContain(groupId);
    await Promise.all([sourceA.stop(), sourceB.stop()]);
  });
});
