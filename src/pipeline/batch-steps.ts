/**
 * The steps every ingest handler takes with a feed batch, whatever its records decode into (changelog rows
 * in ingest.ts, a view topic's values in view-ingest.ts):
 *
 * 1. Records below the stored next offset are redeliveries: skipped (the handler counts them). The commit
 *    checks again inside its transaction, so a record is never applied twice whatever this early check saw.
 * 2. The handler decodes each fresh record into the chunk being filled (`Chunks`), or keeps it as invalid.
 * 3. The chunks commit in order, each with the offset after its last record. Each invalid record becomes a
 *    dead-letter message that commits into the store's outbox with the chunk whose offset passes it (never
 *    lost, never stored twice, whatever the crash); src/pipeline/dead-letter-drainer.ts sends it on, so the
 *    feed never waits for a dead-letter topic. The last chunk also carries the offsets of trailing invalid
 *    records and of records the source skipped (transaction markers, aborted transactions); when no record
 *    is left at all, those alone move the position.
 * Offsets are stored only with the records before them (kafkajs runner.js: commit what succeeded); after a
 * failed chunk the batch is redelivered and its committed chunks are skipped (1.).
 * 4. A source may hand out a partition's next batch while the one before it is still being applied (it then
 *    says where the new one continues from: `continuesFrom`, src/feed/partition-feed.ts), so one commit can
 *    carry several batches of a partition. Each handler call takes its turn when it is called, in the order
 *    the source hands the batches out, and hands its chunks to the store only after the call before it (same
 *    partition) handed over its last one or ended: the store's queue then holds them in offset order. The
 *    first chunk carries `continuesFrom` with its position, and the store refuses it, whole, unless the
 *    partition's position reached it (commit.ts `checkContinuity`): when the batch before it failed, this one
 *    fails too, and the source reads the partition again from the store's position. No record is applied
 *    past a gap, whatever the order things happen in.
 *
 * A handler either feeds the active generation (`role: 'live'`, the default) or a shadow generation being
 * rebuilt (`role: 'rebuild'`). A rebuild re-reads history the live feed already handled, so it keeps no
 * dead letters (those records were kept already) and counts into the rebuild metrics, leaving the freshness
 * and per-topic metrics to the live feed.
 */
import { compareOffsets, type FeedBatch, type FeedHandler, type FeedRecord } from '../feed/types.js';
import type { BatchInput } from '../materializer/change-batch.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { BatchOutOfOrderError, StoreStoppingError } from '../errors.js';
import { DEFAULT_MAX_RECORDS_PER_COMMIT } from '../store/commit-queue.js';
import type { Generation } from '../store/generation.js';
import type { PackedCommitInput } from '../store/packed-changes.js';
import type { BatchResult, BatchTarget, LmdbStore, OutboxEntry } from '../store/lmdb-store.js';

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

type Positions = BatchInput['positions'];

/** What every ingest handler is given besides what its records decode into. */
export interface HandlerOptions {
  readonly store: LmdbStore;
  /** Required for the live role; a rebuild keeps no dead letters. */
  readonly deadLetters?: DeadLetterRouting;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /**
   * Called after each batch is durable (readiness, lag). `newestEventMs`: the newest event time among the
   * batch's changes, when its format carries one (Debezium `source.ts_ms`, a view's `version.eventTime`),
   * else the Kafka timestamp of the batch's last record (undefined: it had none). `tail`: what its last record
   * said (the batch's records may be gone by then: FeedHandler's `decoded`).
   */
  readonly onApplied?: (
    batch: FeedBatch,
    result: BatchResult | undefined,
    newestEventMs: number | undefined,
    tail: BatchTail,
  ) => void;
  /** `rebuild`: feed `generation` (a shadow) without dead letters; default `live`: the active generation. */
  readonly role?: 'live' | 'rebuild';
  /** The shadow generation a `rebuild` handler writes to. */
  readonly generation?: Generation;
  /**
   * Records of one batch handed to the store at once at most (default: the store's commit budget,
   * {@link DEFAULT_MAX_RECORDS_PER_COMMIT}): a bigger batch goes in chunks, each committed with its offset.
   */
  readonly maxRecordsPerCommit?: number;
}

