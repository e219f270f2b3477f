/**
 * The ingest handler: turns a feed batch into one durable store commit.
 *
 * 1. Records below the stored next offset are redeliveries: skipped (counted).
 * 2. Each record is decoded by its topic's format (src/formats: json, Debezium, Avro; `prepare` first loads what
 *    the records need, e.g. schemas, and a registry outage fails the batch so it is redelivered); invalid
 *    ones go to the dead-letter topic first (awaited: if the DLQ cannot be written the whole batch fails and
 *    is redelivered, never dropped). A truncate record becomes a truncate change of its table (logged).
 * 3. Valid changes, and the batch's new offsets, commit in LMDB transactions of at most
 *    `maxRecordsPerCommit` records across all partitions (a big batch is applied in chunks, each with the
 *    offset after its last record), so catching up never holds a transaction (and, without the store's
 *    writer thread, the event loop) for long.
 * Offsets are stored only after the records before them are durable (kafkajs runner.js: commit what
 * succeeded); after a failed chunk the batch is redelivered and its committed chunks are skipped (1.).
 *
 * A handler either feeds the active generation (`role: 'live'`, the default) or a shadow generation being
 * rebuilt (`role: 'rebuild'`). A rebuild re-reads history the live feed already handled, so it sends
 * nothing to the dead-letter topic (those records are there already) and counts into the rebuild metrics,
 * leaving the freshness and per-topic metrics to the live feed.
 */
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { compareOffsets, type FeedBatch, type FeedHandler, type FeedRecord } from '../feed/types.js';
import { jsonDecoder } from '../formats/json.js';
import type { FormatDecoder } from '../formats/types.js';
import type { Change } from '../materializer/materialize.js';
import type { Generation } from '../store/generation.js';
import type { BatchResult, LmdbStore } from '../store/lmdb-store.js';
import type { Table } from '../views/user-information.js';
import { RecordBudget } from './record-budget.js';

export interface DeadLetter {
  readonly record: FeedRecord;
  readonly code: string;
  readonly message: string;
  /** The Confluent schema id of the part that failed to decode, when it had one. */
  readonly schemaId?: number;
}

export interface DeadLetterSink {
  send(entries: readonly DeadLetter[]): Promise<void>;
}

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
   * Called after each commit (readiness, lag). `newestEventMs`: the newest source commit time among the
   * batch's changes, when its format carries one (Debezium `source.ts_ms`).
   */
  readonly onApplied?: (batch: FeedBatch, result: BatchResult | undefined, newestEventMs?: number) => void;
  /** `rebuild`: feed `generation` (a shadow) without DLQ writes; default `live`: the active generation. */
  readonly role?: 'live' | 'rebuild';
  /** The shadow generation a `rebuild` handler writes to. */
  readonly generation?: Generation;
  /**
   * Records materialized in one LMDB write transaction at most, over all partitions of this feed (default
   * {@link DEFAULT_MAX_RECORDS_PER_COMMIT}). It bounds how long one transaction runs: on the store's writer
   * thread (WRITER_THREAD), or else on the event loop, where it is the pause readers and subscribers see
   * while a backlog is applied.
   */
  readonly maxRecordsPerCommit?: number;
}

/** About 60 ms of materializing on a slow 2-core box (about 30 µs a record), far less on a fast one. */
export const DEFAULT_MAX_RECORDS_PER_COMMIT = 2_000;

