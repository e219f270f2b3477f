/**
 * The `debezium-json` format: values written by Kafka Connect's JsonConverter, with
 * `schemas.enable=true` (`{"schema":…,"payload":…}`) or without, holding a Debezium envelope or the
 * flattened row of `ExtractNewRecordState`. Numbers are parsed losslessly (lossless-json.ts); the
 * converter's schema, when present, names each column's temporal type.
 */
import { RecordErrorCode } from '../errors.js';
import type { FeedRecord } from '../feed/types.js';
import { decodeChange, invalid, tombstone, type ChangeContext } from './change.js';
import { isEnvelope, isObject } from './envelope.js';
import { ConverterSchemas, startsAsWrapper, type Schema } from './converter-wrapper.js';
import { DebeziumRowScan, DebeziumScan } from './debezium-scan.js';
import { keyOfText, type KeyResult } from './keys.js';
import { parseLosslessJson } from './lossless-json.js';
import { connectRowSchema, type RowSchema } from './row-schema.js';
import type { ScannedSink } from '../views/scanned-row.js';
import type { Decoded, FormatDecoder } from './types.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** `{"schema": …, "payload": …}` and nothing else: the JsonConverter's wrapper. */
export const isConverterWrapper = (o: Readonly<Record<string, unknown>>): boolean =>
  'schema' in o && 'payload' in o && Object.keys(o).length === 2;

export function debeziumJsonDecoder(ctx: ChangeContext): FormatDecoder {
  // Key and value read once each: a fetched record makes a new view of its bytes at each read
  // (src/feed/record-batch.ts).
  const keySchemas = new ConverterSchemas();
  const keyScan = new DebeziumScan([ctx.mapping.keyColumn]);
  const keyOf = (bytes: Buffer | null) =>
    bytes === null || bytes.length === 0
      ? undefined
      : keyOfText(bytes, ctx.mapping.keyColumn, keySchemas, keyScan);
  const schemas = new ConverterSchemas();
  // Envelopes read from their bytes (debezium-scan.ts), the general path below for anything else.
  const scan = ctx.envelopes ? new DebeziumScan(ctx.mapping.fields.map((f) => f.column)) : undefined;
  /** The connector schema of each remembered converter schema, for an envelope payload and for a row. */
  const rowSchemas = new WeakMap<Schema, [RowSchema | undefined, RowSchema | undefined]>();
  const rowSchemaOf = (schema: Schema, envelope: boolean): RowSchema | undefined => {
    let both = rowSchemas.get(schema);
    if (both === undefined) {
      both = [connectRowSchema(schema.value, true), connectRowSchema(schema.value, false)];
      rowSchemas.set(schema, both);
    }
    return both[envelope ? 0 : 1];
  };
  /** The steps after the converter's wrapper was taken off; `schemaOf`: the connector schema it carried. */
  const fromWrapper = (
    key: KeyResult | undefined,
    payload: unknown,
    schemaOf: (envelope: boolean) => RowSchema | undefined,
  ): Decoded => {
    if (payload === null) return tombstone(key, undefined);
    if (!isObject(payload))
      return invalid(RecordErrorCode.NotObject, 'the converter payload must be a JSON object', undefined);
    return decodeChange(ctx, key, payload, schemaOf(ctx.envelopes && isEnvelope(payload)), undefined);
  };
  /** Envelopes packed from their bytes (debezium-scan.ts), made at the first record packed. */
  let rowScan: DebeziumRowScan | undefined;
  return {
    format: 'debezium-json',
    thread: {
      format: 'debezium-json',
      context: { table: ctx.table, mapping: ctx.mapping, envelopes: ctx.envelopes },
    },
    // What `decode` reads as an envelope, a tombstone or a wrapper around an envelope (its schema remembered),
    // with a record key; anything else is decoded.
    pack(record: FeedRecord, into: ScannedSink): number | undefined {
      if (!ctx.envelopes) return undefined;
      const key = keyOf(record.key);
      if (key === undefined || !key.ok) return undefined;
      const time = Number(record.timestamp);
      const { topic, partition, offset } = record;
      const bytes = record.value;
      rowScan ??= new DebeziumRowScan(ctx.table, ctx.mapping);
      if (bytes === null || bytes.length === 0)
        return into.pushScanned(rowScan, key.key, null, topic, partition, offset, time) ? 0 : undefined;
      const split = schemas.split(bytes);
      if (split === undefined && startsAsWrapper(bytes)) return undefined;
      const taken =
        split === undefined
          ? rowScan.scan(bytes, 0, bytes.length, key.key, undefined)
          : rowScan.scan(bytes, split.from, split.to, key.key, rowSchemaOf(split.schema, true));
      const own = rowScan.eventTime;
      const packed =
        taken &&
        into.pushScanned(
          rowScan,
          key.key,
          rowScan.deleted ? null : bytes,
          topic,
          partition,
          offset,
          own ?? time,
        );
      rowScan.release();
      return packed ? (own ?? 0) : undefined;
    },
    decode(record: FeedRecord): Decoded {
      const key = keyOf(record.key);
      const bytes = record.value;
      if (bytes === null || bytes.length === 0) return tombstone(key, undefined);
      const split = schemas.split(bytes);
      if (split !== undefined) {
        const reduced = scan?.envelope(bytes, split.from, split.to);
        if (reduced !== undefined)
          return fromWrapper(key, reduced, (envelope) => rowSchemaOf(split.schema, envelope));
        const payload = schemas.payload(bytes, split);
        if (payload !== undefined)
          return fromWrapper(key, payload, (envelope) => rowSchemaOf(split.schema, envelope));
      }
      // Without the converter's schema (schemas.enable=false): the value is the envelope. A wrapper whose
      // schema is not remembered yet is not worth a scan as one.
      if (scan !== undefined && !startsAsWrapper(bytes)) {
        const reduced = scan.envelope(bytes, 0, bytes.length);
        if (reduced !== undefined) return decodeChange(ctx, key, reduced, undefined, undefined);
      }
      let parsed: unknown;
      try {
        parsed = parseLosslessJson(utf8.decode(bytes));
      } catch (e) {
        return invalid(
          RecordErrorCode.JsonInvalid,
          `value is not UTF-8 JSON: ${(e as Error).message.slice(0, 120)}`,
          undefined,
        );
      }
      if (!isObject(parsed))
        return invalid(RecordErrorCode.NotObject, 'value must be a JSON object', undefined);
      if (!isConverterWrapper(parsed)) return decodeChange(ctx, key, parsed, undefined, undefined);
      schemas.learn(bytes);
      const schema = parsed['schema'];
      return fromWrapper(key, parsed['payload'], (envelope) => connectRowSchema(schema, envelope));
    },
  };
}
