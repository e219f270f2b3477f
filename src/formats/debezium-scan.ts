/**
 * Debezium values read from their bytes: what the change's decoding reads of a JSON envelope, without the
 * rest of it parsed. A Debezium payload is ~500 bytes of which the decoding reads `op`, `source.ts_ms` and
 * the mapped columns of `after` (or `before`); the lossless parse of all of it (its objects, its strings,
 * the pre-scan for unsafe integers) was the largest part of the event loop's work in the Debezium catch-up
 * (446k records: 1.8 s of 6.7 s busy).
 *
 * `envelope` returns the payload reduced to what `decodeChange` (change.ts) reads of it, each value equal to
 * what `parseLosslessJson` gives there: `op`; `before`, `after` and `source` when present, the rows holding
 * only the wanted columns (the mapped ones) and the source only `ts_ms`. Everything else is checked as
 * JSON and skipped. So `decodeChange` of the reduced payload is `decodeChange` of the parsed one.
 * `row` does the same for a flat object (a converter's key payload, `{"id":1004}`).
 *
 * Anything it does not take is left to the caller's general path (undefined), which decides and reports as
 * before: text that is not JSON or not UTF-8, a member name with an escape (`memberAt`), a wanted
 * member given twice (JSON.parse keeps the last), a wanted value that is an object or an array, no string
 * `op` or none of `before`/`after`/`source` (a flattened row: `readFlattened` reads every member), nesting
 * deeper than MAX_DEPTH.
 *
 * test/formats/debezium-scan.test.ts: random payloads and their corruptions, reduced against parsed.
 *
 * `DebeziumRowScan` (below) goes further for the records the ingest packs for the writer thread: no reduced
 * payload at all, the row found as byte ranges and checked by the mapping and the contract where it lies.
 */
import { isUtf8 } from 'node:buffer';
import { latin1Slice } from '../latin1.js';
import { normalizeDateTime } from '../views/dates.js';
import { MAX_KEY_BYTES } from '../views/decode.js';
import { ESCAPED_FORM, PLAIN_FORM, WIDE_FORM, type ScannedRow } from '../views/scanned-row.js';
import { ROW_FIELDS, type Table } from '../views/source.js';
import { commitTime } from './envelope.js';
import type { FieldKind, TableMapping } from './mapping.js';
import { missingRequiredColumn, type RowSchema } from './row-schema.js';
import { toIsoDateTime, type TimeUnit } from './temporal.js';
import {
  BACKSLASH,
  CLOSE,
  CLOSE_ARRAY,
  COLON,
  COMMA,
  FALSE,
  MINUS,
  NULL,
  OPEN,
  OPEN_ARRAY,
  QUOTE,
  TRUE,
  ZERO,
  isDigit,
  matches,
  stringEscaped,
  stringWide,
  skipNumber,
  skipSpace,
  skipString,
  scannedString,
} from './json-bytes.js';

const NO_BYTES = Buffer.alloc(0);

/** Nesting of skipped values at most (a Debezium payload nests 2 deep); deeper goes to the general path. */
const MAX_DEPTH = 32;

/** What the skips below return where the text is not JSON (or ends before `end`). */
const FAILED = -1;

/** Whether a string read since the scan started held a byte at or above 0x80 (checked as UTF-8 at the end). */
let wide = false;

/** `skipString`, noting in `wide` a string's bytes beyond ASCII. */
function skipStringNoting(b: Uint8Array, i: number, end: number): number {
  const after = skipString(b, i, end);
  if (stringWide) wide = true;
  return after;
}

