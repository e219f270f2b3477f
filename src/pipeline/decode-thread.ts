/**
 * The decode thread (DECODE_THREAD; `auto`: on with the writer thread on boxes of 4 cores or more): the ingest handler's
 * decoding of a large batch (decode-records.ts: each record's format, its packing for the writer thread) runs
 * on a worker thread instead of the event loop that answers reads. While an instance catches up, the event
 * loop decoded every record in 2 ms slices between reads (src/feed/loop-turns.ts) and was busy ~93 % of the
 * time; a read arriving then waited for the slices, the Fetch responses and the collections queued before
 * it (`user(id)` p99 while catching up 15-20× idle). Now a batch's records cross as their bytes
 * (record-wire.ts: the bytes they are in, copied once), the thread decodes them whole, and their packed chunks come back
 * transferred, ready for the writer thread. Everything else stays on the event loop, in the order it had:
 * the batch's turn among its partition's batches, its dead letters (made from the records kept here), its
 * commits, metrics and positions (batch-steps.ts).
 *
 * Measured on the 2-core bench box (the catch-up scenario, 3 fresh servers each, same session): with the thread
 * the event loop's own CPU in a catch-up fell (`/proc/<pid>/task`, one run each: json 1.7 s against 2.1, the
 * thread taking 0.7; Debezium JSON 2.2 s against 4.1, the thread 2.6), and the reads' median with it (1.4-1.7
 * ms against 2.9-3.8 while catching up), but their tail did not: p99 78-227 ms against
 * 38-58, the catch-up 78.8k against 106.3k records/s. A third busy thread on 2 cores (beside the writer
 * thread, V8's helpers, the mock broker and the bench's client) takes cores from the event loop more than it
 * takes work off it: its stalls there are the thread waiting for a core (a 1 ms timer late by 40-100 ms with
 * the loop idle). At 10 nice steps below the event loop: 95.3k records/s, p99 47-374 ms. Hence
 * `DECODE_THREAD=auto` (the default) starts it only on boxes with at least 4 cores (config.ts
 * DECODE_THREAD_AUTO_CORES), where the event loop, the writer and the decoding can each have one (not
 * measured: the bench box has 2).
 *
 * Only formats whose decoders say how another thread makes them (FormatDecoder `thread`: `json` and
 * `debezium-json`) go there, and only batches of at least DECODE_THREAD_MIN_RECORDS fresh records: a trickle's
 * small batches decode faster than a message crosses, and are decoded where they are. Batches go one at a
 * time in the order given; a failure (the thread died) fails the batch, which is delivered again, and the next
 * batch starts a new thread.
 */
import type { Worker } from 'node:worker_threads';
import type { DecoderSpec } from '../formats/types.js';
import type { ChangeColumns, CommitInput } from '../materializer/change-batch.js';
import type { FeedRecord, PartitionPosition } from '../feed/types.js';
import type { CrossingFields, PackedChanges, PackedCommitInput } from '../store/packed-changes.js';
import type { ThreadPriority } from '../store/thread-priority.js';
import type { Table } from '../views/source.js';
import { startWorker } from '../worker-entry.js';
import { Chunks } from './batch-steps.js';
import type { DecodedRecords, InvalidAt } from './decode-records.js';
import { toWire, wireTransferables, type WireRecords } from './record-wire.js';

/**
 * Fresh records a batch needs for the decode thread: below, it is decoded on the event loop (a crossing
 * costs two messages and a copy of the records' bytes; a catch-up's merged batches hold thousands).
 */
export const DECODE_THREAD_MIN_RECORDS = 256;

export interface DecodeThreadData {
  /** Nice steps below the process's priority (WRITER_THREAD_NICE applies to this thread too). */
  readonly niceIncrement: number;
}

export interface DecodeRequest {
  readonly id: number;
  readonly spec: DecoderSpec;
  readonly table: Table;
  readonly size: number;
  readonly crossing: CrossingFields;
  readonly records: WireRecords;
}

/** A chunk as it crosses back: packed (or, when a row would not pack, its plain columns). */
export interface DecodedChunkData {
  readonly packed?: PackedChanges;
  readonly plain?: ChangeColumns;
  readonly length: number;
  readonly packedBytes: number | undefined;
  /** For a full chunk: the offset of its last record. */
  readonly lastOffset?: string | undefined;
}

