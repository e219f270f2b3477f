/**
 * The steps every ingest handler takes with a feed batch, whatever its records decode into (changelog rows
 * in ingest.ts, a view topic's values in view-ingest.ts): skip what the store already applied, send invalid
 * records to the dead-letter topic before anything of the batch commits, commit in chunks each with the
 * offset after its last record, and count what happened.
 */
import { compareOffsets, type FeedBatch, type FeedRecord } from '../feed/types.js';
import type { StoreInput } from '../materializer/change-batch.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { DEFAULT_MAX_RECORDS_PER_COMMIT } from '../store/commit-queue.js';
import type { Generation } from '../store/generation.js';
import type { BatchResult, BatchTarget, LmdbStore } from '../store/lmdb-store.js';

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

/** The batch's records at or after the stored next offset of its partition (the rest were applied). */
export function freshRecords(store: LmdbStore, target: BatchTarget, batch: FeedBatch): readonly FeedRecord[] {
  const stored =
    target === 'active'
      ? store.position(batch.topic, batch.partition)
      : store.position(batch.topic, batch.partition, target);
  return stored === undefined
    ? batch.records
    : batch.records.filter((record) => compareOffsets(record.offset, stored) >= 0);
}

/**
 * Commits one chunk of a batch with the offset after `lastOffset`; counts store commits (several batches
 * share one) and failures. A failure is rethrown: the source delivers the batch again.
 */
