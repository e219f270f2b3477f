/**
 * The feed's contract: sources (Kafka or the embedded changelog) deliver ordered batches of raw
 * records with their positions. The feed knows nothing about users or tweets.
 *
 * Offsets are decimal strings (Kafka offsets are int64; kafkajs uses strings too).
 */

export type Headers = Readonly<Record<string, Buffer | undefined>>;

export interface FeedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** Kafka record timestamp, milliseconds since the epoch, decimal string. */
  readonly timestamp: string;
  readonly key: Buffer | null;
  /** null or zero-length: a tombstone. */
  readonly value: Buffer | null;
  readonly headers: Headers;
}

/** Records of one topic-partition, in offset order. */
export interface FeedBatch {
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly FeedRecord[];
  /** The partition's high watermark (next offset to be written) as seen by the fetch that returned this batch. */
  readonly highWatermark: string;
  /**
   * Where the partition continues when that is past the last record: the source skipped records it never
   * delivers (transaction markers, records of aborted transactions). The stored position moves there too,
   * else a transactional topic would keep a lag of 1 after each commit marker and never look caught up.
   * Such a batch may hold no record at all.
   */
  readonly nextOffset?: string;
  /**
   * Set when the source handed this batch out while the batch before it (of the same partition) was still
   * being applied: the offset this one continues from (where that one ends). It is to be applied only once
   * that one is (the store refuses it otherwise: BatchOutOfOrderError), and handed to the store after it.
   */
  readonly continuesFrom?: string;
}

/** Where a partition stands: `next` is the next offset to read (last applied + 1). */
export interface PartitionPosition {
  readonly topic: string;
  readonly partition: number;
  readonly next: string;
}

/**
 * Applies a batch durably. Resolves only after the batch's effects and its offsets are committed;
 * a rejection means nothing of the batch was committed and the source must deliver it again.
 *
 * `decoded`, when the source passes it: the handler may call it once, before it settles, when it no longer
 * reads `batch.records` (what it decoded is its own; it may keep the few records it still needs, its invalid
 * ones for the dead-letter topic), with the bytes it holds for the batch until its commit (its packed
 * records). From then on `batch.records` is empty (the source lets the records go), and a source that bounds
 * what it fetches ahead counts those bytes for the batch instead of its records': a partition far behind in
 * records far bigger than what they decode into (Debezium's envelopes) gets more of them into one commit.
 */
export type FeedHandler = (batch: FeedBatch, decoded?: (heldBytes: number) => void) => Promise<void>;

export type FeedState = 'starting' | 'running' | 'retrying' | 'stopped' | 'crashed';

export interface FeedStatus {
  readonly state: FeedState;
  /** Readable reason when retrying or crashed. */
  readonly reason?: string;
  /** Date.now() of the last completed fetch/handler call, for liveness. */
  readonly lastActivityAt: number;
  /** Bytes of records fetched ahead and waiting to be applied, all partitions (sources that fetch ahead). */
  readonly prefetchedBytes?: number;
}

export interface FeedStartOptions {
  readonly topics: readonly string[];
  /** Stored next offset for a partition, or undefined to start from the earliest offset. */
  readonly resumeFrom: (topic: string, partition: number) => string | undefined;
  readonly handler: FeedHandler;
  /** The source failed for good (kafkajs CRASH without restart); the process should exit non-zero. */
  readonly onFatal: (error: Error) => void;
  /**
   * The broker answered OFFSET_OUT_OF_RANGE for a partition (retention removed the records at its position,
   * or the topic was recreated) and the source moved it to the earliest offset. The caller decides what that
   * means for the positions it gave (OFFSET_RESET_POLICY); records are never skipped without this call.
   */
  readonly onOffsetOutOfRange?: (topic: string, partition: number) => void;
}

export interface FeedSource {
  readonly kind: 'kafka' | 'embedded';
  start(options: FeedStartOptions): Promise<void>;
  /** High watermarks of every partition of these topics right now. */
  endOffsets(topics: readonly string[]): Promise<PartitionPosition[]>;
  status(): FeedStatus;
  /** Stops fetching; resolves after the handler call in progress (if any) has finished. */
  stop(): Promise<void>;
}

export interface OutgoingMessage {
  readonly key: string | Buffer | null;
  /** null: tombstone. */
  readonly value: string | Buffer | null;
  readonly headers?: Readonly<Record<string, string | Buffer>>;
  /** Optional explicit partition; otherwise chosen by key hash (murmur2, like Kafka's default partitioner). */
  readonly partition?: number;
}

/** Writes records to changelog topics: the demo generator, DLQ and tests use it. */
export interface ChangelogWriter {
  send(topic: string, messages: readonly OutgoingMessage[]): Promise<void>;
  close(): Promise<void>;
}

/** Compares two decimal int64 offsets. */
export function compareOffsets(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
