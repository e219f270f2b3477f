/**
 * Debezium change events, read from a decoded value (a JSON object or an Avro record), in both shapes
 * Debezium writes:
 *
 * - the envelope (Debezium connector docs, "Change event values"): `op` is `c` (insert), `u` (update),
 *   `r` (read: a snapshot row), `d` (delete) or `t` (truncate); `before` / `after` are the row before and
 *   after the change; `source.ts_ms` is when the change was committed in the database. With Postgres'
 *   default `REPLICA IDENTITY`, the `before` of a delete holds only the primary key columns (the others
 *   are null or absent). A truncate has neither row, and Kafka Connect writes it with a null key.
 * - the flattened row of the `ExtractNewRecordState` SMT: the `after` row itself; a delete with
 *   `delete.handling.mode=rewrite` (`delete.tombstone.handling.mode=rewrite` since 2.5) is the `before`
 *   row plus `__deleted: "true"`; `add.fields=op,source.ts_ms` adds `__op` and `__source_ts_ms`.
 *
 * Tombstones (null values, written after each delete with `tombstones.on.delete=true`) never get here:
 * the decoders turn them into a delete by key, a no-op after the delete they follow.
 */
import { RecordErrorCode } from '../errors.js';

export type SourceRow = Readonly<Record<string, unknown>>;

export type RowEvent =
  | { readonly kind: 'upsert'; readonly row: SourceRow; readonly eventTime: number | undefined }
  | { readonly kind: 'delete'; readonly row: SourceRow | null; readonly eventTime: number | undefined }
  | { readonly kind: 'truncate'; readonly eventTime: number | undefined };

export type EventResult =
  RowEvent | { readonly kind: 'invalid'; readonly code: RecordErrorCode; readonly message: string };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);

/** A commit time in ms since the epoch, or undefined when absent or not a positive integer (MySQL snapshot rows say 0). */
export function commitTime(v: unknown): number | undefined {
  const n = typeof v === 'bigint' ? Number(v) : v;
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** True for a Debezium envelope: a string `op` next to `before`, `after` or `source`. */
export function isEnvelope(o: Readonly<Record<string, unknown>>): boolean {
  return typeof o['op'] === 'string' && ('after' in o || 'before' in o || 'source' in o);
}

/** Reads a Debezium envelope. */
export function readEnvelope(o: Readonly<Record<string, unknown>>): EventResult {
  const op = o['op'];
  const source = o['source'];
  const eventTime = isObject(source) ? commitTime(source['ts_ms']) : undefined;
  switch (op) {
    case 'c':
    case 'u':
    case 'r': {
      const after = o['after'];
      if (!isObject(after))
        return {
          kind: 'invalid',
          code: RecordErrorCode.EnvelopeInvalid,
          message: `a change event with op "${op}" must have an "after" row`,
        };
      return { kind: 'upsert', row: after, eventTime };
    }
    case 'd': {
      const before = o['before'];
      return { kind: 'delete', row: isObject(before) ? before : null, eventTime };
    }
    case 't':
      return { kind: 'truncate', eventTime };
    default:
      return {
        kind: 'invalid',
        code: RecordErrorCode.EnvelopeInvalid,
        message: `op ${JSON.stringify(op)} is not a row change (expected c, u, r, d or t)`,
      };
  }
}

/** Reads a flattened row (ExtractNewRecordState). */
export function readFlattened(o: Readonly<Record<string, unknown>>): RowEvent {
  const deleted = o['__deleted'] === 'true' || o['__deleted'] === true || o['__op'] === 'd';
  const eventTime = commitTime(o['__source_ts_ms']);
  return deleted ? { kind: 'delete', row: o, eventTime } : { kind: 'upsert', row: o, eventTime };
}

/** Reads a decoded value of a Debezium topic: an envelope when it is one, else a flattened row. */
export function readChangeEvent(o: Readonly<Record<string, unknown>>): EventResult {
  return isEnvelope(o) ? readEnvelope(o) : readFlattened(o);
}

export { isObject };
