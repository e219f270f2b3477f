/**
 * A real Kafka protocol endpoint for tests: the librdkafka mock cluster (started through kcat),
 * or the cluster in `KAFKA_BROKERS` when set. Plus helpers to produce and read topics back.
 *
 * librdkafka mock quirks worth knowing (librdkafka 2.0.x, `rdkafka_mock.c`):
 * - topics are auto-created on the first Metadata request with 4 partitions;
 * - `admin.createTopics` fails ("Broker 0 not found in cached metadata": the mock reports a
 *   controller id kafkajs cannot resolve), and so does an idempotent kafkajs producer, which
 *   needs the controller for InitProducerId;
 * - a Fetch waiting for `maxWaitTime` is not woken up by new records, so consumers must use a
 *   short `maxWaitTimeInMs`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import kafkajs from 'kafkajs';
import { afterAll, beforeAll } from 'vitest';
import type { CompressionTypes, IHeaders, RecordMetadata } from 'kafkajs';
import { registerCodecs } from '../../src/feed/codecs.js';
import type { FeedRecord, Headers } from '../../src/feed/types.js';

const { Kafka, logLevel } = kafkajs;

export interface KafkaHandle {
  readonly brokers: string[];
  /** Stops the mock cluster (no-op for an external cluster). Idempotent. */
  stop(): Promise<void>;
  /** The kcat process serving the mock cluster; kill it to simulate the cluster disappearing. */
  readonly pid?: number | undefined;
}

const STARTUP_TIMEOUT_MS = 15_000;
/** librdkafka prints both forms; the debug one only with `-d mock`. */
const BOOTSTRAP_RE = /(?:bootstrap\.servers=|replaced with )(\S+)/;

/**
 * The Kafka endpoint of a test file, started before its tests and stopped after them: call it once at the
 * top of the file (`const kafka = useKafka();`) and use it as the handle it stands for. Its `afterAll` is
 * registered first, so it runs after the file's own (vitest runs after-hooks in reverse order): servers the
 * file closes there are gone before the cluster stops.
 */
export function useKafka(): KafkaHandle {
  let started: KafkaHandle | undefined;
  const handle = (): KafkaHandle => {
    if (started === undefined)
      throw new Error('useKafka(): the cluster starts in beforeAll; use it inside tests');
    return started;
  };
  beforeAll(async () => {
    started = await startKafka();
  });
  afterAll(async () => {
    await started?.stop();
  });
  return {
    get brokers() {
      return handle().brokers;
    },
    get pid() {
      return handle().pid;
    },
    stop: () => handle().stop(),
  };
}

/**
 * Starts a Kafka endpoint for a test file. With `KAFKA_BROKERS` set, that cluster is used as is.
 * Otherwise a 3-broker librdkafka mock cluster is served by a `kcat` consumer process; it lives
 * until `stop()`, and also dies with this process (even on SIGKILL: see the watchdog below).
 */
export async function startKafka(): Promise<KafkaHandle> {
  const external = process.env['KAFKA_BROKERS'];
  if (external !== undefined && external.trim() !== '') {
    return { brokers: external.split(',').map((b) => b.trim()), stop: async () => undefined };
  }

  // `-q` keeps kcat's "Reached end of topic" chatter off stderr; the mock's notice line with the
  // bootstrap servers is a librdkafka log line and still appears.
  const args = [
    '-q',
    '-b',
    '127.0.0.1:1',
    '-X',
    'test.mock.num.brokers=3',
    '-C',
    '-t',
    '__probe',
    '-o',
    'end',
  ];
  const kcat = spawn('kcat', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  // A watchdog shell holds a pipe from us: when this process dies for any reason (even SIGKILL of
  // a vitest worker) the pipe closes, `read` returns and the watchdog kills kcat, so no orphaned
  // mock clusters pile up. Ending the pipe is also how stop() shuts the cluster down.
  const watchdog =
    kcat.pid === undefined
      ? undefined
      : spawn('sh', ['-c', 'read _; kill "$1" 2>/dev/null', 'sh', String(kcat.pid)], {
          stdio: ['pipe', 'ignore', 'ignore'],
        });

  let stderr = '';
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    kcat.once('exit', (code) => {
      exitCode = code;
      resolve();
    }),
  );
  const killNow = (): void => {
    kcat.kill('SIGKILL');
    watchdog?.kill('SIGKILL');
  };
  process.once('exit', killNow);

  let settled = false;
  const brokers = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      fail(
        new Error(`kcat mock cluster did not print its bootstrap servers within ${STARTUP_TIMEOUT_MS} ms`),
      );
    }, STARTUP_TIMEOUT_MS);
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      killNow();
      process.removeListener('exit', killNow);
      reject(new Error(`${error.message}\nkcat stderr:\n${stderr.slice(-4_000)}`, { cause: error }));
    };
    kcat.once('error', (e: NodeJS.ErrnoException) =>
      fail(
        e.code === 'ENOENT'
          ? new Error('kcat is not installed: run `npm pretest` or `sudo apt-get install -y kcat`', {
              cause: e,
            })
          : e,
      ),
    );
    void exited.then(() =>
      fail(new Error(`kcat exited (code ${String(exitCode)}) before the mock cluster was up`)),
    );
    kcat.stderr.setEncoding('utf8');
    kcat.stderr.on('data', (chunk: string) => {
      // Keep draining stderr for the cluster's whole life, or a full pipe would block kcat.
      if (stderr.length < 64_000) stderr += chunk;
      const m = BOOTSTRAP_RE.exec(stderr);
      if (m?.[1] !== undefined && !settled) {
        settled = true;
        clearTimeout(timer);
        resolve(m[1].split(','));
      }
    });
  });

  let stopped: Promise<void> | undefined;
  return {
    brokers,
    ...(kcat.pid === undefined ? {} : { pid: kcat.pid }),
    stop() {
      stopped ??= (async () => {
        process.removeListener('exit', killNow);
        watchdog?.stdin?.end(); // → the watchdog sends kcat SIGTERM
        if (watchdog === undefined) kcat.kill('SIGTERM');
        const timer = setTimeout(killNow, 5_000);
        await exited;
        clearTimeout(timer);
      })();
      return stopped;
    },
  };
}