/** Past the JSON value at `i` (`i` at its first byte), checked all through, or FAILED. */
function skipValue(b: Uint8Array, i: number, end: number, depth: number): number {
  if (i >= end) return FAILED;
  const c = b[i]!;
  if (c === QUOTE) return skipStringNoting(b, i, end);
  if (c === MINUS || isDigit(c)) return skipNumber(b, i, end);
  if (c === 0x74) return matches(b, i, TRUE, end) ? i + 4 : FAILED;
  if (c === 0x66) return matches(b, i, FALSE, end) ? i + 5 : FAILED;
  if (c === 0x6e) return matches(b, i, NULL, end) ? i + 4 : FAILED;
  if (depth >= MAX_DEPTH || (c !== OPEN && c !== OPEN_ARRAY)) return FAILED;
  const object = c === OPEN;
  const close = object ? CLOSE : CLOSE_ARRAY;
  i = skipSpace(b, i + 1);
  if (i < end && b[i] === close) return i + 1;
  for (;;) {
    if (object) {
      if (i >= end || b[i] !== QUOTE) return FAILED;
      i = skipStringNoting(b, i, end);
      if (i === FAILED) return FAILED;
      i = skipSpace(b, i);
      if (i >= end || b[i] !== COLON) return FAILED;
      i = skipSpace(b, i + 1);
    }
    i = skipValue(b, i, end, depth + 1);
    if (i === FAILED) return FAILED;
    i = skipSpace(b, i);
    if (i >= end) return FAILED;
    if (b[i] === close) return i + 1;
    if (b[i] !== COMMA) return FAILED;
    i = skipSpace(b, i + 1);
  }
}

/** Where the name of the member `memberAt` read last ends (its closing quote). */
let nameEnd = 0;
/** Where the object `nextMember` found closed ends (past its `}`). */
let objectEnd = 0;
/** What `firstMember` and `nextMember` return at the end of the object. */
const CLOSED = -2;

/**
 * The object member whose name's opening quote should be at `i`: where its value starts (past the colon and
 * whitespace), its name from `i + 1` to `nameEnd`; FAILED where there is none (FAILED given, no colon, a name
 * with an escape, which may spell a wanted one, or a control character). A name beyond ASCII is noted in
 * `wide` (its UTF-8 is checked at the end) and is never a wanted one, whose names are ASCII.
 */
function memberAt(b: Buffer, i: number, end: number): number {
  if (i < 0 || i >= end || b[i] !== QUOTE) return FAILED;
  for (i++; ; i++) {
    if (i >= end) return FAILED;
    const c = b[i]!;
    if (c === QUOTE) break;
    if (c === BACKSLASH || c < 0x20) return FAILED;
    if (c >= 0x80) wide = true;
  }
  nameEnd = i;
  i = skipSpace(b, i + 1);
  if (i >= end || b[i] !== COLON) return FAILED;
  return skipSpace(b, i + 1);
}

/** The first member of the object whose `{` is at `i`, or CLOSED (an empty object, ending at `objectEnd`). */
function firstMember(b: Buffer, i: number, end: number): number {
  i = skipSpace(b, i + 1);
  if (i >= end || b[i] !== CLOSE) return i;
  objectEnd = i + 1;
  return CLOSED;
}

/**
 * After a member's value, which ends at `i` (FAILED passes through): the next member, or CLOSED where the
 * object ends (at `objectEnd`), or FAILED.
 */
function nextMember(b: Buffer, i: number, end: number): number {
  if (i === FAILED) return FAILED;
  i = skipSpace(b, i);
  if (i >= end) return FAILED;
  if (b[i] === CLOSE) {
    objectEnd = i + 1;
    return CLOSED;
  }
  return b[i] === COMMA ? skipSpace(b, i + 1) : FAILED;
}

/**
 * The number whose JSON text runs from `i` to `after` (checked), as the lossless parse gives it: a number, or
 * a bigint for an integer literal beyond ±2^53 - 1.
 */
function numberOf(b: Buffer, i: number, after: number): number | bigint {
  const negative = b[i] === MINUS;
  let n = 0;
  let k = negative ? i + 1 : i;
  // An integer, digit by digit while exact (every step below 2^53: the last is the largest).
  for (; k < after; k++) {
    const d = b[k]!;
    if (!isDigit(d)) break;
    n = n * 10 + (d - ZERO);
    if (n > Number.MAX_SAFE_INTEGER) break;
  }
  if (k === after) return negative ? -n : n;
  const text = latin1Slice(b, i, after);
  if (n <= Number.MAX_SAFE_INTEGER) return Number(text); // a fraction or an exponent
  for (; k < after; k++) if (!isDigit(b[k]!)) return Number(text);
  return BigInt(text);
}

