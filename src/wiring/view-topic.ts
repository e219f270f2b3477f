/**
 * The view topic's place in `matview serve` (docs/view-topic.md): the publisher of a materializing instance
 * (VIEW_TOPIC_OUT), and what makes an instance a serving replica (VIEW_TOPIC_IN): its store's role, its
 * ingest handler, its upstream watch. runtime.ts calls these; everything else about serving is the same.
 */
import { DataDirError } from '../errors.js';
import type { KafkaClientOptions } from '../feed/kafka-client.js';
import { createKafkaWriter } from '../feed/kafka-writer.js';
import { cleanupPolicy, isCompacted } from '../feed/topic-config.js';
import type { FeedHandler } from '../feed/types.js';
import { checkReplicable } from '../materializer/replicate.js';
import type { Config } from '../ops/config.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { DeadLetterRouting } from '../pipeline/batch-steps.js';
import { createViewIngestHandler } from '../pipeline/view-ingest.js';
import { createViewTopicOut } from '../sink/view-topic-out.js';
import type { Generation } from '../store/generation.js';
import type { BatchResult, LmdbStore, StoreRole } from '../store/lmdb-store.js';
import type { FeedBatch } from '../feed/types.js';
import type { FeedTracker } from './feed-tracker.js';
import { UpstreamWatch } from './upstream.js';

/**
 * Records the store's role at first start, and refuses a data directory that holds the other kind of store:
 * its positions, rows and views belong to other topics.
 */
export async function claimRole(store: LmdbStore, config: Config): Promise<StoreRole> {
  const want: StoreRole =
    config.viewTopic.in === undefined
      ? { kind: 'materializer' }
      : { kind: 'replica', topic: config.viewTopic.in };
  const held = store.role();
  const describe = (r: StoreRole) =>
    r.kind === 'materializer' ? 'a materializing instance' : `a replica of view topic "${r.topic}"`;
  if (held !== undefined && JSON.stringify(held) !== JSON.stringify(want))
    throw new DataDirError(
      config.dataDir,
      `it holds the store of ${describe(held)}, and this instance is ${describe(want)}: use another DATA_DIR (or remove this one)`,
    );
  if (held === undefined) await store.recordRole(want);
  if (want.kind === 'replica') checkReplicable(store.registry);
  return want;
}

/** Says at start whether the view topic is compacted, and what to do when it is not (or cannot be told). */
export async function checkCompaction(
  client: KafkaClientOptions,
  topic: string,
  logger: Logger,
): Promise<void> {
  const result = await cleanupPolicy(client, topic);
  const advice =
    'set cleanup.policy=compact on it (docs/view-topic.md "Topic settings"): otherwise it keeps every change, and a replica started late reads all of them';
  if (!result.known)
    logger.warn(
      { topic, reason: result.reason },
      `could not check that view topic "${topic}" is compacted; ${advice}`,
    );
  else if (!isCompacted(result.policy))
    logger.warn({ topic, cleanupPolicy: result.policy }, `view topic "${topic}" is not compacted; ${advice}`);
  else logger.info({ topic, cleanupPolicy: result.policy }, 'view topic is compacted');
}

export interface Publishing {
  /**
   * Writes into the view outbox what a swap or a view rebuild changed (or what a new topic lacks): await it
   * while nothing else commits (src/sink/view-topic-out.ts, 2.).
   */
  capture(): Promise<void>;
  /** Publishes what is committed (bounded by `timeoutMs`), then stops. */
  close(timeoutMs: number): Promise<void>;
}

/**
 * Starts the view topic out: its own producer (gzip: views compress about 3×), the index of what the topic
 * holds, the publisher following commits. Call before anything commits (before rebuilds and the feed).
 */
export async function startPublishing(options: {
  readonly store: LmdbStore;
  readonly config: Config;
  readonly client: KafkaClientOptions;
  readonly tracker: FeedTracker;
  readonly metrics: Metrics;
  readonly logger: Logger;
}): Promise<Publishing> {
  const { store, config, client, tracker, metrics, logger } = options;
  const topic = config.viewTopic.out!;
  const writer = createKafkaWriter({ ...client, compression: 'gzip' });
  const { index, fresh } = await store.publishedIndex(topic);
  const out = createViewTopicOut({
    store,
    index,
    fresh,
    writer,
    topic,
    heartbeatMs: config.viewTopic.heartbeatMs,
    status: () => {
      const partitions = tracker.snapshot().partitions;
      const lag = partitions.every((p) => p.lag === null)
        ? null
        : partitions.reduce((n, p) => n + BigInt(p.lag ?? '0'), 0n).toString();
      return { ready: tracker.ready(), lag };
    },
    metrics,
    logger,
  });
  out.start();
  // Before the feed starts (the runtime calls this first): a new topic, or a capture a crash interrupted.
  await out.capture();
  logger.info(
    { topic, mark: index.mark().toString(), fresh, outbox: index.outboxSize() },
    'publishing the view topic',
  );
  // After the first round: the topic exists by then (auto-created by the first produce, if nobody created it).
  void out
    .flush()
    .then(() => checkCompaction(client, topic, logger))
    .catch((err: unknown) => logger.warn({ err }, 'could not check the view topic'));
  return {
    capture: () => out.capture(),
    async close(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([out.flush(), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
      await out.close();
      await writer.close();
    },
  };
}

/** A replica's ingest: the view topic's handler, for the live feed and for rebuilds, and its upstream watch. */
export function replicaIngest(options: {
  readonly store: LmdbStore;
  readonly config: Config;
  readonly deadLetters: DeadLetterRouting;
  readonly metrics: Metrics;
  readonly logger: Logger;
}): {
  readonly upstream: UpstreamWatch;
  live(
    onApplied: (batch: FeedBatch, result: BatchResult | undefined, newestEventMs?: number) => void,
  ): FeedHandler;
  rebuild(generation: Generation, onApplied: () => void, logger: Logger): FeedHandler;
} {
  const { store, config, deadLetters, metrics, logger } = options;
  const topic = config.viewTopic.in!;
  const upstream = new UpstreamWatch({ maxSilenceMs: config.viewTopic.maxSilenceMs, metrics, logger });
  const common = { store, topic, metrics, maxRecordsPerCommit: config.maxRecordsPerCommit };
  return {
    upstream,
    live: (onApplied) =>
      createViewIngestHandler({
        ...common,
        deadLetters,
        logger,
        onApplied,
        onStatus: (s) => upstream.observe(s),
      }),
    rebuild: (generation, onApplied, rebuildLogger) =>
      createViewIngestHandler({
        ...common,
        logger: rebuildLogger,
        role: 'rebuild',
        generation,
        // No dead-letter routing: a rebuild never writes the DLQ, the live feed already kept those records.
        onApplied: () => onApplied(),
      }),
  };
}
