/** The `json` format: matview's own contract (CONTRACT.md section 1), exactly as `decodeRecord` reads it. */
import type { FeedRecord } from '../feed/types.js';
import { decodeRecord } from '../views/decode.js';
import type { Table } from '../views/source.js';
import type { Decoded, FormatDecoder } from './types.js';

export function jsonDecoder(table: Table): FormatDecoder {
  return {
    format: 'json',
    plainJson: table,
    decode: (record: FeedRecord): Decoded => decodeRecord(table, record.key, record.value),
  };
}
