/**
 * Record keys of connector-written topics: a string, a number, or a struct holding the key column, as
 * Kafka Connect's converters write them:
 * - StringConverter: the text itself (`1004`, `u-42`);
 * - JsonConverter: JSON (`1004`, `"u-42"`, `{"id":1004}`), with `schemas.enable=true` wrapped as
 *   `{"schema":{…},"payload":{"id":1004}}`;
 * - AvroConverter: the Confluent wire format around an Avro value (a record `{id: 1004}` or a primitive),
 *   decoded by avro.ts and handed to `keyOfValue`.
 * Numbers become exact decimal strings (64-bit ids stay exact). The result obeys the contract's key rules
 * (non-empty, at most 512 bytes).
 */
import { RecordErrorCode } from '../errors.js';
import { MAX_KEY_BYTES } from '../views/decode.js';
import type { ConverterSchemas } from './converter-wrapper.js';
import type { DebeziumScan } from './debezium-scan.js';
import { parseLosslessJson } from './lossless-json.js';
import { idString } from './mapping.js';

export type KeyResult =
  | { readonly ok: true; readonly key: string }
  | { readonly ok: false; readonly code: RecordErrorCode; readonly message: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });
const invalid = (message: string): KeyResult => ({ ok: false, code: RecordErrorCode.KeyInvalid, message });

/** Checks the contract's key rules on a key string. */
export function checkedKey(key: string): KeyResult {
  if (key.length === 0) return invalid('record key is empty');
  const bytes = Buffer.byteLength(key);
  if (bytes > MAX_KEY_BYTES) return invalid(`record key is ${bytes} bytes, more than ${MAX_KEY_BYTES}`);
  return { ok: true, key };
}

/** The key of a decoded key value: a struct's `keyColumn`, or a string or integer. */
export function keyOfValue(value: unknown, keyColumn: string): KeyResult {
  let v = value;
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v)) {
    const struct = v as Record<string, unknown>;
    if (!Object.hasOwn(struct, keyColumn))
      return invalid(
        `record key struct has no column "${keyColumn}" (has ${Object.keys(struct)
          .map((k) => `"${k}"`)
          .join(', ')}); map the key field to the primary key column in the sources file`,
      );
    v = struct[keyColumn];
  }
  const s = idString(v);
  if (typeof s !== 'string')
    return invalid(`record key column "${keyColumn}" must be a string or an integer`);
  return checkedKey(s);
}

/**
 * The key of a JSON-converter or string key. A key that is a JSON object or string is read as JSON (and
 * unwrapped from the converter's schema/payload); any other key is its own UTF-8 text, so `1004` and
 * `007` stay exactly what was written. `schemas`: the converter schemas this topic's keys carried
 * (converter-wrapper.ts), when the caller keeps them; a key with a remembered one is read from its payload,
 * by `scan` (debezium-scan.ts, wanting `keyColumn`) when it is a flat struct holding the key column, and so is
 * a key that is such a struct itself.
 */
export function keyOfText(
  bytes: Buffer,
  keyColumn: string,
  schemas?: ConverterSchemas,
  scan?: DebeziumScan,
): KeyResult {
  const split = schemas?.split(bytes);
  // A struct holding the key column, read from its bytes: a remembered wrapper's payload, or the key itself
  // (`{"id":1004}`; but a struct of just `schema` and `payload` is a wrapper whose schema is not remembered,
  // read below).
  const struct =
    split !== undefined
      ? scan?.row(bytes, split.from, split.to)
      : keyColumn !== 'schema' && keyColumn !== 'payload'
        ? scan?.row(bytes, 0, bytes.length)
        : undefined;
  if (struct !== undefined && Object.hasOwn(struct, keyColumn)) return keyOfValue(struct, keyColumn);
  if (split !== undefined) {
    const payload = schemas!.payload(bytes, split);
    if (payload !== undefined) return keyOfValue(payload, keyColumn);
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return invalid('record key is not valid UTF-8');
  }
  const first = text.trimStart()[0];
  if (first !== '{' && first !== '"') return checkedKey(text);
  let parsed: unknown;
  try {
    parsed = parseLosslessJson(text);
  } catch {
    return checkedKey(text); // not JSON after all: a string key that starts with { or "
  }
  if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
    const o = parsed as Record<string, unknown>;
    if (Object.keys(o).length === 2 && 'schema' in o && 'payload' in o) {
      parsed = o['payload'];
      schemas?.learn(bytes);
    }
  }
  return keyOfValue(parsed, keyColumn);
}
