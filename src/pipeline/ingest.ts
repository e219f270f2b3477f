/**
 * The ingest handler: turns a feed batch into durable store commits.
 *
 * 1. Records below the stored next offset are redeliveries: skipped (counted). The commit checks again
 *    inside its transaction, so a record is never applied twice whatever this early check saw.
 * 2. Each record is decoded by its topic's format (src/formats: json, Debezium, Avro; `prepare` first loads what
 *    the records need, e.g. schemas, and a registry outage fails the batch so it is redelivered). An invalid
 *    one becomes a dead-letter message that commits into the store's outbox together with the offset that
 *    passes it (never lost, never stored twice, whatever the crash), and src/pipeline/dead-letter-drainer.ts
 *    sends it to the dead-letter topic: the feed does not wait for that topic. A truncate record empties its
 *    table (logged).
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
import { compareOffsets, type FeedBatch, type FeedHandler, type FeedRecord } from '../feed/types.js';
import { jsonDecoder } from '../formats/json.js';
import type { FormatDecoder } from '../formats/types.js';
import { ChangeBatch, TRUNCATE } from '../materializer/change-batch.js';
import type { Generation } from '../store/generation.js';
import { DEFAULT_MAX_RECORDS_PER_COMMIT } from '../store/commit-queue.js';
import type { BatchResult, LmdbStore, OutboxEntry } from '../store/lmdb-store.js';
import type { Table } from '../views/source.js';

export interface DeadLetter {
  readonly record: FeedRecord;
  readonly code: string;
  readonly message: string;
  /** The Confluent schema id of the part that failed to decode, when it had one. */
  readonly schemaId?: number;
}

/** Turns an invalid record into the dead-letter message the outbox keeps (src/feed/dead-letter.ts). */
export interface DeadLetterRouting {
  outboxEntry(entry: DeadLetter): OutboxEntry;
}

export interface IngestOptions {
  readonly store: LmdbStore;
  /** Topic name → table. */
  readonly tables: ReadonlyMap<string, Table>;
  /** Topic name → format decoder (src/formats). Default: the `json` format for every topic of `tables`. */
  readonly decoders?: ReadonlyMap<string, FormatDecoder>;
  /** Required for the live role; a rebuild writes no dead letters. */
  readonly deadLetters?: DeadLetterRouting;
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
  if (!rebuild && deadLetters === undefined)
    throw new Error('a live ingest handler needs its dead-letter routing');
  const chunk = Math.max(1, options.maxRecordsPerCommit ?? DEFAULT_MAX_RECORDS_PER_COMMIT);
  /** The last commit counted in `storeCommits` (several batches share one commit). */
  let counted = 0n;

  /** Commits one chunk of a batch: its changes, its dead letters, and the offset after `lastOffset`. */
  const commit = async (
    batch: FeedBatch,
    changes: ChangeBatch,
    lastOffset: string,
    dead: readonly DeadLetter[],
  ): Promise<BatchResult> => {
    try {
      const next = (BigInt(lastOffset) + 1n).toString();
      const positions = [{ topic: batch.topic, partition: batch.partition, next }];
      const result = await store.applyBatch(
        dead.length === 0 || deadLetters === undefined
          ? { changes: changes.columns(), positions }
          : {
              changes: changes.columns(),
              positions,
              deadLetters: dead.map((d) => deadLetters.outboxEntry(d)),
            },
        target,
      );
      if (result.sequence > counted) {
        counted = result.sequence;
        metrics.storeCommits.inc();
      }
      return result;
    } catch (e) {
      metrics.storeErrors.inc();
      logger.error(
        { err: e, topic: batch.topic, partition: batch.partition },
        'store commit failed; batch will be retried',
      );
      throw e;
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
    const fresh =
      stored === undefined
        ? batch.records
        : batch.records.filter((record) => compareOffsets(record.offset, stored) >= 0);
    const skipped = batch.records.length - fresh.length;
    const last: FeedRecord | undefined = fresh[fresh.length - 1];
    if (decoder.prepare !== undefined && fresh.length > 0) await decoder.prepare(fresh);
    let changes = new ChangeBatch();
    const chunks: { changes: ChangeBatch; lastOffset: string }[] = [];
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
      if (changes.length >= chunk) {
        chunks.push({ changes, lastOffset: record.offset });
        changes = new ChangeBatch();
      }
    }
    if (skipped > 0 && !rebuild) metrics.recordsSkipped.inc({ topic: batch.topic }, skipped);
    // The source skipped records it never delivers (transaction markers, aborted transactions): the
    // position moves past them with the batch's last chunk, or alone when no record is left.
    const skipTo = batch.nextOffset === undefined ? undefined : (BigInt(batch.nextOffset) - 1n).toString();
    if (last === undefined) {
      let moved: BatchResult | undefined;
      if (skipTo !== undefined && (stored === undefined || compareOffsets(batch.nextOffset!, stored) > 0))
        moved = await commit(batch, new ChangeBatch(), skipTo, []);
      options.onApplied?.(batch, moved, newestEventMs);
      return;
    }
    // The last chunk also carries the offsets of trailing invalid (and source-skipped) records.
    const end = skipTo !== undefined && compareOffsets(skipTo, last.offset) > 0 ? skipTo : last.offset;
    if (changes.length > 0 || chunks.length === 0) chunks.push({ changes, lastOffset: end });
    else chunks[chunks.length - 1] = { changes: chunks[chunks.length - 1]!.changes, lastOffset: end };
    if (invalid.length > 0 && rebuild) {
      logger.debug(
        { topic: batch.topic, partition: batch.partition, invalid: invalid.length },
        'rebuild skipped invalid records',
      );
    }
    // Each invalid record commits into the outbox with the chunk whose offset passes it.
    let result: BatchResult | undefined;
    let deadFrom = 0;
    for (const c of chunks) {
      let deadTo = deadFrom;
      while (
        !rebuild &&
        deadTo < invalid.length &&
        compareOffsets(invalid[deadTo]!.record.offset, c.lastOffset) <= 0
      )
        deadTo++;
      const dead = invalid.slice(deadFrom, deadTo);
      deadFrom = deadTo;
      result = await commit(batch, c.changes, c.lastOffset, dead);
      for (const d of dead) {
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
          'invalid record kept for the dead-letter topic',
        );
      }
    }
    if (result === undefined) return;
    if (rebuild) {
      metrics.rebuildRecordsApplied.inc(valid);
      options.onApplied?.(batch, result, newestEventMs);
      return;
    }
    for (const r of truncates)
      logger.warn(
        { topic: r.topic, partition: r.partition, offset: r.offset, table },
        'source table truncated: every row of the table was deleted',
      );
    metrics.recordsApplied.inc({ topic: batch.topic }, valid);
    metrics.batchSize.observe(valid + invalid.length);
    metrics.applySeconds.observe((performance.now() - started) / 1000);
    for (const c of chunks)
      for (const t of c.changes.eventTime)
        metrics.eventAgeSeconds.observe(Math.max(0, (result.appliedAt - t) / 1000));
    options.onApplied?.(batch, result, newestEventMs);
  };
}
