/**
 * Decoding of one Kafka record batch (magic 2), the same result field for field as kafkajs 2.2.4's
 * (`src/protocol/recordBatch/v0/decoder.js` with `record/v0/decoder.js` and `header/v0/decoder.js`), with
 * a fraction of its allocations. kafkajs reads each record through a Decoder object of its own, every varlong
 * (the timestamp delta) as a chain of Long objects, and parses the batch's first offset and first timestamp
 * back from strings for every record: on the event loop of a catch-up, its record decoding allocated ~1.3 KB
 * per record, half of everything the loop allocated (1.19 GB for 446k records, sampled), and the collector
 * that cleans it up paused the loop for 9 ms at the median and up to 38 ms, during which no read is
 * answered. Here offsets and timestamps are computed as numbers while they are safe integers (as BigInt, like
 * kafkajs' Long, beyond), and a record costs its own object, its two strings (a batch's records mostly
 * share the timestamp's) and its key and value slices. The same catch-up's record decoding allocated 180 MB
 * instead of 596 (the loop's total: 830 MB instead of 1.19 GB), and 100k records in 1,250-record batches
 * decode in 31-42 ms against 61-66 (fastest and median of 20 runs, bench box).
 *
 * test/feed/record-batch.test.ts decodes batches written by kafkajs' own encoder with both and compares the
 * results.
 */
import { createRequire } from 'node:module';
import { NO_HEADERS, setHeader } from './headers.js';
import type { FeedRecord, Headers } from './types.js';

const require = createRequire(import.meta.url);
const { lookupCodecByAttributes } = require('kafkajs/src/protocol/message/compression/index.js') as {
  lookupCodecByAttributes(attributes: number): { decompress(buffer: Buffer): Promise<Buffer> } | null;
};
const errors = require('kafkajs/src/errors.js') as {
  KafkaJSPartialMessageError: new (message: string) => Error;
  KafkaJSInvalidLongError: new (message: string) => Error;
};

/** A record batch's bytes after its length field, before its records (epoch, magic, CRC, ..., count). */
const BATCH_HEADER_BYTES = 49;

/**
 * Bytes that cannot be a record batch (a length too small for its header, a record past its batch's end):
 * the fetch fails, as it does with kafkajs (which throws reading past its slices), instead of decoding
 * garbage or looping on the same offset.
 */
export class CorruptBatchError extends Error {
  constructor(what: string) {
    super(`corrupt record batch in a Fetch response: ${what}`);
    this.name = 'CorruptBatchError';
  }
}

const TIMESTAMP_TYPE_FLAG_MASK = 0x8;
const TRANSACTIONAL_FLAG_MASK = 0x10;
const CONTROL_FLAG_MASK = 0x20;
/** kafkajs' TimestampTypes. */
const CREATE_TIME = 0;
const LOG_APPEND_TIME = 1;

/** What kafkajs calls a record batch's context, shared by its records (`batchContext`). */
export interface RecordBatchContext {
  readonly firstOffset: string;
  readonly firstTimestamp: string;
  readonly partitionLeaderEpoch: number;
  readonly inTransaction: boolean;
  readonly isControlBatch: boolean;
  readonly lastOffsetDelta: number;
  readonly producerId: string;
  readonly producerEpoch: number;
  readonly firstSequence: number;
  readonly maxTimestamp: string;
  readonly timestampType: number;
  readonly magicByte: number;
}

/** A decoded record, as kafkajs' record decoder returns it. */
export interface DecodedRecord {
  readonly magicByte: number;
  readonly attributes: number;
  readonly timestamp: string;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, Buffer | null | (Buffer | null)[]>;
  readonly isControlRecord: boolean;
  readonly batchContext: RecordBatchContext;
}

/** The reader's position, module-wide: no object per record or per field. */
let buf: Buffer = Buffer.alloc(0);
let at = 0;

/** kafkajs `Decoder#readVarInt` (`varIntAt` at the reader's position, which moves past it). */
function readVarInt(): number {
  const n = varIntAt(buf, at);
  at = varIntEnd;
  return n;
}

