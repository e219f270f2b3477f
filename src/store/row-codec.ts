/**
 * Stored form of a source row: where it came from, then the fields some registered view reads (the
 * generation's `rowFields`), in the table's contract order. Binary and flat: no msgpack, no field names.
 *
 *   [u32 partition][u8 n][n ASCII digits: offset][f64 eventTime ms]
 *   then per stored field: [u32 byte length, 0xffffffff = null][UTF-8 bytes]
 *
 * The origin (the newest record that set the row) is what a view rebuilt from the rows names as the
 * source of a value; the fields are what views read back.
 */
import type { RowOrigin } from '../materializer/commit.js';
import { fieldOf, type Row, type Table } from '../views/source.js';

const NULL = 0xffffffff;

export interface StoredRow {
  readonly row: Row;
  readonly origin: RowOrigin;
}

/**
 * The stored form of a row, in a buffer that the next call overwrites: for a put that LMDB copies before the
 * next row is encoded (`putSync`, which writes within the commit's transaction at once). A commit stores
 * every row it changes, up to hundreds of thousands in a catch-up's commit: one buffer instead of one
 * allocation per row, and no pass that measures the fields first.
 */
export function encodeRowTransient(
  fields: readonly string[],
  row: Row,
  partition: number,
  offset: string,
  eventTime: number,
): Buffer {
  const bound = storedRowBound(fields, row, offset);
  if (bound > scratch.length) scratch = Buffer.allocUnsafeSlow(Math.max(bound, 2 * scratch.length));
  return scratch.subarray(0, writeStoredRow(scratch, 0, fields, row, partition, offset, eventTime));
}

/** Bytes the stored form of `row` set by a record at `offset` takes at most (what `writeStoredRow` needs). */
export function storedRowBound(fields: readonly string[], row: Row, offset: string): number {
  // At most 3 UTF-8 bytes per UTF-16 unit.
  let bound = 4 + 1 + offset.length + 8;
  for (const f of fields) bound += 4 + 3 * (fieldOf(row, f)?.length ?? 0);
  return bound;
}

/**
 * Writes the stored form of `row` and its origin at `at` of `out`, which has `storedRowBound` bytes of room
 * there; returns where it ends.
 */
export function writeStoredRow(
  out: Buffer,
  at: number,
  fields: readonly string[],
  row: Row,
  partition: number,
  offset: string,
  eventTime: number,
): number {
  out.writeUInt32LE(partition, at);
  out[at + 4] = offset.length;
  out.write(offset, at + 5, 'latin1');
  at += 5 + offset.length;
  out.writeDoubleLE(eventTime, at);
  at += 8;
  for (const f of fields) {
    const v = fieldOf(row, f);
    if (v === null) {
      out.writeUInt32LE(NULL, at);
      at += 4;
      continue;
    }
    const n = writeUtf8(out, v, at + 4);
    out.writeUInt32LE(n, at);
    at += 4 + n;
  }
  return at;
}

let scratch = Buffer.allocUnsafeSlow(4096);

/** Strings up to this long are copied unit by unit while they are ASCII (ids, keys, offsets, short names). */
const SHORT_STRING = 48;

/** Writes `s` as UTF-8 at `at` (room checked by the caller); returns the bytes written. */
function writeUtf8(out: Buffer, s: string, at: number): number {
  const n = s.length;
  if (n <= SHORT_STRING) {
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      out[at + i] = c;
    }
    if (i === n) return n;
  }
  return out.write(s, at, 'utf8');
}

/** Decodes the fields only (the hot path: a row's previous value). */
export function decodeRow(table: Table, fields: readonly string[], bytes: Buffer): Row {
  let at = 5 + bytes[4]! + 8;
  const out: Record<string, string | null> = { table };
  for (const f of fields) {
    const n = bytes.readUInt32LE(at);
    at += 4;
    if (n === NULL) {
      out[f] = null;
      continue;
    }
    out[f] = bytes.toString('utf8', at, at + n);
    at += n;
  }
  return out as unknown as Row;
}

/** The origin's fields of a stored row (the layout above), read where they are. */
const partitionOf = (bytes: Buffer): number => bytes.readUInt32LE(0);
const offsetOf = (bytes: Buffer): string => bytes.toString('latin1', 5, 5 + bytes[4]!);
const eventTimeOf = (bytes: Buffer): number => bytes.readDoubleLE(5 + bytes[4]!);

export function decodeStoredRow(table: Table, fields: readonly string[], bytes: Buffer): StoredRow {
  return {
    row: decodeRow(table, fields, bytes),
    origin: { partition: partitionOf(bytes), offset: offsetOf(bytes), eventTime: eventTimeOf(bytes) },
  };
}

/**
 * Stored rows of one table in columns, as a replay reads them (`LmdbRows.page`): row `i` is `rows[i]`, stored
 * under `keys[i]`, set last by the record at `offset[i]` of `partition[i]` with `eventTime[i]`. No object
 * per row beyond the row itself, where a page of pairs made a pair, a StoredRow and an origin per row: a
 * version bump's rebuild of 9.1M rows over 1M users took 73.3, 78.6, 82.4 and 82.2 s against 89.6, 86.1,
 * 80.6 and 93.9 s (alternated, in process).
 */
export class RowColumns {
  readonly keys: string[] = [];
  readonly rows: Row[] = [];
  readonly partition: number[] = [];
  readonly offset: string[] = [];
  readonly eventTime: number[] = [];
  constructor(
    readonly table: Table,
    private readonly fields: readonly string[],
  ) {}
  get length(): number {
    return this.keys.length;
  }
  /**
   * Appends a row's stored form, `bytes`, without its key (the caller pushes it next, to `keys`). `bytes` may be
   * lmdb-js' reused read buffer: what is kept is copied out.
   */
  pushStored(bytes: Buffer): void {
    this.rows.push(decodeRow(this.table, this.fields, bytes));
    this.partition.push(partitionOf(bytes));
    this.offset.push(offsetOf(bytes));
    this.eventTime.push(eventTimeOf(bytes));
  }
}

/**
 * lmdb-js' decoder of a rows database opened to read pages (`LmdbRows.page`): each value read goes into the
 * page being read (`into`) straight from lmdb-js' reused read buffer, where the `binary` encoding copies it
 * into a Buffer of its own first (an ArrayBuffer per row, millions in a rebuild's replay).
 */
export class PageDecoder {
  /** lmdb-js passes its reused buffer (the decoder copies what it keeps). */
  readonly needsStableBuffer = false;
  /** The page being read. */
  into: RowColumns | undefined;
  encode(): never {
    throw new Error('a page reader does not write');
  }
  /** `size`: the value's; `bytes` may run past it (src/store/fast-read.ts). */
  decode(bytes: Buffer, size: number): null {
    this.into!.pushStored(bytes.subarray(0, size));
    return null;
  }
}
