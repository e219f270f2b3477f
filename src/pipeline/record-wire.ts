/**
 * A batch's records as they cross to the decode thread (decode-thread.ts): the bytes their keys and values are
 * in, each record's key and value as its Kafka record batch holds them (the key's length as a zigzag varint,
 * -1 for none, its bytes, then the value the same way). Fetched records (src/feed/record-batch.ts) are views
 * of their Fetch response: the bytes they are in are copied once for all of them, in one copy each (per
 * record, a copy cost more than the rest of the crossing: 16k records ~25 ms of the event loop), and a record
 * is its position in them. Offsets and timestamps cross as numbers while they are exact. Headers do not
 * cross: a format whose decoding reads them is not decoded there (FormatDecoder `thread`).
 */
import { FetchedRecord, varIntAt, varIntEndOfLast } from '../feed/record-batch.js';
import { NO_HEADERS } from '../feed/headers.js';
import type { FeedRecord } from '../feed/types.js';

export interface WireRecords {
  readonly topic: string;
  readonly partition: number;
  /** The bytes the records' keys and values are in. */
  readonly bytes: Uint8Array;
  /** Where each record's key and value start in `bytes`. */
  readonly starts: Int32Array;
  /** Offsets: as numbers when every one is a safe integer, else as their decimal strings. */
  readonly offsets: Float64Array | readonly string[];
  /** Kafka timestamps (ms), as `Number(record.timestamp)` reads them. */
  readonly timestamps: Float64Array;
}

/** What `postMessage` must transfer rather than copy. */
export const wireTransferables = (w: WireRecords): ArrayBuffer[] => {
  const out = [
    w.bytes.buffer as ArrayBuffer,
    w.starts.buffer as ArrayBuffer,
    w.timestamps.buffer as ArrayBuffer,
  ];
  if (w.offsets instanceof Float64Array) out.push(w.offsets.buffer as ArrayBuffer);
  return out;
};

/** Bytes of a zigzag varint of `n` (a length or -1). */
function varIntBytes(n: number): number {
  let z = ((n << 1) ^ (n >> 31)) >>> 0;
  let bytes = 1;
  while (z >= 0x80) {
    z >>>= 7;
    bytes++;
  }
  return bytes;
}

/** Writes the zigzag varint of `n` at `at`; where it ends. */
function writeVarInt(target: Uint8Array, at: number, n: number): number {
  let z = ((n << 1) ^ (n >> 31)) >>> 0;
  while (z >= 0x80) {
    target[at++] = (z & 0x7f) | 0x80;
    z >>>= 7;
  }
  target[at++] = z;
  return at;
}

const lengthOf = (part: Uint8Array | null): number => (part === null ? -1 : part.length);

/** `records` (all of one topic-partition) for the decode thread. */
export function toWire(records: readonly FeedRecord[], topic: string, partition: number): WireRecords {
  const n = records.length;
  const starts = new Int32Array(n);
  const timestamps = new Float64Array(n);
  let numeric: Float64Array | undefined = new Float64Array(n);
  /** The distinct byte arrays fetched records are in, each where it goes in `bytes`. */
  const sources = new Map<Uint8Array, number>();
  let last: Uint8Array | undefined;
  let lastBase = 0;
  let total = 0;
  /** Records that are not fetched ones: encoded after the sources. */
  const own: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    if (r instanceof FetchedRecord) {
      const source = r.keyValueBytes;
      if (source !== last) {
        let base = sources.get(source);
        if (base === undefined) {
          sources.set(source, (base = total));
          total += source.length;
        }
        last = source;
        lastBase = base;
      }
      starts[i] = lastBase + r.keyValueAt;
    } else own.push(i);
    timestamps[i] = Number(r.timestamp);
    if (numeric !== undefined) {
      const o = Number(r.offset);
      if (Number.isSafeInteger(o)) numeric[i] = o;
      else numeric = undefined;
    }
  }
  let ownBytes = 0;
  for (const i of own) {
    const k = lengthOf(records[i]!.key);
    const v = lengthOf(records[i]!.value);
    ownBytes += varIntBytes(k) + Math.max(0, k) + varIntBytes(v) + Math.max(0, v);
  }
  const bytes = new Uint8Array(total + ownBytes);
  for (const [source, base] of sources) bytes.set(source, base);
  let at = total;
  for (const i of own) {
    const { key, value } = records[i]!;
    starts[i] = at;
    at = writeVarInt(bytes, at, lengthOf(key));
    if (key !== null) {
      bytes.set(key, at);
      at += key.length;
    }
    at = writeVarInt(bytes, at, lengthOf(value));
    if (value !== null) {
      bytes.set(value, at);
      at += value.length;
    }
  }
  return {
    topic,
    partition,
    bytes,
    starts,
    offsets: numeric ?? records.map((r) => r.offset),
    timestamps,
  };
}

/** The records of `wire`, as the decoders read them (keys and values are views of its bytes). */
export function fromWire(wire: WireRecords): FeedRecord[] {
  const { topic, partition, starts, offsets, timestamps } = wire;
  const bytes = Buffer.from(wire.bytes.buffer, wire.bytes.byteOffset, wire.bytes.byteLength);
  const out = new Array<FeedRecord>(starts.length);
  for (let i = 0; i < starts.length; i++) {
    const keyLength = varIntAt(bytes, starts[i]!);
    const keyAt = varIntEndOfLast();
    const key = keyLength < 0 ? null : bytes.subarray(keyAt, keyAt + keyLength);
    const valueLength = varIntAt(bytes, keyAt + Math.max(0, keyLength));
    const valueAt = varIntEndOfLast();
    const value = valueLength < 0 ? null : bytes.subarray(valueAt, valueAt + valueLength);
    const offset = offsets instanceof Float64Array ? String(offsets[i]) : offsets[i]!;
    out[i] = { topic, partition, offset, timestamp: String(timestamps[i]), key, value, headers: NO_HEADERS };
  }
  return out;
}
