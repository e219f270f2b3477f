/**
 * The ingest handler: turns a feed batch into one durable store commit.
 *
 * 1. Records below the stored next offset are redeliveries: skipped (counted).
 * 2. Each record is decoded for its topic's table; an invalid one becomes a dead-letter message that
 *    commits into the store's outbox together with the offset that passes it (never lost, never stored
 *    twice, whatever the crash), and src/pipeline/dead-letter-drainer.ts sends it to the dead-letter topic.
 *    The feed does not wait for that topic: a cluster without it, or refusing writes to it, stalls nothing.
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
import type { Change } from '../materializer/materialize.js';
import type { Generation } from '../store/generation.js';
import type { BatchResult, LmdbStore, OutboxEntry } from '../store/lmdb-store.js';
import { decodeRecord } from '../views/decode.js';
import type { Table } from '../views/user-information.js';
import { RecordBudget } from './record-budget.js';

export interface DeadLetter {
  readonly record: FeedRecord;
  readonly code: string;
  readonly message: string;
}

/** Turns an invalid record into the dead-letter message the outbox keeps (src/feed/dead-letter.ts). */
export interface DeadLetterRouting {
  outboxEntry(entry: DeadLetter): OutboxEntry;
}

export interface IngestOptions {
  readonly store: LmdbStore;
  /** Topic name → table. */
  readonly tables: ReadonlyMap<string, Table>;
  /** Required for the live role; a rebuild writes no dead letters. */
  readonly deadLetters?: DeadLetterRouting;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Called after each commit (readiness, lag). */
  readonly onApplied?: (batch: FeedBatch, result: BatchResult | undefined) => void;
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
  const rebuild = options.role === 'rebuild';
  const target = options.generation ?? 'active';
  if (rebuild && options.generation === undefined)
    throw new Error('a rebuild ingest handler needs its generation');
  if (!rebuild && deadLetters === undefined)
    throw new Error('a live ingest handler needs its dead-letter routing');
  const budget = new RecordBudget(options.maxRecordsPerCommit ?? DEFAULT_MAX_RECORDS_PER_COMMIT);
  /** Commits one chunk of a batch: its changes, its dead letters, and the offset after `lastOffset` (its last record). */
  const commitChunk = async (
    batch: FeedBatch,
    changes: readonly Change[],
    lastOffset: string,
    dead: readonly DeadLetter[],
  ): Promise<BatchResult> => {
    const records = Math.max(1, changes.length); // a chunk of only invalid records still commits its offset
    await budget.take(records);
    try {
      const next = (BigInt(lastOffset) + 1n).toString();
      const positions = [{ topic: batch.topic, partition: batch.partition, next }];
      const input =
        dead.length === 0 || deadLetters === undefined
          ? { changes, positions }
          : { changes, positions, deadLetters: dead.map((d) => deadLetters.outboxEntry(d)) };
      return await store.applyBatch(input, target);
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
    if (table === undefined) throw new Error(`ingest got a batch of unknown topic "${batch.topic}"`);
    const stored =
      target === 'active'
        ? store.position(batch.topic, batch.partition)
        : store.position(batch.topic, batch.partition, target);
    const started = performance.now();
    const changes: Change[] = [];
    const invalid: DeadLetter[] = [];
    let skipped = 0;
    let last: FeedRecord | undefined;
    for (const record of batch.records) {
      if (stored !== undefined && compareOffsets(record.offset, stored) < 0) {
        skipped++;
        continue;
      }
      last = record;
      const decoded = decodeRecord(table, record.key, record.value);
      if (decoded.ok) {
        changes.push({
          table,
          key: decoded.key,
          row: decoded.row,
          position: { topic: record.topic, partition: record.partition, offset: record.offset },
          timestamp: record.timestamp,
        });
      } else {
        invalid.push({ record, code: decoded.code, message: decoded.message });
      }
    }
    if (skipped > 0 && !rebuild) metrics.recordsSkipped.inc({ topic: batch.topic }, skipped);
    // The source skipped records it never delivers (transaction markers, aborted transactions): the
    // position moves past them with the batch's last chunk, or alone when no record is left.
    const skipTo = batch.nextOffset === undefined ? undefined : (BigInt(batch.nextOffset) - 1n).toString();
    if (last === undefined) {
      let moved: BatchResult | undefined;
      if (skipTo !== undefined && (stored === undefined || compareOffsets(batch.nextOffset!, stored) > 0)) {
        moved = await commitChunk(batch, [], skipTo, []);
        metrics.storeCommits.inc();
      }
      options.onApplied?.(batch, moved);
      return;
    }
    if (invalid.length > 0 && rebuild) {
      logger.debug(
        { topic: batch.topic, partition: batch.partition, invalid: invalid.length },
        'rebuild skipped invalid records',
      );
    }
    // Chunks of the budget's size; the last one also carries the offsets of trailing invalid records. Each
    // invalid record commits with the chunk whose offset passes it.
    let result: BatchResult | undefined;
    let deadFrom = 0;
    for (let from = 0; from < changes.length || result === undefined; from += budget.chunk) {
      const to = Math.min(changes.length, from + budget.chunk);
      const final = to >= changes.length;
      const lastOffset = !final
        ? changes[to - 1]!.position.offset
        : skipTo !== undefined && compareOffsets(skipTo, last.offset) > 0
          ? skipTo
          : last.offset;
      let deadTo = deadFrom;
      while (
        !rebuild &&
        deadTo < invalid.length &&
        compareOffsets(invalid[deadTo]!.record.offset, lastOffset) <= 0
      )
        deadTo++;
      const dead = invalid.slice(deadFrom, deadTo);
      deadFrom = deadTo;
      result = await commitChunk(batch, changes.slice(from, to), lastOffset, dead);
      metrics.storeCommits.inc();
      for (const d of dead) {
        metrics.recordsInvalid.inc({ topic: batch.topic, code: d.code });
        logger.warn(
          {
            topic: d.record.topic,
            partition: d.record.partition,
            offset: d.record.offset,
            code: d.code,
            reason: d.message,
          },
          'invalid record kept for the dead-letter topic',
        );
      }
    }
    if (rebuild) {
      metrics.rebuildRecordsApplied.inc(changes.length);
      options.onApplied?.(batch, result);
      return;
    }
    metrics.recordsApplied.inc({ topic: batch.topic }, changes.length);
    metrics.batchSize.observe(changes.length + invalid.length);
    metrics.applySeconds.observe((performance.now() - started) / 1000);
    for (const c of changes)
      metrics.eventAgeSeconds.observe(Math.max(0, (result.appliedAt - Number(c.timestamp)) / 1000));
    options.onApplied?.(batch, result);
  };
}
