/**
 * The `avro` and `debezium-avro` formats: values (and keys, when they are framed too) in the Confluent
 * wire format, decoded with the writer's schema from the registry. `avro` reads each value as a row
 * (a plain or flattened record); `debezium-avro` also reads Debezium envelopes. Keys that are not framed
 * are read as text (StringConverter or JsonConverter keys next to Avro values are common).
 */
import { InvariantError, RecordErrorCode } from '../errors.js';
import type { FeedRecord } from '../feed/types.js';
import { decodeBody, wireSchemaId, type AvroSchemas, type SchemaEntry } from './avro.js';
import { decodeChange, invalid, tombstone, type ChangeContext } from './change.js';
import { isObject } from './envelope.js';
import { keyOfText, keyOfValue, type KeyResult } from './keys.js';
import { avroRowSchema, missingOptionalColumns, type RowSchema } from './row-schema.js';
import type { Decoded, FormatDecoder } from './types.js';

export interface AvroDecoderOptions {
  /** Columns mapped to optional fields that a new schema lacks: they read as null (said once per schema id). */
  readonly onMissingOptional?: (schemaId: number, columns: readonly string[]) => void;
}

type Usable = Extract<SchemaEntry, { kind: 'avro' }>;

export function avroDecoder(
  ctx: ChangeContext,
  schemas: AvroSchemas,
  options: AvroDecoderOptions = {},
): FormatDecoder {
  const rowSchemas = new Map<number, RowSchema | undefined>();
  const rowSchemaOf = (entry: Usable): RowSchema | undefined => {
    if (rowSchemas.has(entry.id)) return rowSchemas.get(entry.id);
    const rs = avroRowSchema(entry.schema, ctx.envelopes);
    rowSchemas.set(entry.id, rs);
    if (rs !== undefined) {
      const missing = missingOptionalColumns(ctx.mapping, rs);
      if (missing.length > 0) options.onMissingOptional?.(entry.id, missing);
    }
    return rs;
  };

  /** The entry of a framed part, or the invalid verdict for it. */
  type Failure = Extract<Decoded, { ok: false }>;
  const entryOf = (id: number, part: 'key' | 'value'): Usable | Failure => {
    const entry = schemas.get(id);
    if (entry === undefined) throw new InvariantError(`schema ${id} was not loaded before decoding`);
    if (entry.kind === 'missing')
      return invalid(
        RecordErrorCode.SchemaUnknown,
        `the schema registry has no schema ${id} (record ${part}): ${entry.message}`,
        id,
      );
    if (entry.kind === 'invalid') return invalid(RecordErrorCode.SchemaInvalid, entry.message, id);
    return entry;
  };

  const decodeFramed = (
    entry: Usable,
    bytes: Buffer,
    part: 'key' | 'value',
  ): { value: unknown } | Failure => {
    try {
      return { value: decodeBody(entry.type, bytes) };
    } catch (e) {
      return invalid(
        RecordErrorCode.AvroInvalid,
        `record ${part} does not decode with schema ${entry.id}: ${(e as Error).message.slice(0, 160)}`,
        entry.id,
      );
    }
  };

  const keyOf = (record: FeedRecord): KeyResult | Extract<Decoded, { ok: false }> | undefined => {
    // Read once: a fetched record makes a new view of its bytes at each read (src/feed/record-batch.ts).
    const bytes = record.key;
    if (bytes === null || bytes.length === 0) return undefined;
    const id = wireSchemaId(bytes);
    if (id === undefined) return keyOfText(bytes, ctx.mapping.keyColumn);
    const entry = entryOf(id, 'key');
    if (!('type' in entry)) return entry;
    const decoded = decodeFramed(entry, bytes, 'key');
    if (!('value' in decoded)) return decoded;
    const key = keyOfValue(decoded.value, ctx.mapping.keyColumn);
    return key.ok ? key : { ...key, schemaId: id };
  };

  return {
    format: ctx.envelopes ? 'debezium-avro' : 'avro',
    async prepare(records) {
      // A set: a batch's records mostly share one or two ids.
      const ids = new Set<number>();
      for (const r of records) {
        const k = wireSchemaId(r.key);
        const v = wireSchemaId(r.value);
        if (k !== undefined) ids.add(k);
        if (v !== undefined) ids.add(v);
      }
      await schemas.load(ids);
    },
    decode(record: FeedRecord): Decoded {
      const k = keyOf(record);
      // A key that cannot be read fails the record, with the key schema's id when it had one.
      if (k !== undefined && !k.ok) return k;
      const value = record.value;
      if (value === null || value.length === 0) return tombstone(k, undefined);
      const id = wireSchemaId(value);
      if (id === undefined)
        return invalid(
          RecordErrorCode.AvroInvalid,
          'value is not in the Confluent wire format (magic byte 0, then a 4-byte schema id)',
          undefined,
        );
      const entry = entryOf(id, 'value');
      if (!('type' in entry)) return entry;
      const decoded = decodeFramed(entry, value, 'value');
      if (!('value' in decoded)) return decoded;
      if (!isObject(decoded.value))
        return invalid(RecordErrorCode.NotObject, `value of schema ${id} is not an Avro record`, id);
      return decodeChange(ctx, k, decoded.value, rowSchemaOf(entry), id);
    },
  };
}