/**
 * A batch's records split into commits of at most `size` records; the last chunk also reaches the offsets of
 * trailing records that added nothing (invalid, skipped by the source), so the partition's position moves
 * past them.
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

  /**
   * Chunks that continue `full` and `current` (another thread's, rebuilt here: decode-thread.ts), as if they
   * had been filled here.
   */
  static resumed<B extends { readonly length: number }>(
    make: () => B,
    size: number,
    full: readonly { batch: B; lastOffset: string }[],
    current: B,
  ): Chunks<B> {
    const chunks = new Chunks(make, size);
    chunks.full.push(...full);
    chunks.current = current;
    return chunks;
  }

  /** The chunks as they stand, full ones with their last offsets and the one being filled (to cross threads). */
  parts(): { readonly full: readonly { batch: B; lastOffset: string }[]; readonly current: B } {
    return { full: this.full, current: this.current };
  }

  /**
   * Bytes the chunks hold, by `size` of each (undefined when `size` gives undefined for one: it cannot say).
   */
  bytes(size: (chunk: B) => number | undefined): number | undefined {
    let total = 0;
    for (const { batch } of this.full) {
      const n = size(batch);
      if (n === undefined) return undefined;
      total += n;
    }
    const n = size(this.current);
    return n === undefined ? undefined : total + n;
  }

  /** Call after adding the record at `offset` to `current`. */
  added(offset: string): void {
    if (this.current.length < this.size) return;
    this.full.push({ batch: this.current, lastOffset: offset });
    this.current = this.make();
  }

  /**
   * Every chunk, the last one reaching `lastOffset`, handed over: this keeps none of them, so a chunk lives
   * only until it is handed to the store (`finish` below lets go of each then).
   */
  finish(lastOffset: string): { batch: B | undefined; lastOffset: string }[] {
    const out: { batch: B | undefined; lastOffset: string }[] = this.full.splice(0);
    if (this.current.length > 0 || out.length === 0) out.push({ batch: this.current, lastOffset });
    else out[out.length - 1] = { batch: out[out.length - 1]!.batch, lastOffset };
    this.current = this.make();
    return out;
  }
}

/** What a handler's batch brings to its end (`finish`). */
export interface BatchEnd<B extends { readonly length: number }> {
  readonly chunks: Chunks<B>;
  /** The offset of the batch's last fresh record (undefined: none was fresh). */
  readonly lastOffset: string | undefined;
  /** What the batch's last record said, fresh or not (`tailOf`, read before the records went). */
  readonly tail: BatchTail;
  readonly invalid: readonly DeadLetter[];
  readonly valid: number;
  readonly newestEventMs: number | undefined;
}

/** The live feed's per-batch metrics: records applied, batch size, apply time, and each change's age. */
export function observeApplied(
  metrics: Metrics,
  batch: FeedBatch,
  counts: { readonly valid: number; readonly invalid: number },
  startedMs: number,
  appliedAt: number,
  eventTimes: ArrayLike<number>,
): void {
  metrics.recordsApplied.inc({ topic: batch.topic }, counts.valid);
  metrics.batchSize.observe(counts.valid + counts.invalid);
  metrics.applySeconds.observe((performance.now() - startedMs) / 1000);
  // Into a typed array, in one pass: a batch of a catch-up holds tens of thousands of records, and this runs
  // in one task of the event loop that answers reads.
  const ages = new Float64Array(eventTimes.length);
  let n = 0;
  for (let i = 0; i < eventTimes.length; i++) {
    const t = eventTimes[i]!;
    if (Number.isFinite(t)) ages[n++] = Math.max(0, (appliedAt - t) / 1000);
  }
  metrics.eventAgeSeconds.observeAll(ages.subarray(0, n));
}

/**
 * What the batch's last record says of it, read before its records may go (FeedHandler's `decoded`): its Kafka
 * timestamp in ms, and the offset after it (both undefined: the batch has no record).
 */
export interface BatchTail {
  readonly timestamp: number | undefined;
  readonly next: string | undefined;
}

