/**
 * One topic-partition of the Kafka source: where to fetch next, what was fetched ahead and waits to be
 * applied, and where a re-read starts. No I/O: the source's fetch loops and its delivery call these
 * methods, and test/feed/partition-feed.test.ts drives them directly.
 *
 * Pipelining with a bound: while the handler applies one batch, the fetch loop may fetch the next ones,
 * until `maxPrefetchBytes` of records wait (the batches being applied are not counted: with them counted, a
 * batch as big as the bound would stop the prefetch that is the point). What waits leaves in offset order,
 * all of it merged into one batch (`take`: a partition that is behind gives the store large commits).
 *
 * More than one batch may be out: while the batches out hold less than `maxPrefetchBytes`, `take` hands out
 * what waits once it is worth a commit of its own (PIPELINE_SHARE of the bound), so the handler decodes the
 * next batch while the store commits the one before, and the store's group commit can take several batches
 * of one partition at once (a commit writes each user once, so the fewer commits a catch-up takes, the less
 * it writes). Small fetches (a caught-up partition, a producer sending one record at a time) wait for the
 * batch out instead and go together, as one handler call, as they did before: handed out one by one, each
 * would cost a handler call and most a commit of their own (the `catchup` bench's small-batch catch-up ran at
 * 0.44x the client's rate that way, against 0.57x, and `freshness` at 5k records/s in small batches doubled
 * its p99). A batch taken while a batch of the same epoch is out says where it continues from
 * (`continuesFrom`: where that one ends); the handler hands it to the store after that one, and the store
 * applies it only once that one is applied (src/pipeline/batch-steps.ts, 4.). So a partition holds at most
 * `maxPrefetchBytes` waiting plus one fetch, and about as much again out. A batch out counts its records'
 * bytes until its handler has decoded them and let them go (`release`: FeedHandler's `decoded`), then what
 * the handler holds for it until its commit (its packed records, far smaller), and at most MAX_BATCHES_OUT
 * are out at once.
 *
 * Re-reads: when the handler rejects a batch, nothing of it counts. What was fetched after it is dropped
 * and the partition is fetched again from `appliedUpTo`, the offset after the last batch the handler
 * accepted, so no record is skipped. Batches handed out after the rejected one are refused by the store
 * (they continue from it); settling them changes nothing. The handler skips what it already committed (the
 * store's positions), so nothing is applied twice. A fetch that was in flight during such a reset (or an
 * OFFSET_OUT_OF_RANGE reset) is recognised by its epoch and its records are dropped.
 */
import { NO_HEADERS, setHeader } from './headers.js';
import type { FeedBatch, FeedRecord, Headers } from './types.js';
import { createBatch, type FetchedMessage, type FetchedPartition } from './kafkajs-internals.js';
import { FetchedRecord } from './record-batch.js';

/** A fetch handed out by `beginFetch`: its start offset and the epoch it belongs to. */
export interface FetchTicket {
  readonly offset: bigint;
  readonly epoch: number;
}

/** A batch handed to the handler by `take`; give it back to `settle`. */
export interface TakenBatch {
  readonly batch: FeedBatch;
  /** Offset after the batch's last record. */
  readonly next: bigint;
  readonly epoch: number;
  /** Record bytes it holds (`batchBytes`) when taken. */
  readonly bytes: number;
}

interface Prefetched {
  readonly batch: FeedBatch;
  readonly next: bigint;
  readonly bytes: number;
}

/**
 * What waits goes out while a batch is out once it holds this share of the prefetch bound (1/16: 256 KiB of
 * the default 4 MiB, about 1,000 records of the bench's changelog, a fetch's worth when far behind).
 */
export const PIPELINE_SHARE = 1 / 16;

/**
 * Batches of one partition out at once at most: with their records let go (`release`), batches out count
 * for what their handlers hold (packed records, ~65 bytes each against ~2.4 KB of a Debezium envelope),
 * and this keeps the handler calls waiting for their commits few.
 */
export const MAX_BATCHES_OUT = 16;

/** Backoff after consecutive failures of one partition: 200 ms doubling to 10 s. */
export const partitionBackoffMs = (failures: number): number =>
  Math.min(10_000, 200 * 2 ** Math.min(Math.max(0, failures - 1), 6));

