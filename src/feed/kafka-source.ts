/**
 * The Kafka feed source: reads every partition of the changelog topics with kafkajs and hands
 * ordered batches to the materializer. Positions live in the store, not in Kafka: on every group
 * assignment each partition is sought to the store's next offset, so the consumer group's own
 * commits are informational only (they keep external lag tools such as kafka-consumer-groups
 * meaningful). That is why the consumer runs with `autoCommit: false`: with autoCommit, kafkajs
 * turns a seek into an OffsetCommit and lets the group's committed offset decide (see `runOnce`).
 */
import kafkajs from 'kafkajs';
import type {
  Admin,
  Consumer,
  EachBatchPayload,
  KafkaMessage,
  LogEntry,
  Kafka as KafkaClient,
  logCreator as LogCreator,
  RetryOptions,
} from 'kafkajs';
import { ConfigError, FeedCrashError, InvariantError } from '../errors.js';
import type { Logger } from '../ops/logger.js';
import { registerCodecs } from './codecs.js';
import type {
  FeedBatch,
  FeedRecord,
  FeedSource,
  FeedStartOptions,
  FeedState,
  FeedStatus,
  Headers,
  PartitionPosition,
} from './types.js';

// kafkajs is CommonJS; only some of its exports are visible as ESM named exports (see codecs.ts).
const { Kafka, logLevel } = kafkajs;

/**
 * Where a partition the store has no position for starts: its first possible offset, so nothing is
 * skipped. A concrete offset rather than kafkajs' EARLIEST (-2): with autoCommit off a seek only
 * sets kafkajs' local next offset, and kafkajs would read -2 as "invalid, use 0" anyway
 * (`src/consumer/offsetManager/index.js` nextOffset). When retention already deleted offset 0, the
 * fetch gets OFFSET_OUT_OF_RANGE and kafkajs moves to the earliest offset still there, because we
 * subscribe with `fromBeginning` (`src/consumer/consumerGroup.js` recoverFromOffsetOutOfRange).
 */
const FIRST_OFFSET = '0';

/** How long `stop()` waits for the last informational offset commit. */
const FINAL_COMMIT_WAIT_MS = 1_000;

/** Connection settings shared by the source and the writer. */
export interface KafkaClientOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  /** TCP connect timeout per broker (kafkajs `connectionTimeout`). */
  readonly connectionTimeoutMs: number;
  /** Where kafkajs' own warnings and errors go (as JSON through pino). */
  readonly logger: Logger;
  /**
   * Overrides kafkajs' retry/backoff (kafkajs `retry`: initialRetryTime, retries, maxRetryTime…).
   * Tests shorten it; production keeps kafkajs' defaults (note kafkajs silently switches to much
   * faster defaults when NODE_ENV=test: kafkajs `src/retry/index.js`).
   */
  readonly retry?: RetryOptions;
}

export interface KafkaSourceOptions extends KafkaClientOptions {
  /** One consumer group per matview instance: every instance must read all partitions. */
  readonly groupId: string;
  /**
   * Fetch `maxWaitTimeInMs`. Keep it short: it bounds how stale a quiet partition's data can be
   * and, on the librdkafka mock cluster, a waiting fetch is not woken up by newly produced records.
   */
  readonly fetchMaxWaitMs: number;
  readonly sessionTimeoutMs: number;
  /**
   * Silence after which a running consumer is reported as `retrying` (no fetch answered and no
   * heartbeat while no batch is being handled). Default: the larger of 5 s and 20 fetch waits.
   * kafkajs itself only notices a frozen cluster when a request times out (30 s), and the lag
   * refresh cannot see it either, so without this a frozen cluster looks healthy.
   */
  readonly silenceMs?: number;
  /**
   * Shortest interval between the group's offset commits (default 1 s; 0: after every batch). They are
   * informational (positions live in the store, see eachBatch), for lag tools; one OffsetCommit round
   * trip per batch capped throughput when batches are small. The newest offsets are committed by a
   * timer when no later batch comes.
   */
  readonly commitIntervalMs?: number;
  /**
   * Batches of different partitions handled at once (kafkajs `partitionsConsumedConcurrently`, default 1).
   * Each partition stays in offset order; concurrent batches share LMDB write transactions.
   */
  readonly concurrentPartitions?: number;
}

