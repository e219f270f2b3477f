/**
 * Step 2 of an ingest handler (batch-steps.ts) for changelog records: a batch's fresh records, decoded by
 * their topic's format into chunks of at most the commit budget's changes, each packed from its bytes when the
 * format can (FormatDecoder `pack`) and the chunk packs, else decoded and pushed; an invalid record is kept by
 * its index (its dead letter is made where the records are), a truncate too (logged once committed).
 *
 * The same code runs on the event loop, in slices that take turns with reads (src/feed/loop-turns.ts), and in
 * the decode thread (decode-thread.ts), whole: what it gives depends only on the records, the decoder and the
 * chunks' size, never on where it ran (test/pipeline/decode-thread.test.ts compares the two).
 */
import type { FeedRecord } from '../feed/types.js';
import type { FormatDecoder } from '../formats/types.js';
import { TRUNCATE, type ChangeBatch } from '../materializer/change-batch.js';
import { PackingChangeBatch } from '../store/packed-changes.js';
import type { Table } from '../views/source.js';
import type { Chunks } from './batch-steps.js';

/** A record that did not decode: its index among the records given, and why. */
export interface InvalidAt {
  readonly index: number;
  readonly code: string;
  readonly message: string;
  /** The Confluent schema id of the part that failed to decode, when it had one. */
  readonly schemaId?: number;
}

/** What decoding a batch's fresh records gave. */
export interface DecodedRecords<B extends { readonly length: number }> {
  readonly chunks: Chunks<B>;
  readonly invalid: readonly InvalidAt[];
  /** Indexes of the truncate records. */
  readonly truncates: readonly number[];
  /** Each valid change's event time, in order (the age metric). */
  readonly eventTimes: Float64Array;
  readonly valid: number;
  /** The newest event time a change carried itself (Debezium `source.ts_ms`); undefined: none did. */
  readonly newestEventMs: number | undefined;
}

/** Turns of the event loop to take while decoding (loop-turns.ts); none in the decode thread. */
export interface DecodeTurnsAt {
  due(index: number): boolean;
  next(): Promise<void>;
}

export async function decodeRecords<B extends ChangeBatch | PackingChangeBatch>(
  records: readonly FeedRecord[],
  table: Table,
  decoder: FormatDecoder,
  chunks: Chunks<B>,
  turns?: DecodeTurnsAt,
): Promise<DecodedRecords<B>> {
  const invalid: InvalidAt[] = [];
  const truncates: number[] = [];
  const eventTimes = new Float64Array(records.length);
  let valid = 0;
  let newestEventMs: number | undefined;
  for (let i = 0; i < records.length; i++) {
    if (turns?.due(i) === true) await turns.next();
    const record = records[i]!;
    // Packed from its bytes when the format can (FormatDecoder `pack`), else decoded and pushed.
    const current = chunks.current;
    const own =
      decoder.pack !== undefined && current instanceof PackingChangeBatch
        ? decoder.pack(record, current)
        : undefined;
    let eventTime: number;
    if (own !== undefined) {
      if (own > 0 && (newestEventMs === undefined || own > newestEventMs)) newestEventMs = own;
      eventTime = own > 0 ? own : Number(record.timestamp);
    } else {
      const decoded = decoder.decode(record);
      if (!decoded.ok) {
        invalid.push(
          decoded.schemaId === undefined
            ? { index: i, code: decoded.code, message: decoded.message }
            : { index: i, code: decoded.code, message: decoded.message, schemaId: decoded.schemaId },
        );
        continue;
      }
      // Freshness from the source's commit time when the format has it (seed 004), else the Kafka timestamp.
      if (
        decoded.eventTime !== undefined &&
        (newestEventMs === undefined || decoded.eventTime > newestEventMs)
      )
        newestEventMs = decoded.eventTime;
      eventTime = decoded.eventTime ?? Number(record.timestamp);
      const changes = chunks.current;
      if ('truncate' in decoded) {
        changes.push(table, '', TRUNCATE, record.topic, record.partition, record.offset, eventTime);
        truncates.push(i);
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
    }
    eventTimes[valid++] = eventTime;
    chunks.added(record.offset);
  }
  return { chunks, invalid, truncates, eventTimes: eventTimes.subarray(0, valid), valid, newestEventMs };
}
