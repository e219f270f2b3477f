/**
 * A format turns a raw record of one topic into what the materializer understands: a contract row, a
 * delete by key, a truncate of the table, or an invalid verdict for the dead-letter topic. The
 * materializer never sees an envelope, a schema id or a column name (DESIGN.md "Where the next pieces go").
 */
import type { RecordErrorCode } from '../errors.js';
import type { FeedRecord } from '../feed/types.js';
import type { ScannedSink } from '../views/scanned-row.js';
import type { Row, Table } from '../views/source.js';
import type { ChangeContext } from './change.js';

export const FORMATS = ['json', 'debezium-json', 'avro', 'debezium-avro'] as const;
export type Format = (typeof FORMATS)[number];

export type Decoded =
  /** An upsert (`row`) or a delete (`row: null`) of the row with this key. */
  | {
      readonly ok: true;
      readonly key: string;
      readonly row: Row | null;
      /** When the source database committed the change (Debezium `source.ts_ms`), ms since the epoch. */
      readonly eventTime?: number;
    }
  /** Every row of the topic's table is deleted (Debezium `op: "t"`). */
  | { readonly ok: true; readonly truncate: true; readonly eventTime?: number }
  | {
      readonly ok: false;
      readonly code: RecordErrorCode;
      readonly message: string;
      /** The Confluent schema id of the part that failed, when it had one (DLQ header `matview.schema.id`). */
      readonly schemaId?: number;
    };

/**
 * What another thread needs to make the same decoder (src/pipeline/decode-thread.ts, formats/index.ts
 * `decoderOf`): plain data.
 */
export type DecoderSpec =
  | { readonly format: 'json'; readonly table: Table }
  | { readonly format: 'debezium-json'; readonly context: ChangeContext };

export interface FormatDecoder {
  readonly format: Format;
  /**
   * Set for formats that may decode in the decode thread: their decoding reads only a record's key, value,
   * offset and timestamp (no header) and needs nothing loaded first (no `prepare`), and what it gives does
   * not depend on the records it saw before (a cache may make it faster, never different).
   */
  readonly thread?: DecoderSpec;
  /**
   * Loads what the records need before decoding (unknown schema ids, from the registry). A registry that
   * cannot answer is retried briefly, then this rejects with a retriable SchemaRegistryError: the batch is
   * delivered again later (the feed reports why), and nothing is dead-lettered for it. Absent for formats
   * that need nothing.
   */
  prepare?(records: readonly FeedRecord[]): Promise<void>;
  /** Synchronous and pure given what `prepare` loaded. */
  decode(record: FeedRecord): Decoded;
  /**
   * Packs `record` into `into` straight from its bytes when the format can (json-scan.ts for the `json`
   * format's plain records, debezium-scan.ts for Debezium JSON envelopes), with the bytes `decode` then
   * `into.push` would have packed: no row, no string, no parsed value made for it. Returns undefined when it
   * is to be decoded (nothing of it was packed); else the change's own event time (`Decoded.eventTime`) or,
   * when it has none, 0 (its Kafka timestamp was packed as its event time). Used by the ingest when the
   * store's commits run on its writer thread. Absent for formats without a byte path.
   */
  pack?(record: FeedRecord, into: ScannedSink): number | undefined;
}
