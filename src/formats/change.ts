/**
 * The part of every connector format after the bytes are read: a decoded key and value (JSON or Avro)
 * become a contract row, a delete by key or a truncate.
 *
 * - The key is the record key (string, number or struct holding the key column); a record without one
 *   (a table without primary key, or a producer that sets none) takes the key column of its row.
 * - `c` / `u` / `r` (or a flattened row): the `after` row, mapped to contract fields and checked by the
 *   contract's own rules, so the key field must equal the key and required fields must be there.
 * - `d` (or `__deleted`): a delete by key. Nothing else of `before` is read: with Postgres' default
 *   replica identity it holds only the primary key.
 * - `t`: every row of the table goes.
 * With a schema (the JSON converter's, or the registry's), a schema that lacks the column of a required
 * field is reported as such (MV_ERR_RECORD_SCHEMA_MISMATCH) rather than as a missing field of one record.
 */
import { RecordErrorCode } from '../errors.js';
import { contractRow } from '../views/decode.js';
import type { Row, Table } from '../views/source.js';
import { readChangeEvent, readFlattened } from './envelope.js';
import { keyOfValue, type KeyResult } from './keys.js';
import { MappingError, toContractObject, type TableMapping } from './mapping.js';
import { missingRequiredColumn, type RowSchema } from './row-schema.js';
import type { Decoded } from './types.js';

export interface ChangeContext {
  readonly table: Table;
  readonly mapping: TableMapping;
  /** Read Debezium envelopes (debezium-json, debezium-avro); else every value is a (flattened) row. */
  readonly envelopes: boolean;
}

/** An invalid verdict, with the schema id when there is one. */
export function invalid(
  code: RecordErrorCode,
  message: string,
  schemaId: number | undefined,
): Extract<Decoded, { ok: false }> {
  return schemaId === undefined ? { ok: false, code, message } : { ok: false, code, message, schemaId };
}

/** A row or a delete (`row` null), with its event time when there is one (a literal: no spread per record). */
const change = (key: string, row: Row | null, eventTime: number | undefined): Decoded =>
  eventTime === undefined ? { ok: true, key, row } : { ok: true, key, row, eventTime };

/** A null value: deletes the row of the key (a tombstone after a Debezium delete is then a no-op). */
export function tombstone(key: KeyResult | undefined, schemaId: number | undefined): Decoded {
  if (key === undefined)
    return invalid(RecordErrorCode.KeyInvalid, 'a tombstone needs a record key', schemaId);
  if (!key.ok) return invalid(key.code, key.message, schemaId);
  return { ok: true, key: key.key, row: null };
}

/** Decodes a change from its key (undefined: the record has none) and its decoded value. */
export function decodeChange(
  ctx: ChangeContext,
  key: KeyResult | undefined,
  value: Readonly<Record<string, unknown>>,
  schema: RowSchema | undefined,
  schemaId: number | undefined,
): Decoded {
  const event = ctx.envelopes ? readChangeEvent(value) : readFlattened(value);
  if (event.kind === 'invalid') return invalid(event.code, event.message, schemaId);
  if (event.kind === 'truncate')
    return event.eventTime === undefined
      ? { ok: true, truncate: true }
      : { ok: true, truncate: true, eventTime: event.eventTime };
  if (event.kind === 'upsert' && schema !== undefined) {
    const missing = missingRequiredColumn(ctx.mapping, schema);
    if (missing !== undefined)
      return invalid(
        RecordErrorCode.SchemaMismatch,
        `the ${schemaId === undefined ? 'record' : `schema ${schemaId}`}'s row has no column "${missing.column}" for the required field "${missing.name}"${
          missing.column === missing.name ? '' : ` (mapped in the sources file)`
        }`,
        schemaId,
      );
  }
  let k = key;
  if (k === undefined) {
    const row = event.row;
    if (row === null || !Object.hasOwn(row, ctx.mapping.keyColumn))
      return invalid(
        RecordErrorCode.KeyInvalid,
        `the record has no key and its row no "${ctx.mapping.keyColumn}" column`,
        schemaId,
      );
    k = keyOfValue(row, ctx.mapping.keyColumn);
  }
  if (!k.ok) return invalid(k.code, k.message, schemaId);
  if (event.kind === 'delete') return change(k.key, null, event.eventTime);
  let object: Record<string, unknown>;
  try {
    object = toContractObject(ctx.mapping, event.row, (column) => schema?.columns.get(column));
  } catch (e) {
    if (e instanceof MappingError) return invalid(e.code, e.message, schemaId);
    throw e;
  }
  const row = contractRow(ctx.table, k.key, object);
  if (!row.ok) return invalid(row.code, row.message, schemaId);
  return change(k.key, row.row, event.eventTime);
}