/** What the members of an object read are: scalars (a row, a source block) or an envelope's. */
const SCALARS = 0;
const ENVELOPE = 1;

/**
 * Reads objects of one shape: a member's name is looked up among `wanted` (ASCII names), whose values are
 * kept; the others are skipped. Holds the bytes being read and where the last value read ended.
 */
class Reader {
  b: Buffer = NO_BYTES;
  end = 0;
  /** Where the last value read ended. */
  at = 0;

  constructor(
    private readonly columns: readonly Uint8Array[],
    private readonly columnNames: readonly string[],
  ) {}

  /**
   * The scalar value at `i` (a string, a number, true, false or null) as the lossless parse gives it, with
   * `at` set past it; undefined for an object, an array or anything that is not JSON.
   */
  scalar(i: number): unknown {
    const { b, end } = this;
    if (i >= end) return undefined;
    const c = b[i]!;
    if (c === QUOTE) {
      const after = skipStringNoting(b, i, end);
      if (after === FAILED) return undefined;
      this.at = after;
      if (stringEscaped) return JSON.parse(b.toString('utf8', i, after)) as string;
      return stringWide ? b.toString('utf8', i + 1, after - 1) : latin1Slice(b, i + 1, after - 1);
    }
    if (c === MINUS || isDigit(c)) {
      const after = skipNumber(b, i, end);
      if (after === FAILED) return undefined;
      this.at = after;
      return numberOf(b, i, after);
    }
    const after = skipValue(b, i, end, MAX_DEPTH);
    if (after === FAILED) return undefined;
    this.at = after;
    return c === 0x74 ? true : c === 0x66 ? false : null;
  }

  /**
   * The object at `i` with only its `wanted` members (in the order met), `at` past it; undefined when it is
   * not an object of this shape (see the module comment). `kind`: SCALARS, every wanted member a scalar;
   * ENVELOPE, `wanted` is TOP (`op` a string, the others null or an object of their own wanted members).
   */
  object(
    i: number,
    wanted: readonly Uint8Array[],
    names: readonly string[],
    depth: number,
    kind: number,
  ): Record<string, unknown> | undefined {
    const { b, end } = this;
    if (i >= end || b[i] !== OPEN) return undefined;
    const out: Record<string, unknown> = {};
    let seen = 0;
    for (i = firstMember(b, i, end); i !== CLOSED; i = nextMember(b, i, end)) {
      const at = memberAt(b, i, end);
      if (at === FAILED) return undefined;
      const w = lookUp(b, i + 1, nameEnd, wanted);
      if (w < 0) i = skipValue(b, at, end, depth + 1);
      else {
        // Given twice: JSON.parse keeps the last, the general path says what that is.
        if ((seen & (1 << w)) !== 0) return undefined;
        seen |= 1 << w;
        const value = kind === SCALARS ? this.scalar(at) : this.envelopeMember(w, at);
        if (value === undefined) return undefined;
        out[names[w]!] = value;
        i = this.at;
      }
    }
    this.at = objectEnd;
    return out;
  }

  /** Member `w` of TOP at `i`: `op` a string; `before`, `after` and `source` null or an object. */
  private envelopeMember(w: number, i: number): unknown {
    if (w === OP) {
      const op = this.scalar(i);
      return typeof op === 'string' ? op : undefined;
    }
    if (this.b[i] === 0x6e) return this.scalar(i); // null (or not JSON: undefined)
    return w === SOURCE
      ? this.object(i, SOURCE_BYTES, SOURCE_FIELDS, 1, SCALARS)
      : this.object(i, this.columns, this.columnNames, 1, SCALARS);
  }
}

/** The index in `wanted` of the name from `from` to `to` in `b`, or -1. */
function lookUp(b: Uint8Array, from: number, to: number, wanted: readonly Uint8Array[]): number {
  const length = to - from;
  const first = b[from];
  next: for (let k = 0; k < wanted.length; k++) {
    const name = wanted[k]!;
    if (name.length !== length || name[0] !== first) continue;
    for (let x = 1; x < length; x++) if (b[from + x] !== name[x]) continue next;
    return k;
  }
  return -1;
}