/** A fresh topic name per test so tests never see each other's records. */
export function uniqueTopic(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

export interface TestMessage {
  readonly key: string | Buffer | null;
  readonly value: string | Buffer | null;
  readonly headers?: IHeaders;
  readonly partition?: number;
}

const quietKafka = (brokers: readonly string[]) =>
  new Kafka({ brokers: [...brokers], clientId: 'matview-test', logLevel: logLevel.ERROR });

/**
 * Produces messages with kafkajs (acks=all, not idempotent: see the mock quirks above) and
 * returns where they landed, one entry per partition written.
 */
export async function produce(
  brokers: readonly string[],
  topic: string,
  messages: readonly TestMessage[],
  options: { compression?: CompressionTypes } = {},
): Promise<RecordMetadata[]> {
  registerCodecs();
  const producer = quietKafka(brokers).producer({ allowAutoTopicCreation: true });
  await producer.connect();
  try {
    return await producer.send({
      topic,
      acks: -1,
      ...(options.compression === undefined ? {} : { compression: options.compression }),
      messages: messages.map((m) => ({
        key: m.key,
        value: m.value,
        ...(m.headers === undefined ? {} : { headers: m.headers }),
        ...(m.partition === undefined ? {} : { partition: m.partition }),
      })),
    });
  } finally {
    await producer.disconnect();
  }
}

/**
 * Reads `count` records of `topic` from the beginning (fresh consumer group), sorted by partition
 * then offset. Rejects after `timeoutMs` with what it got so far. Used to assert DLQ contents.
 */
export async function consumeAll(
  brokers: readonly string[],
  topic: string,
  count: number,
  timeoutMs = 20_000,
  /** Called after each record is added (the last one is new): whether to stop. */
  enough: (records: readonly FeedRecord[]) => boolean = (records) => records.length >= count,
): Promise<FeedRecord[]> {
  registerCodecs();
  const consumer = quietKafka(brokers).consumer({
    groupId: uniqueTopic('matview-test-reader'),
    maxWaitTimeInMs: 50,
    // Leaving the group on disconnect is enough; keep the session short in case it is not left.
    sessionTimeout: 6_000,
    heartbeatInterval: 500,
  });
  const records: FeedRecord[] = [];
  let done!: () => void;
  const reached = new Promise<void>((resolve) => (done = resolve));
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, Buffer | undefined> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) {
          const last = Array.isArray(v) ? v[v.length - 1] : v;
          headers[k] = last === undefined ? undefined : Buffer.from(last);
        }
        records.push({
          topic,
          partition,
          offset: message.offset,
          timestamp: message.timestamp,
          key: message.key,
          value: message.value,
          headers: headers as Headers,
        });
        if (enough(records)) done();
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(`consumeAll(${topic}): got ${records.length} of ${count} records in ${timeoutMs} ms`),
          ),
        timeoutMs,
      );
    });
    await Promise.race([reached, timeout]).finally(() => clearTimeout(timer));
  } finally {
    await consumer.disconnect();
  }
  return records.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
}

/**
 * Every record of `topic` below `ends` (each partition's next offset, as read before), sorted by partition then
 * offset, however many records come after them (a topic still written to: a view topic's heartbeats).
 */
export async function consumeUpTo(
  brokers: readonly string[],
  topic: string,
  ends: readonly { readonly partition: number; readonly next: string }[],
  timeoutMs = 60_000,
): Promise<FeedRecord[]> {
  const next = new Map(ends.map((e) => [e.partition, BigInt(e.next)]));
  const below = (r: FeedRecord) => BigInt(r.offset) < (next.get(r.partition) ?? 0n);
  const total = ends.reduce((n, e) => n + Number(e.next), 0);
  if (total === 0) return [];
  // Counted as they come (the callback sees every record once, last one at the end).
  let n = 0;
  const records = await consumeAll(brokers, topic, total, timeoutMs, (read) => {
    if (below(read[read.length - 1]!)) n++;
    return n >= total;
  });
  return records.filter(below);
}