/**
 * kafkajs `Decoder#readVarLong` (a zigzag varlong of up to 10 bytes): a number while the value is a safe
 * integer, else a BigInt (what its Long, a BigInt, holds: nothing wraps at 64 bits).
 */
function readVarLong(): number | bigint {
  let byte: number;
  let result = 0;
  let shift = 0;
  do {
    byte = buf[at++]!;
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte >= 0x80 && shift < 49);
  if (byte < 0x80) return result % 2 === 0 ? result / 2 : -(result + 1) / 2;
  let big = BigInt(result);
  do {
    if (shift > 63) throw new errors.KafkaJSInvalidLongError('Invalid Long, must contain 9 bytes or less');
    byte = buf[at++]!;
    big += BigInt(byte & 0x7f) << BigInt(shift);
    shift += 7;
  } while (byte >= 0x80);
  return (big >> 1n) ^ -(big & 1n);
}

/** kafkajs `Decoder#readVarIntBytes`: null for -1, else the next bytes (a view, not a copy). */
function readVarIntBytes(): Buffer | null {
  const n = readVarInt();
  if (n === -1) return null;
  const out = buf.subarray(at, at + n);
  at += n;
  return out;
}

/** kafkajs `Decoder#readVarIntString`. */
function readVarIntString(): string | null {
  const n = readVarInt();
  if (n === -1) return null;
  const out = buf.toString('utf8', at, at + n);
  at += n;
  return out;
}

/** An int64 as kafkajs' `Long#toString` writes it, and as a number when that is exact. */
function readInt64(): { text: string; value: number | bigint } {
  const v = buf.readBigInt64BE(at);
  at += 8;
  const n = Number(v);
  return Number.isSafeInteger(n) ? { text: String(n), value: n } : { text: v.toString(), value: v };
}

/** `base + delta` in decimal (kafkajs' Long is a BigInt: no wrap-around). */
function sum(base: number | bigint, delta: number | bigint): string {
  if (typeof base === 'number' && typeof delta === 'number') {
    const s = base + delta;
    if (Number.isSafeInteger(s)) return String(s);
  }
  return (BigInt(base) + BigInt(delta)).toString();
}

/**
 * The records of a batch mostly share their timestamp: the last one formatted, and its text. Only exact sums
 * are kept: beyond 2^53 two different sums can round to the same number.
 */
let lastTimestamp = Number.NaN;
let lastTimestampText = '';
function timestampOf(base: number | bigint, delta: number | bigint): string {
  if (typeof base === 'number' && typeof delta === 'number') {
    const t = base + delta;
    if (Number.isSafeInteger(t)) {
      if (t !== lastTimestamp) {
        lastTimestamp = t;
        lastTimestampText = String(t);
      }
      return lastTimestampText;
    }
  }
  return sum(base, delta);
}

/** The header reduce of kafkajs' record decoder: a repeated key collects its values in an array. */
function readHeaders(): Record<string, Buffer | null | (Buffer | null)[]> {
  const count = readVarInt();
  if (count <= 0) return NO_HEADERS;
  const headers: Record<string, Buffer | null | (Buffer | null)[]> = {};
  for (let i = 0; i < count; i++) {
    const key = String(readVarIntString());
    const value = readVarIntBytes();
    const before = headers[key];
    const next =
      before === undefined ? value : Array.isArray(before) ? before.concat([value]) : [before, value];
    // kafkajs builds each step with a spread and a computed key: an own property whatever the key.
    setHeader(headers, key, next);
  }
  return headers;
}

interface Context {
  readonly batch: RecordBatchContext;
  readonly firstOffset: number | bigint;
  readonly firstTimestamp: number | bigint;
}

/** kafkajs' record decoder over the record that starts at `at` and ends at `end` (its length prefix read). */
function readRecord(end: number, context: Context): DecodedRecord {
  const { batch } = context;
  const attributes = buf.readInt8(at);
  at += 1;
  const timestampDelta = readVarLong();
  const timestamp =
    batch.timestampType === LOG_APPEND_TIME && batch.maxTimestamp
      ? batch.maxTimestamp
      : timestampOf(context.firstTimestamp, timestampDelta);
  const offset = sum(context.firstOffset, readVarInt());
  const key = readVarIntBytes();
  const value = readVarIntBytes();
  const headers = readHeaders();
  at = end;
  return {
    magicByte: batch.magicByte,
    attributes,
    timestamp,
    offset,
    key,
    value,
    headers,
    isControlRecord: batch.isControlBatch,
    batchContext: batch,
  };
}