const ascii = (names: readonly string[]): Uint8Array[] => names.map((n) => Buffer.from(n, 'latin1'));

const TOP = ['op', 'before', 'after', 'source'] as const;
const TOP_BYTES = ascii(TOP);
const OP = 0;
const AFTER = 2;
const SOURCE = 3;
/** The ops taken by DebeziumRowScan: `c`, `u`, `r` and `d`. */
const OP_CREATE = 0x63;
const OP_UPDATE = 0x75;
const OP_READ = 0x72;
const OP_DELETE = 0x64;
const SOURCE_FIELDS = ['ts_ms'];
const SOURCE_BYTES = ascii(SOURCE_FIELDS);

/** Whether `name` can be a wanted member here: ASCII, and not one that an object literal treats apart. */
const takeable = (name: string): boolean => name !== '__proto__' && /^[\x20-\x7f]+$/.test(name);

/**
 * Mapped columns as the scans want them: distinct, as bytes (`lookUp`), and whether they can be wanted members
 * at all (`takeable`, and at most 30: Reader.object keeps a bit per wanted member); when not, the scans take
 * nothing and every record goes to the general path.
 */
function wantedColumns(columns: readonly string[]): {
  names: string[];
  bytes: Uint8Array[];
  usable: boolean;
} {
  const names = [...new Set(columns)];
  return { names, bytes: ascii(names), usable: names.length <= 30 && names.every(takeable) };
}

/** The Debezium values of one table (its mapped columns), read from bytes. */
export class DebeziumScan {
  private readonly reader: Reader;
  private readonly columns: readonly string[];
  private readonly columnBytes: readonly Uint8Array[];
  /** False when a mapped column cannot be a wanted member: every record then takes the general path. */
  readonly usable: boolean;

  constructor(columns: readonly string[]) {
    const wanted = wantedColumns(columns);
    this.columns = wanted.names;
    this.columnBytes = wanted.bytes;
    this.usable = wanted.usable;
    this.reader = new Reader(this.columnBytes, this.columns);
  }

  /**
   * The envelope in `bytes` from `from` to `to` reduced to what `decodeChange` reads of it, or undefined
   * (the caller parses it).
   */
  envelope(bytes: Buffer, from: number, to: number): Record<string, unknown> | undefined {
    if (!this.usable) return undefined;
    const r = this.start(bytes, to);
    const out = r.object(skipSpace(bytes, from), TOP_BYTES, TOP, 0, ENVELOPE);
    const taken =
      out !== undefined &&
      'op' in out &&
      ('before' in out || 'after' in out || 'source' in out) &&
      this.finished(from, to);
    r.b = NO_BYTES; // its values are copies: let the record's bytes go (JsonRowScan `release`)
    return taken ? out : undefined;
  }

  /** A flat object's wanted members (a key's payload), or undefined (the caller parses it). */
  row(bytes: Buffer, from: number, to: number): Record<string, unknown> | undefined {
    if (!this.usable) return undefined;
    const r = this.start(bytes, to);
    const out = r.object(skipSpace(bytes, from), this.columnBytes, this.columns, 0, SCALARS);
    const taken = out !== undefined && this.finished(from, to);
    r.b = NO_BYTES;
    return taken ? out : undefined;
  }

  private start(bytes: Buffer, to: number): Reader {
    const r = this.reader;
    r.b = bytes;
    r.end = to;
    wide = false;
    return r;
  }

  /**
   * Only whitespace after the value, and its bytes UTF-8 when a string held bytes beyond ASCII (the general
   * path's UTF-8 decoder refuses any invalid byte, in a skipped string too). Outside strings, such a byte is
   * not JSON, which the scan already refused.
   */
  private finished(from: number, to: number): boolean {
    const r = this.reader;
    if (skipSpace(r.b, r.at) < to) return false;
    return !wide || isUtf8(r.b.subarray(from, to));
  }
}