export function tailOf(batch: FeedBatch): BatchTail {
  const tail = batch.records[batch.records.length - 1];
  return tail === undefined
    ? { timestamp: undefined, next: undefined }
    : { timestamp: Number(tail.timestamp), next: (BigInt(tail.offset) + 1n).toString() };
}

/** A handler call's place among the calls of its partition (module comment, 4.). */
interface Turn {
  /** Settles when the call before it (same partition) handed its last chunk to the store, or ended. */
  readonly ready: Promise<void>;
  /** This call handed its last chunk to the store, or ended: the next call may go. Idempotent. */
  readonly pass: () => void;
}

/** Per partition, the order in which handler calls hand their chunks to the store. */
class SubmissionOrder {
  private readonly last = new Map<string, Promise<void>>();

  /** The turn of a call for `batch`, after every call that took one before it for the same partition. */
  take(batch: FeedBatch): Turn {
    const key = `${batch.topic}\0${batch.partition}`;
    const ready = this.last.get(key) ?? Promise.resolve();
    let pass!: () => void;
    const passed = new Promise<void>((resolve) => (pass = resolve));
    this.last.set(key, passed);
    void passed.then(() => {
      if (this.last.get(key) === passed) this.last.delete(key);
    });
    return { ready, pass };
  }
}

