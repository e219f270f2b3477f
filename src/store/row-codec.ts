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

export function encodeRow(
  fields: readonly string[],
  row: Row,
  partition: number,
  offset: string,
  eventTime: number,
): Buffer {
  let size = 4 + 1 + offset.length + 8;
  const values: (string | null)[] = [];
  for (const f of fields) {
    const v = fieldOf(row, f);
    values.push(v);
    size += 4 + (v === null ? 0 : Buffer.byteLength(v));
  }
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32LE(partition, 0);
  out[4] = offset.length;
  out.write(offset, 5, 'latin1');
  let at = 5 + offset.length;
  out.writeDoubleLE(eventTime, at);
  at += 8;
  for (const v of values) {
    if (v === null) {
      out.writeUInt32LE(NULL, at);
      at += 4;
      continue;
    }
    const n = out.write(v, at + 4, 'utf8');
    out.writeUInt32LE(n, at);
    at += 4 + n;
  }
  return out;
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

export function decodeStoredRow(table: Table, fields: readonly string[], bytes: Buffer): StoredRow {
  const offsetLength = bytes[4]!;
  return {
    row: decodeRow(table, fields, bytes),
    origin: {
      partition: bytes.readUInt32LE(0),
      offset: bytes.toString('latin1', 5, 5 + offsetLength),
      eventTime: bytes.readDoubleLE(5 + offsetLength),
    },
  };
}