export function storeCommitter(
  store: LmdbStore,
  target: BatchTarget,
  metrics: Metrics,
  logger: Logger,
): (
  batch: FeedBatch,
  input: (positions: StoreInput['positions']) => StoreInput,
  lastOffset: string,
) => Promise<BatchResult> {
  /** The last commit counted in `storeCommits`. */
  let counted = 0n;
  return async (batch, input, lastOffset) => {
    try {
      const next = (BigInt(lastOffset) + 1n).toString();
      const result = await store.applyBatch(
        input([{ topic: batch.topic, partition: batch.partition, next }]),
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
}

/**
 * A batch's records split into commits of at most `size` records; the last chunk also carries the offsets of
 * trailing records that added nothing (invalid, skipped), so the partition's position moves past them.
 */
export class Chunks<B extends { readonly length: number }> {
  private readonly full: { batch: B; lastOffset: string }[] = [];
  current: B;

  constructor(
    private readonly make: () => B,
    private readonly size: number,
  ) {
    this.current = make();
  }

  /** Call after adding the record at `offset` to `current`. */
  added(offset: string): void {
    if (this.current.length < this.size) return;
    this.full.push({ batch: this.current, lastOffset: offset });
    this.current = this.make();
  }

  /** Every chunk, the last one reaching `lastOffset` (the batch's last fresh record). */
  finish(lastOffset: string): { batch: B; lastOffset: string }[] {
    const out = [...this.full];
    if (this.current.length > 0 || out.length === 0) out.push({ batch: this.current, lastOffset });
    else out[out.length - 1] = { batch: out[out.length - 1]!.batch, lastOffset };
    return out;
  }
}

/**
 * Sends the invalid records of a live batch to the dead-letter topic (awaited: if it cannot be written the
 * batch fails and is delivered again, nothing is dropped), then counts and logs each. A rebuild re-reads
 * what the live feed already dead-lettered: it only logs how many it skipped.
 */
export async function deadLetterInvalid(
  invalid: readonly DeadLetter[],
  batch: FeedBatch,
  options: {
    readonly rebuild: boolean;
    readonly deadLetters: DeadLetterSink;
    readonly metrics: Metrics;
    readonly logger: Logger;
  },
): Promise<void> {
  if (invalid.length === 0) return;
  const { metrics, logger } = options;
  if (options.rebuild) {
    logger.debug(
      { topic: batch.topic, partition: batch.partition, invalid: invalid.length },
      'rebuild skipped invalid records',
    );
    return;
  }
  await options.deadLetters.send(invalid);
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

/** The live feed's per-batch metrics: records applied, batch size, apply time, and each change's age. */
export function observeApplied(
  metrics: Metrics,
  batch: FeedBatch,
  counts: { readonly valid: number; readonly invalid: number },
  startedMs: number,
  appliedAt: number,
  eventTimes: Iterable<number>,
): void {
  metrics.recordsApplied.inc({ topic: batch.topic }, counts.valid);
  metrics.batchSize.observe(counts.valid + counts.invalid);
  metrics.applySeconds.observe((performance.now() - startedMs) / 1000);
  for (const t of eventTimes)
    if (Number.isFinite(t)) metrics.eventAgeSeconds.observe(Math.max(0, (appliedAt - t) / 1000));
}

/** What a handler's batch brings to its end (`batchFinisher`). */
export interface BatchEnd<B extends { readonly length: number }> {
  readonly chunks: Chunks<B>;
  /** The batch's last fresh record (undefined: none was fresh). */
  readonly last: FeedRecord | undefined;
  readonly invalid: readonly DeadLetter[];
  readonly valid: number;
  readonly newestEventMs: number | undefined;
}

/**
 * The end every handler's batch goes through: nothing fresh (all redelivered) reports the batch at once;
 * otherwise the invalid records go to the dead-letter topic, then the chunks commit in order, each with its
 * offset. A rebuild's batch is then done (counted, reported); a live batch's result goes back to the handler,
 * which records its own metrics and reports it. Undefined: the batch is done.
 */
export function batchFinisher<B extends { readonly length: number }>(options: {
  readonly rebuild: boolean;
  readonly commit: ReturnType<typeof storeCommitter>;
  readonly deadLetters: DeadLetterSink;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly onApplied?: (batch: FeedBatch, result: BatchResult | undefined, newestEventMs?: number) => void;
  /** The store input of one chunk. */
  readonly input: (chunk: B, positions: StoreInput['positions']) => StoreInput;
}): (
  batch: FeedBatch,
  end: BatchEnd<B>,
) => Promise<{ readonly result: BatchResult; readonly chunks: readonly B[] } | undefined> {
  return async (batch, end) => {
    if (end.last === undefined) {
      options.onApplied?.(batch, undefined, end.newestEventMs);
      return undefined;
    }
    const done = end.chunks.finish(end.last.offset);
    await deadLetterInvalid(end.invalid, batch, options);
    let result: BatchResult | undefined;
    for (const c of done)
      result = await options.commit(batch, (positions) => options.input(c.batch, positions), c.lastOffset);
    if (result === undefined) return undefined;
    if (options.rebuild) {
      options.metrics.rebuildRecordsApplied.inc(end.valid);
      options.onApplied?.(batch, result, end.newestEventMs);
      return undefined;
    }
    return { result, chunks: done.map((c) => c.batch) };
  };
}

/** What every ingest handler is given besides what its records decode into. */
export interface HandlerOptions {
  readonly store: LmdbStore;
  readonly deadLetters: DeadLetterSink;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /**
   * Called after each batch is durable (readiness, lag). `newestEventMs`: the newest event time among the
   * batch's changes, when its format carries one (Debezium `source.ts_ms`, a view's `version.eventTime`).
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

/** The steps of one handler, set up from its options: where it commits, and how a batch ends. */
export function handlerSteps<B extends { readonly length: number }>(
  options: HandlerOptions,
  make: () => B,
  input: (chunk: B, positions: StoreInput['positions']) => StoreInput,
) {
  const { store, deadLetters, metrics, logger, onApplied } = options;
  const rebuild = options.role === 'rebuild';
  if (rebuild && options.generation === undefined)
    throw new Error('a rebuild ingest handler needs its generation');
  const target: BatchTarget = options.generation ?? 'active';
  const size = Math.max(1, options.maxRecordsPerCommit ?? DEFAULT_MAX_RECORDS_PER_COMMIT);
  const commit = storeCommitter(store, target, metrics, logger);
  return {
    rebuild,
    /** The batch's records the store has not applied yet. */
    fresh: (batch: FeedBatch) => freshRecords(store, target, batch),
    /** Empty chunks for one batch. */
    chunks: () => new Chunks(make, size),
    finish: batchFinisher({
      rebuild,
      commit,
      deadLetters,
      metrics,
      logger,
      ...(onApplied === undefined ? {} : { onApplied }),
      input,
    }),
  };
}