/** The records of a record batch's record area (`records` of them from `at` on). */
function readRecords(count: number, context: Context): DecodedRecord[] {
  const records = new Array<DecodedRecord>(count);
  for (let i = 0; i < count; i++) {
    const length = readVarInt();
    // kafkajs reads a record within its own slice, and throws where that is impossible.
    if (length < 0 || at + length > buf.length)
      throw new CorruptBatchError(`a record of ${length} bytes at byte ${at} of ${buf.length}`);
    records[i] = readRecord(at + length, context);
  }
  return records;
}

/** A record batch's header read, its records not yet. */
interface OpenedBatch {
  readonly context: Context;
  readonly count: number;
  /** Where the batch ends in the buffer given (where the next one starts). */
  readonly end: number;
  /** Its compression codec, or null: its records follow the header. */
  readonly codec: { decompress(buffer: Buffer): Promise<Buffer> } | null;
}

/**
 * Reads the header of the record batch that starts at `offset` of `buffer` (magic 2) and leaves `buf` and
 * `at` on its record area (still compressed when `codec` is set). A batch cut short by the fetch's byte
 * limit throws kafkajs' KafkaJSPartialMessageError, as kafkajs does.
 */
function openBatch(buffer: Buffer, offset: number): OpenedBatch {
  buf = buffer;
  at = offset;
  const firstOffset = readInt64();
  const length = buf.readInt32BE(at);
  at += 4;
  const end = at + length;
  // Shorter than a batch's header: corrupt (kafkajs fails reading past its slice), never partial.
  if (length < BATCH_HEADER_BYTES) throw new CorruptBatchError(`a record batch of ${length} bytes`);
  const remaining = Math.max(0, Math.min(buffer.length, end) - at);
  if (remaining < length)
    throw new errors.KafkaJSPartialMessageError(
      `Tried to decode a partial record batch: remainingBytes(${remaining}) < recordBatchLength(${length})`,
    );
  // Nothing of this batch is read past its end.
  buf = buffer.subarray(0, end);
  const partitionLeaderEpoch = buf.readInt32BE(at);
  const magicByte = buf.readInt8(at + 4);
  // at + 5: the CRC, which kafkajs does not check either.
  const attributes = buf.readInt16BE(at + 9);
  const lastOffsetDelta = buf.readInt32BE(at + 11);
  at += 15;
  const firstTimestamp = readInt64();
  const maxTimestamp = readInt64().text;
  const producerId = readInt64().text;
  const producerEpoch = buf.readInt16BE(at);
  const firstSequence = buf.readInt32BE(at + 2);
  const count = buf.readInt32BE(at + 6);
  at += 10;
  const batch: RecordBatchContext = {
    firstOffset: firstOffset.text,
    firstTimestamp: firstTimestamp.text,
    partitionLeaderEpoch,
    inTransaction: (attributes & TRANSACTIONAL_FLAG_MASK) > 0,
    isControlBatch: (attributes & CONTROL_FLAG_MASK) > 0,
    lastOffsetDelta,
    producerId,
    producerEpoch,
    firstSequence,
    maxTimestamp,
    timestampType: (attributes & TIMESTAMP_TYPE_FLAG_MASK) > 0 ? LOG_APPEND_TIME : CREATE_TIME,
    magicByte,
  };
  const context: Context = { batch, firstOffset: firstOffset.value, firstTimestamp: firstTimestamp.value };
  return { context, count, end, codec: lookupCodecByAttributes(attributes) };
}

/**
 * `read()` over the records of `opened` (decompressed first), or `none` when it has none. `read` runs with
 * `buf` and `at` on its records and nothing awaited in between: another batch's decoding, run meanwhile,
 * moves them. Without compression that is where `openBatch` left them, and nothing is awaited at all.
 */