export class PartitionFeed {
  /** Leader broker id from the last metadata; undefined while the partition has none. */
  leader: number | undefined;
  /** A fetch error or a failed batch holds the partition back until then (ms since the epoch). */
  retryAt = 0;
  /** OFFSET_OUT_OF_RANGE was answered and the earliest offset is being looked up: do not fetch. */
  resetting = false;
  private fetchAt: bigint;
  private appliedUpTo: bigint;
  private readonly waiting: Prefetched[] = [];
  private waitingBytes = 0;
  private epoch = 0;
  private fetching = false;
  /**
   * Batches handed out and not settled, each with the bytes it counts for: its records', until its handler let
   * them go (`release`), then what the handler said it holds for it.
   */
  private readonly outstanding = new Map<TakenBatch, number>();
  /** Those that were released. */
  private readonly released = new WeakSet<TakenBatch>();
  private outBytes = 0;
  /** Of those, the ones taken in the current epoch, and where the last one taken in it ends. */
  private outInEpoch = 0;
  private lastTakenNext = 0n;
  private failures = 0;

  constructor(
    readonly topic: string,
    readonly partition: number,
    start: bigint,
    private readonly maxPrefetchBytes: number,
  ) {
    this.fetchAt = start;
    this.appliedUpTo = start;
  }

  /** Next offset a fetch asks for. */
  get fetchOffset(): bigint {
    return this.fetchAt;
  }

  /** Offset after the last batch the handler accepted (where a re-read starts). */
  get applied(): bigint {
    return this.appliedUpTo;
  }

  /** Bytes of records fetched and waiting (the batch being applied excluded). */
  get prefetchedBytes(): number {
    return this.waitingBytes;
  }

  /** Whether a batch of it is out (taken, not settled). */
  get handling(): boolean {
    return this.outstanding.size > 0;
  }

  /** May a fetch for this partition be sent at `now`? */
  fetchable(now: number): boolean {
    return (
      !this.fetching &&
      !this.resetting &&
      this.leader !== undefined &&
      this.waitingBytes < this.maxPrefetchBytes &&
      now >= this.retryAt
    );
  }

  beginFetch(): FetchTicket {
    this.fetching = true;
    return { offset: this.fetchAt, epoch: this.epoch };
  }

  /** The fetch failed or returned nothing for this partition. */
  abortFetch(_ticket: FetchTicket): void {
    this.fetching = false;
  }

  /**
   * The fetch of `ticket` returned `records` (possibly none) and the partition continues at `next`. Returns
   * false, keeping nothing, when the partition was reset after the fetch left.
   */
  endFetch(ticket: FetchTicket, batch: FeedBatch, next: bigint): boolean {
    this.fetching = false;
    if (ticket.epoch !== this.epoch || ticket.offset !== this.fetchAt) return false;
    if (next > this.fetchAt) this.fetchAt = next;
    if (batch.records.length > 0 || batch.nextOffset !== undefined) {
      const bytes = batchBytes(batch);
      this.waiting.push({ batch, next, bytes });
      this.waitingBytes += bytes;
    }
    return true;
  }

  /**
   * True when a batch waits and none is out, or when the batches out hold less than the bound and what waits
   * is worth a commit of its own (PIPELINE_SHARE of the bound).
   */
  ready(): boolean {
    if (this.waiting.length === 0) return false;
    if (this.outstanding.size === 0) return true;
    return (
      this.outstanding.size < MAX_BATCHES_OUT &&
      this.outBytes < this.maxPrefetchBytes &&
      this.waitingBytes >= this.maxPrefetchBytes * PIPELINE_SHARE
    );
  }

  /**
   * Everything waiting, as one batch for the handler (undefined unless `ready`). A partition that is behind
   * hands its whole prefetch to one handler call, so the store's commits grow with the lag (each user written
   * once per commit, not once per fetch: src/store/commit-queue.ts); a caught-up partition has one fetch
   * waiting at most, so nothing waits longer than before. Taken while a batch of this epoch is out, it
   * continues from where the last one taken ends (`continuesFrom`).
   */
  take(): TakenBatch | undefined {
    if (!this.ready()) return undefined;
    const taken = this.waiting.splice(0, this.waiting.length);
    const bytes = this.waitingBytes;
    this.waitingBytes = 0;
    const merged = mergeBatches(taken.map((t) => t.batch));
    // Taken while one of this epoch is out: it continues where the last one taken ends.
    const batch = this.outInEpoch > 0 ? { ...merged, continuesFrom: this.lastTakenNext.toString() } : merged;
    const next = taken[taken.length - 1]!.next;
    const out: TakenBatch = { batch, next, epoch: this.epoch, bytes };
    this.outstanding.set(out, bytes);
    this.outBytes += bytes;
    this.outInEpoch++;
    this.lastTakenNext = next;
    return out;
  }

