/**
 * Prometheus metrics. One registry per instance (never the global one) so several servers can run
 * in one process (tests). Names are documented in the README "Metrics" table.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'matview_process_' });
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
    eventAgeSeconds: new Histogram({
      name: 'matview_event_age_seconds',
      help: 'Apply time minus Kafka timestamp of each applied record (freshness)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    newestEventAgeSeconds: new Gauge({
      name: 'matview_newest_event_age_seconds',
      help: 'Seconds since the Kafka timestamp of the newest applied record',
      registers,
    }),
    partitionLag: new Gauge({
      name: 'matview_partition_lag',
      help: 'High watermark minus next offset to apply, per topic-partition',
      labelNames: ['topic', 'partition'] as const,
      registers,
    }),
    storeCommits: new Counter({ name: 'matview_store_commits_total', help: 'LMDB write transactions committed', registers }),
    storeErrors: new Counter({ name: 'matview_store_errors_total', help: 'LMDB write failures', registers }),
    ready: new Gauge({ name: 'matview_ready', help: '1 when the view has caught up with the end offsets seen at start', registers }),
    graphqlSeconds: new Histogram({
      name: 'matview_graphql_request_seconds',
      help: 'GraphQL request duration by operation name',
      labelNames: ['operation'] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
      registers,
    }),
    subscriptionsActive: new Gauge({ name: 'matview_subscriptions_active', help: 'Open GraphQL subscriptions', registers }),
    conflatedEvents: new Counter({
      name: 'matview_subscription_conflated_total',
      help: 'Subscription events skipped because a newer state replaced them before the client read them',
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
