/**
 * Prometheus metrics. One registry per instance (never the global one) so several servers can run
 * in one process (tests). Names are documented in the README "Metrics" table.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** prom-client 15's state of a histogram's label set (lib/histogram.js `createBaseValues`). */
interface HistogramState {
  sum: number;
  count: number;
  readonly bucketValues: Record<number, number>;
}

/**
 * A histogram without labels that also takes many observations in one call (`observeAll`). prom-client's
 * `observe` allocates a labels object, a closure and a pair per value: the live feed observes the age of
 * every record it applies, and in a catch-up those calls allocated ~125 bytes per record, a tenth of what
 * the event loop allocated (a sampled heap profile of the catch-up bench: 56 of 601 MB), all of it for the
 * young-generation collector to sweep while reads wait. `observeAll` leaves the histogram exactly as one
 * `observe` per value would, in the same order (test/ops/metrics.test.ts compares the exposition text).
 */
export class BatchHistogram extends Histogram {
  /** `observe(v)` for each `v` of `values`, in order. Throws, before observing any, on a value that is not finite. */
  observeAll(values: ArrayLike<number>): void {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isFinite(v)) throw new TypeError(`Value is not a valid number: ${String(v)}`);
    }
    const internals = this as unknown as {
      readonly hashMap: Record<string, HistogramState | undefined>;
      readonly upperBounds: readonly number[];
    };
    // A histogram without labels keeps its state under the empty hash (prom-client's `hashObject({})`).
    let state = internals.hashMap[''];
    let at = 0;
    if (state === undefined) {
      // The first observation creates the state as prom-client does (after a `reset()`).
      if (values.length === 0) return;
      this.observe(values[0]!);
      state = internals.hashMap[''];
      at = 1;
      if (state === undefined) throw new Error('prom-client histogram keeps no state under the empty hash');
    }
    const bounds = internals.upperBounds;
    // Counted per bound here, then added to prom-client's buckets once per bound: its buckets are keyed by the
    // bound as a property name, and a number key is turned into a string at each access (16k values: 2.5 ms
    // before, 1.1 ms, warm; a catch-up's batches hold up to tens of thousands, in one task of the event loop).
    // The sum is added value by value, in order, so it is the same double as `observe` leaves.
    const counts = new Array<number>(bounds.length).fill(0);
    let sum = state.sum;
    for (; at < values.length; at++) {
      const v = values[at]!;
      sum += v;
      state.count += 1;
      // prom-client's `findBound`: the first upper bound at or above the value; above them all, none.
      for (let b = 0; b < bounds.length; b++)
        if (v <= bounds[b]!) {
          counts[b]! += 1;
          break;
        }
    }
    state.sum = sum;
    const buckets = state.bucketValues;
    for (let b = 0; b < bounds.length; b++) if (counts[b]! > 0) buckets[bounds[b]!]! += counts[b]!;
  }
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics ?? true)
    collectDefaultMetrics({ register: registry, prefix: 'matview_process_' });
  const registers = [registry];
  return {
    registry,
    recordsApplied: new Counter({
      name: 'matview_records_applied_total',
      help: 'Changelog records applied to the store, by topic',
      labelNames: ['topic'] as const,
      registers,
    }),
    recordsInvalid: new Counter({
      name: 'matview_records_invalid_total',
      help: 'Invalid changelog records sent to the dead-letter topic, by topic and error code',
      labelNames: ['topic', 'code'] as const,
      registers,
    }),
    recordsSkipped: new Counter({
      name: 'matview_records_skipped_total',
      help: 'Records at or below the stored offset, skipped as already applied (redeliveries)',
      labelNames: ['topic'] as const,
      registers,
    }),
    recordsDecodedOffLoop: new Counter({
      name: 'matview_decode_thread_records_total',
      help: 'Records decoded on the decode thread (DECODE_THREAD) rather than on the event loop',
      labelNames: ['topic'] as const,
      registers,
    }),
    batchSize: new Histogram({
      name: 'matview_batch_records',
      help: 'Records per applied batch',
      buckets: [1, 10, 100, 500, 1000, 5000, 10000],
      registers,
    }),
    applySeconds: new Histogram({
      name: 'matview_batch_apply_seconds',
      help: 'Time to materialize and commit one batch',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    eventAgeSeconds: new BatchHistogram({
      name: 'matview_event_age_seconds',
      help: 'Apply time minus event time (source commit time, else Kafka timestamp) of each applied record (freshness)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    newestEventAgeSeconds: new Gauge({
      name: 'matview_newest_event_age_seconds',
      help: 'Seconds since the event time (source commit time, else Kafka timestamp) of the newest applied record',
      registers,
    }),
    partitionLag: new Gauge({
      name: 'matview_partition_lag',
      help: 'High watermark minus next offset to apply, per topic-partition',
      labelNames: ['topic', 'partition'] as const,
      registers,
    }),
    kafkaFailures: new Counter({
      name: 'matview_kafka_failures_total',
      help: 'Failed attempts of the Kafka feed to connect, authenticate or fetch, by cause (authentication, tls, connection, authorization, protocol)',
      labelNames: ['cause'] as const,
      registers,
    }),
    kafkaFetches: new Counter({
      name: 'matview_kafka_fetch_requests_total',
      help: 'Fetch requests the Kafka feed sent, by broker node id',
      labelNames: ['broker'] as const,
      registers,
    }),
    dlqOutboxRecords: new Gauge({
      name: 'matview_dlq_outbox_records',
      help: 'Dead-letter messages stored with their batch and not yet acknowledged by the dead-letter topic',
      registers,
    }),
    dlqWriteFailures: new Counter({
      name: 'matview_dlq_write_failures_total',
      help: 'Failed sends of dead-letter messages to their topic (they stay in the outbox and are sent again)',
      labelNames: ['topic'] as const,
      registers,
    }),
    storeCommits: new Counter({
      name: 'matview_store_commits_total',
      help: 'LMDB write transactions committed',
      registers,
    }),
    storeCommitRecords: new Histogram({
      name: 'matview_store_commit_records',
      help: 'Records per store commit, every batch merged into it (large while catching up, small once caught up)',
      buckets: [1, 10, 100, 1000, 10000, 100000, 250000],
      registers,
    }),
    storeCommitSeconds: new Histogram({
      name: 'matview_store_commit_seconds',
      help: 'Time of one store commit where it runs, from its start to durable',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    storeErrors: new Counter({ name: 'matview_store_errors_total', help: 'LMDB write failures', registers }),
    ready: new Gauge({
      name: 'matview_ready',
      help: '1 while /health/ready answers 200: caught up with the end offsets seen at start, lag within READY_MAX_LAG, no blocking rebuild',
      registers,
    }),
    live: new Gauge({
      name: 'matview_live',
      help: '1 while /health/live answers 200: the feed loop is neither crashed nor stalled (lag > 0 without progress for LIVE_STALL_MS)',
      registers,
    }),
    feedUp: new Gauge({
      name: 'matview_feed_up',
      help: '1 while the feed source answers; 0 while its brokers are unreachable (retrying) or it crashed: the view is served as it was',
      registers,
    }),
    lastProgressSeconds: new Gauge({
      name: 'matview_feed_last_progress_timestamp_seconds',
      help: 'Unix time the live feed last handled a batch (or started); stalls show as time() minus this',
      registers,
    }),
    lmdbSizeBytes: new Gauge({
      name: 'matview_lmdb_size_bytes',
      help: 'Bytes of the LMDB environment in use (up to its last used page), all generations included',
      registers,
    }),
    viewGeneration: new Gauge({
      name: 'matview_view_generation',
      help: 'Id of the active store generation (grows by one per rebuild)',
      registers,
    }),
    viewVersion: new Gauge({
      name: 'matview_view_version',
      help: 'Version of each registered view being served',
      labelNames: ['view'] as const,
      registers,
    }),
    rebuildInProgress: new Gauge({
      name: 'matview_rebuild_in_progress',
      help: '1 while a shadow generation is being rebuilt from the feed',
      registers,
    }),
    rebuildRecordsApplied: new Counter({
      name: 'matview_rebuild_records_applied_total',
      help: 'Changelog records applied to a shadow generation by rebuilds',
      registers,
    }),
    swaps: new Counter({
      name: 'matview_view_swaps_total',
      help: 'Completed rebuilds: shadow generations swapped in, by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    graphqlSeconds: new Histogram({
      name: 'matview_graphql_request_seconds',
      help: 'GraphQL request duration by operation name',
      labelNames: ['operation'] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
      registers,
    }),
    restSeconds: new Histogram({
      name: 'matview_rest_request_seconds',
      help: 'GET /users/:userId handling time (seed 002 read SLA)',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
      registers,
    }),
    subscriptionsActive: new Gauge({
      name: 'matview_subscriptions_active',
      help: 'Open GraphQL subscriptions',
      registers,
    }),
    viewTopicRecordsPublished: new Counter({
      name: 'matview_view_topic_records_published_total',
      help: 'Records acknowledged by the view topic (VIEW_TOPIC_OUT), by kind: view, tombstone, status',
      labelNames: ['kind'] as const,
      registers,
    }),
    viewTopicPublishFailures: new Counter({
      name: 'matview_view_topic_publish_failures_total',
      help: 'Sends to the view topic that failed (each is retried until acknowledged)',
      registers,
    }),
    viewTopicOutboxChanges: new Gauge({
      name: 'matview_view_topic_outbox_changes',
      help: "Committed changes of users' views waiting in the view outbox for the view topic to acknowledge them",
      registers,
    }),
    viewTopicUnpublishedCommits: new Gauge({
      name: 'matview_view_topic_unpublished_commits',
      help: 'Visible commits whose changes are not yet all acknowledged by the view topic',
      registers,
    }),
    viewTopicCaptures: new Counter({
      name: 'matview_view_topic_captures_total',
      help: 'Comparisons of every user with what the view topic holds, written into the view outbox (a new topic, a swap or a view rebuild, one unfinished at start), by reason',
      labelNames: ['reason'] as const,
      registers,
    }),
    viewTopicRecordsIgnored: new Counter({
      name: 'matview_view_topic_records_ignored_total',
      help: 'Replica (VIEW_TOPIC_IN): view topic records of views this replica does not serve (header matview.view), skipped',
      labelNames: ['view'] as const,
      registers,
    }),
    viewTopicProducerAgeSeconds: new Gauge({
      name: 'matview_view_topic_producer_age_seconds',
      help: "Replica (VIEW_TOPIC_IN): seconds since the view topic's producer published its newest status record",
      registers,
    }),
    conflatedEvents: new Counter({
      name: 'matview_subscription_conflated_total',
      help: 'Subscription events skipped because a newer state replaced them before the client read them',
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