  /**
   * The handler of `taken` let its records go and holds `heldBytes` for it until it settles (FeedHandler's
   * `decoded`): those count for it from now on, instead of its records' bytes, so that more may be taken.
   * False, changing nothing, when it is not out or was released already.
   */
  release(taken: TakenBatch, heldBytes: number): boolean {
    const counted = this.outstanding.get(taken);
    if (counted === undefined || this.released.has(taken)) return false;
    this.released.add(taken);
    this.outstanding.set(taken, heldBytes);
    this.outBytes += heldBytes - counted;
    return true;
  }

  /**
   * The handler settled the batch `taken`. Accepted: the re-read position moves past it. Rejected: drop
   * what was fetched after it and fetch again from the last accepted batch, after a backoff. A batch taken
   * before a reset (one handed out after a batch that was rejected, say) changes nothing.
   */
  settle(taken: TakenBatch, accepted: boolean, now: number): void {
    const counted = this.outstanding.get(taken);
    if (counted === undefined) return;
    this.outstanding.delete(taken);
    this.outBytes -= counted;
    if (taken.epoch !== this.epoch) return;
    this.outInEpoch--;
    if (accepted) {
      if (taken.next > this.appliedUpTo) this.appliedUpTo = taken.next;
      this.failures = 0;
      return;
    }
    this.failures++;
    this.restart(this.appliedUpTo);
    this.retryAt = now + partitionBackoffMs(this.failures);
  }

  /** Starts over at `offset` (the earliest offset after OFFSET_OUT_OF_RANGE): nothing fetched so far counts. */
  resetTo(offset: bigint): void {
    this.restart(offset);
    this.appliedUpTo = offset;
    this.resetting = false;
  }

  private restart(offset: bigint): void {
    this.epoch++;
    this.outInEpoch = 0;
    this.waiting.length = 0;
    this.waitingBytes = 0;
    this.fetchAt = offset;
  }
}

/**
 * Consecutive batches of one partition as one: their records in order, the last fetch's high watermark, and
 * the last batch's `nextOffset` (an earlier one is passed by the records after it).
 */
export function mergeBatches(batches: readonly FeedBatch[]): FeedBatch {
  if (batches.length === 1) return batches[0]!;
  const last = batches[batches.length - 1]!;
  // A loop, not flatMap: a partition far behind merges ~16k records here, in one task of the event loop,
  // and flatMap's generic path took ~5-10 ms of it.
  const records: FeedRecord[] = [];
  for (const b of batches) for (const r of b.records) records.push(r);
  const { topic, partition, highWatermark, nextOffset } = last;
  return nextOffset === undefined
    ? { topic, partition, records, highWatermark }
    : { topic, partition, records, highWatermark, nextOffset };
}

/** Record bytes a batch holds (keys, values, headers, plus a fixed overhead per record for the objects). */
export function batchBytes(batch: FeedBatch): number {
  let bytes = 0;
  for (const r of batch.records) {
    // A FetchedRecord's size, without the views of its key and value that reading them makes.
    bytes += 64 + (r instanceof FetchedRecord ? r.size : (r.key?.length ?? 0) + (r.value?.length ?? 0));
    // `for in`, not Object.entries: no array per record.
    for (const name in r.headers) bytes += name.length + (r.headers[name]?.length ?? 0);
  }
  return bytes;
}

/** kafkajs header values are Buffers, or arrays of them when a key repeats. */
function toHeaders(headers: FetchedMessage['headers']): Headers {
  if (headers === undefined) return NO_HEADERS;
  let out: Record<string, Buffer | undefined> | undefined;
  for (const name in headers) {
    if (!Object.hasOwn(headers, name)) continue;
    const value = headers[name];
    out ??= {};
    // A repeated header key keeps its last value, like Java's `Headers.lastHeader(key)`.
    const last = Array.isArray(value) ? value[value.length - 1] : value;
    // A header without a value (null) is there with none.
    const header =
      last === undefined || last === null ? undefined : Buffer.isBuffer(last) ? last : Buffer.from(last);
    setHeader(out, name, header);
  }
  return out ?? NO_HEADERS;
}

