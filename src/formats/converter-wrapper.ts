/**
 * Kafka Connect's JsonConverter with `schemas.enable=true` (its default) writes each record as
 * `{"schema":S,"payload":P}`, and S is the same text record after record until the table changes. For a
 * Debezium envelope S is ~2 KB of a ~2.4 KB value: decoded again for every record (UTF-8, the lossless JSON
 * parse, the connector schema read from it), a record took 18.9 µs against ~6 for the same record without
 * schemas.
 *
 * `ConverterSchemas` remembers the text of the last few schemas it saw, each with its value parsed once. A
 * record laid out exactly as the converter writes it, `{"schema":` then a remembered S then `,"payload":`,
 * then P, then `}` (JSON whitespace around P and after the `}` allowed), has that S's value as its schema,
 * whatever P is: a JSON value is self-delimiting, so S, a complete value, followed by `,`, is the schema's
 * whole text. Only P is then decoded. Anything else (another layout, another schema, an error anywhere)
 * is for the caller's general path, which reports errors as it always did.
 *
 * A schema is remembered from the second record that carries it (`learn` after the general path): a
 * stream whose schema changes at every record costs a byte scan per record, not a parse of each schema.
 */
import { BACKSLASH, CLOSE, CLOSE_ARRAY, OPEN, OPEN_ARRAY, QUOTE, isSpace, matches } from './json-bytes.js';
import { parseLosslessJson, type JsonValue } from './lossless-json.js';

const HEAD = Buffer.from('{"schema":');
const SEPARATOR = Buffer.from(',"payload":');
/** Schemas remembered per topic: a table's current schema and a few before it (a rolling connector upgrade). */
const REMEMBERED = 4;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Whether `record` starts as the converter writes its wrapper, `{"schema":` (its schema remembered or not). */
export const startsAsWrapper = (record: Uint8Array): boolean => matches(record, 0, HEAD);

export interface Schema {
  /** The schema's text, as the records carry it. */
  readonly text: Buffer;
  /** Its value (lossless-json.ts). Shared by every record that carries it: read it, never change it. */
  readonly value: JsonValue;
}

export interface Split {
  readonly schema: Schema;
  /** P's text: where it starts and ends in the record. */
  readonly from: number;
  readonly to: number;
}

/**
 * Where the value that starts at `at` (an object or array: the only values a converter's schema is) ends,
 * from its bytes alone: brackets counted outside strings. -1 when it does not end, or does not start with
 * one. Only finds a candidate: `learn` parses it before it remembers anything.
 */
export function endOfValue(bytes: Uint8Array, at: number): number {
  const open = bytes[at];
  if (open !== OPEN && open !== OPEN_ARRAY) return -1;
  let depth = 0;
  for (let i = at; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === QUOTE) {
      for (i++; i < bytes.length && bytes[i] !== QUOTE; i++) if (bytes[i] === BACKSLASH) i++;
      continue;
    }
    if (b === OPEN || b === OPEN_ARRAY) depth++;
    else if (b === CLOSE || b === CLOSE_ARRAY) {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

export class ConverterSchemas {
  /** Most recently seen first. */
  private readonly known: Schema[] = [];
  /** The schema text of the last record the general path took, not yet seen twice. */
  private candidate: Buffer | undefined;

  /** `record` split at a remembered schema, or undefined (the caller takes its general path). */
  split(record: Uint8Array): Split | undefined {
    if (!startsAsWrapper(record)) return undefined;
    const index = this.known.findIndex((s) => matches(record, HEAD.length, s.text));
    if (index < 0) return undefined;
    const schema = this.known[index]!;
    const from = HEAD.length + schema.text.length;
    if (!matches(record, from, SEPARATOR)) return undefined;
    let to = record.length;
    while (to > 0 && isSpace(record[to - 1]!)) to--;
    if (to === 0 || record[to - 1] !== CLOSE) return undefined;
    if (index > 0) {
      this.known.splice(index, 1);
      this.known.unshift(schema);
    }
    return { schema, from: from + SEPARATOR.length, to: to - 1 };
  }

  /**
   * P's value, parsed from its text, or undefined when that text is not one JSON value in UTF-8 (the
   * caller's general path then reports the record's error).
   */
  payload(record: Uint8Array, split: Split): JsonValue | undefined {
    try {
      return parseLosslessJson(utf8.decode(record.subarray(split.from, split.to)));
    } catch {
      return undefined;
    }
  }

  /**
   * After the general path read `record` as the converter's wrapper: its schema's text is remembered if the
   * record before also carried it, and if that text is, by itself, one JSON value.
   */
  learn(record: Uint8Array): void {
    if (!startsAsWrapper(record)) return;
    const end = endOfValue(record, HEAD.length);
    if (end < 0 || !matches(record, end, SEPARATOR)) return;
    const text = record.subarray(HEAD.length, end);
    const seen = this.candidate;
    if (seen === undefined || Buffer.compare(seen, text) !== 0) {
      this.candidate = Buffer.from(text);
      return;
    }
    this.candidate = undefined;
    let value: JsonValue;
    try {
      value = parseLosslessJson(utf8.decode(text));
    } catch {
      return;
    }
    this.known.unshift({ text: seen, value });
    if (this.known.length > REMEMBERED) this.known.pop();
  }
}