export type DecodeReply =
  | { readonly kind: 'priority'; readonly priority: ThreadPriority }
  | {
      readonly kind: 'decoded';
      readonly id: number;
      readonly full: readonly DecodedChunkData[];
      readonly current: DecodedChunkData;
      readonly invalid: readonly InvalidAt[];
      readonly truncates: readonly number[];
      readonly eventTimes: Float64Array;
      readonly valid: number;
      readonly newestEventMs: number | undefined;
    }
  | { readonly kind: 'failed'; readonly id: number; readonly message: string };

/** A chunk the decode thread filled: committed as it came (batch-steps.ts reads `length` and `input`). */
export class DecodedChunk {
  constructor(private readonly data: DecodedChunkData) {}

  get length(): number {
    return this.data.length;
  }

  /** Bytes of what it packed (undefined: it holds decoded rows). */
  get packedBytes(): number | undefined {
    return this.data.packedBytes;
  }

  input(positions: readonly PartitionPosition[]): PackedCommitInput | CommitInput {
    const { packed, plain } = this.data;
    if (packed !== undefined) return { packed, positions };
    if (plain !== undefined) return { changes: plain, positions };
    throw new Error('a chunk the decode thread did not fill has no input');
  }
}

const EMPTY = new DecodedChunk({ length: 0, packedBytes: 0 });

/** Where a batch's records are decoded: one thread, started when first needed and again after a failure. */
export class DecodeThread {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (reply: Extract<DecodeReply, { kind: 'decoded' }>) => void; reject: (e: Error) => void }
  >();
  private closed = false;

  constructor(
    private readonly data: DecodeThreadData,
    /** What lowering the thread's priority did, once per thread started. */
    private readonly onPriority: (priority: ThreadPriority) => void = () => undefined,
  ) {}

  /**
   * `records` (all fresh, of one topic-partition) decoded by the decoder `spec` describes into chunks of at
   * most `size` changes packed with `crossing`: what decode-records.ts gives on the event loop, exactly.
   */
  async decode(
    records: readonly FeedRecord[],
    table: Table,
    spec: DecoderSpec,
    size: number,
    crossing: CrossingFields,
  ): Promise<DecodedRecords<DecodedChunk>> {
    if (this.closed) throw new Error('the decode thread is closed');
    const first = records[0];
    if (first === undefined) throw new Error('the decode thread takes at least one record');
    const wire = toWire(records, first.topic, first.partition);
    const id = this.nextId++;
    const worker = (this.worker ??= this.spawn());
    const reply = await new Promise<Extract<DecodeReply, { kind: 'decoded' }>>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) worker.ref();
      const request: DecodeRequest = { id, spec, table, size, crossing, records: wire };
      worker.postMessage(request, wireTransferables(wire));
    });
    const make = (): DecodedChunk => EMPTY;
    const chunks = Chunks.resumed(
      make,
      size,
      reply.full.map((c) => ({ batch: new DecodedChunk(c), lastOffset: c.lastOffset! })),
      new DecodedChunk(reply.current),
    );
    return {
      chunks,
      invalid: reply.invalid,
      truncates: reply.truncates,
      eventTimes: reply.eventTimes,
      valid: reply.valid,
      newestEventMs: reply.newestEventMs,
    };
  }

  /** Ends the thread; a batch being decoded fails. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker !== undefined) await worker.terminate();
    this.failAll(new Error('the decode thread was closed'));
  }

  private spawn(): Worker {
    const worker = startWorker(import.meta.url, './record-decoder.ts', 'record-decoder', {
      workerData: this.data satisfies DecodeThreadData,
    });
    worker.unref(); // referenced only while a batch is being decoded
    worker.on('message', (reply: DecodeReply) => {
      if (reply.kind === 'priority') {
        this.onPriority(reply.priority);
        return;
      }
      const waiting = this.pending.get(reply.id);
      if (waiting === undefined) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if (reply.kind === 'decoded') waiting.resolve(reply);
      else waiting.reject(new Error(`the decode thread failed: ${reply.message}`));
    });
    const gone = (error: Error): void => {
      if (this.worker === worker) this.worker = undefined;
      this.failAll(error);
    };
    worker.on('error', (error) => gone(error));
    worker.on('exit', (code) => gone(new Error(`the decode thread exited (code ${code})`)));
    return worker;
  }

  private failAll(error: Error): void {
    for (const waiting of this.pending.values()) waiting.reject(error);
    this.pending.clear();
  }
}
