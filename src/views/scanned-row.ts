/**
 * A contract row as found in a record's bytes, without being decoded: what a format's byte path finds
 * (src/formats/json-scan.ts `JsonRowScan` for the `json` format's plain records, debezium-scan.ts
 * `DebeziumRowScan` for Debezium envelopes) and the store's packer copies for the writer thread
 * (src/store/packed-changes.ts `pushScanned`, `ScannedSink`). Here, between the two, as neither layer imports
 * the other.
 */
import type { Table } from './source.js';

/** A string's form (`ScannedRow.form`): its bytes hold an escape; `text` reads it. */
export const ESCAPED_FORM = 0;
/** A string's form: ASCII without escapes, its bytes are its characters. */
export const PLAIN_FORM = 1;
/** A string's form: UTF-8 beyond ASCII (checked), without escapes; `text` reads it. */
export const WIDE_FORM = 2;

export interface ScannedRow {
  readonly table: Table;
  /** The row's fields are the first this many slots, in ROW_FIELDS order. */
  readonly rowFields: number;
  /** Per field: where its string's bytes start in the value; below 0: null or absent. */
  readonly start: Int32Array;
  /** Per field: where its string's bytes end. */
  readonly end: Int32Array;
  /** Per field: its string's form (above). */
  readonly form: Uint8Array;
  /** Per field: the value the row holds instead of its bytes (a date-time normalized), if any. */
  readonly dates: readonly (string | undefined)[];
  /** The string of field `f` (read on its own: for a field that is not plain). */
  text(f: number): string;
}

/** Where a format's byte path packs a record (src/store/packed-changes.ts `PackingChangeBatch`). */
export interface ScannedSink {
  /** Packs the record `scan` has just taken (true), or nothing (false: decode it). `key`: its bytes or its string. */
  pushScanned(
    scan: ScannedRow,
    key: Uint8Array | string,
    value: Uint8Array | null,
    topic: string,
    partition: number,
    offset: string,
    eventTime: number,
  ): boolean;
}
