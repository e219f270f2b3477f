/**
 * The Kafka feed source: reads every partition of the changelog topics and hands ordered batches to the
 * handler. matview is no consumer-group member. Each instance holds the whole view, so it reads every
 * partition itself (what the Java client calls `assign()`) and keeps its positions in the store. There is
 * no group to join, no session to wait out, and no rebalance: a restarted process fetches as soon as it
 * has connected, even right after a SIGKILL of the previous one (a group member would first wait for the
 * dead member's session to expire, 30 s by default, longer after repeated crashes), and two instances can
 * never split the partitions between them.
 *
 * Built on kafkajs' cluster and protocol layer (kafkajs-internals.ts): one fetch loop per leader broker,
 * like kafkajs' own consumer and the Java client, each sending one Fetch at a time for its partitions that
 * have room for more (partition-feed.ts). Delivery runs beside the fetches: a partition's next batch is
 * fetched while the previous one is being applied (kafkajs' group consumer waits for a fetch's batches to be
 * applied before it fetches again from that broker), and handed over strictly in order, the next one
 * possibly while the one before is still being applied (it then says so, and the store applies it only
 * after that one: partition-feed.ts), with at most `concurrentPartitions` partitions handled at once.
 *
 * Errors (kafkajs `consumerGroup.js` `fetch` / `recoverFromFetch` handle the same cases):
 * - a leader moved or metadata is stale (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE, FENCED/UNKNOWN
 *   leader epoch, UNKNOWN_TOPIC_OR_PARTITION): refresh the metadata, the partition follows its new leader;
 * - a broker is gone, a connection failed, TLS or SASL failed: `retrying` with the cause, metadata
 *   refreshed, retried with backoff (0.5 s doubling to 30 s) for as long as it takes; reads go on;
 * - OFFSET_OUT_OF_RANGE: `onOffsetOutOfRange`, then the partition continues from its earliest offset;
 * - the handler rejects: what was fetched after the batch is dropped and the partition is fetched again
 *   from the last applied offset (partition-feed.ts); a rejection with `retriable: false` (e.g. a failed
 *   LMDB write) is fatal: `onFatal`, state `crashed`.
 *
 * Positions live in the store; the informational commits to KAFKA_GROUP_ID are in group-commits.ts.
 * Self-contained: everything comes in through options (logger included), so it can run in a worker thread.
 */
import { ConfigError, FeedCrashError, InvariantError } from '../errors.js';
import { createClusterClient, type KafkaClientOptions } from './kafka-client.js';
import {
  classifyKafkaError,
  describeKafkaError,
  explainKafkaError,
  kafkaFailure,
  type KafkaFailureCause,
} from './kafka-errors.js';
import { GroupCommitter } from './group-commits.js';
import {
  READ_COMMITTED,
  fetchLenient,
  protocolError,
  type FetchedPartition,
  type KafkajsCluster,
} from './kafkajs-internals.js';
import { turnsOf, type DecodeTurns } from './loop-turns.js';
import { PartitionFeed, fetchedBatch, type FetchTicket, type TakenBatch } from './partition-feed.js';
import type {
  FeedRecord,
  FeedSource,
  FeedStartOptions,
  FeedState,
  FeedStatus,
  PartitionPosition,
} from './types.js';

export { createKafkaClient, kafkaLogCreator, type KafkaClientOptions } from './kafka-client.js';
export { toFeedBatch } from './partition-feed.js';