const PINO_LEVEL = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
  [logLevel.NOTHING]: 'silent',
} as const;

/**
 * Maps kafkajs log entries onto pino so every line stays JSON with our `service` binding.
 * kafkajs passes errors as `error` (string or Error) plus `stack`; they become pino's `err`.
 */
export function kafkaLogCreator(logger: Logger, onEntry?: (entry: LogEntry) => void): LogCreator {
  const base = logger.child({ component: 'kafkajs' });
  return () => (entry: LogEntry) => {
    onEntry?.(entry);
    const { namespace, level, log } = entry;
    const { message, timestamp: _timestamp, error, stack, ...extra } = log;
    const method = PINO_LEVEL[level];
    if (method === 'silent') return;
    const fields: Record<string, unknown> = { namespace, ...extra };
    if (error !== undefined)
      fields['err'] = error instanceof Error ? error : { message: String(error), stack };
    base[method](fields, message);
  };
}

/**
 * A kafkajs client wired the way matview wants it: codecs registered, kafkajs logs at warn+ into
 * pino (kafkajs' info level logs every join/commit, too chatty for "one line per lifecycle event").
 */
export function createKafkaClient(
  options: KafkaClientOptions,
  onLogEntry?: (entry: LogEntry) => void,
): KafkaClient {
  registerCodecs();
  return new Kafka({
    brokers: [...options.brokers],
    clientId: options.clientId,
    connectionTimeout: options.connectionTimeoutMs,
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator(options.logger, onLogEntry),
    ...(options.retry === undefined ? {} : { retry: options.retry }),
  });
}

/** kafkajs header values are Buffers on the way in, or arrays of them when a key repeats. */
function toHeaders(headers: KafkaMessage['headers']): Headers {
  const out: Record<string, Buffer | undefined> = {};
  if (headers === undefined) return out;
  for (const [name, value] of Object.entries(headers)) {
    // A repeated header key keeps its last value, like Java's `Headers.lastHeader(key)`.
    const last = Array.isArray(value) ? value[value.length - 1] : value;
    out[name] = last === undefined ? undefined : Buffer.isBuffer(last) ? last : Buffer.from(last);
  }
  return out;
}

/** Converts one kafkajs batch into the contract's FeedBatch. Exported for unit tests. */
export function toFeedBatch(batch: EachBatchPayload['batch']): FeedBatch {
  const { topic, partition } = batch;
  const records = batch.messages.map((m): FeedRecord => ({
    topic,
    partition,
    offset: m.offset,
    timestamp: m.timestamp,
    key: m.key ?? null,
    value: m.value ?? null,
    headers: toHeaders(m.headers),
  }));
  return { topic, partition, records, highWatermark: batch.highWatermark };
}

/** The root cause kafkajs wraps (KafkaJSNumberOfRetriesExceeded → … → the original error). */
function rootCause(error: unknown): unknown {
  let e = error;
  for (let depth = 0; depth < 10 && e instanceof Error && e.cause !== undefined; depth++) e = e.cause;
  return e;
}

const describeError = (error: unknown): string => {
  const root = rootCause(error);
  const top = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  if (root === error || !(root instanceof Error)) return top;
  return `${top} (caused by ${root.name}: ${root.message})`;
};

/**
 * Whether kafkajs itself would retry/restart after this error: its consumer restarts on
 * KafkaJSNumberOfRetriesExceeded or when the root cause is `retriable === true`
 * (kafkajs `src/consumer/index.js` onCrash). Used for our own start-up retries.
 */
function isRetriableKafkaError(error: unknown): boolean {
  if (error instanceof Error && error.name === 'KafkaJSNumberOfRetriesExceeded') return true;
  const root = rootCause(error);
  return typeof root === 'object' && root !== null && (root as { retriable?: unknown }).retriable === true;
}

const isUnknownTopic = (error: unknown): boolean => {
  for (let e = error, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if ((e as { type?: unknown }).type === 'UNKNOWN_TOPIC_OR_PARTITION') return true;
  }
  return false;
};

