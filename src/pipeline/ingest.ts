/**
 * The changelog's ingest handler: turns a feed batch into durable store commits, by the steps every handler
 * takes (batch-steps.ts: redeliveries skipped, invalid records into the outbox with the offset that passes
 * them, chunks each with its offset). Each record is decoded by its topic's format (src/formats: json,
 * Debezium, Avro; `prepare` first loads what the records need, e.g. schemas, and a registry outage fails the
 * batch so it is redelivered). A truncate record empties its table (logged). The valid changes, in columns,
 * go to the store, which commits them together with whatever other batches arrived meanwhile (group commit:
 * large commits while catching up, one batch per commit once caught up). A large batch decodes in slices that
 * take turns of the event loop with every other handler's (src/feed/loop-turns.ts), so reads are served
 * while the instance catches up; with the decode thread (decode-thread.ts, DECODE_THREAD), a large batch of a
 * format that may go there is decoded there instead, whole.
 */
import { decodeTurns } from '../feed/loop-turns.js';
import type { FeedHandler } from '../feed/types.js';
import { jsonDecoder } from '../formats/json.js';
import type { FormatDecoder } from '../formats/types.js';
import { ChangeBatch } from '../materializer/change-batch.js';
import { PackingChangeBatch } from '../store/packed-changes.js';
import type { Table } from '../views/source.js';
import {
  Chunks,
  handlerSteps,
  observeApplied,
  tailOf,
  type DeadLetter,
  type HandlerOptions,
} from './batch-steps.js';
import { decodeRecords, type DecodedRecords } from './decode-records.js';
import { DECODE_THREAD_MIN_RECORDS, type DecodedChunk, type DecodeThread } from './decode-thread.js';

export type { DeadLetter, DeadLetterRouting } from './batch-steps.js';

export interface IngestOptions extends HandlerOptions {
  /** Topic name → table. */
  readonly tables: ReadonlyMap<string, Table>;
  /** Topic name → format decoder (src/formats). Default: the `json` format for every topic of `tables`. */
  readonly decoders?: ReadonlyMap<string, FormatDecoder>;
  /** Where large batches of formats that may go there are decoded (decode-thread.ts); without it, here. */
  readonly decodeThread?: DecodeThread;
}

type Chunk = ChangeBatch | PackingChangeBatch | DecodedChunk;

/** Bytes a chunk's packed records take (undefined: it holds decoded rows, not packed ones). */
const packedBytesOf = (chunk: Chunk): number | undefined =>
  chunk instanceof ChangeBatch ? undefined : chunk.packedBytes;

export function createIngestHandler(options: IngestOptions): FeedHandler {
  const { tables, metrics, logger, onApplied } = options;
  const decoders =
    options.decoders ?? new Map([...tables].map(([topic, table]) => [topic, jsonDecoder(table)] as const));
  const { store, decodeThread } = options;
  // Packed as decoded when the store's commits cross to its writer thread (packed-changes.ts).
  const make = (): ChangeBatch | PackingChangeBatch =>
    store.packsChanges ? new PackingChangeBatch(store.packedFields) : new ChangeBatch();
  const steps = handlerSteps<Chunk>(options, make, (changes, positions) => changes.input(positions));
  const { rebuild } = steps;

  return steps.handler(async (batch, decoded) => {
    const table = tables.get(batch.topic);
    const decoder = decoders.get(batch.topic);
    if (table === undefined || decoder === undefined)
      throw new Error(`ingest got a batch of unknown topic "${batch.topic}"`);
    const started = performance.now();
    const tail = tailOf(batch);
    const fresh = steps.fresh(batch);
    const skipped = batch.records.length - fresh.length;
    const lastOffset = fresh[fresh.length - 1]?.offset;
    if (decoder.prepare !== undefined && fresh.length > 0) await decoder.prepare(fresh);
    let decodedRecords: DecodedRecords<Chunk>;
    if (
      decodeThread !== undefined &&
      decoder.thread !== undefined &&
      store.packsChanges &&
      fresh.length >= DECODE_THREAD_MIN_RECORDS
    ) {
      decodedRecords = await decodeThread.decode(
        fresh,
        table,
        decoder.thread,
        steps.size,
        store.packedFields,
      );
      metrics.recordsDecodedOffLoop.inc({ topic: batch.topic }, fresh.length);
    } else
      decodedRecords = await decodeRecords(fresh, table, decoder, new Chunks(make, steps.size), {
        due: (i) => decodeTurns.due(i),
        next: () => decodeTurns.next(rebuild),
      });
    const { chunks, valid, eventTimes, newestEventMs } = decodedRecords;
    const invalid: DeadLetter[] = decodedRecords.invalid.map(({ index, ...why }) => ({
      record: fresh[index]!,
      ...why,
    }));
    const truncates = decodedRecords.truncates.map((i) => fresh[i]!);
    if (skipped > 0 && !rebuild) metrics.recordsSkipped.inc({ topic: batch.topic }, skipped);
    // Every record is packed (or kept as invalid): the source may let the batch's records go, and count the
    // packed bytes for it until its commit instead of the records' (FeedHandler). Not when a chunk holds
    // decoded rows (the store does not pack, or a row would not pack): those are not counted in bytes here.
    if (decoded !== undefined) {
      const held = chunks.bytes(packedBytesOf);
      if (held !== undefined) decoded(held);
    }
    // Without an event time in the format, the batch's last Kafka timestamp (read before its records went).
    const newest = newestEventMs ?? tail.timestamp;
    const committed = await steps.finish(batch, {
      chunks,
      lastOffset,
      tail,
      invalid,
      valid,
      newestEventMs: newest,
    });
    if (committed === undefined) return;
    const { result } = committed;
    for (const r of truncates)
      logger.warn(
        { topic: r.topic, partition: r.partition, offset: r.offset, table },
        'source table truncated: every row of the table was deleted',
      );
    observeApplied(metrics, batch, { valid, invalid: invalid.length }, started, result.appliedAt, eventTimes);
    onApplied?.(batch, result, newest, tail);
  });
}