export interface KafkaSourceOptions extends KafkaClientOptions {
  /**
   * KAFKA_GROUP_ID for the informational offset commits (lag tools); undefined: no commits (a rebuild's
   * second source). Never joined: see the module comment.
   */
  readonly groupId?: string;
  /** Written into every commit's metadata, so two instances sharing a group id are noticed (group-commits.ts). */
  readonly instanceId?: string;
  /**
   * Fetch `maxWaitTime`. Keep it short: it bounds how stale a quiet partition's data can be and, on the
   * librdkafka mock cluster, a waiting fetch is not woken up by newly produced records.
   */
  readonly fetchMaxWaitMs: number;
  /**
   * Silence after which a running source is reported as `retrying` (no fetch answered while no batch is
   * being handled). Default: the larger of 5 s and 20 fetch waits. A frozen cluster answers nothing but
   * keeps connections open; without this it would look healthy until a request times out (30 s).
   */
  readonly silenceMs?: number;
  /** Shortest interval between the group's offset commits (default 1 s; 0: after every batch). */
  readonly commitIntervalMs?: number;
  /**
   * Partitions whose batches are handled at once (default 16). Each partition stays in offset order (a
   * partition may have more than one batch out: partition-feed.ts).
   */
  readonly concurrentPartitions?: number;
  /**
   * Bytes of records fetched ahead per partition while its previous batch is applied (default
   * {@link DEFAULT_PREFETCH_BYTES}); also the most one fetch asks for per partition.
   */
  readonly prefetchBytes?: number;
  /**
   * The turns of the event loop its Fetch responses are decoded in (loop-turns.ts): default the live feed's;
   * a rebuild's source takes the rebuild's, which wait for the live feed's.
   */
  readonly turns?: DecodeTurns;
  /** Called for every failed attempt to reach, authenticate to or fetch from the cluster (a metric counts them). */
  readonly onFailure?: (cause: KafkaFailureCause) => void;
  /**
   * Called for every Fetch request sent, with the broker's node id (a metric counts them: the fetch rate says
   * how often each broker is asked, and records applied per fetch how much each answer carries).
   */
  readonly onFetch?: (nodeId: number) => void;
}

/** How long `stop()` waits for the last informational offset commit. */
const FINAL_COMMIT_WAIT_MS = 1_000;
/** Metadata is refreshed this often even without errors: new partitions, new topics, leader changes. */
const METADATA_REFRESH_MS = 30_000;
/** Most bytes one Fetch asks for over all its partitions (Kafka's `fetch.max.bytes` default, 50 MiB). */
const FETCH_MAX_BYTES = 50 * 1024 * 1024;
/**
 * Default of `prefetchBytes` (KAFKA_PREFETCH_BYTES): 4 MiB per partition, 64 MiB over 16 partitions (what
 * librdkafka queues ahead by default). A partition that is behind hands all of it to one commit, so it sets
 * how big the commits of a catch-up get: with Kafka's 1 MiB `max.partition.fetch.bytes`, 16 partitions
 * brought commits of ~55k records (half of them waiting while the other half committed); with 4 MiB and
 * MAX_RECORDS_PER_COMMIT at 250k they reach 80-215k, and a fresh instance caught up with 446k records at a
 * median 60.3k records/s against 49.0k (5 runs each, bench box), with `user(id)` p99 while catching up no worse
 * (52-68 ms against 74-78 ms) and the same peak RSS within 5 %.
 */
export const DEFAULT_PREFETCH_BYTES = 4 * 1024 * 1024;

/** Backoff of a failing connection or fetch loop: 0.5 s doubling to 30 s, forever. */
export const retryBackoffMs = (attempt: number): number =>
  Math.min(30_000, 500 * 2 ** Math.min(Math.max(0, attempt - 1), 6));

/**
 * Partition error codes (kafkajs `src/protocol/error.js`) after which the leader is looked up again, as in
 * kafkajs `consumerGroup.js` STALE_METADATA_ERRORS (plus the replica and storage errors a moving leader answers).
 */
const STALE_METADATA_CODES = new Set([
  3, // UNKNOWN_TOPIC_OR_PARTITION
  5, // LEADER_NOT_AVAILABLE
  6, // NOT_LEADER_FOR_PARTITION
  9, // REPLICA_NOT_AVAILABLE
  56, // KAFKA_STORAGE_ERROR
  74, // FENCED_LEADER_EPOCH
  75, // UNKNOWN_LEADER_EPOCH
  78, // OFFSET_NOT_AVAILABLE
]);
const OFFSET_OUT_OF_RANGE = 1;

const isUnknownTopic = (error: unknown): boolean =>
  (error as { type?: unknown } | null)?.type === 'UNKNOWN_TOPIC_OR_PARTITION';

const partitionKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/** Sleeps that `wake()` ends early (unless it is a backoff) and `cancel()` ends for good. */
class Waker {
  cancelled = false;
  private readonly sleepers = new Set<{ done: () => void; wakeable: boolean }>();