/** The steps of one handler, set up from its options: where it commits, and how a batch ends. */
export function handlerSteps<B extends { readonly length: number }>(
  options: HandlerOptions,
  make: () => B,
  input: (chunk: B, positions: Positions) => BatchInput | PackedCommitInput,
) {
  const { store, deadLetters, metrics, logger, onApplied } = options;
  const rebuild = options.role === 'rebuild';
  if (rebuild && options.generation === undefined)
    throw new Error('a rebuild ingest handler needs its generation');
  if (!rebuild && deadLetters === undefined)
    throw new Error('a live ingest handler needs its dead-letter routing');
  const target: BatchTarget = options.generation ?? 'active';
  const size = Math.max(1, options.maxRecordsPerCommit ?? DEFAULT_MAX_RECORDS_PER_COMMIT);
  const stored = (batch: FeedBatch): string | undefined =>
    target === 'active'
      ? store.position(batch.topic, batch.partition)
      : store.position(batch.topic, batch.partition, target);
  /** The last commit counted in `storeCommits` (several batches share one commit). */
  let counted = 0n;
  const order = new SubmissionOrder();
  /** The turn of each batch being handled (set by `handler`). */
  const turns = new WeakMap<FeedBatch, Turn>();

  /**
   * Commits one chunk with the offset after `lastOffset` and its dead letters; a failure is rethrown. The
   * batch's first chunk says where the batch continues from (`continuesFrom`); after its last one is handed
   * to the store, the next call of the partition may hand over its own.
   */
  const commit = async (
    batch: FeedBatch,
    chunk: B,
    lastOffset: string,
    dead: readonly DeadLetter[],
    place: { readonly first: boolean; readonly last: boolean },
  ): Promise<BatchResult> => {
    try {
      const next = (BigInt(lastOffset) + 1n).toString();
      const { topic, partition, continuesFrom } = batch;
      const position =
        place.first && continuesFrom !== undefined
          ? { topic, partition, next, from: continuesFrom }
          : { topic, partition, next };
      const batchInput = input(chunk, [position]);
      const applied = store.applyBatch(
        dead.length === 0 || deadLetters === undefined
          ? batchInput
          : { ...batchInput, deadLetters: dead.map((d) => deadLetters.outboxEntry(d)) },
        target,
      );
      // Handed over (applyBatch queues it before it returns): the partition's next call may hand over its own.
      if (place.last) turns.get(batch)?.pass();
      const result = await applied;
      if (result.sequence > counted) {
        counted = result.sequence;
        metrics.storeCommits.inc();
        metrics.storeCommitRecords.observe(result.accepted + result.skipped);
        metrics.storeCommitSeconds.observe(result.seconds);
      }
      return result;
    } catch (e) {
      // A stop refused it: read again at the next start, nothing failed. Out of order: the batch before it
      // failed, and that failure was logged.
      // (By its code: from the writer thread it arrives as a MatviewError.)
      if (e instanceof StoreStoppingError || (e as { code?: unknown }).code === BatchOutOfOrderError.CODE)
        throw e;
      metrics.storeErrors.inc();
      logger.error(
        { err: e, topic: batch.topic, partition: batch.partition },
        'store commit failed; batch will be retried',
      );
      throw e;
    }
  };

  /**
   * The end every batch goes through (see the module comment). A rebuild's batch is then done (counted,
   * reported); a live batch's result and chunks go back to the handler, which records its own metrics and
   * reports it. Undefined: the batch is done.
   */
  const finish = async (
    batch: FeedBatch,
    end: BatchEnd<B>,
  ): Promise<{ readonly result: BatchResult } | undefined> => {
    const { invalid, newestEventMs } = end;
    await turns.get(batch)?.ready;
    // The source skipped records it never delivers: the position moves past them with the last chunk.
    const skipTo = batch.nextOffset === undefined ? undefined : (BigInt(batch.nextOffset) - 1n).toString();
    if (end.lastOffset === undefined) {
      const at = stored(batch);
      let moved: BatchResult | undefined;
      if (skipTo !== undefined && (at === undefined || compareOffsets(batch.nextOffset!, at) > 0))
        moved = await commit(batch, make(), skipTo, [], { first: true, last: true });
      onApplied?.(batch, moved, newestEventMs, end.tail);
      return undefined;
    }
    const reach =
      skipTo !== undefined && compareOffsets(skipTo, end.lastOffset) > 0 ? skipTo : end.lastOffset;
    const done = end.chunks.finish(reach);
    // A rebuild's handler has no routing but a cold start's bulk load's (src/wiring/cold-start.ts): the live
    // feed kept those records already.
    if (invalid.length > 0 && deadLetters === undefined)
      logger.debug(
        { topic: batch.topic, partition: batch.partition, invalid: invalid.length },
        'rebuild skipped invalid records',
      );
    // Each invalid record commits into the outbox with the chunk whose offset passes it.
    let result: BatchResult | undefined;
    let deadFrom = 0;
    for (const [n, c] of done.entries()) {
      let deadTo = deadFrom;
      while (
        deadLetters !== undefined &&
        deadTo < invalid.length &&
        compareOffsets(invalid[deadTo]!.record.offset, c.lastOffset) <= 0
      )
        deadTo++;
      const dead = invalid.slice(deadFrom, deadTo);
      deadFrom = deadTo;
      const chunk = c.batch!;
      // Let go of the chunk: the store copied it (the writer thread's message) or holds it until it commits.
      // Kept here, a catch-up's decoded rows lived on this thread until their commit, seconds later, and
      // every young-generation collection meanwhile copied them.
      c.batch = undefined;
      result = await commit(batch, chunk, c.lastOffset, dead, {
        first: n === 0,
        last: n === done.length - 1,
      });
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
    if (result === undefined) return undefined;
    if (rebuild) {
      metrics.rebuildRecordsApplied.inc(end.valid);
      onApplied?.(batch, result, newestEventMs, end.tail);
      return undefined;
    }
    return { result };
  };

  return {
    rebuild,
    /**
     * The feed handler around `body` (which ends with `finish`): the call takes its turn among its partition's
     * calls at once, in the order the source calls it, and gives it up when it ends, whatever happened.
     */
    handler(body: FeedHandler): FeedHandler {
      return async (batch, decoded) => {
        const turn = order.take(batch);
        turns.set(batch, turn);
        try {
          await body(batch, decoded);
        } finally {
          turn.pass();
        }
      };
    },
    /** The batch's records the store has not applied yet. */
    fresh(batch: FeedBatch): readonly FeedRecord[] {
      const at = stored(batch);
      const { records } = batch;
      if (at === undefined || records.length === 0) return records;
      // Records are in offset order (FeedBatch): the fresh ones are a suffix, found in log2(n) comparisons
      // instead of one per record (each parses two BigInts).
      let lo = 0;
      let hi = records.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareOffsets(records[mid]!.offset, at) >= 0) hi = mid;
        else lo = mid + 1;
      }
      return lo === 0 ? records : records.slice(lo);
    },
    /** Empty chunks for one batch. */
    chunks: () => new Chunks(make, size),
    /** Records per chunk at most. */
    size,
    finish,
  };
}