function withRecords<T>(opened: OpenedBatch, read: () => T, none: T): T | Promise<T> {
  const { codec, count, end } = opened;
  if (codec === null) return count === -1 ? none : read();
  if (count <= 0) return none;
  return codec.decompress(buf.subarray(at, end)).then((decompressed) => {
    buf = decompressed;
    at = 0;
    return read();
  });
}

/**
 * Decodes the record batch that starts at `offset` of `buffer` (magic 2); returns its records and where the
 * next batch starts. A batch cut short by the fetch's byte limit throws kafkajs' KafkaJSPartialMessageError,
 * as kafkajs does.
 */
export async function decodeRecordBatch(
  buffer: Buffer,
  offset: number,
): Promise<{ records: DecodedRecord[]; next: number }> {
  try {
    const opened = openBatch(buffer, offset);
    const records = await withRecords(opened, () => readRecords(opened.count, opened.context), []);
    return { records, next: opened.end };
  } finally {
    buf = Buffer.alloc(0);
  }
}

/**
 * A fetched record as the feed delivers it (the contract's FeedRecord): one object per record. Its key and
 * value are read from the batch's bytes when asked for, as views of them (no copy), instead of being two
 * `Buffer` objects of their own from the start.
 *
 * Why: while catching up, a fetched record waits on the event loop, in the prefetch and behind the other
 * partitions' handlers, for longer than two young-generation collections, and the collector copies what
 * survives them. Decoded the kafkajs way it was three objects more (kafkajs' record, its key and its value;
 * ~290 bytes with the FeedRecord), and the event loop promoted 114-121 MB per catch-up of 446k records, most
 * of it those. A key or value asked for is a short-lived view: the handler decodes it and lets it go.
 */
