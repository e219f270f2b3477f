/**
 * The replica's ingest handler (VIEW_TOPIC_IN, DESIGN.md "Where the next pieces go": view topic in → feed →
 * decode (view format) → store): turns a batch of the view topic into durable store commits, by the same
 * steps as the changelog ingest (batch-steps.ts): records below the stored offset are skipped; each record is
 * decoded (src/views/view-record.ts); an undecodable one goes to `<topic>.dlq` like any invalid record;
 * a record of a view this code does not serve is skipped (counted); user views, tombstones and the totals go
 * to the store (src/materializer/replicate.ts: the view is the row), in chunks, each with its offset.
 *
 * The producer's heartbeat in each status record goes to `onStatus` once the batch is durable (the
 * upstream watch turns it into readiness).
 */
import type { FeedBatch, FeedHandler, FeedRecord } from '../feed/types.js';
import { ReplicaBatch } from '../materializer/change-batch.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { DEFAULT_MAX_RECORDS_PER_COMMIT } from '../store/commit-queue.js';
import type { Generation } from '../store/generation.js';
import type { BatchResult, LmdbStore } from '../store/lmdb-store.js';
import { TOTALS_KEY } from '../views/totals.js';
import { decodeViewRecord, type ProducerStatus } from '../views/view-record.js';
import {
  Chunks,
  finishBatch,
  freshRecords,
  observeApplied,
  storeCommitter,
  type DeadLetter,
  type DeadLetterSink,
} from './batch-steps.js';

export interface ViewIngestOptions {
  readonly store: LmdbStore;
  /** The view topic (VIEW_TOPIC_IN). */
  readonly topic: string;
  readonly deadLetters: DeadLetterSink;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** After each batch is durable: readiness and lag; `newestEventMs` is the newest `version.eventTime` applied. */
  readonly onApplied?: (batch: FeedBatch, result: BatchResult | undefined, newestEventMs?: number) => void;
  /** The newest producer status of a durable batch (live role only). */
  readonly onStatus?: (status: ProducerStatus) => void;
  /** `rebuild`: feed `generation` (a shadow) without DLQ writes; default `live`. */
  readonly role?: 'live' | 'rebuild';
  readonly generation?: Generation;
  /** Records of one batch handed to the store at once at most (default: the store's commit budget). */
  readonly maxRecordsPerCommit?: number;
}

export function createViewIngestHandler(options: ViewIngestOptions): FeedHandler {
  const { store, topic, deadLetters, metrics, logger } = options;
  const rebuild = options.role === 'rebuild';
  const target = options.generation ?? 'active';
  if (rebuild && options.generation === undefined)
    throw new Error('a rebuild ingest handler needs its generation');
  const size = Math.max(1, options.maxRecordsPerCommit ?? DEFAULT_MAX_RECORDS_PER_COMMIT);
  const commit = storeCommitter(store, target, metrics, logger);
  const { onApplied } = options;

  return async (batch) => {
    if (batch.topic !== topic) throw new Error(`view ingest got a batch of another topic "${batch.topic}"`);
    const started = performance.now();
    const fresh = freshRecords(store, target, batch);
    const skipped = batch.records.length - fresh.length;
    const last: FeedRecord | undefined = fresh[fresh.length - 1];
    const chunks = new Chunks(() => new ReplicaBatch(), size);
    const invalid: DeadLetter[] = [];
    const eventTimes: number[] = [];
    const ignored = new Map<string, number>();
    let status: ProducerStatus | undefined;
    let valid = 0;
    for (const record of fresh) {
      const d = decodeViewRecord(record.key, record.value, record.headers, {
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        timestamp: Number(record.timestamp),
      });
      if (!d.ok) {
        invalid.push({ record, code: d.code, message: d.message });
        continue;
      }
      const { partition, offset } = record;
      if (d.kind === 'other') {
        ignored.set(d.view, (ignored.get(d.view) ?? 0) + 1);
        continue;
      }
      if (d.kind === 'user') {
        chunks.current.push('user-information', d.userId, d.view, topic, partition, offset);
        if (d.view?.version.eventTime != null) eventTimes.push(Date.parse(d.view.version.eventTime));
      } else {
        status = d.status.producer;
        if (d.status.totals === null) continue;
        chunks.current.push('totals', TOTALS_KEY, d.status.totals, topic, partition, offset);
      }
      valid++;
      chunks.added(offset);
    }
    if (!rebuild) {
      if (skipped > 0) metrics.recordsSkipped.inc({ topic }, skipped);
      for (const [view, n] of ignored) metrics.viewTopicRecordsIgnored.inc({ view }, n);
    }
    const newestEventMs = eventTimes.reduce<number | undefined>(
      (newest, t) => (newest === undefined || t > newest ? t : newest),
      undefined,
    );
    const committed = await finishBatch(
      batch,
      {
        chunks,
        last,
        invalid,
        valid,
        newestEventMs,
        input: (values, positions) => ({ replica: values.columns(), positions }),
      },
      { rebuild, commit, deadLetters, metrics, logger, ...(onApplied === undefined ? {} : { onApplied }) },
    );
    if (committed === undefined) return;
    const { result } = committed;
    observeApplied(metrics, batch, { valid, invalid: invalid.length }, started, result.appliedAt, eventTimes);
    if (status !== undefined) options.onStatus?.(status);
    onApplied?.(batch, result, newestEventMs);
  };
}
