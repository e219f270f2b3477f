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
 * before: text that is not JSON or not UTF-8, a member name with an escape or outside ASCII, a wanted
 * member given twice (JSON.parse keeps the last), a wanted value that is an object or an array, no string
 * `op` or none of `before`/`after`/`source` (a flattened row: `readFlattened` reads every member), nesting
 * deeper than MAX_DEPTH.
 *
 * test/formats/debezium-scan.test.ts: random payloads and their corruptions, reduced against parsed.
 */
import { isUtf8 } from 'node:buffer';
import { latin1Slice } from '../latin1.js';
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
} from './json-bytes.js';

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

/** What the members of an object read are: scalars (a row, a source block) or an envelope's. */
const SCALARS = 0;
const ENVELOPE = 1;

/**
 * Reads objects of one shape: a member's name is looked up among `wanted` (ASCII names), whose values are
 * kept; the others are skipped. Holds the bytes being read and where the last value read ended.
 */
class Reader {
  b: Buffer = Buffer.alloc(0);
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
      const negative = c === MINUS;
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
    i = skipSpace(b, i + 1);
    if (i < end && b[i] === CLOSE) {
      this.at = i + 1;
      return out;
    }
    for (;;) {
      if (i >= end || b[i] !== QUOTE) return undefined;
      const nameAt = i + 1;
      let nameEnd = nameAt;
      for (;;) {
        if (nameEnd >= end) return undefined;
        const c = b[nameEnd]!;
        if (c === QUOTE) break;
        if (c === BACKSLASH || c < 0x20 || c >= 0x80) return undefined;
        nameEnd++;
      }
      const w = lookUp(b, nameAt, nameEnd, wanted);
      i = skipSpace(b, nameEnd + 1);
      if (i >= end || b[i] !== COLON) return undefined;
      i = skipSpace(b, i + 1);
      if (w < 0) {
        i = skipValue(b, i, end, depth + 1);
        if (i === FAILED) return undefined;
      } else {
        // Given twice: JSON.parse keeps the last, the general path says what that is.
        if ((seen & (1 << w)) !== 0) return undefined;
        seen |= 1 << w;
        const value = kind === SCALARS ? this.scalar(i) : this.envelopeMember(w, i);
        if (value === undefined) return undefined;
        out[names[w]!] = value;
        i = this.at;
      }
      i = skipSpace(b, i);
      if (i >= end) return undefined;
      if (b[i] === CLOSE) {
        this.at = i + 1;
        return out;
      }
      if (b[i] !== COMMA) return undefined;
      i = skipSpace(b, i + 1);
    }
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
const SOURCE = 3;
const SOURCE_FIELDS = ['ts_ms'];
const SOURCE_BYTES = ascii(SOURCE_FIELDS);

/** Whether `name` can be a wanted member here: ASCII, and not one that an object literal treats apart. */
const takeable = (name: string): boolean => name !== '__proto__' && /^[\x20-\x7f]+$/.test(name);

/** The Debezium values of one table (its mapped columns), read from bytes. */
export class DebeziumScan {
  private readonly reader: Reader;
  private readonly columns: readonly string[];
  private readonly columnBytes: readonly Uint8Array[];
  /** False when a mapped column cannot be a wanted member: every record then takes the general path. */
  readonly usable: boolean;

  constructor(columns: readonly string[]) {
    this.columns = [...new Set(columns)];
    this.columnBytes = ascii(this.columns);
    this.reader = new Reader(this.columnBytes, this.columns);
    // A bit per wanted member (Reader.object).
    this.usable = this.columns.length <= 30 && this.columns.every(takeable);
  }

  /**
   * The envelope in `bytes` from `from` to `to` reduced to what `decodeChange` reads of it, or undefined
   * (the caller parses it).
   */
  envelope(bytes: Buffer, from: number, to: number): Record<string, unknown> | undefined {
    if (!this.usable) return undefined;
    const r = this.start(bytes, to);
    const out = r.object(skipSpace(bytes, from), TOP_BYTES, TOP, 0, ENVELOPE);
    if (out === undefined || !('op' in out)) return undefined;
    if (!('before' in out || 'after' in out || 'source' in out)) return undefined;
    return this.finished(from, to) ? out : undefined;
  }

  /** A flat object's wanted members (a key's payload), or undefined (the caller parses it). */
  row(bytes: Buffer, from: number, to: number): Record<string, unknown> | undefined {
    if (!this.usable) return undefined;
    const r = this.start(bytes, to);
    const out = r.object(skipSpace(bytes, from), this.columnBytes, this.columns, 0, SCALARS);
    return out !== undefined && this.finished(from, to) ? out : undefined;
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