/** What a mapped column holds in the `after` row last scanned (DebeziumRowScan). */
const MISSING = 0;
const NULL_VALUE = 1;
const STRING = 2;
/** An integer literal other than `-0`: its text is the decimal string `idString` makes of its value. */
const INTEGER = 3;
/** Any other number (a fraction, an exponent, `-0`). */
const NUMBER = 4;
/** true, false, an object or an array. */
const OTHER = 5;

/** Where a row field is read from (DebeziumRowScan): its column, and what the contract and the mapping want of it. */
interface RowField {
  readonly column: number;
  readonly kind: FieldKind;
  readonly required: boolean;
  readonly unit: TimeUnit | undefined;
}

/**
 * A Debezium envelope read from its bytes into the row it upserts, as packed-changes.ts `pushScanned` takes
 * it (field by field: where a string's bytes are, or the date-time normalized), or into a delete. Where it
 * takes a record, the packed bytes are those of the row `decodeChange` makes of the parsed envelope
 * (mapping.ts `toContractObject`, then views/decode.ts `contractRow`), and the event time the same: no
 * object, no string and no parsed value is made for the envelope, only for a date-time.
 *
 * It takes the common case: op `c`, `u` or `r` with an `after` row, or `d`; the record's key decoded
 * already; every mapped column of the row a string, an integer or null where the mapping and the contract
 * take one (an id without escapes, a date-time an ASCII string or a number in its unit). Anything else (a
 * truncate, an error of any kind, an escaped id or member name, a text that is not JSON) is left to the
 * decoder (false), which says what it is. test/formats/debezium-row-scan.test.ts packs random records both
 * ways and compares the bytes.
 *
 * Why: decoding was 5.6-5.9 µs of the event loop per Debezium record (the catch-up changelog, bench
 * `ingest`), against 1.1 µs for a `json` record read from its bytes; the reduced envelope's objects and
 * values, their mapping and the contract's checks on them were most of it.
 */
export class DebeziumRowScan implements ScannedRow {
  readonly rowFields: number;
  readonly start: Int32Array;
  readonly end: Int32Array;
  readonly form: Uint8Array;
  readonly dates: (string | undefined)[];
  /** After a scan that took the record: a delete (op `d`), else an upsert of the row in `start`... */
  deleted = false;
  /** After a scan that took the record: its commit time (`source.ts_ms`), as envelope.ts `commitTime` reads it. */
  eventTime: number | undefined = undefined;
  /** False when a mapped column cannot be a wanted member (DebeziumScan `usable`): nothing is taken. */
  readonly usable: boolean;

  private readonly columns: readonly string[];
  private readonly columnBytes: readonly Uint8Array[];
  /** Per column: what the last `after` row holds (MISSING, NULL_VALUE, ...), and where. */
  private readonly kind: Uint8Array;
  private readonly valueStart: Int32Array;
  private readonly valueEnd: Int32Array;
  private readonly valueForm: Uint8Array;
  private readonly fields: readonly RowField[];
  private readonly keyColumn: number;
  /** The value last scanned (until `release`). */
  private value: Buffer = NO_BYTES;

  constructor(
    readonly table: Table,
    private readonly mapping: TableMapping,
  ) {
    const wanted = wantedColumns(mapping.fields.map((f) => f.column));
    this.columns = wanted.names;
    this.columnBytes = wanted.bytes;
    this.usable = wanted.usable;
    const n = this.columns.length;
    this.kind = new Uint8Array(n);
    this.valueStart = new Int32Array(n);
    this.valueEnd = new Int32Array(n);
    this.valueForm = new Uint8Array(n);
    const byName = new Map(mapping.fields.map((f) => [f.name, f]));
    this.fields = ROW_FIELDS[table].map((name: string) => {
      const f = byName.get(name)!;
      return {
        column: this.columns.indexOf(f.column),
        kind: f.kind,
        required: f.required,
        unit: f.unit,
      };
    });
    this.keyColumn = this.columns.indexOf(mapping.keyColumn);
    this.rowFields = this.fields.length;
    this.start = new Int32Array(this.rowFields);
    this.end = new Int32Array(this.rowFields);
    this.form = new Uint8Array(this.rowFields);
    this.dates = new Array<string | undefined>(this.rowFields).fill(undefined);
  }

