/**
 * Turns a raw changelog record into a row of one of the four tables, or says exactly why it is
 * invalid (CONTRACT.md section 1). Pure: no I/O, no exceptions for bad input.
 */
import { RecordErrorCode } from '../errors.js';
import { normalizeDateTime } from './dates.js';
import { KEY_FIELD, type Row, type Table } from './source.js';

export const MAX_KEY_BYTES = 512;

export type Decoded =
  | { readonly ok: true; readonly key: string; readonly row: Row | null }
  | { readonly ok: false; readonly code: RecordErrorCode; readonly message: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Thrown by the checks below and turned into an invalid verdict by the decoders (never escapes them). */
export class Invalid {
  constructor(
    readonly code: RecordErrorCode,
    readonly message: string,
  ) {}
}

export function fail(code: RecordErrorCode, message: string): never {
  throw new Invalid(code, message);
}

function requiredId(o: Record<string, unknown>, field: string): string {
  const v = o[field];
  if (v === undefined || v === null)
    fail(RecordErrorCode.FieldMissing, `required field "${field}" is missing`);
  if (typeof v !== 'string' || v.length === 0) {
    fail(RecordErrorCode.FieldType, `field "${field}" must be a non-empty string, got ${describe(v)}`);
  }
  // Ids are keys of the views (a userId keys a user's counts): the same bound as a record key.
  if (Buffer.byteLength(v) > MAX_KEY_BYTES)
    fail(RecordErrorCode.FieldType, `field "${field}" is longer than ${MAX_KEY_BYTES} bytes`);
  return v;
}

export function optionalString(o: Record<string, unknown>, field: string): string | null {
  const v = o[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string')
    fail(RecordErrorCode.FieldType, `field "${field}" must be a string or null, got ${describe(v)}`);
  return v;
}

export function optionalDate(o: Record<string, unknown>, field: string): string | null {
  const v = optionalString(o, field);
  if (v === null) return null;
  const iso = normalizeDateTime(v);
  if (iso === undefined)
    fail(
      RecordErrorCode.DateInvalid,
      `field "${field}" is not a date-time: ${JSON.stringify(v.slice(0, 64))}`,
    );
  return iso;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return v.length === 0 ? 'an empty string' : 'a string';
  return `a ${typeof v}`;
}

export function decodeKey(key: Buffer | null): string {
  if (key === null || key.length === 0) fail(RecordErrorCode.KeyInvalid, 'record key is missing or empty');
  if (key.length > MAX_KEY_BYTES)
    fail(RecordErrorCode.KeyInvalid, `record key is ${key.length} bytes, more than ${MAX_KEY_BYTES}`);
  try {
    return utf8.decode(key);
  } catch {
    return fail(RecordErrorCode.KeyInvalid, 'record key is not valid UTF-8');
  }
}

export function parseObject(value: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(value));
  } catch (e) {
    return fail(
      RecordErrorCode.JsonInvalid,
      `value is not UTF-8 JSON: ${(e as Error).message.slice(0, 120)}`,
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    fail(RecordErrorCode.NotObject, `value must be a JSON object, got ${describe(parsed)}`);
  }
  return parsed as Record<string, unknown>;
}

function rowOf(table: Table, key: string, o: Record<string, unknown>): Row {
  const keyField = KEY_FIELD[table];
  const own = o[keyField];
  if (own !== undefined && own !== null) {
    if (typeof own !== 'string')
      fail(RecordErrorCode.FieldType, `field "${keyField}" must be a string, got ${describe(own)}`);
    if (own !== key)
      fail(
        RecordErrorCode.KeyMismatch,
        `field "${keyField}" is ${JSON.stringify(own.slice(0, 64))} but the record key is ${JSON.stringify(key.slice(0, 64))}`,
      );
  }
  switch (table) {
    case 'users': {
      const username = o['username'];
      if (username === undefined || username === null)
        fail(RecordErrorCode.FieldMissing, 'required field "username" is missing');
      if (typeof username !== 'string')
        fail(RecordErrorCode.FieldType, `field "username" must be a string, got ${describe(username)}`);
      // One literal, its fields checked in this order (the first invalid one is the error).
      return {
        table,
        username,
        name: optionalString(o, 'name'),
        description: optionalString(o, 'description'),
        location: optionalString(o, 'location'),
        webPageUrl: optionalString(o, 'webPageUrl'),
        profileImageUrl: optionalString(o, 'profileImageUrl'),
        backgroundImageUrl: optionalString(o, 'backgroundImageUrl'),
        joinedDate: optionalDate(o, 'joinedDate'),
      };
    }
    case 'tweets': {
      const userId = requiredId(o, 'userId');
      const createdAt = optionalDate(o, 'createdAt');
      const text = optionalString(o, 'text');
      return { table, userId, text, createdAt };
    }
    case 'follows': {
      const followerId = requiredId(o, 'followerId');
      const followeeId = requiredId(o, 'followeeId');
      const createdAt = optionalDate(o, 'createdAt');
      return { table, followerId, followeeId, createdAt };
    }
    case 'likes': {
      const userId = requiredId(o, 'userId');
      const tweetId = requiredId(o, 'tweetId');
      const createdAt = optionalDate(o, 'createdAt');
      return { table, userId, tweetId, createdAt };
    }
  }
}

/**
 * Validates an object already in the contract's field names (a mapped source row, src/formats/mapping.ts)
 * as a row of `table` whose record key is `key`: the same rules as a `json` record's value.
 */
export function contractRow(
  table: Table,
  key: string,
  o: Record<string, unknown>,
):
  | { readonly ok: true; readonly row: Row }
  | { readonly ok: false; readonly code: RecordErrorCode; readonly message: string } {
  try {
    return { ok: true, row: rowOf(table, key, o) };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
}

/** Decodes one record of `table`. A null or zero-length value is a tombstone (`row: null`). */
export function decodeRecord(table: Table, key: Buffer | null, value: Buffer | null): Decoded {
  try {
    const k = decodeKey(key);
    if (value === null || value.length === 0) return { ok: true, key: k, row: null };
    return { ok: true, key: k, row: rowOf(table, k, parseObject(value)) };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
}
