/**
 * `matview serve`: opens the store, picks the source (Kafka when KAFKA_BROKERS is set, else the
 * embedded changelog with the demo generator), wires ingest → store → API, and shuts down in
 * order on SIGTERM/SIGINT: stop consuming, let the open transaction finish, close the store.
 */
import { accessSync, constants, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createApiServer } from '../../api/server.js';
import { attachLiveWebSocket, type LiveWebSocket } from '../../api/ws.js';
import { DataDirError } from '../errors.js';
import { createDeadLetterSink } from '../feed/dead-letter.js';
import { startDemoGenerator, type DemoGenerator } from '../feed/demo-generator.js';
import { openEmbeddedChangelog } from '../feed/embedded-changelog.js';
import { createKafkaSource } from '../feed/kafka-source.js';
import { createKafkaWriter } from '../feed/kafka-writer.js';
import type { ChangelogWriter, FeedSource } from '../feed/types.js';
import { createLiveHub, type LiveHub } from '../live/hub.js';
import { createIngestHandler } from '../pipeline/ingest.js';
import { openStore, type LmdbStore } from '../store/lmdb-store.js';
import { TABLES, USER_INFORMATION_VERSION, type Table } from '../views/user-information.js';
import type { Config } from './config.js';
import { FeedTracker } from './feed-tracker.js';
import type { Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';

export interface Running {
  readonly port: number;
  readonly store: LmdbStore;
  readonly source: FeedSource;
  readonly tracker: FeedTracker;
  readonly metrics: Metrics;
  /** The embedded changelog's writer, or the Kafka DLQ writer. */
  readonly writer: ChangelogWriter;
  readonly demo: DemoGenerator | undefined;
  /** The live hub behind GraphQL subscriptions (its `stats()` is what the live tests inspect). */
  readonly live: LiveHub;
  /** GraphQL over WebSocket on the API port (`stats()`: connections, backpressure waits). */
  readonly websocket: LiveWebSocket;
  /** Resolves when the feed failed for good (the caller exits non-zero). */
  readonly fatal: Promise<Error>;
  close(): Promise<void>;
}

/** Creates the data directory if needed and proves it is writable, with a one-line reason when not. */
export function ensureDataDir(dir: string): string {
  const abs = resolve(dir);
  try {
    mkdirSync(abs, { recursive: true });
    accessSync(abs, constants.W_OK);
  } catch (e) {
    throw new DataDirError(abs, (e as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (e as Error).message, { cause: e });
  }
  return abs;
}

export async function startServer(config: Config, logger: Logger): Promise<Running> {
  const dataDir = ensureDataDir(config.dataDir);
  const metrics = createMetrics();
  const store = openStore({
    path: join(dataDir, 'view'),
    mapSize: config.lmdbMapSizeBytes,
    viewVersion: USER_INFORMATION_VERSION,
    onListenerError: (err) => logger.error({ err }, 'commit listener failed'),
  });
  if (store.rebuilt) logger.warn({ viewVersion: USER_INFORMATION_VERSION }, 'view version changed: rebuilding the view from the feed');

  const tables = new Map<string, Table>(TABLES.map((t) => [config.topics[t], t]));
  const topics = [...tables.keys()];
  let source: FeedSource;
  let writer: ChangelogWriter;
  let demo: DemoGenerator | undefined;
  if (config.kafka) {
    const client = { brokers: config.kafka.brokers, clientId: config.kafka.clientId, connectionTimeoutMs: config.kafka.connectionTimeoutMs, logger };
    source = createKafkaSource({
      ...client,
      groupId: config.kafka.groupId ?? `matview-${store.instanceId}`,
      fetchMaxWaitMs: config.kafka.fetchMaxWaitMs,
      sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    });
    writer = createKafkaWriter(client);
  } else {
    const changelog = await openEmbeddedChangelog({ dir: join(dataDir, 'changelog'), logger });
    source = changelog;
    writer = changelog;
  }

  let resolveFatal: (e: Error) => void = () => {};
  const fatal = new Promise<Error>((r) => (resolveFatal = r));
  const tracker = new FeedTracker(store, source, metrics, USER_INFORMATION_VERSION, () =>
    logger.info({ sequence: store.sequence().toString() }, 'caught up: ready'),
  );
  const handler = createIngestHandler({
    store,
    tables,
    metrics,
    logger,
    deadLetters: createDeadLetterSink(writer, config.dlqSuffix),
    onApplied: (batch) => {
      const last = batch.records[batch.records.length - 1];
      tracker.applied(batch, last === undefined ? undefined : Number(last.timestamp));
    },
  });

  // Subscribed to the store before the feed starts, so no commit is published without it.
  const live = createLiveHub({ store, metrics });
  const api = createApiServer({ config, reader: store, feed: tracker, metrics, logger, live });
  const websocket = attachLiveWebSocket({ api, config, logger });
  api.onClose(() => websocket.close());
  const { port } = await api.listen();
  const refresh = setInterval(() => tracker.refreshMetrics(), 1000);
  refresh.unref();

  const ends = await source.endOffsets(topics);
  if (!config.kafka && config.demo.enabled) {
    const usersEnd = ends.filter((e) => e.topic === config.topics.users).reduce((n, e) => n + BigInt(e.next), 0n);
    demo = startDemoGenerator({
      writer,
      topics: config.topics,
      rate: config.demo.rate,
      users: config.demo.users,
      ...(config.demo.seed === undefined ? {} : { seed: config.demo.seed }),
      logger,
      alreadySeeded: usersEnd > 0n,
    });
  }
  tracker.setTargets(ends);
  await source.start({
    topics,
    resumeFrom: (topic, partition) => store.position(topic, partition),
    handler,
    onFatal: (err) => {
      logger.fatal({ err }, 'feed crashed');
      resolveFatal(err);
    },
  });
  logger.info(
    { port, source: source.kind, dataDir, topics, sequence: store.sequence().toString(), instanceId: store.instanceId },
    'matview started',
  );

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      clearInterval(refresh);
      await demo?.stop();
      await source.stop();
      await api.close();
      live.close();
      await writer.close();
      await store.close();
      logger.info('matview stopped');
    })());
  return { port, store, source, tracker, metrics, writer, demo, live, websocket, fatal, close };
}