  /**
   * Reads the envelope in `value` from `from` to `to` (the whole value, or a converter wrapper's payload whose
   * schema is `schema`) of a record whose key is `key`. True when it is taken: a delete (`deleted`) or an
   * upsert of a valid row (its fields in `start`, `end`, `form` and `dates`), with `eventTime`.
   */
  scan(value: Buffer, from: number, to: number, key: string, schema: RowSchema | undefined): boolean {
    if (!this.usable) return false;
    const b = value;
    this.value = value;
    wide = false;
    this.eventTime = undefined;
    let i = skipSpace(b, from);
    if (i >= to || b[i] !== OPEN) return false;
    let seen = 0;
    let op = 0;
    let afterRow = false;
    for (i = firstMember(b, i, to); i !== CLOSED; i = nextMember(b, i, to)) {
      const at = memberAt(b, i, to);
      if (at === FAILED) return false;
      const w = lookUp(b, i + 1, nameEnd, TOP_BYTES);
      i = at;
      if (w >= 0) {
        // Given twice: JSON.parse keeps the last, the decoder says what that is.
        if ((seen & (1 << w)) !== 0) return false;
        seen |= 1 << w;
      }
      if (w === OP) {
        // Not a string: no envelope (the decoder reads a flattened row).
        if (i >= to || b[i] !== QUOTE) return false;
        const after = skipStringNoting(b, i, to);
        if (after === FAILED) return false;
        op = after - i === 3 && !stringEscaped ? b[i + 1]! : 0;
        i = after;
      } else if (w === AFTER && i < to && b[i] === OPEN) {
        i = this.row(b, i, to);
        afterRow = true;
      } else if (w === SOURCE && i < to && b[i] === OPEN) {
        i = this.source(b, i, to);
      } else {
        i = skipValue(b, i, to, 1); // `before` (never read with a record key), a null `after`, the rest
      }
    }
    // An envelope (envelope.ts `isEnvelope`): `op` and one of `before`, `after` and `source`.
    if ((seen & (1 << OP)) === 0 || (seen & ~(1 << OP)) === 0) return false;
    if (skipSpace(b, objectEnd) < to) return false;
    if (wide && !isUtf8(b.subarray(from, to))) return false;
    if (op === OP_DELETE) {
      this.deleted = true;
      return true;
    }
    if ((op !== OP_CREATE && op !== OP_UPDATE && op !== OP_READ) || !afterRow) return false;
    this.deleted = false;
    return this.checked(key, schema);
  }

  /** Lets go of the value last scanned once its fields are read (JsonRowScan `release`). */
  release(): void {
    this.value = NO_BYTES;
  }

  /** The string of row field `f` of the row last scanned, whatever its form. */
  text(f: number): string {
    return scannedString(this.value, this.start[f]!, this.end[f]!, this.form[f]!);
  }

  /** The `after` row at `i`: where each mapped column's value is. Past it, or FAILED (left to the decoder). */
  private row(b: Buffer, i: number, end: number): number {
    const { kind, valueStart, valueEnd, valueForm } = this;
    kind.fill(MISSING);
    for (i = firstMember(b, i, end); i !== CLOSED; i = nextMember(b, i, end)) {
      const at = memberAt(b, i, end);
      if (at === FAILED) return FAILED;
      const w = lookUp(b, i + 1, nameEnd, this.columnBytes);
      i = at;
      if (w < 0) i = skipValue(b, i, end, 2);
      else {
        // Given twice, the last counts, as in the parsed row (JSON.parse keeps the last).
        const c = b[i];
        if (c === QUOTE) {
          i = skipStringNoting(b, i, end);
          if (i === FAILED) return FAILED;
          kind[w] = STRING;
          valueStart[w] = at + 1;
          valueEnd[w] = i - 1;
          valueForm[w] = stringEscaped ? ESCAPED_FORM : stringWide ? WIDE_FORM : PLAIN_FORM;
        } else if (c === MINUS || (c !== undefined && isDigit(c))) {
          i = skipNumber(b, i, end);
          if (i === FAILED) return FAILED;
          let integer = !(c === MINUS && i - at === 2 && b[at + 1] === ZERO); // not -0
          for (let k = at; integer && k < i; k++) if (!isDigit(b[k]!) && b[k] !== MINUS) integer = false;
          kind[w] = integer ? INTEGER : NUMBER;
          valueStart[w] = at;
          valueEnd[w] = i;
        } else {
          // null, or a value no contract field takes (true, false, an object, an array): a delete does not read it.
          i = skipValue(b, i, end, 2);
          if (i === FAILED) return FAILED;
          kind[w] = c === 0x6e ? NULL_VALUE : OTHER;
        }
      }
    }
    return objectEnd;
  }