  /** `wakeable: false` for a backoff after a failure: only `cancel()` cuts it short, not new work. */
  sleep(ms: number, wakeable = true): Promise<void> {
    if (this.cancelled) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper = {
        wakeable,
        done: (): void => {
          clearTimeout(timer);
          this.sleepers.delete(sleeper);
          resolve();
        },
      };
      const timer = setTimeout(sleeper.done, ms);
      this.sleepers.add(sleeper);
    });
  }

  wake(): void {
    for (const s of [...this.sleepers]) if (s.wakeable) s.done();
  }

  cancel(): void {
    this.cancelled = true;
    for (const s of [...this.sleepers]) s.done();
  }
}

/** Creates the Kafka source. Nothing connects until `start()` / `endOffsets()`. */
export function createKafkaSource(options: KafkaSourceOptions): FeedSource {
  const log = options.logger.child({ component: 'kafka-source' });
  const silenceMs = options.silenceMs ?? Math.max(5_000, 20 * options.fetchMaxWaitMs);
  const prefetchBytes = options.prefetchBytes ?? DEFAULT_PREFETCH_BYTES;
  const concurrency = options.concurrentPartitions ?? 16;
  const turns = options.turns ?? turnsOf('live');
  const cluster: KafkajsCluster = createClusterClient({ ...options, allowAutoTopicCreation: true });
  const committer =
    options.groupId === undefined
      ? undefined
      : new GroupCommitter({
          cluster,
          groupId: options.groupId,
          instanceId: options.instanceId ?? 'unknown',
          intervalMs: options.commitIntervalMs ?? 1_000,
          logger: options.logger,
        });

  let state: FeedState = 'starting';
  let stateReason: string | undefined;
  let lastActivityAt = Date.now();
  let started = false;
  let stopping = false;
  let crashed = false;
  let startOptions: FeedStartOptions | undefined;
  /** Why the last handler call failed, until a batch succeeds. */
  let handlerFailure: string | undefined;
  /** Failing parts of the source (connect, metadata, a broker's fetch loop, a partition) → their cause. */
  const failures = new Map<string, { cause: KafkaFailureCause; reason: string }>();

  const partitions = new Map<string, PartitionFeed>();
  const topics: string[] = [];
  /** Topics the cluster does not have (yet): looked up again at every metadata refresh. */
  const missingTopics = new Set<string>();
  /** One fetch loop per leader broker: its wake-up handle. */
  const loops = new Map<number, Waker>();
  const inFlight = new Set<Promise<void>>();
  /** Partitions with a batch ready, waiting for one of the `concurrency` handler slots (FIFO). */
  const waitingForSlot = new Set<PartitionFeed>();
  /** Partitions with a batch out: each holds one of the `concurrency` slots until none of its batches is. */
  const handling = new Set<PartitionFeed>();
  /** Ends the source's own waits (start-up retries, offset resets) at stop. */
  const stopping$ = new Waker();
  let metadataTimer: NodeJS.Timeout | undefined;
  let metadataDueAt = 0;
  let refreshing: Promise<void> | undefined;
  let connecting: Promise<void> | undefined;

  const touch = (): void => {
    lastActivityAt = Date.now();
  };

  /** Logs transitions only. */
  const setState = (next: FeedState, why?: string): void => {
    if (state === 'stopped' || (state === 'crashed' && next !== 'stopped')) return;
    const previous = state;
    state = next;
    stateReason = why;
    if (previous === next) return;
    if (next === 'crashed') log.error({ state: next, previous, reason: why }, 'Kafka feed state');
    else log.info({ state: next, previous }, 'Kafka feed state');
  };

  /**
   * Records a failed attempt of `where`. Logs one line per cause when it starts failing (kafkajs' own lines
   * for each retry are at debug), counts every attempt (`onFailure`), and the status says `retrying`.
   */
  const fail = (where: string, error: unknown, retryInMs?: number): KafkaFailureCause => {
    const cause = classifyKafkaError(error);
    options.onFailure?.(cause);
    const reason = explainKafkaError(error);
    const already = [...failures.values()].some((f) => f.cause === cause);
    failures.set(where, {
      cause,
      reason: retryInMs === undefined ? reason : `${reason}; retrying in ${retryInMs} ms`,
    });
    if (!already && !stopping) {
      const err = kafkaFailure(error);
      log.error(
        { err, code: err.code, cause, where },
        `${reason}; reads go on from the store, retrying with backoff`,
      );
    }
    return cause;
  };

  const recover = (where: string): void => {
    if (!failures.delete(where)) return;
    if (failures.size === 0) log.info('Kafka feed recovered: the cluster answers again');
  };

  // ---- connecting and metadata ----

  const connect = (): Promise<void> =>
    (connecting ??= cluster.connect().finally(() => {
      connecting = undefined;
    }));

  /** Adds `topic` to the cluster's metadata targets; false when the cluster does not have it. */
  async function addTopic(topic: string): Promise<boolean> {
    try {
      await cluster.addTargetTopic(topic);
      missingTopics.delete(topic);
      return true;
    } catch (error) {
      if (!isUnknownTopic(error)) throw error;
      if (!missingTopics.has(topic))
        log.warn({ topic }, 'Topic does not exist; it is read once it does (metadata is checked every 30 s)');
      missingTopics.add(topic);
      return false;
    }
  }

  /** Reads the partitions and leaders of every topic and starts a fetch loop for every leader. */
  async function refreshMetadata(): Promise<void> {
    refreshing ??= (async () => {
      try {
        await connect();
        for (const topic of [...missingTopics]) await addTopic(topic);
        await cluster.refreshMetadata();
        for (const topic of topics) {
          if (missingTopics.has(topic)) continue;
          for (const meta of cluster.findTopicPartitionMetadata(topic)) {
            const p = partitionOf(topic, meta.partitionId);
            if (p === undefined) return; // unusable stored position: fatal already
            p.leader = meta.leader >= 0 ? meta.leader : undefined;
          }
        }
        recover('metadata');
        touch();
        for (const p of partitions.values()) if (p.leader !== undefined) ensureLoop(p.leader);
        for (const loop of loops.values()) loop.wake();
        // A partition without a leader (an election under way) is looked up again soon, not in 30 s.
        if ([...partitions.values()].some((p) => p.leader === undefined)) scheduleMetadataRefresh(1_000);
      } catch (error) {
        fail('metadata', error);
        throw error;
      } finally {
        refreshing = undefined;
      }
    })();
    return refreshing;
  }

  /** The partition's state, created at its stored position (or 0) when first seen. */
  function partitionOf(topic: string, partition: number): PartitionFeed | undefined {
    const k = partitionKey(topic, partition);
    let p = partitions.get(k);
    if (p !== undefined) return p;
    const start = startOptions;
    if (start === undefined) throw new InvariantError('partitions are discovered only after start()');
    let offset: bigint;
    try {
      // No stored position: offset 0, the first possible one; when retention removed it, the broker
      // answers OFFSET_OUT_OF_RANGE and the partition moves to its earliest offset.
      const stored = start.resumeFrom(topic, partition) ?? '0';
      if (!/^\d+$/.test(stored)) throw new Error(`"${stored}" is not an offset`);
      offset = BigInt(stored);
    } catch (cause) {
      // Reading from a wrong position is worse than stopping.
      crash(
        new FeedCrashError(`Could not resume ${topic}[${partition}] from the stored position`, { cause }),
      );
      return undefined;
    }
    p = new PartitionFeed(topic, partition, offset, prefetchBytes);
    partitions.set(k, p);
    return p;
  }

  function crash(error: FeedCrashError): void {
    if (crashed) return;
    crashed = true;
    stopping$.cancel();
    for (const loop of loops.values()) loop.cancel();
    setState('crashed', error.message);
    startOptions?.onFatal(error);
  }

  /**
   * Connects and discovers the partitions; on failure, tries again in the background with backoff until it
   * works. Then the metadata is refreshed every 30 s.
   */
  async function attemptStart(attempt: number): Promise<void> {
    try {
      await refreshMetadata();
    } catch (error) {
      if (stopping || crashed) return;
      const delay = retryBackoffMs(attempt + 1);
      const why = `${explainKafkaError(error)}; retrying in ${delay} ms`;
      if (state === 'starting') setState('retrying', why);
      else stateReason = why;
      void stopping$
        .sleep(delay, false)
        .then(() => (stopping || crashed ? undefined : attemptStart(attempt + 1)));
      return;
    }
    if (crashed) return;
    setState('running');
    scheduleMetadataRefresh(METADATA_REFRESH_MS);
  }

  /** Refreshes the metadata in `delayMs`, unless a refresh is already due sooner. */
  function scheduleMetadataRefresh(delayMs: number): void {
    if (stopping || crashed) return;
    const due = Date.now() + delayMs;
    if (metadataTimer !== undefined && metadataDueAt <= due) return;
    clearTimeout(metadataTimer);
    metadataDueAt = due;
    metadataTimer = setTimeout(() => {
      metadataTimer = undefined;
      refreshMetadata().then(
        () => scheduleMetadataRefresh(METADATA_REFRESH_MS),
        (error: unknown) => {
          // Reported by refreshMetadata; try again sooner than the regular interval.
          log.debug({ err: error }, 'metadata refresh failed');
          scheduleMetadataRefresh(retryBackoffMs(3));
        },
      );
    }, delayMs);
    metadataTimer.unref();
  }

  // ---- fetching ----

  function ensureLoop(nodeId: number): void {
    if (loops.has(nodeId) || stopping || crashed) return;
    const loop = new Waker();
    loops.set(nodeId, loop);
    void fetchLoop(nodeId, loop).finally(() => {
      if (loops.get(nodeId) === loop) loops.delete(nodeId);
    });
  }

  const wakeLeader = (p: PartitionFeed): void => {
    if (p.leader !== undefined) loops.get(p.leader)?.wake();
  };

  async function fetchLoop(nodeId: number, loop: Waker): Promise<void> {
    const where = `broker ${nodeId}`;
    let attempt = 0;
    while (!loop.cancelled && !stopping && !crashed) {
      const now = Date.now();
      const led = [...partitions.values()].filter((p) => p.leader === nodeId);
      if (led.length === 0) {
        // Its partitions moved to other leaders. Deregistered now, not after the return: a refresh in
        // between would find this loop still registered and not start the one it needs.
        if (loops.get(nodeId) === loop) loops.delete(nodeId);
        recover(where);
        return;
      }
      const due = led.filter((p) => p.fetchable(now));
      if (due.length === 0) {
        // Nothing to fetch: every partition has its prefetch full, waits for a reset, or backs off. Woken
        // when a batch leaves a full partition; otherwise looked at again after a fetch wait.
        const soonest = Math.min(
          ...led.map((p) => (p.retryAt > now ? p.retryAt - now : options.fetchMaxWaitMs)),
        );
        await loop.sleep(Math.max(1, Math.min(options.fetchMaxWaitMs, soonest)));
        continue;
      }
      const tickets = new Map<PartitionFeed, FetchTicket>(due.map((p) => [p, p.beginFetch()]));
      try {
        const broker = await cluster.findBroker({ nodeId });
        const byTopic = new Map<string, { partition: number; fetchOffset: string; maxBytes: number }[]>();
        for (const [p, ticket] of tickets) {
          let list = byTopic.get(p.topic);
          if (list === undefined) byTopic.set(p.topic, (list = []));
          list.push({
            partition: p.partition,
            fetchOffset: ticket.offset.toString(),
            maxBytes: prefetchBytes,
          });
        }
        options.onFetch?.(nodeId);
        const response = await fetchLenient(
          broker,
          {
            maxWaitTime: options.fetchMaxWaitMs,
            minBytes: 1,
            maxBytes: FETCH_MAX_BYTES,
            isolationLevel: READ_COMMITTED,
            topics: [...byTopic].map(([topic, list]) => ({ topic, partitions: list })),
          },
          turns,
        );
        touch();
        attempt = 0;
        recover(where);
        const answered = new Set<PartitionFeed>();
        for (const { topicName, partitions: data } of response.responses) {
          for (const d of data) {
            const p = partitions.get(partitionKey(topicName, d.partition));
            const ticket = p === undefined ? undefined : tickets.get(p);
            if (p === undefined || ticket === undefined) continue;
            answered.add(p);
            onPartitionData(p, ticket, d);
          }
        }
        for (const [p, ticket] of tickets) if (!answered.has(p)) p.abortFetch(ticket);
      } catch (error) {
        for (const [p, ticket] of tickets) p.abortFetch(ticket);
        if (stopping || crashed) return;
        attempt++;
        const delay = retryBackoffMs(attempt);
        const cause = fail(where, error, delay);
        // The broker may be gone or no longer lead these partitions: look the leaders up again. The backoff
        // is not cut short by new work (a refresh that still names this broker would make it spin).
        if (cause === 'connection' || cause === 'protocol') refreshMetadata().catch(() => undefined);
        await loop.sleep(delay, false);
      }
    }
  }

  /** One partition of a fetch response: records to deliver, or an error to act on. */
  function onPartitionData(p: PartitionFeed, ticket: FetchTicket, data: FetchedPartition): void {
    const where = `${p.topic}[${p.partition}]`;
    if (data.errorCode === 0) {
      const { batch: feedBatch, next } = fetchedBatch(p.topic, ticket.offset, data);
      if (p.endFetch(ticket, feedBatch, next)) {
        recover(where);
        deliver(p);
      }
      return;
    }
    p.abortFetch(ticket);
    if (data.errorCode === OFFSET_OUT_OF_RANGE) {
      void resetToEarliest(p);
      return;
    }
    if (STALE_METADATA_CODES.has(data.errorCode)) {
      // Routine when leaders move: not a failure, just where to fetch from.
      p.retryAt = Date.now() + Math.min(1_000, options.fetchMaxWaitMs * 2);
      refreshMetadata().catch(() => undefined);
      return;
    }
    const error = protocolError(data.errorCode);
    fail(where, Object.assign(error, { message: `${error.message} (${where})` }));
    p.retryAt = Date.now() + retryBackoffMs(2);
  }

  /** OFFSET_OUT_OF_RANGE: tell the caller, then continue from the earliest offset the partition holds. */
  async function resetToEarliest(p: PartitionFeed): Promise<void> {
    if (p.resetting) return;
    p.resetting = true;
    log.warn(
      { topic: p.topic, partition: p.partition, offset: p.fetchOffset.toString() },
      'OFFSET_OUT_OF_RANGE: the position is no longer in the topic; continuing from its earliest offset',
    );
    try {
      startOptions?.onOffsetOutOfRange?.(p.topic, p.partition);
    } catch (err) {
      log.error({ err }, 'onOffsetOutOfRange failed');
    }
    for (let attempt = 1; !stopping && !crashed; attempt++) {
      try {
        const [offsets] = await cluster.fetchTopicsOffset([
          { topic: p.topic, partitions: [{ partition: p.partition }], fromBeginning: true },
        ]);
        const earliest = offsets?.partitions.find((x) => x.partition === p.partition)?.offset;
        if (earliest === undefined) throw new Error(`no earliest offset for ${p.topic}[${p.partition}]`);
        p.resetTo(BigInt(earliest));
        recover(`${p.topic}[${p.partition}] reset`);
        wakeLeader(p);
        return;
      } catch (error) {
        fail(`${p.topic}[${p.partition}] reset`, error);
        await stopping$.sleep(retryBackoffMs(attempt), false);
      }
    }
  }

  // ---- delivery ----

  /**
   * Hands `p`'s next batch to the handler when it has one ready (partition-feed.ts: possibly while one is
   * out) and holds a slot or a slot is free.
   */
  function deliver(p: PartitionFeed): void {
    if (stopping || crashed || !p.ready()) return;
    if (!handling.has(p) && handling.size >= concurrency) {
      waitingForSlot.add(p);
      return;
    }
    const taken = p.take();
    if (taken === undefined) return;
    handling.add(p);
    wakeLeader(p); // room for another prefetch
    const call = handle(p, taken).finally(() => {
      if (!p.handling) handling.delete(p);
      inFlight.delete(call);
      deliver(p);
      for (const next of waitingForSlot) {
        if (handling.size >= concurrency) break;
        waitingForSlot.delete(next);
        deliver(next);
      }
    });
    inFlight.add(call);
  }

  async function handle(p: PartitionFeed, taken: TakenBatch): Promise<void> {
    const start = startOptions;
    if (start === undefined) return;
    const { batch } = taken;
    /**
     * The handler decoded the batch and holds `heldBytes` for it: its records go (the Fetch response they are
     * views of is freed with the last of them), and the partition may hand out its next batch sooner.
     */
    const decoded = (heldBytes: number): void => {
      if (!p.release(taken, heldBytes)) return;
      (batch.records as FeedRecord[]).length = 0;
      // After the handler's call returns to its own await, not inside it.
      setImmediate(() => deliver(p));
    };
    try {
      await start.handler(batch, decoded);
    } catch (error) {
      p.settle(taken, false, Date.now());
      // Stopping: the store refuses what it has not started to commit (read again at the next start).
      if (stopping) return;
      wakeLeader(p);
      if ((error as { retriable?: unknown } | null)?.retriable === false || isProgrammingError(error)) {
        crash(
          new FeedCrashError(
            `applying ${batch.topic}[${batch.partition}] failed and cannot be retried: ${describeKafkaError(error)}`,
            { cause: error },
          ),
        );
        return;
      }
      // Said at once, and in the status until a batch succeeds.
      if (handlerFailure === undefined)
        log.warn({ err: error, topic: batch.topic, partition: batch.partition }, 'batch failed; retrying');
      handlerFailure = `applying ${batch.topic}[${batch.partition}] failed: ${describeKafkaError(error)}`;
      return;
    }
    p.settle(taken, true, Date.now());
    handlerFailure = undefined;
    touch();
    committer?.offer(batch.topic, batch.partition, taken.next.toString());
  }

  // ---- end offsets ----

  async function endOffsets(of: readonly string[]): Promise<PartitionPosition[]> {
    await connect();
    const positions: PartitionPosition[] = [];
    for (const topic of of) {
      // On clusters with auto.create.topics.enable (and on the librdkafka mock, where auto-created
      // topics get 4 partitions) this metadata request creates the topic.
      if (!(await addTopic(topic))) continue; // nothing to catch up on
      const partitionIds = cluster
        .findTopicPartitionMetadata(topic)
        .map((m) => ({ partition: m.partitionId }));
      if (partitionIds.length === 0) continue;
      const [offsets] = await cluster.fetchTopicsOffset([
        { topic, partitions: partitionIds, fromBeginning: false },
      ]);
      for (const { partition, offset } of offsets?.partitions ?? [])
        positions.push({ topic, partition, next: offset });
    }
    return positions.sort((x, y) =>
      x.topic === y.topic ? x.partition - y.partition : x.topic < y.topic ? -1 : 1,
    );
  }

  return {
    kind: 'kafka',

    /**
     * Resolves once the partitions are known and fetching has begun, or after the first failed attempt to
     * get there (then it keeps retrying in the background, status `retrying`, and never calls onFatal for
     * that: a cluster that is down, refuses the credentials or the TLS handshake must not stop the reads).
     */
    async start(start: FeedStartOptions): Promise<void> {
      if (started) throw new InvariantError('KafkaSource.start() called twice');
      started = true;
      if (start.topics.length === 0) throw new ConfigError('Kafka source needs at least one topic');
      startOptions = start;
      topics.push(...start.topics);
      for (const topic of topics) missingTopics.add(topic);
      await attemptStart(0);
    },

    endOffsets,

    status(): FeedStatus {
      let prefetchedBytes = 0;
      for (const p of partitions.values()) prefetchedBytes += p.prefetchedBytes;
      const at = { lastActivityAt, prefetchedBytes };
      if (state === 'running' && handlerFailure !== undefined)
        return { state: 'retrying', reason: handlerFailure, ...at };
      if (state === 'running' && failures.size > 0) {
        const [first] = failures.values();
        return { state: 'retrying', reason: first!.reason, ...at };
      }
      const silentFor = Date.now() - lastActivityAt;
      if (state === 'running' && inFlight.size === 0 && silentFor > silenceMs) {
        const why = `no answer from the Kafka cluster for ${Math.round(silentFor / 1000)} s (no fetch answered)`;
        return { state: 'retrying', reason: why, ...at };
      }
      return stateReason === undefined ? { state, ...at } : { state, reason: stateReason, ...at };
    },

    async stop(): Promise<void> {
      stopping = true;
      stopping$.cancel();
      clearTimeout(metadataTimer);
      for (const loop of loops.values()) loop.cancel();
      // The group's offsets catch up with the last batches: informational, so never fatal and never waited
      // for long (a frozen cluster would hold the shutdown for a request timeout).
      const pending = Promise.all(inFlight);
      await committer?.flush(FINAL_COMMIT_WAIT_MS);
      await Promise.allSettled([cluster.disconnect()]);
      await pending;
      setState('stopped');
    },
  };
}

/** Errors that are bugs, not conditions: retrying would fail the same way (kafkajs retry/index.js UNRECOVERABLE_ERRORS). */
const isProgrammingError = (error: unknown): boolean =>
  error instanceof TypeError ||
  error instanceof RangeError ||
  error instanceof ReferenceError ||
  error instanceof SyntaxError;
