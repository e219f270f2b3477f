/**
 * `matview serve`: opens the store, picks the source (Kafka when KAFKA_BROKERS is set, else the
 * embedded changelog with the demo generator), wires ingest → store → API, and shuts down in
 * order on SIGTERM/SIGINT: stop consuming, let the open transaction finish, close the store.
 *
 * Before consuming it checks the stored positions against what the topics still hold (OFFSET_RESET_POLICY)
 * and starts an online rebuild when the active generation's view version differs from the code's, when a
 * rebuild was left half done, or when `matview rebuild` asked for one (its request file taken up as it
 * appears, and looked for every REBUILD_REQUEST_CHECK_MS).
 */
import type { FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { createApiServer } from '../../api/server.js';
import { attachLiveWebSocket, type LiveWebSocket } from '../../api/ws.js';
import { toOutboxEntry } from '../feed/dead-letter.js';
import { ensureDeadLetterTopics } from '../feed/dead-letter-topics.js';
import { startDemoGenerator, type DemoGenerator } from '../demo/generator.js';
import { openEmbeddedChangelog } from '../feed/embedded-changelog.js';
import { DataDirError, isKafkaUnavailable, isMatviewError } from '../errors.js';
import { liveWriterOf } from '../lmdb-open-gate.js';
import { classifyKafkaError, type KafkaFailureCause } from '../feed/kafka-errors.js';
import type { KafkaClientOptions } from '../feed/kafka-client.js';
import { createKafkaSource, retryBackoffMs } from '../feed/kafka-source.js';
import { createKafkaWriter } from '../feed/kafka-writer.js';
import { turnsOf } from '../feed/loop-turns.js';
import type { ChangelogWriter, FeedBatch, FeedSource, PartitionPosition } from '../feed/types.js';
import { createLiveHub, type LiveHub } from '../live/hub.js';
import { createDecoders, needsRegistry, registryClient } from '../formats/index.js';
import { startDeadLetterDrainer } from '../pipeline/dead-letter-drainer.js';
import { DecodeThread } from '../pipeline/decode-thread.js';
import { createIngestHandler, type DeadLetter } from '../pipeline/ingest.js';
import { openStore, type LmdbStore } from '../store/lmdb-store.js';
import { REBUILD_REQUEST_CHECK_MS, watchRebuildRequests } from '../store/requests.js';
import { priorityNotice, type ThreadPriority } from '../store/thread-priority.js';
import { TABLES, type Table } from '../views/source.js';
import type { ViewModule } from '../views/types.js';
import type { Generation } from '../store/generation.js';
import { kafkaClientOptions, type Config } from '../ops/config.js';
import { claimDataDir, ensureDataDir, heldBy, storePathOf, type DataDirClaim } from '../store/data-dir.js';
import { FeedTracker } from './feed-tracker.js';
import { HandoffGate } from './handoff-gate.js';
import type { Logger } from '../ops/logger.js';
import { createMetrics, type Metrics } from '../ops/metrics.js';
import {
  describeOutOfRange,
  findOutOfRange,
  fromEndOffsets,
  kafkaOffsetRanges,
  offsetOutOfRangeError,
  offsetResetError,
  type OffsetRangeReader,
  type OutOfRange,
} from './offset-ranges.js';
import { coldStartBulkLoad } from './cold-start.js';
import { RebuildController, type BulkLoad, type RebuildSource } from './rebuild.js';
import { checkCompaction, claimRole, replicaIngest, startPublishing, type Publishing } from './view-topic.js';

export { ensureDataDir, storePathOf };

export interface Running {
  readonly port: number;
  readonly store: LmdbStore;
  readonly source: FeedSource;
  readonly tracker: FeedTracker;
  readonly metrics: Metrics;
  /** The embedded changelog's writer, or the Kafka DLQ writer. */
  readonly writer: ChangelogWriter;
  readonly demo: DemoGenerator | undefined;
  /** Online rebuilds (shadow generation + swap). */
  readonly rebuild: RebuildController;
  /** The live hub behind GraphQL subscriptions (its `stats()` is what the live tests inspect). */
  readonly live: LiveHub;
  /** GraphQL over WebSocket on the API port (`stats()`: connections, backpressure waits). */
  readonly websocket: LiveWebSocket;
  /** Resolves when the feed failed for good (the caller exits non-zero). */
  readonly fatal: Promise<Error>;
  close(): Promise<void>;
}

/** What tests (and embedders) may change besides the configuration. */
export interface StartOptions {
  /**
   * The views to maintain (default: the registry's VIEWS). Tests register a throwaway view or bump a
   * version with it; other views than VIEWS need WRITER_THREAD=false.
   */
  readonly views?: readonly ViewModule[];
  /** Awaited before each rebuild handoff; tests use it to read while a complete shadow waits to be swapped. */
  readonly beforeSwap?: (generation: Generation) => Promise<void>;
  /**
   * How often the server looks for a rebuild request file (default REBUILD_REQUEST_CHECK_MS); tests set it
   * past their timeout to show that a request is taken up as its file appears.
   */
  readonly rebuildRequestCheckMs?: number;
}

export async function startServer(
  config: Config,
  logger: Logger,
  options: StartOptions = {},
): Promise<Running> {
  const dataDir = ensureDataDir(config.dataDir);
  const storePath = storePathOf(dataDir);
  // One server per DATA_DIR: a second one would write the same store (and its open alone can make the
  // first lose a commit: src/lmdb-open-gate.ts). The claim refuses a second one of this host, even one
  // started in the same millisecond; a server of a matview without the claim still has its open gate.
  const claim = await claimDataDir(dataDir, 'serve');
  const opened = new StartCleanup(logger);
  opened.add(() => claim.release());
  try {
    const writer = await liveWriterOf(storePath);
    if (writer !== undefined) throw new DataDirError(dataDir, heldBy(writer.pid, 'serve', 'serve'));
    const notePriority = (priority: ThreadPriority | undefined): void => {
      const notice = priorityNotice(config.writerThreadNice, config.writerThread, priority);
      if (notice !== undefined) logger[notice.level](notice.fields, notice.message);
    };
    // Without a writer thread nothing reports a priority: said here.
    if (!config.writerThread) notePriority(undefined);
    const store = openStore({
      path: storePath,
      mapSize: config.lmdbMapSizeBytes,
      writerThread: config.writerThread,
      writerThreadNice: config.writerThreadNice,
      onWriterPriority: (priority) => notePriority(priority),
      maxRecordsPerCommit: config.maxRecordsPerCommit,
      rebuildChunkRecords: config.rebuildChunkRecords,
      viewRebuildBufferEntries: config.viewRebuildBufferEntries,
      ...(options.views === undefined ? {} : { views: options.views }),
      onListenerError: (err) => logger.error({ err }, 'commit listener failed'),
      onChunkWriteError: (err) =>
        logger.error(
          { err },
          'writing a rebuild chunk failed: it is kept and tried again (after a restart, the rebuild resumes from its last written chunk)',
        ),
    });
    opened.add(() => store.close());
    return await startOn(store, dataDir, config, logger, options, opened, claim);
  } catch (e) {
    // Whatever step failed (the role check, a log that cannot open, the port taken, the feed's first
    // answer), close what is open: the writer thread may still be loading LMDB, and a process that exits
    // meanwhile aborts in the native module instead of exiting with its one-line error. The claim goes last.
    await opened.closeAll();
    throw e;
  }
}

/**
 * What a start has opened so far, closed in reverse order when the start fails. Once the server's own
 * `close` exists (it closes everything in its order), it replaces the list.
 */
class StartCleanup {
  private closers: (() => unknown)[] = [];

  constructor(private readonly logger: Pick<Logger, 'warn'>) {}

  add(closer: () => unknown): void {
    this.closers.push(closer);
  }

  /** The running server's close takes over from here. */
  handOver(close: () => Promise<void>): void {
    this.closers = [close];
  }

  async closeAll(): Promise<void> {
    const closers = this.closers.reverse();
    this.closers = [];
    for (const closer of closers) {
      try {
        await closer();
      } catch (err) {
        this.logger.warn({ err }, 'closing after a failed start failed');
      }
    }
  }
}

/** The rest of the start, on an open store; everything it opens goes to `opened` until `close` exists. */
async function startOn(
  store: LmdbStore,
  dataDir: string,
  config: Config,
  logger: Logger,
  options: StartOptions,
  opened: StartCleanup,
  claim: DataDirClaim,
): Promise<Running> {
  const metrics = createMetrics();
  if (store.upgradedFrom !== undefined)
    logger.warn(
      { format: store.upgradedFrom },
      'the data directory held a store of an older format: it starts empty and the view is rebuilt from the topics',
    );
  await claimRole(store, config);
  await store.claimOwner();
  opened.add(() => store.releaseOwner());
  const dropped = await store.collectGarbage();
  if (dropped.length > 0)
    logger.info({ generations: dropped }, 'dropped generations left over by an interrupted swap');

  const tables = new Map<string, Table>(TABLES.map((t) => [config.topics[t], t]));
  // A replica (VIEW_TOPIC_IN) reads its view topic and nothing else (docs/view-topic.md).
  const replicaTopic = config.viewTopic.in;
  const topics = replicaTopic === undefined ? [...tables.keys()] : [replicaTopic];
  // Each topic's format (SOURCES_FILE; without it, json): one schema cache for the live feed and rebuilds.
  const formatLog = logger.child({ component: 'formats' });
  const decoders = createDecoders(config.sources, config.topics, {
    ...(needsRegistry(config.sources)
      ? { registry: registryClient(config.sources?.schemaRegistryUrls ?? [], config.schemaRegistry) }
      : {}),
    onRetry: (err, attempt, delayMs) =>
      formatLog.warn({ err, attempt, delayMs }, 'schema registry did not answer; retrying'),
    onMissingOptional: (schemaId, columns) =>
      formatLog.warn(
        { schemaId, columns },
        'a schema lacks columns mapped to optional fields: they read as null for its records',
      ),
  });
  let source: FeedSource;
  let writer: ChangelogWriter;
  let demo: DemoGenerator | undefined;
  let ranges: OffsetRangeReader;
  let openRebuildSource: (generation: Generation) => Promise<RebuildSource>;
  let closeExtra: () => Promise<void> = async () => undefined;
  let kafkaClient: KafkaClientOptions | undefined;
  if (config.kafka) {
    const kafka = config.kafka;
    const client = (kafkaClient = kafkaClientOptions(kafka, logger));
    const fetching = {
      ...client,
      fetchMaxWaitMs: kafka.fetchMaxWaitMs,
      concurrentPartitions: kafka.concurrentPartitions,
      ...(kafka.prefetchBytes === undefined ? {} : { prefetchBytes: kafka.prefetchBytes }),
      onFailure: (cause: KafkaFailureCause) => metrics.kafkaFailures.inc({ cause }),
      onFetch: (nodeId: number) => metrics.kafkaFetches.inc({ broker: String(nodeId) }),
    };
    source = createKafkaSource({
      ...fetching,
      groupId: kafka.groupId ?? `matview-${store.instanceId}`,
      instanceId: store.instanceId,
      commitIntervalMs: kafka.commitIntervalMs,
    });
    writer = createKafkaWriter(client);
    opened.add(() => writer.close());
    ranges = kafkaOffsetRanges(client);
    openRebuildSource = async () => ({
      // A second reader of every partition, for the shadow: it commits nothing (the group's offsets follow
      // the live feed, which is what lag tools should show).
      source: createKafkaSource({ ...fetching, turns: turnsOf('rebuild') }),
      close: async () => undefined,
    });
  } else {
    const dir = join(dataDir, 'changelog');
    const changelog = await openEmbeddedChangelog({ dir, logger });
    opened.add(() => changelog.close());
    source = changelog;
    writer = changelog;
    ranges = fromEndOffsets(changelog);
    // The rebuild reads the log through a second handle: its own cursors; it sees the writer's appends by
    // polling. Opened now, before anything writes: lmdb-js deadlocks when a second handle on a path is
    // opened while the first one has an asynchronous write in flight (the demo writes continuously).
    // Stopped after each rebuild and started again by the next one; closed at shutdown.
    const rebuildLog = await openEmbeddedChangelog({
      dir,
      logger: logger.child({ component: 'rebuild-log' }),
      pollIntervalMs: 100,
    });
    opened.add(() => rebuildLog.close());
    closeExtra = () => rebuildLog.close();
    openRebuildSource = async () => ({ source: rebuildLog, close: async () => undefined });
  }

  let resolveFatal: (e: Error) => void = () => {};
  const fatal = new Promise<Error>((r) => (resolveFatal = r));
  const deadLetters = { outboxEntry: (entry: DeadLetter) => toOutboxEntry(entry, config.dlqSuffix) };
  const replica =
    replicaTopic === undefined ? undefined : replicaIngest({ store, config, deadLetters, metrics, logger });
  const tracker = new FeedTracker({
    store,
    source,
    metrics,
    logger,
    topics,
    maxLag: config.ops.readyMaxLag,
    lagGraceMs: config.ops.readyLagGraceMs,
    stallMs: config.ops.liveStallMs,
    deadLettersWaiting: () => store.outboxSize(),
    readyDuringOutage: config.ops.readyDuringFeedOutage,
    ...(replica === undefined ? {} : { upstream: replica.upstream }),
  });
  const gate = new HandoffGate();
  // Invalid records commit into the store's outbox with their batch; the drainer sends them on.
  const drainer = startDeadLetterDrainer({
    outbox: store,
    writer,
    logger,
    onFailure: (topic) => metrics.dlqWriteFailures.inc({ topic }),
  });
  opened.add(() => drainer.stop());
  const onApplied = (batch: FeedBatch, _result: unknown, newestEventMs?: number): void => {
    tracker.applied(batch, newestEventMs);
    drainer.wake();
  };
  // Large batches of the formats that may go there decode on their own thread (needs the packed changes the
  // writer thread takes). A replica decodes none: its records are views, stored as they come.
  const decodeThread =
    config.decodeThread && config.writerThread && replica === undefined
      ? new DecodeThread({ niceIncrement: config.writerThreadNice })
      : undefined;
  if (decodeThread !== undefined) opened.add(() => decodeThread.close());
  const handler = gate.wrap(
    replica !== undefined
      ? replica.live(onApplied)
      : createIngestHandler({
          store,
          tables,
          decoders,
          metrics,
          logger,
          deadLetters,
          maxRecordsPerCommit: config.maxRecordsPerCommit,
          onApplied,
          ...(decodeThread === undefined ? {} : { decodeThread }),
        }),
  );
  // The view topic out (started below): a swap's capture runs inside the swap's hold of the live feed.
  let publishing: Publishing | undefined;
  /** Starts the live feed once a cold start's bulk load has swapped in (set below when there is one). */
  let afterBulkLoad: (() => void) | undefined;
  const rebuild = new RebuildController({
    store,
    topics,
    tables,
    decoders,
    ...(decodeThread === undefined ? {} : { decodeThread }),
    metrics,
    logger,
    gate,
    maxRecordsPerCommit: config.maxRecordsPerCommit,
    rowsFirst: config.rebuildRowsFirst,
    openSource: openRebuildSource,
    endOffsets: () => source.endOffsets(topics),
    ...(options.beforeSwap === undefined ? {} : { beforeSwap: options.beforeSwap }),
    ...(replica === undefined ? {} : { handlerFor: replica.rebuild }),
    afterSwap: () => publishing?.capture() ?? Promise.resolve(),
    onDrain: () => tracker.blockUnlessBlocked(DRAINING),
    onSwapped: () => {
      tracker.unblock();
      tracker.refreshMetrics();
      const startLive = afterBulkLoad;
      afterBulkLoad = undefined;
      startLive?.();
    },
    deadLetters,
    onFatal: (err) => {
      logger.fatal({ err }, 'rebuild feed crashed');
      resolveFatal(err);
    },
  });

  // Subscribed to the store before the feed starts, so no commit is published without it.
  const live = createLiveHub({ store, metrics });
  opened.add(() => live.close());
  // The view topic out follows commits from the first one on (a capture first, when one is due).
  if (config.viewTopic.out !== undefined && kafkaClient !== undefined) {
    publishing = await startPublishing({ store, config, client: kafkaClient, tracker, metrics, logger });
    opened.add(() => publishing?.close(0));
  } else {
    // Not publishing (any more): commits must stop filling the view outbox nobody drains.
    const stopped = await store.stopPublishing();
    if (stopped !== undefined)
      logger.warn(
        { topic: stopped },
        `stopped publishing view topic "${stopped}" (VIEW_TOPIC_OUT is not set); its outbox was dropped, and publishing to it again later sends every user once more`,
      );
  }
  if (replicaTopic !== undefined && kafkaClient !== undefined)
    checkCompaction(kafkaClient, replicaTopic, logger).catch((err: unknown) =>
      logger.warn({ err }, 'could not check the view topic'),
    );
  const api = createApiServer({
    config,
    reader: store,
    commits: store,
    feed: tracker,
    metrics,
    logger,
    live,
  });
  const websocket = attachLiveWebSocket({ api, config, logger });
  api.onClose(() => websocket.close());
  let closing: Promise<void> | undefined;
  const timers: NodeJS.Timeout[] = [];
  /** File system watches (the rebuild request's file), closed with the timers. */
  const watches: FSWatcher[] = [];
  const close = () =>
    (closing ??= (async () => {
      for (const timer of timers) clearInterval(timer);
      for (const watcher of watches) watcher.close();
      await rebuild.stop();
      await demo?.stop();
      // The commit in progress finishes; what waits behind it is refused and read again at the next start
      // (before the feed stops, so that the feed sees a refusal as part of stopping, not as a failure).
      store.stopCommitting();
      await source.stop();
      await decodeThread?.close();
      await drainer.stop();
      // After the feed: every commit is in; publish what is left (bounded), before the store closes.
      await publishing?.close(Math.floor(config.shutdownTimeoutMs / 2));
      await api.close();
      live.close();
      await writer.close();
      // After the writer: closing a second handle on the log while it writes is what lmdb-js must not see.
      await closeExtra();
      await store.releaseOwner();
      await store.close();
      // Only once the store is closed: a close step that failed keeps DATA_DIR claimed (the store may still be
      // open in this process), until the process ends.
      await claim.release();
      logger.info('matview stopped');
    })());
  opened.handOver(close);
  const { port } = await api.listen();

  let ends: PartitionPosition[] = [];
  let broken: OutOfRange[] = [];
  /** Kafka did not answer at start: readiness targets come once it does (see `awaitEndOffsets`). */
  let unreachable = false;
  try {
    ends = await source.endOffsets(topics);
    broken = await checkPositions(store, ranges, topics, config, logger);
  } catch (e) {
    if (config.kafka === undefined || !cannotReachKafka(e)) throw e;
    // A cluster that is down, or refuses the credentials or the TLS handshake, must not stop the reads of
    // what the store holds. The stored positions are then not checked against the topics here: a position
    // the topics no longer hold comes back as OFFSET_OUT_OF_RANGE from the first fetch, and
    // onOffsetOutOfRange below applies OFFSET_RESET_POLICY the same way.
    unreachable = true;
    // The feed logs the cause itself (one line per cause), so this line only says what it means here.
    logger.warn(
      { cause: classifyKafkaError(e) },
      'Kafka did not answer at start: serving the stored view, not ready until the feed has caught up',
    );
  }
  const brokenKeys = new Set(broken.map((b) => `${b.topic}\u0000${b.partition}`));

  let demoSeeded = true;
  if (!config.kafka && config.demo.enabled) {
    const usersEnd = ends
      .filter((e) => e.topic === config.topics.users)
      .reduce((n, e) => n + BigInt(e.next), 0n);
    demoSeeded = usersEnd > 0n;
    demo = startDemoGenerator({
      writer,
      topics: config.topics,
      rate: config.demo.rate,
      users: config.demo.users,
      ...(config.demo.seed === undefined ? {} : { seed: config.demo.seed }),
      logger,
      alreadySeeded: demoSeeded,
    });
  }
  if (demo !== undefined && !demoSeeded) {
    // A fresh demo: "caught up with the end offsets at start" would hold before the seed users exist.
    // Ready means serving them, so the targets are the end offsets once the seed is written.
    demo.seeded
      .then(() => source.endOffsets(topics))
      .then(
        (seeded) => tracker.setTargets(seeded),
        (err: unknown) => {
          logger.warn(
            { err },
            'could not read the end offsets after the demo seed; readiness uses those at start',
          );
          tracker.setTargets(ends);
        },
      );
  } else if (unreachable) {
    void awaitEndOffsets(source, topics, timers, logger).then((reached) => tracker.setTargets(reached));
  } else {
    tracker.setTargets(ends);
  }
  tracker.refreshMetrics();
  // A view whose version changed is rebuilt alone from the stored rows, before anything else commits.
  // Readers keep the old build meanwhile; readiness waits for it like for any catch-up.
  // A replica has no rows to rebuild a view from: it reads its view topic again instead (below).
  const stale = store.fullRebuildReason() === undefined || replica !== undefined ? store.staleViews() : [];
  if (stale.length > 0 && replica === undefined) {
    const topicOf = (table: Table) => config.topics[table];
    logger.info({ views: stale }, 'rebuilding views from the stored rows');
    tracker.block(`rebuilding views from the stored rows: ${stale.join(', ')}`);
    const rebuilt = await store.rebuildStaleViews(topicOf);
    // Before the feed starts: the view topic gets the rebuilt view exactly as it reads now.
    await publishing?.capture();
    tracker.unblock();
    logger.info(
      { views: rebuilt?.rebuilt, rows: rebuilt?.rows, sequence: rebuilt?.sequence.toString() },
      'views rebuilt from the stored rows',
    );
  }
  // A store that never applied a record, facing a long history, loads it as a rebuild before the live feed
  // starts (cold-start.ts). Not a replica (its history is its view topic, one value per user).
  let bulkLoad: BulkLoad | undefined;
  if (replica === undefined && !unreachable) {
    try {
      bulkLoad = await coldStartBulkLoad({
        setting: config.coldStartBulkLoad,
        storedPositions: store.positions().length,
        ranges: () => ranges(topics),
        usersTopic: config.topics.users,
        maxRecordsPerCommit: config.maxRecordsPerCommit,
      });
    } catch (err) {
      logger.warn({ err }, 'could not read the offset ranges at start: catching up commit by commit');
    }
  }
  const startLive = () =>
    source.start({
      topics,
      // A broken position is not used: the live feed reads such a partition from the earliest offset; the
      // commit skips what is below the old generation's stored position, until the rebuild swaps.
      resumeFrom: (topic, partition) =>
        brokenKeys.has(`${topic}\u0000${partition}`) ? undefined : store.position(topic, partition),
      handler,
      onFatal: (err) => {
        logger.fatal({ err }, 'feed crashed');
        resolveFatal(err);
      },
      onOffsetOutOfRange: (topic, partition) => {
        const stored = store.position(topic, partition);
        // No stored position (or one already known broken): reading from the earliest offset is what was asked.
        if (stored === undefined || brokenKeys.has(`${topic}\u0000${partition}`)) return;
        const err = offsetResetError(topic, partition, stored);
        if (config.ops.offsetResetPolicy === 'fail') {
          logger.fatal(
            { err, topic, partition, stored },
            'stored position out of range (OFFSET_RESET_POLICY=fail)',
          );
          resolveFatal(err);
          return;
        }
        logger.warn(
          { topic, partition, stored, policy: 'rebuild' },
          'stored position out of range while running; rebuilding the view',
        );
        tracker.block(
          'rebuilding the view: a stored position went out of range (OFFSET_RESET_POLICY=rebuild)',
        );
        rebuild.start('offset-out-of-range').catch((e: unknown) => {
          logger.fatal({ err: e }, 'rebuild after an offset reset could not start');
          resolveFatal(e instanceof Error ? e : new Error(String(e)));
        });
      },
    });
  if (bulkLoad === undefined) await startLive();
  else {
    tracker.blockForBulkLoad(
      `loading the topics' history into a new store (${bulkLoad.records} records) as a rebuild, before the live feed starts`,
    );
    afterBulkLoad = () => {
      if (closing !== undefined) return;
      startLive().catch((err: unknown) => {
        logger.fatal({ err }, 'the live feed could not start after the bulk load');
        resolveFatal(err instanceof Error ? err : new Error(String(err)));
      });
    };
  }
  logger.info(
    {
      port,
      source: source.kind,
      dataDir,
      topics,
      sequence: store.sequence().toString(),
      instanceId: store.instanceId,
      role: replicaTopic === undefined ? 'materializer' : 'replica',
      ...(config.viewTopic.out === undefined ? {} : { viewTopicOut: config.viewTopic.out }),
      generation: store.activeGeneration().id,
      views: store.viewVersions(),
      ...(bulkLoad === undefined ? {} : { bulkLoad }),
    },
    'matview started',
  );

  const request = store.rebuildRequest();
  const reason =
    broken.length > 0
      ? 'offset-out-of-range'
      : replica !== undefined && stale.length > 0
        ? 'view-version'
        : store.fullRebuildReason() !== undefined && replica === undefined
          ? store.fullRebuildReason()!
          : request !== undefined
            ? 'requested'
            : store.shadowGeneration() !== undefined
              ? 'resume'
              : undefined;
  if (reason === 'offset-out-of-range')
    tracker.block('rebuilding the view: stored positions were out of range (OFFSET_RESET_POLICY=rebuild)');
  // A bulk load resumes the shadow a crash left (a store that applied nothing serves none of it). Whatever
  // picks the rebuild, it serves a pending request too (its shadow's start clears it), `--drain` included.
  const drain = request?.drain === true;
  if (bulkLoad !== undefined) await rebuild.start('cold-start', bulkLoad, drain);
  else if (reason !== undefined) await rebuild.start(reason, undefined, drain);
  else if (store.shadowGeneration() !== undefined) await store.abandonShadow();

  const refresh = setInterval(() => tracker.refreshMetrics(), 1000);
  /** The request the rebuild under way was started for (it clears it once its shadow begins). */
  let startedFor: string | undefined;
  /** No new start before this (ms since the epoch): a start that failed is tried again a second later. */
  let retryAt = 0;
  /** A request that the rebuild under way serves, being taken up (marked drained, then cleared). */
  let takingUp: string | undefined;
  const checkRequests = (): void => {
    const request = store.rebuildRequest();
    if (request === undefined) return;
    if (rebuild.state() === 'idle') {
      if (Date.now() < retryAt) return;
      startedFor = request.requestedAt;
      rebuild.start('requested', undefined, request.drain).catch((err: unknown) => {
        retryAt = Date.now() + 1000;
        logger.error({ err }, 'requested rebuild could not start');
      });
    } else if (request.requestedAt !== startedFor && request.requestedAt !== takingUp) {
      takingUp = request.requestedAt;
      // The rebuild under way reads the whole feed again anyway: it serves this request too. (The request it
      // was started for it clears itself once its shadow begins: kept until then, a start that fails is
      // tried again.)
      logger.info(
        { drain: request.drain },
        'rebuild requested while one is in progress; the current one serves it',
      );
      // Marked before the request goes: a crash in between leaves the request for the next start.
      void (request.drain ? store.drainShadow() : Promise.resolve(false))
        .then((drained) => {
          // Unless the shadow was swapped in meanwhile (the swap unblocks); a run that begins later reads the
          // mark itself (onDrain).
          if (drained && rebuild.generation() !== undefined) tracker.blockUnlessBlocked(DRAINING);
          return store.clearRebuildRequest();
        })
        .catch((err: unknown) => {
          // Looked at again at the next check.
          takingUp = undefined;
          logger.error({ err }, 'could not take up the rebuild request');
        });
    }
  };
  const requests = setInterval(checkRequests, options.rebuildRequestCheckMs ?? REBUILD_REQUEST_CHECK_MS);
  const requestWatch = watchRebuildRequests(storePathOf(dataDir), checkRequests);
  if (requestWatch !== undefined) watches.push(requestWatch);
  const lagRefresh = setInterval(() => void tracker.refreshHighWatermarks(), config.ops.lagRefreshMs);
  if (kafkaClient !== undefined) {
    // Managed clusters usually disable auto-creation: create missing dead-letter topics now, or say how.
    const client = kafkaClient;
    const dlqTopics = topics.map((t) => `${t}${config.dlqSuffix}`);
    const check = (attempt: number): void =>
      void ensureDeadLetterTopics(client, dlqTopics, logger).then((checked) => {
        if (checked) return;
        const timer = setTimeout(() => check(attempt + 1), retryBackoffMs(attempt));
        timer.unref();
        timers.push(timer);
      });
    check(1);
  }
  for (const timer of [refresh, requests, lagRefresh]) {
    timer.unref();
    timers.push(timer);
  }

  return {
    port,
    store,
    source,
    tracker,
    metrics,
    writer,
    demo,
    rebuild,
    live,
    websocket,
    fatal,
    close,
  };
}

/**
 * Readiness while a rebuild asked for with `matview rebuild --drain` runs: the server keeps answering from the
 * current view, but tells load balancers to send reads elsewhere until the rebuilt view is swapped in.
 */
export const DRAINING =
  'rebuilding the view on request with --drain: not ready until the rebuilt view is swapped in';

/** Errors of a Kafka cluster that is down or refuses the connection (kafkajs' own, or ours about Kafka). */
const cannotReachKafka = (error: unknown): boolean => !isMatviewError(error) || isKafkaUnavailable(error);

/**
 * The end offsets readiness waits for, when the cluster did not answer at start: asked again with backoff
 * (0.5 s doubling to 30 s) until it answers. Never settles once the server closed (its timers are cleared).
 */
function awaitEndOffsets(
  source: FeedSource,
  topics: readonly string[],
  timers: NodeJS.Timeout[],
  logger: Logger,
): Promise<PartitionPosition[]> {
  return new Promise((resolve) => {
    const attempt = (n: number): void => {
      source.endOffsets(topics).then(
        (ends) => {
          logger.info('end offsets read: ready once the feed has reached them');
          resolve(ends);
        },
        () => {
          const timer = setTimeout(() => attempt(n + 1), retryBackoffMs(n));
          timer.unref();
          timers.push(timer);
        },
      );
    };
    attempt(1);
  });
}

/**
 * Checks the active generation's positions against the offsets the topics still hold. Under
 * OFFSET_RESET_POLICY=fail an out-of-range position throws OffsetOutOfRangeError; under `rebuild` the
 * partitions are returned (and logged) for a rebuild from the earliest offsets.
 */
async function checkPositions(
  store: LmdbStore,
  ranges: OffsetRangeReader,
  topics: readonly string[],
  config: Config,
  logger: Logger,
): Promise<OutOfRange[]> {
  const positions = store.positions().filter((p) => topics.includes(p.topic));
  const shadow = store.shadowGeneration();
  const shadowPositions =
    shadow === undefined ? [] : store.positions(shadow).filter((p) => topics.includes(p.topic));
  if (positions.length === 0 && shadowPositions.length === 0) return [];
  const current = await ranges(topics);
  if (shadow !== undefined && findOutOfRange(shadowPositions, current).length > 0) {
    // A half-built shadow that can no longer be resumed is not serving anyone: start it over.
    logger.warn(
      { generation: shadow.id },
      'the interrupted rebuild cannot resume (positions out of range); starting it over',
    );
    await store.abandonShadow();
  }
  const broken = findOutOfRange(positions, current);
  if (broken.length === 0) return [];
  if (config.ops.offsetResetPolicy === 'fail') throw offsetOutOfRangeError(broken);
  logger.warn(
    { partitions: broken, policy: 'rebuild' },
    `stored positions out of range, rebuilding the view from the earliest offsets: ${describeOutOfRange(broken)}`,
  );
  return broken;
}