export function createIngestHandler(options: IngestOptions): FeedHandler {
  const { store, tables, deadLetters, metrics, logger } = options;
  const decoders =
    options.decoders ?? new Map([...tables].map(([topic, table]) => [topic, jsonDecoder(table)] as const));
  const rebuild = options.role === 'rebuild';
  const target = options.generation ?? 'active';
  if (rebuild && options.generation === undefined)
    throw new Error('a rebuild ingest handler needs its generation');
  const budget = new RecordBudget(options.maxRecordsPerCommit ?? DEFAULT_MAX_RECORDS_PER_COMMIT);
  /** Commits one chunk of a batch: its changes, and the offset after `lastOffset` (its last record). */
  const commitChunk = async (
    batch: FeedBatch,
    changes: readonly Change[],
    lastOffset: string,
  ): Promise<BatchResult> => {
    const records = Math.max(1, changes.length); // a chunk of only invalid records still commits its offset
    await budget.take(records);
    try {
      const next = (BigInt(lastOffset) + 1n).toString();
      return await store.applyBatch(
        { changes, positions: [{ topic: batch.topic, partition: batch.partition, next }] },
        target,
      );
    } catch (e) {
      metrics.storeErrors.inc();
      logger.error(
        { err: e, topic: batch.topic, partition: batch.partition },
        'store commit failed; batch will be retried',
      );
      throw e;
    } finally {
      budget.give(records);
    }
  };
  return async (batch) => {
    const table = tables.get(batch.topic);
    const decoder = decoders.get(batch.topic);
    if (table === undefined || decoder === undefined)
      throw new Error(`ingest got a batch of unknown topic "${batch.topic}"`);
    const stored =
      target === 'active'
        ? store.position(batch.topic, batch.partition)
        : store.position(batch.topic, batch.partition, target);
    const started = performance.now();
    const changes: Change[] = [];
    const invalid: DeadLetter[] = [];
    const truncates: FeedRecord[] = [];
    let newestEventMs: number | undefined;
    const fresh =
      stored === undefined
        ? batch.records
        : batch.records.filter((record) => compareOffsets(record.offset, stored) >= 0);
    const skipped = batch.records.length - fresh.length;
    const last: FeedRecord | undefined = fresh[fresh.length - 1];
    if (decoder.prepare !== undefined && fresh.length > 0) await decoder.prepare(fresh);
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
      const position = { topic: record.topic, partition: record.partition, offset: record.offset };
      // Freshness from the source's commit time when the format has it (seed 004), else the Kafka timestamp.
      let timestamp = record.timestamp;
      if (decoded.eventTime !== undefined) {
        timestamp = String(decoded.eventTime);
        newestEventMs = Math.max(newestEventMs ?? 0, decoded.eventTime);
      }
      if ('truncate' in decoded) {
        changes.push({ table, truncate: true, position, timestamp });
        truncates.push(record);
      } else changes.push({ table, key: decoded.key, row: decoded.row, position, timestamp });
    }
    if (skipped > 0 && !rebuild) metrics.recordsSkipped.inc({ topic: batch.topic }, skipped);
    if (last === undefined) {
      options.onApplied?.(batch, undefined, newestEventMs);
      return;
    }
    if (invalid.length > 0 && rebuild) {
      logger.debug(
        { topic: batch.topic, partition: batch.partition, invalid: invalid.length },
        'rebuild skipped invalid records',
      );
    } else if (invalid.length > 0) {
      await deadLetters.send(invalid);
      for (const d of invalid) {
        metrics.recordsInvalid.inc({ topic: batch.topic, code: d.code });
        logger.warn(
          {
            topic: d.record.topic,
            partition: d.record.partition,
            offset: d.record.offset,
            code: d.code,
            reason: d.message,
            ...(d.schemaId === undefined ? {} : { schemaId: d.schemaId }),
          },
          'invalid record sent to dead-letter topic',
        );
      }
    }
    // Chunks of the budget's size; the last one also carries the offsets of trailing invalid records.
    let result: BatchResult | undefined;
    for (let from = 0; from < changes.length || result === undefined; from += budget.chunk) {
      const to = Math.min(changes.length, from + budget.chunk);
      const final = to >= changes.length;
      const lastOffset = final ? last.offset : changes[to - 1]!.position.offset;
      result = await commitChunk(batch, changes.slice(from, to), lastOffset);
      metrics.storeCommits.inc();
    }
    if (rebuild) {
      metrics.rebuildRecordsApplied.inc(changes.length);
      options.onApplied?.(batch, result, newestEventMs);
      return;
    }
    for (const r of truncates)
      logger.warn(
        { topic: r.topic, partition: r.partition, offset: r.offset, table },
        'source table truncated: every row of the table was deleted',
      );
    metrics.recordsApplied.inc({ topic: batch.topic }, changes.length);
    metrics.batchSize.observe(changes.length + invalid.length);
    metrics.applySeconds.observe((performance.now() - started) / 1000);
    for (const c of changes)
      metrics.eventAgeSeconds.observe(Math.max(0, (result.appliedAt - Number(c.timestamp)) / 1000));
    options.onApplied?.(batch, result, newestEventMs);
  };
}
