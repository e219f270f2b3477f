/**
 * Column mapping: a source row (database column names, database types) → an object in the contract's
 * field names and JSON types, which the contract's own validation (`contractRow`) then checks exactly
 * as it checks the `json` format. Unmapped contract fields keep their own names.
 *
 * Conversions, by the kind of contract field:
 * - ids: a string stays; an integer (number, or bigint from lossless JSON / Avro `long`) becomes its
 *   exact decimal string, so 1234567890123456789 stays "1234567890123456789";
 * - date-times: a string as it is (normalized by the contract); a number through its unit (`temporal.ts`):
 *   the one the record's schema names, else the one given in the mapping;
 * - text: as it is (anything but a string or null is a type error, reported by the contract).
 */
import { RecordErrorCode } from '../errors.js';
import type { Table } from '../views/source.js';
import { toIsoDateTime, type TimeUnit } from './temporal.js';

export type FieldKind = 'key' | 'id' | 'date' | 'text';

export interface ContractField {
  readonly name: string;
  readonly kind: FieldKind;
  readonly required: boolean;
}

const f = (name: string, kind: FieldKind, required = false): ContractField => ({ name, kind, required });

/** Every field of each table's contract row (CONTRACT.md section 1), key field first. */
export const CONTRACT_FIELDS: Readonly<Record<Table, readonly ContractField[]>> = {
  users: [
    f('userId', 'key', true),
    f('username', 'text', true),
    f('name', 'text'),
    f('description', 'text'),
    f('location', 'text'),
    f('webPageUrl', 'text'),
    f('joinedDate', 'date'),
    f('profileImageUrl', 'text'),
    f('backgroundImageUrl', 'text'),
  ],
  tweets: [f('tweetId', 'key', true), f('userId', 'id', true), f('text', 'text'), f('createdAt', 'date')],
  follows: [
    f('followId', 'key', true),
    f('followerId', 'id', true),
    f('followeeId', 'id', true),
    f('createdAt', 'date'),
  ],
  likes: [
    f('likeId', 'key', true),
    f('userId', 'id', true),
    f('tweetId', 'id', true),
    f('createdAt', 'date'),
  ],
};

/** Where a contract field is read from: a column, and for numeric date-times without a schema, the unit. */
export interface FieldSource {
  readonly column: string;
  readonly unit?: TimeUnit;
}

/** One table's mapping, complete: every contract field with its column. */
export interface TableMapping {
  readonly table: Table;
  readonly fields: readonly (ContractField & FieldSource)[];
  /** The key field's column (the primary key column, e.g. `id`). */
  readonly keyColumn: string;
}

/** Builds a complete mapping from the sources file's partial one (`{ userId: "id" }` or `{ createdAt: { column, unit } }`). */
export function tableMapping(
  table: Table,
  given: Readonly<Record<string, string | FieldSource | undefined>> = {},
): TableMapping {
  const fields = CONTRACT_FIELDS[table].map((field) => {
    const g = given[field.name];
    const source: FieldSource =
      g === undefined ? { column: field.name } : typeof g === 'string' ? { column: g } : g;
    return { ...field, ...source };
  });
  return { table, fields, keyColumn: fields[0]!.column };
}

/** A value read from a source row: JSON values (numbers possibly bigint) or Avro values. */
export type SourceValue = unknown;

/** The unit of a column as the record's schema names it (undefined: no schema, or not a temporal type). */
export type ColumnUnits = (column: string) => TimeUnit | undefined;

/** A value that cannot be converted: reported by the caller as a record error. */
export class MappingError {
  constructor(
    readonly code: RecordErrorCode,
    readonly message: string,
  ) {}
}

/** The exact decimal string of an integer id, or the value unchanged (the contract reports a wrong type). */
export function idString(v: SourceValue): SourceValue {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  return v;
}

/**
 * The contract object of a source row: contract field names, ids as strings, date-times as ISO strings.
 * Columns the row does not have are left out (the contract decides whether that is allowed).
 */
export function toContractObject(
  mapping: TableMapping,
  row: Readonly<Record<string, SourceValue>>,
  units: ColumnUnits = () => undefined,
): Record<string, SourceValue> {
  const out: Record<string, SourceValue> = {};
  for (const field of mapping.fields) {
    if (!Object.hasOwn(row, field.column)) continue;
    const v = row[field.column];
    if (v === null || v === undefined) {
      out[field.name] = null;
      continue;
    }
    switch (field.kind) {
      case 'key':
      case 'id':
        out[field.name] = idString(v);
        break;
      case 'date': {
        if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'bigint') {
          out[field.name] = v; // the contract reports the type
          break;
        }
        const unit = units(field.column) ?? field.unit;
        const iso = toIsoDateTime(v, unit);
        if (iso === undefined)
          throw new MappingError(
            RecordErrorCode.DateInvalid,
            typeof v === 'string'
              ? `field "${field.name}" (column "${field.column}") is not a date-time: ${JSON.stringify(v.slice(0, 64))}`
              : unit === undefined
                ? `field "${field.name}" (column "${field.column}") is the number ${v} and no schema names its unit: set its "unit" (days, millis, micros or nanos) in the sources file`
                : `field "${field.name}" (column "${field.column}") is ${v} ${unit} since the epoch, not a date-time matview can represent`,
          );
        out[field.name] = iso;
        break;
      }
      case 'text':
        out[field.name] = v;
        break;
    }
  }
  return out;
}
