/**
 * The ingest handler: turns a feed batch into durable store commits.
 *
 * 1. Records below the stored next offset are redeliveries: skipped (counted). The commit checks again
 *    inside its transaction, so a record is never applied twice whatever this early check saw.
 * 2. Each record is decoded by its topic's format (src/formats: json, Debezium, Avro; `prepare` first loads what
 *    the records need, e.g. schemas, and a registry outage fails the batch so it is redelivered); invalid
 *    ones go to the dead-letter topic first (awaited: if the DLQ cannot be written the whole batch fails and
 *    is redelivered, never dropped). A truncate record empties its table (logged).
 * 3. The valid changes, in columns, and the batch's new offset go to the store, which commits them together
 *    with whatever other batches arrived meanwhile (group commit: large commits while catching up, one
 *    batch per commit once caught up). A batch larger than the store's commit budget goes in chunks, each
 *    with the offset after its last record.
 * Offsets are stored only with the records before them (kafkajs runner.js: commit what succeeded); after
 * a failed chunk the batch is redelivered and its committed chunks are skipped (1.).
 *
 * A handler either feeds the active generation (`role: 'live'`, the default) or a shadow generation being
 * rebuilt (`role: 'rebuild'`). A rebuild re-reads history the live feed already handled, so it sends
 * nothing to the dead-letter topic (those records are there already) and counts into the rebuild metrics,
 * leaving the freshness and per-topic metrics to the live feed.
 */
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { FeedBatch, FeedHandler, FeedRecord } from '../feed/types.js';
import { jsonDecoder } from '../formats/json.js';
import type { FormatDecoder } from '../formats/types.js';
import { ChangeBatch, TRUNCATE } from '../materializer/change-batch.js';
import type { Generation } from '../store/generation.js';
import { DEFAULT_MAX_RECORDS_PER_COMMIT } from '../store/commit-queue.js';
import type { BatchResult, LmdbStore } from '../store/lmdb-store.js';
import type { Table } from '../views/source.js';
import {
  Chunks,
  finishBatch,
  freshRecords,
  observeApplied,
  storeCommitter,
  type DeadLetter,
  type DeadLetterSink,
} from './batch-steps.js';

export type { DeadLetter, DeadLetterSink } from './batch-steps.js';

export interface IngestOptions {
  readonly store: LmdbStore;
  /** Topic name → table. */
  readonly tables: ReadonlyMap<string, Table>;
  /** Topic name → format decoder (src/formats). Default: the `json` format for every topic of `tables`. */
  readonly decoders?: ReadonlyMap<string, FormatDecoder>;
  readonly deadLetters: DeadLetterSink;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /**
   * Called after each batch is durable (readiness, lag). `newestEventMs`: the newest source commit time among
   * the batch's changes, when its format carries one (Debezium `source.ts_ms`).
   */
  readonly onApplied?: (batch: FeedBatch, result: BatchResult | undefined, newestEventMs?: number) => void;
  /** `rebuild`: feed `generation` (a shadow) without DLQ writes; default `live`: the active generation. */
  readonly role?: 'live' | 'rebuild';
  /** The shadow generation a `rebuild` handler writes to. */
  readonly generation?: Generation;
  /**
   * Records of one batch handed to the store at once at most (default: the store's commit budget,
   * {@link DEFAULT_MAX_RECORDS_PER_COMMIT}): a bigger batch goes in chunks, each committed with its offset.
   */
  readonly maxRecordsPerCommit?: number;
}

export function createIngestHandler(options: IngestOptions): FeedHandler {
  const { store, tables, deadLetters, metrics, logger } = options;
  const decoders =
    options.decoders ?? new Map([...tables].map(([topic, table]) => [topic, jsonDecoder(table)] as const));
  const rebuild = options.role === 'rebuild';
  const target = options.generation ?? 'active';
  if (rebuild && options.generation === undefined)
    throw new Error('a rebuild ingest handler needs its generation');
  const chunk = Math.max(1, options.maxRecordsPerCommit ?? DEFAULT_MAX_RECORDS_PER_COMMIT);
  const commit = storeCommitter(store, target, metrics, logger);
  const { onApplied } = options;

  return async (batch) => {
    const table = tables.get(batch.topic);
    const decoder = decoders.get(batch.topic);
    if (table === undefined || decoder === undefined)
      throw new Error(`ingest got a batch of unknown topic "${batch.topic}"`);
    const started = performance.now();
    const fresh = freshRecords(store, target, batch);
    const skipped = batch.records.length - fresh.length;
    const last: FeedRecord | undefined = fresh[fresh.length - 1];
    if (decoder.prepare !== undefined && fresh.length > 0) await decoder.prepare(fresh);
    const chunks = new Chunks(() => new ChangeBatch(), chunk);
    const invalid: DeadLetter[] = [];
    const truncates: FeedRecord[] = [];
    let valid = 0;
    let newestEventMs: number | undefined;
    for (const record of fresh) {
      const decoded = decoder.decode(record);
      if (!decoded.ok) {
        invalid.push({
          record,
          code: decoded.code,
          message: decoded.message,
          ...(decoded.schemaId === undefined ? {} : { schemaId: decoded.schemaId }),
        });
        continue;
      }
      // Freshness from the source's commit time when the format has it (seed 004), else the Kafka timestamp.
      if (
        decoded.eventTime !== undefined &&
        (newestEventMs === undefined || decoded.eventTime > newestEventMs)
      )
        newestEventMs = decoded.eventTime;
      const eventTime = decoded.eventTime ?? Number(record.timestamp);
      const changes = chunks.current;
      if ('truncate' in decoded) {
        changes.push(table, '', TRUNCATE, record.topic, record.partition, record.offset, eventTime);
        truncates.push(record);
      } else {
        changes.push(
          table,
          decoded.key,
          decoded.row,
          record.topic,
          record.partition,
          record.offset,
          eventTime,
        );
      }
      valid++;
      chunks.added(record.offset);
    }
    if (skipped > 0 && !rebuild) metrics.recordsSkipped.inc({ topic: batch.topic }, skipped);
    const committed = await finishBatch(
      batch,
      {
        chunks,
        last,
        invalid,
        valid,
        newestEventMs,
        input: (changes, positions) => ({ changes: changes.columns(), positions }),
      },
      { rebuild, commit, deadLetters, metrics, logger, ...(onApplied === undefined ? {} : { onApplied }) },
    );
    if (committed === undefined) return;
    const { result } = committed;
    for (const r of truncates)
      logger.warn(
        { topic: r.topic, partition: r.partition, offset: r.offset, table },
        'source table truncated: every row of the table was deleted',
      );
    observeApplied(
      metrics,
      batch,
      { valid, invalid: invalid.length },
      started,
      result.appliedAt,
      committed.chunks.flatMap((c) => c.eventTime),
    );
    onApplied?.(batch, result, newestEventMs);
  };
}