/** kafkajs log namespaces whose errors mean the brokers are unreachable (kafkajs `src/network/connection.js`, `src/cluster/brokerPool.js`). */
const CONNECTIVITY_NAMESPACES = new Set(['Connection', 'BrokerPool']);

/** kafkajs' log line when a fetch got OFFSET_OUT_OF_RANGE (`src/consumer/consumerGroup.js`, kafkajs 2.2). */
const OFFSET_RESET_LOG = 'Offset out of range, resetting to default offset';

/** Start-up retry backoff when the cluster is unreachable: 0.5 s doubling to 30 s, forever. */
const startBackoffMs = (attempt: number): number => Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));

/**
 * Creates the Kafka source. Nothing connects until `start()` / `endOffsets()`.
 *
 * Delivery: per partition in offset order, up to `concurrentPartitions` partitions at once. A
 * batch's offsets are resolved only after `handler` resolved; when it rejects, the error
 * is rethrown into kafkajs, which re-fetches from the last resolved offset, so the same records
 * come again (at-least-once; the store's positions make replays no-ops). kafkajs decides whether
 * to retry from the error's `retriable` flag: a MatviewError with `retriable: false` (e.g.
 * StoreWriteError) or a TypeError crashes the consumer for good → `onFatal`; anything else is
 * retried with backoff and, after kafkajs' retries are exhausted, the consumer restarts, re-joins
 * and seeks back to the store's positions.
 */
