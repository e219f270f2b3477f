/**
 * Offset out of range: a stored position the source can no longer serve. Either retention removed
 * records the view has not applied (stored < earliest offset) or the topic was deleted and recreated, or
 * the embedded log replaced (stored > end offset). kafkajs silently resets such a partition to its
 * default offset (consumerGroup.js `recoverFromOffsetOutOfRange`), which would skip records or ignore
 * the new log as "replays", so positions are checked against the live offset ranges before consuming
 * and the OFFSET_RESET_POLICY applies instead.
 */
import { OffsetOutOfRangeError } from '../errors.js';
import { createKafkaClient, type KafkaClientOptions } from '../feed/kafka-client.js';
import type { FeedSource, PartitionPosition } from '../feed/types.js';

/** The offsets a partition holds right now: [low, high). */
export interface OffsetRange {
  readonly topic: string;
  readonly partition: number;
  /** Earliest offset still held (log start offset). */
  readonly low: string;
  /** High watermark: the next offset to be written. */
  readonly high: string;
}

export interface OutOfRange extends OffsetRange {
  /** The stored next offset that is outside [low, high]. */
  readonly stored: string;
}

export type OffsetRangeReader = (topics: readonly string[]) => Promise<OffsetRange[]>;

/**
 * Stored positions outside the partitions' ranges. `next === high` is in range (caught up), and so is
 * any position of a partition with no record ever written (`high` 0 and nothing stored). A stored position
 * of a partition that no longer exists counts as out of range.
 */
export function findOutOfRange(
  positions: readonly PartitionPosition[],
  ranges: readonly OffsetRange[],
): OutOfRange[] {
  const byKey = new Map(ranges.map((r) => [`${r.topic}\u0000${r.partition}`, r] as const));
  const out: OutOfRange[] = [];
  for (const p of positions) {
    const r = byKey.get(`${p.topic}\u0000${p.partition}`) ?? {
      topic: p.topic,
      partition: p.partition,
      low: '0',
      high: '0',
    };
    const next = BigInt(p.next);
    if (next < BigInt(r.low) || next > BigInt(r.high)) out.push({ ...r, stored: p.next });
  }
  return out;
}

/** One readable sentence per partition, for logs and the `fail` policy's error. */
export function describeOutOfRange(list: readonly OutOfRange[]): string {
  return list
    .map((o) =>
      BigInt(o.stored) < BigInt(o.low)
        ? `${o.topic}[${o.partition}] needs offset ${o.stored} but the topic now starts at ${o.low} (retention removed records the view has not applied)`
        : `${o.topic}[${o.partition}] was consumed up to offset ${o.stored} but the topic now ends at ${o.high} (it was deleted and recreated, or the log was replaced)`,
    )
    .join('; ');
}

/** The error of OFFSET_RESET_POLICY=fail: names every partition and what to do. */
export function offsetOutOfRangeError(list: readonly OutOfRange[]): OffsetOutOfRangeError {
  return new OffsetOutOfRangeError(
    `Stored positions are out of range: ${describeOutOfRange(list)}. Set OFFSET_RESET_POLICY=rebuild to rebuild the view ` +
      'from the earliest offsets, or restore a newer snapshot (matview restore).',
  );
}

/** Ranges from a Kafka cluster: one short-lived admin client (kafkajs `fetchTopicOffsets` gives low and high). */
export function kafkaOffsetRanges(options: KafkaClientOptions): OffsetRangeReader {
  return async (topics) => {
    const admin = createKafkaClient(options).admin();
    await admin.connect();
    try {
      const ranges: OffsetRange[] = [];
      for (const topic of topics) {
        const offsets = await admin.fetchTopicOffsets(topic).catch((error: unknown) => {
          // A topic that does not exist holds nothing: every stored position of it is out of range.
          if ((error as { type?: unknown }).type === 'UNKNOWN_TOPIC_OR_PARTITION') return [];
          throw error;
        });
        for (const o of offsets) ranges.push({ topic, partition: o.partition, low: o.low, high: o.high });
      }
      return ranges;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  };
}

/** Ranges of a source that never removes records (the embedded changelog): [0, end). */
export function fromEndOffsets(source: Pick<FeedSource, 'endOffsets'>): OffsetRangeReader {
  return async (topics) =>
    (await source.endOffsets(topics)).map((e) => ({
      topic: e.topic,
      partition: e.partition,
      low: '0',
      high: e.next,
    }));
}

/** The error for a reset the source reported while running (the broker's current range is not known here). */
export function offsetResetError(topic: string, partition: number, stored: string): OffsetOutOfRangeError {
  return new OffsetOutOfRangeError(
    `Kafka answered OFFSET_OUT_OF_RANGE for ${topic}[${partition}] at the stored position ${stored}: retention removed ` +
      'records the view has not applied, or the topic was recreated. Set OFFSET_RESET_POLICY=rebuild to rebuild the view ' +
      'from the earliest offsets, or restore a newer snapshot (matview restore).',
  );
}