  /** The `source` block at `i`: its `ts_ms` as the commit time. Past it, or FAILED. */
  private source(b: Buffer, i: number, end: number): number {
    for (i = firstMember(b, i, end); i !== CLOSED; i = nextMember(b, i, end)) {
      const at = memberAt(b, i, end);
      if (at === FAILED) return FAILED;
      const tsMs = lookUp(b, i + 1, nameEnd, SOURCE_BYTES) === 0;
      i = skipValue(b, at, end, 2);
      // Given twice, the last counts, as in the parsed source.
      if (tsMs && i !== FAILED)
        this.eventTime = b[at] === MINUS || isDigit(b[at]!) ? commitTime(numberOf(b, at, i)) : undefined;
    }
    return objectEnd;
  }

  /**
   * The mapping and the contract's checks on the row found (mapping.ts `toContractObject`, views/decode.ts
   * `rowOf`), filling the row fields; false where either would refuse it or where the decoder is to read it.
   */
  private checked(key: string, schema: RowSchema | undefined): boolean {
    if (schema !== undefined && missingRequiredColumn(this.mapping, schema) !== undefined) return false;
    const { kind, valueStart, valueEnd, valueForm, value } = this;
    const k = this.keyColumn;
    // The row's own key, when it has one, is the record's key.
    if (kind[k] === STRING || kind[k] === INTEGER) {
      if (kind[k] === STRING && valueForm[k] !== PLAIN_FORM) return false;
      const at = valueStart[k]!;
      if (valueEnd[k]! - at !== key.length) return false;
      for (let x = 0; x < key.length; x++) if (value[at + x] !== key.charCodeAt(x)) return false;
    } else if (kind[k] !== MISSING && kind[k] !== NULL_VALUE) return false;
    const { start, end, form, dates } = this;
    for (let f = 0; f < this.fields.length; f++) {
      const field = this.fields[f]!;
      const c = field.column;
      const what = kind[c]!;
      if (what === MISSING || what === NULL_VALUE) {
        if (field.required) return false;
        start[f] = -1;
        dates[f] = undefined;
        continue;
      }
      start[f] = valueStart[c]!;
      end[f] = valueEnd[c]!;
      form[f] = valueForm[c]!;
      if (field.kind === 'text') {
        if (what !== STRING) return false;
      } else if (field.kind === 'id') {
        // Without escapes, so that its bytes (checked UTF-8) are its UTF-8; an integer is its own decimal string.
        if (what === INTEGER) form[f] = PLAIN_FORM;
        else if (what !== STRING || form[f] === ESCAPED_FORM) return false;
        const length = end[f]! - start[f]!;
        if (length === 0 || length > MAX_KEY_BYTES) return false;
      } else {
        // The mapping's date-time (temporal.ts), then the contract's normalization of it, as the decoder does.
        let iso: string | undefined;
        if (what === STRING) {
          if (form[f] !== PLAIN_FORM) return false;
          iso = toIsoDateTime(latin1Slice(value, start[f]!, end[f]!), undefined);
        } else if (what === INTEGER || what === NUMBER) {
          const unit = schema?.columns.get(this.columns[c]!) ?? field.unit;
          iso = toIsoDateTime(numberOf(value, start[f]!, end[f]!), unit);
        }
        if (iso !== undefined) iso = normalizeDateTime(iso);
        if (iso === undefined) return false;
        dates[f] = iso;
      }
    }
    return true;
  }
}
