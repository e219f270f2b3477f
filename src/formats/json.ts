/** The `json` format: matview's own contract (CONTRACT.md section 1), exactly as `decodeRecord` reads it. */
import type { FeedRecord } from '../feed/types.js';
import { decodeRecord } from '../views/decode.js';
import type { Table } from '../views/source.js';
import { JsonRowScan } from './json-scan.js';
import type { ScannedSink } from '../views/scanned-row.js';
import type { Decoded, FormatDecoder } from './types.js';

export function jsonDecoder(table: Table): FormatDecoder {
  // Made at the first record packed from its bytes (the store's commits may not run on a writer thread).
  let scan: JsonRowScan | undefined;
  return {
    format: 'json',
    thread: { format: 'json', table },
    decode: (record: FeedRecord): Decoded => decodeRecord(table, record.key, record.value),
    // A plain record read from its bytes (json-scan.ts); its event time is its Kafka timestamp.
    pack(record: FeedRecord, into: ScannedSink): number | undefined {
      const { key, value } = record;
      if (key === null) return undefined;
      const row = value === null || value.length === 0 ? null : value;
      scan ??= new JsonRowScan(table);
      const time = Number(record.timestamp);
      const packed =
        scan.scan(key, row) &&
        into.pushScanned(scan, key, row, record.topic, record.partition, record.offset, time);
      scan.release();
      return packed ? 0 : undefined;
    },
  };
}