export function createKafkaSource(options: KafkaSourceOptions): FeedSource {
  const log = options.logger.child({ component: 'kafka-source', groupId: options.groupId });
  let state: FeedState = 'starting';
  let reason: string | undefined;
  let lastActivityAt = Date.now();
  let consumer: Consumer | undefined;
  let admin: Admin | undefined;
  let adminConnecting: Promise<Admin> | undefined;
  /** Handler calls in progress (one per partition at most). */
  const inFlight = new Set<Promise<unknown>>();
  const commitIntervalMs = options.commitIntervalMs ?? 1_000;
  let lastCommitAt = 0;
  /** Commits what the last batch resolved, when no later batch did so within `commitIntervalMs`. */
  let trailingCommit: NodeJS.Timeout | undefined;
  let owedCommit: (() => Promise<void>) | undefined;
  let stopping = false;
  let started = false;
  let startRetryTimer: NodeJS.Timeout | undefined;
  const silenceMs = options.silenceMs ?? Math.max(5_000, 20 * options.fetchMaxWaitMs);
  /** Why the last handler call failed, until a batch succeeds (e.g. the DLQ cannot be written). */
  let handlerFailure: string | undefined;

  /** Logs transitions only: while retrying, the reason is refreshed silently (kafkajs logs each error). */
  const setState = (next: FeedState, why?: string): void => {
    if (state === 'stopped' || (state === 'crashed' && next !== 'stopped')) return;
    const previous = state;
    state = next;
    reason = why;
    if (previous === next) return;
    if (next === 'retrying' || next === 'crashed')
      log.warn({ state: next, previous, reason: why }, 'Kafka feed state');
    else log.info({ state: next, previous }, 'Kafka feed state');
  };

  // kafkajs has no instrumentation event for "cannot reach the brokers": while its internal
  // retries run (tens of seconds before a CRASH) the only signal is its error log, so watch it.
  let startOptions: FeedStartOptions | undefined;
  const kafka = createKafkaClient(options, (entry) => {
    if (entry.level === logLevel.ERROR && CONNECTIVITY_NAMESPACES.has(entry.namespace) && !stopping) {
      setState('retrying', entry.log.message);
    }
    // Nor is there one for an offset reset: ConsumerGroup.recoverFromOffsetOutOfRange only logs this
    // line, then moves the partition to its default offset (earliest, as we subscribe fromBeginning).
    if (entry.namespace === 'ConsumerGroup' && entry.log.message === OFFSET_RESET_LOG) {
      const { topic, partition } = entry.log as { topic?: unknown; partition?: unknown };
      if (typeof topic === 'string' && typeof partition === 'number')
        startOptions?.onOffsetOutOfRange?.(topic, partition);
    }
  });

  const touch = (): void => {
    lastActivityAt = Date.now();
  };

  async function connectAdmin(): Promise<Admin> {
    if (admin !== undefined) return admin;
    adminConnecting ??= (async () => {
      const a = kafka.admin();
      try {
        await a.connect();
      } catch (error) {
        adminConnecting = undefined;
        throw error;
      }
      admin = a;
      return a;
    })();
    return adminConnecting;
  }

  /** Drops the admin client: kafkajs keeps a failed topic in its metadata target list forever. */
  async function resetAdmin(): Promise<void> {
    const a = admin;
    admin = undefined;
    adminConnecting = undefined;
    await a?.disconnect().catch(() => undefined);
  }

  function buildConsumer(start: FeedStartOptions): Consumer {
    const c = kafka.consumer({
      groupId: options.groupId,
      retry: {
        ...options.retry,
        // kafkajs keeps restarting a crashed consumer even after disconnect() when the crash
        // happens while it is still reconnecting (its restart timer is armed after the CRASH
        // event); refusing the restart once we are stopping ends that loop.
        restartOnFailure: async () => !stopping,
      },
      sessionTimeout: options.sessionTimeoutMs,
      // kafkajs requires heartbeatInterval < sessionTimeout; a third is the usual recommendation.
      heartbeatInterval: Math.max(100, Math.min(3_000, Math.floor(options.sessionTimeoutMs / 3))),
      maxWaitTimeInMs: options.fetchMaxWaitMs,
    });
    const { GROUP_JOIN, FETCH, CRASH, CONNECT, HEARTBEAT, REBALANCING } = c.events;

    c.on(GROUP_JOIN, ({ payload }) => {
      // Runs synchronously inside kafkajs' joinAndSync (a listener that throws here makes it
      // bail), after the generation's OffsetManager exists and before its first fetch. Every
      // join, rebalances and kafkajs' crash-restarts included, re-seeks every assigned partition:
      // each generation gets a fresh OffsetManager that knows nothing of earlier seeks. They are
      // applied by ConsumerGroup.fetch → seekOffsets before that fetch builds its request, and
      // with autoCommit off OffsetManager.seek just sets the local next offset, which wins over
      // the group's committed offset (OffsetManager.nextOffset). A batch fetched by the previous
      // generation may still be handed over after a rebalance (isStale() guards most of them);
      // the caller skips records at or below its stored position.
      const seeks: { topic: string; partition: number; offset: string }[] = [];
      for (const [topic, partitions] of Object.entries(payload.memberAssignment)) {
        for (const partition of partitions) {
          let offset: string;
          try {
            offset = start.resumeFrom(topic, partition) ?? FIRST_OFFSET;
            c.seek({ topic, partition, offset });
          } catch (cause) {
            // Thrown into kafkajs' joinAndSync, which bails: the consumer crashes without restart
            // and onFatal fires. Reading from a wrong position is worse than stopping.
            throw new FeedCrashError(`Could not seek ${topic}[${partition}] to the stored position`, {
              cause,
            });
          }
          seeks.push({ topic, partition, offset });
        }
      }
      log.info(
        { memberId: payload.memberId, seeks },
        'Joined consumer group; resuming from stored positions',
      );
      touch();
      setState('running');
    });
    c.on(FETCH, () => {
      touch();
    });
    c.on(HEARTBEAT, () => {
      // A heartbeat answered by the coordinator: the cluster is reachable again.
      touch();
      if (state === 'retrying') setState('running');
    });
    c.on(REBALANCING, () => {
      log.info('Consumer group is rebalancing');
    });
    c.on(CONNECT, () => {
      touch();
    });
    c.on(CRASH, ({ payload }) => {
      if (stopping) return;
      const why = describeError(payload.error);
      if (payload.restart) {
        // kafkajs restarts the whole consumer after its backoff; GROUP_JOIN sets 'running' again.
        setState('retrying', why);
        return;
      }
      setState('crashed', why);
      start.onFatal(
        new FeedCrashError(`Kafka consumer crashed and will not restart: ${why}`, { cause: payload.error }),
      );
    });
    return c;
  }

  async function eachBatch(
    start: FeedStartOptions,
    {
      batch,
      resolveOffset,
      heartbeat,
      isRunning,
      isStale,
      commitOffsetsIfNecessary,
      uncommittedOffsets,
    }: EachBatchPayload,
  ): Promise<void> {
    // Not resolving anything here means kafkajs fetches these records again.
    if (batch.isEmpty() || !isRunning() || isStale() || stopping) return;
    const feedBatch = toFeedBatch(batch);
    const call = start.handler(feedBatch);
    const tracked = call.catch(() => undefined);
    inFlight.add(tracked);
    try {
      await call;
    } catch (error) {
      // Say so at once: kafkajs only crashes (and we only hear of it) after its retries run out, and
      // every consumer restart re-joins and heartbeats, which would otherwise read as healthy.
      if (handlerFailure === undefined)
        log.warn({ err: error, topic: batch.topic, partition: batch.partition }, 'batch failed; retrying');
      handlerFailure = `applying ${batch.topic}[${batch.partition}] failed: ${describeError(error)}`;
      throw error;
    } finally {
      inFlight.delete(tracked);
    }
    handlerFailure = undefined;
    touch();
    setState('running');
    const last = feedBatch.records[feedBatch.records.length - 1];
    if (last !== undefined) resolveOffset(last.offset);
    // Informational commit (autoCommit is off, see runOnce) so lag tools stay meaningful: the
    // group's offsets follow kafkajs' next offset of every assigned partition, the store's seek
    // positions included. kafkajs takes no position from them while our seeks are in place
    // (OffsetManager.nextOffset prefers the resolved offset). Same commit and same error
    // handling as kafkajs' autoCommit after each batch (runner.js autoCommitOffsets): e.g. a
    // rebalance error makes kafkajs re-join, which seeks to the store's positions again. At most one
    // commit per `commitIntervalMs`; a timer commits the rest when no later batch comes.
    const commit = (): Promise<void> => {
      lastCommitAt = Date.now();
      return commitOffsetsIfNecessary(uncommittedOffsets());
    };
    clearTimeout(trailingCommit);
    trailingCommit = undefined;
    owedCommit = undefined;
    if (Date.now() - lastCommitAt >= commitIntervalMs) {
      await commit();
    } else if (!stopping) {
      const owed = async (): Promise<void> => {
        if (owedCommit !== owed) return;
        owedCommit = undefined;
        if (isRunning() && !isStale())
          await commit().catch((err: unknown) => log.debug({ err }, 'informational offset commit failed'));
      };
      owedCommit = owed;
      trailingCommit = setTimeout(() => void owed(), commitIntervalMs);
      trailingCommit.unref();
    }
    await heartbeat();
  }

  async function runOnce(start: FeedStartOptions): Promise<void> {
    const c = buildConsumer(start);
    consumer = c;
    await c.connect();
    // fromBeginning: when a partition has no valid position at all (e.g. the earliest seek raced
    // a retention cleanup), kafkajs falls back to earliest rather than latest.
    await c.subscribe({ topics: [...start.topics], fromBeginning: true });
    await c.run({
      // Not autoCommit: with it, kafkajs implements seek as an OffsetCommit of the sought offset
      // followed by clearing its cached committed offset, and the next fetch reads the group's
      // offsets back (src/consumer/offsetManager/index.js seek, resolveOffsets). kafkajs runs one
      // fetcher per broker, each applying the seeks of its own partitions then OffsetFetching
      // every partition without a cached offset; a fetcher whose OffsetFetch left before another
      // fetcher's seek commit landed gets the group's old offset for that partition and, after
      // its ListOffsets round trip, writes it over the cache the seek had just cleared. The
      // partition is then fetched from the group's old offset instead of the store's: with the
      // group at the end and the store without a position, its records were never read again.
      // Without autoCommit a seek only sets kafkajs' local next offset, synchronously, and that
      // offset beats the group's (OffsetManager.nextOffset). See also kafkajs issues #585
      // (committed vs resolved offsets) and #1363 (seek not taking effect).
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: options.concurrentPartitions ?? 1,
      eachBatch: (payload) => eachBatch(start, payload),
    });
  }

  /**
   * The initial connect/subscribe is outside kafkajs' crash-restart loop, so retry it here:
   * a cluster that is not up yet must not kill the process (status says 'retrying').
   */
  async function startWithRetry(start: FeedStartOptions, attempt: number): Promise<void> {
    try {
      await runOnce(start);
    } catch (error) {
      const c = consumer;
      consumer = undefined;
      await c?.disconnect().catch(() => undefined);
      if (stopping) return;
      if (!isRetriableKafkaError(error)) {
        setState('crashed', describeError(error));
        throw new FeedCrashError(`Kafka consumer could not start: ${describeError(error)}`, { cause: error });
      }
      const delay = startBackoffMs(attempt);
      setState('retrying', `${describeError(error)}; retrying in ${delay} ms`);
      startRetryTimer = setTimeout(() => {
        startRetryTimer = undefined;
        startWithRetry(start, attempt + 1).catch((e: unknown) =>
          start.onFatal(e instanceof Error ? e : new FeedCrashError(String(e))),
        );
      }, delay);
    }
  }

  async function endOffsets(topics: readonly string[]): Promise<PartitionPosition[]> {
    const positions: PartitionPosition[] = [];
    for (const topic of topics) {
      const a = await connectAdmin();
      try {
        // On clusters with auto.create.topics.enable (and on the librdkafka mock, where
        // auto-created topics get 4 partitions) this metadata request creates the topic.
        const offsets = await a.fetchTopicOffsets(topic);
        for (const { partition, high } of offsets) positions.push({ topic, partition, next: high });
      } catch (error) {
        if (!isUnknownTopic(error)) throw error;
        // The topic does not exist and will not be auto-created: nothing to catch up on. kafkajs
        // keeps the unknown topic in the admin's metadata targets, which would fail every later
        // call, so start over with a fresh admin client.
        log.warn({ topic }, 'Topic does not exist; treating it as empty');
        await resetAdmin();
      }
    }
    return positions.sort((x, y) =>
      x.topic === y.topic ? x.partition - y.partition : x.topic < y.topic ? -1 : 1,
    );
  }

  return {
    kind: 'kafka',

    /**
     * Resolves once the consumer is connected, subscribed and has joined the group. If the
     * cluster is unreachable it resolves anyway after the first failed attempt, keeps retrying in
     * the background (status 'retrying') and never calls onFatal for that. Rejects only for
     * errors kafkajs considers non-retriable (e.g. an invalid topic name).
     */
    async start(start: FeedStartOptions): Promise<void> {
      if (started) throw new InvariantError('KafkaSource.start() called twice');
      started = true;
      if (start.topics.length === 0) throw new ConfigError('Kafka source needs at least one topic');
      startOptions = start;
      await startWithRetry(start, 0);
    },

    endOffsets,

    status(): FeedStatus {
      if (state === 'running' && handlerFailure !== undefined) {
        return { state: 'retrying', reason: handlerFailure, lastActivityAt };
      }
      const silentFor = Date.now() - lastActivityAt;
      if (state === 'running' && inFlight.size === 0 && silentFor > silenceMs) {
        const why = `no answer from the Kafka cluster for ${Math.round(silentFor / 1000)} s (no fetch or heartbeat)`;
        return { state: 'retrying', reason: why, lastActivityAt };
      }
      return reason === undefined ? { state, lastActivityAt } : { state, reason, lastActivityAt };
    },

    async stop(): Promise<void> {
      stopping = true;
      if (startRetryTimer !== undefined) clearTimeout(startRetryTimer);
      clearTimeout(trailingCommit);
      // The group's offsets catch up with the last batch before we leave it: informational, so never
      // fatal and never waited for long (a frozen cluster would hold the shutdown for a request timeout).
      const owed = owedCommit?.();
      if (owed !== undefined) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          owed,
          new Promise((resolve) => (timer = setTimeout(resolve, FINAL_COMMIT_WAIT_MS))),
        ]);
        clearTimeout(timer);
      }
      const pending = Promise.all(inFlight);
      const c = consumer;
      consumer = undefined;
      await Promise.allSettled([c?.disconnect(), resetAdmin()]);
      await pending;
      setState('stopped');
    },
  };
}