export class FetchedRecord implements FeedRecord {
  // Private (#): a spread, a log line or a structured clone of a record sees its contract fields only, not
  // the batch's bytes (its key and value, getters, are not own properties either: read them to copy them).
  readonly #bytes: Buffer;
  /**
   * Where its key starts in the batch's bytes: the key's length (a zigzag varint, -1 for none), its bytes,
   * then the value the same way (checked when the batch was decoded). One position rather than the four
   * offsets and lengths: a record waiting in the prefetch survives young-generation collections, which copy
   * it, and three fields fewer are 88 bytes a record instead of 112.
   */
  readonly #at: number;

  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly offset: string,
    readonly timestamp: string,
    readonly headers: Headers,
    /** A control record (a transaction marker): read, never delivered. */
    readonly isControlRecord: boolean,
    bytes: Buffer,
    at: number,
  ) {
    this.#bytes = bytes;
    this.#at = at;
  }

  get key(): Buffer | null {
    const length = varIntAt(this.#bytes, this.#at);
    return length < 0 ? null : this.#bytes.subarray(varIntEnd, varIntEnd + length);
  }

  get value(): Buffer | null {
    const length = this.valueLength();
    return length < 0 ? null : this.#bytes.subarray(varIntEnd, varIntEnd + length);
  }

  /** Bytes of its key and value, without making views of them (every fetched record's, at its fetch). */
  get size(): number {
    const keyLength = Math.max(0, varIntAt(this.#bytes, this.#at));
    return keyLength + Math.max(0, varIntAt(this.#bytes, varIntEnd + keyLength));
  }

  /**
   * The bytes its key and value are in, shared with the records fetched with it (a view of its Fetch
   * response), and where in them they start: the key's length (a zigzag varint, -1 for none), its bytes, then
   * the value the same way. src/pipeline/record-wire.ts copies those bytes once for all the records in them.
   */
  get keyValueBytes(): Buffer {
    return this.#bytes;
  }

  /** See `keyValueBytes`. */
  get keyValueAt(): number {
    return this.#at;
  }

  /** The value's length (-1: none), leaving `varIntEnd` where its bytes start. */
  private valueLength(): number {
    const keyLength = varIntAt(this.#bytes, this.#at);
    return varIntAt(this.#bytes, varIntEnd + Math.max(0, keyLength));
  }
}

/** Where the varint `varIntAt` read last ends (module-wide, like the decoder's position: no object per read). */
let varIntEnd = 0;

/** Where the varint `varIntAt` read last ends. */
export const varIntEndOfLast = (): number => varIntEnd;

/**
 * The zigzag varint at `at` of `bytes` (kafkajs `Decoder#readVarInt`'s arithmetic: 32-bit shifts, zigzag);
 * sets `varIntEnd`. The decoder reads through it (`readVarInt`), a record's key and value getters, and the
 * decode thread its records (src/pipeline/record-wire.ts).
 */
export function varIntAt(bytes: Uint8Array, at: number): number {
  let byte: number;
  let result = 0;
  let shift = 0;
  do {
    byte = bytes[at++]!;
    result += (byte & 0x7f) << shift;
    shift += 7;
  } while (byte >= 0x80);
  varIntEnd = at;
  return (result >>> 1) ^ -(result & 1);
}

/**
 * The headers of a fetched record as the feed delivers them: a repeated key keeps its last value (Java's
 * `Headers.lastHeader(key)`), a header without a value is there with none (undefined).
 */
function readFeedHeaders(): Headers {
  const count = readVarInt();
  if (count <= 0) return NO_HEADERS;
  const headers: Record<string, Buffer | undefined> = {};
  for (let i = 0; i < count; i++) {
    const key = String(readVarIntString());
    setHeader(headers, key, readVarIntBytes() ?? undefined);
  }
  return headers;
}

/**
 * Skips a varint-prefixed byte string (a key or a value; -1 for none) within the record ending at `end`, which
 * it must not pass.
 */
function skipVarIntBytes(end: number): void {
  const n = readVarInt();
  if (n < -1 || at + n > end) throw new CorruptBatchError(`a key or value of ${n} bytes at byte ${at}`);
  if (n > 0) at += n;
}

/** The records of a record area as FetchedRecords (`count` of them from `at` on). */
function readFetchedRecords(
  topic: string,
  partition: number,
  count: number,
  context: Context,
  out: { push(record: FetchedRecord): unknown },
): void {
  const { batch } = context;
  const control = batch.isControlBatch;
  const logAppend = batch.timestampType === LOG_APPEND_TIME && batch.maxTimestamp;
  const bytes = buf;
  for (let i = 0; i < count; i++) {
    const length = readVarInt();
    if (length < 0 || at + length > buf.length)
      throw new CorruptBatchError(`a record of ${length} bytes at byte ${at} of ${buf.length}`);
    const end = at + length;
    at += 1; // attributes
    const timestampDelta = readVarLong();
    const timestamp = logAppend ? batch.maxTimestamp : timestampOf(context.firstTimestamp, timestampDelta);
    const offset = sum(context.firstOffset, readVarInt());
    // The key, then the value: checked here, read again from `keyStart` when the record is asked for them.
    const keyStart = at;
    skipVarIntBytes(end);
    skipVarIntBytes(end);
    const headers = readFeedHeaders();
    at = end;
    out.push(new FetchedRecord(topic, partition, offset, timestamp, headers, control, bytes, keyStart));
  }
}

/**
 * Decodes the record batch that starts at `offset` of `buffer` (magic 2) into `out` as the feed's records of
 * `topic`/`partition` (FetchedRecord: control records included and marked, for the caller to drop); returns
 * where the next batch starts. The same records, offsets and timestamps as `decodeRecordBatch` followed by
 * partition-feed.ts' conversion (test/feed/record-batch.test.ts compares them); for fetches without aborted
 * transactions, which need kafkajs' record shape (`filteredByKafkajs`).
 */
export async function decodeFetchedBatch(
  buffer: Buffer,
  offset: number,
  topic: string,
  partition: number,
  out: { push(record: FetchedRecord): unknown },
): Promise<number> {
  try {
    const opened = openBatch(buffer, offset);
    const read = () => readFetchedRecords(topic, partition, opened.count, opened.context, out);
    await withRecords(opened, read, undefined);
    return opened.end;
  } finally {
    buf = Buffer.alloc(0);
  }
}