/**
 * What one partition of a fetch at `fetchedOffset` gives: the records to deliver (kafkajs' Batch drops the
 * ones below the fetch offset, the control records and those of aborted transactions), and where the
 * partition continues: past the last record fetched, filtered ones included (kafkajs runner.js moves past
 * them the same way, #1256), or where it was when nothing came. When filtering moved it past the last
 * delivered record, the batch says so (`nextOffset`), so the stored position follows.
 *
 * Without aborted transactions in the response (every fetch of a topic no transactional producer aborted
 * in), the records are filtered here, in the pass that builds them, with kafkajs' Batch's result
 * (test/feed/partition-feed.test.ts compares the two over random fetches): its filtering parsed every
 * record's offset into a Long and built three arrays per fetch. With aborted transactions, kafkajs' Batch
 * filters them (`filterAbortedMessages.js`).
 */
export function fetchedBatch(
  topic: string,
  fetchedOffset: bigint,
  data: FetchedPartition,
): { batch: FeedBatch; next: bigint } {
  const { records, next } =
    data.abortedTransactions === undefined || data.abortedTransactions.length === 0
      ? filtered(topic, fetchedOffset, data)
      : filteredByKafkajs(topic, fetchedOffset, data);
  const batch: FeedBatch = { topic, partition: data.partition, records, highWatermark: data.highWatermark };
  const last = records[records.length - 1];
  const delivered = last === undefined ? fetchedOffset : BigInt(last.offset) + 1n;
  return { batch: next > delivered ? { ...batch, nextOffset: next.toString() } : batch, next };
}

/** kafkajs' Batch (`src/consumer/batch.js`) filters the records and says where the partition continues. */
export function filteredByKafkajs(
  topic: string,
  fetchedOffset: bigint,
  data: FetchedPartition,
): { records: FeedRecord[]; next: bigint } {
  const fetched = createBatch(topic, fetchedOffset.toString(), data);
  const next =
    fetched.isEmpty() && !fetched.isEmptyDueToFiltering() ? fetchedOffset : BigInt(fetched.lastOffset()) + 1n;
  return { records: fetched.messages.map((m) => feedRecordOf(topic, data.partition, m)), next };
}

/** `a < b` for offsets as kafkajs writes them (decimal, `-` for a negative one, no leading zeros). */
export function offsetBelow(a: string, b: string): boolean {
  if (a.charCodeAt(0) === 0x2d || b.charCodeAt(0) === 0x2d) return BigInt(a) < BigInt(b);
  return a.length !== b.length ? a.length < b.length : a < b;
}

/**
 * kafkajs' Batch's result for a response without aborted transactions: the records at or after the fetch
 * offset that are not control records; the partition continues where it was when nothing was fetched, one
 * past the fetch offset when everything fetched was below it (Batch#lastOffset is the fetch offset then),
 * else one past the last record at or after the fetch offset, control records included.
 */
function filtered(
  topic: string,
  fetchedOffset: bigint,
  data: FetchedPartition,
): { records: FeedRecord[]; next: bigint } {
  const from = fetchedOffset.toString();
  const records: FeedRecord[] = [];
  let lastWithin: string | undefined;
  for (const m of data.messages) {
    if (offsetBelow(m.offset, from)) continue;
    lastWithin = m.offset;
    if (m.isControlRecord) continue;
    // Decoded as the feed's record already (kafkajs-internals.ts, for fetches without aborted transactions).
    records.push(m instanceof FetchedRecord ? m : feedRecordOf(topic, data.partition, m));
  }
  const next =
    data.messages.length === 0
      ? fetchedOffset
      : lastWithin === undefined
        ? fetchedOffset + 1n
        : BigInt(lastWithin) + 1n;
  return { records, next };
}

/** The contract's FeedRecord of a fetched record. */
const feedRecordOf = (topic: string, partition: number, m: FetchedMessage): FeedRecord => ({
  topic,
  partition,
  offset: m.offset,
  timestamp: m.timestamp,
  key: m.key ?? null,
  value: m.value ?? null,
  headers: toHeaders(m.headers),
});

/** The contract's FeedBatch of one partition's fetched records (already in offset order). */
export function toFeedBatch(
  topic: string,
  partition: number,
  messages: readonly FetchedMessage[],
  highWatermark: string,
): FeedBatch {
  const records = messages.map((m) => feedRecordOf(topic, partition, m));
  return { topic, partition, records, highWatermark };
}
