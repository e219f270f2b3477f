/**
 * The `json` format's plain records, read from their bytes (json.ts): a record whose key is ASCII and whose
 * value is a flat JSON object is checked against the contract here, byte by byte, without a string or an
 * object made for it, and its fields are handed on as byte ranges (packed-changes.ts `pushScanned` copies
 * them for the writer thread; a string with escapes or non-ASCII characters is read on its own). Anything else
 * is left to `decodeRecord` (views/decode.ts), which says what is wrong with it: an escape or a non-ASCII
 * character in the key, an id or a date, a nested object or array, a repeated contract field, any error.
 *
 * What it accepts, `decodeRecord` accepts with the same row (test/formats/json-scan.test.ts: random records,
 * valid and not, both ways, compared as packed bytes); every plain record of the contract is accepted.
 *
 * Why: while catching up, `JSON.parse` of the values was a quarter of the event loop's busy time (1.0 s of
 * 4.3 s for the 446k records of the catch-up bench), and packing what it made took another 0.43 s.
 */
import { isUtf8 } from 'node:buffer';
import { normalizeDateTime } from '../views/dates.js';
import { ESCAPED_FORM, PLAIN_FORM, WIDE_FORM } from '../views/scanned-row.js';
import { MAX_KEY_BYTES } from '../views/decode.js';
import { KEY_FIELD, ROW_FIELDS, type Table } from '../views/source.js';
import {
  BACKSLASH,
  CLOSE,
  COLON,
  COMMA,
  FALSE,
  MINUS,
  NULL,
  OPEN,
  QUOTE,
  TRUE,
  isDigit,
  matches,
  stringEscaped,
  stringWide,
  skipNumber,
  skipSpace,
  skipString,
  scannedString,
} from './json-bytes.js';
import { CONTRACT_FIELDS } from './mapping.js';

const NO_BYTES = Buffer.alloc(0);

/** A field's slot when it is not a string: absent from the object, or null. */
const ABSENT_FIELD = -2;
const NULL_FIELD = -1;

/** Field names of one table, as bytes: the row's (ROW_FIELDS order), then the key field. */
interface TableNames {
  readonly names: readonly Buffer[];
  /** Index of the key field in `names`. */
  readonly keyField: number;
  /** Per row field (mapping.ts CONTRACT_FIELDS): required (never null or absent). */
  readonly required: readonly boolean[];
  /** Per row field: an id (a non-empty string of at most MAX_KEY_BYTES bytes). */
  readonly id: readonly boolean[];
  /** Per row field: a date-time (normalized: views/dates.ts). */
  readonly date: readonly boolean[];
}

function namesOf(table: Table): TableNames {
  const fields: readonly string[] = ROW_FIELDS[table];
  const contract = fields.map((name) => CONTRACT_FIELDS[table].find((c) => c.name === name)!);
  return {
    names: [...fields, KEY_FIELD[table]].map((name) => Buffer.from(name, 'latin1')),
    keyField: fields.length,
    required: contract.map((c) => c.required),
    id: contract.map((c) => c.kind === 'id'),
    date: contract.map((c) => c.kind === 'date'),
  };
}

const NAMES: Readonly<Record<Table, TableNames>> = {
  users: namesOf('users'),
  tweets: namesOf('tweets'),
  follows: namesOf('follows'),
  likes: namesOf('likes'),
};

/**
 * One table's plain records, scanned one at a time (`scan`); what the last scan found stays readable until
 * the next.
 */
export class JsonRowScan {
  private readonly names: TableNames;
  /** Per field (row fields, then the key field): where its string's bytes start in the value, or a slot code. */
  readonly start: Int32Array;
  /** Per field: where its string's bytes end. */
  readonly end: Int32Array;
  /**
   * Per field: its string's form (views/scanned-row.ts): PLAIN_FORM (ASCII without escapes: its bytes are its
   * characters), WIDE_FORM (UTF-8 without escapes) or ESCAPED_FORM (`text` reads the last two).
   */
  readonly form: Uint8Array;
  /** Per date field: the value normalized (views/dates.ts), which the row holds instead of its bytes. */
  readonly dates: (string | undefined)[];

  /** The value last scanned (until `release`). */
  private value: Buffer = NO_BYTES;

  constructor(readonly table: Table) {
    this.names = NAMES[table];
    const n = this.names.names.length;
    this.start = new Int32Array(n);
    this.end = new Int32Array(n);
    this.form = new Uint8Array(n);
    this.dates = new Array<string | undefined>(n).fill(undefined);
  }

  /** Number of row fields (ROW_FIELDS order: `start[f]` and the rest for f below it). */
  get rowFields(): number {
    return this.names.keyField;
  }

  /**
   * True when the record is a plain delete (`value` null: its value is null or empty) or a plain upsert of a
   * valid row (`value` a flat JSON object), whose fields are then in `start`, `end`, `form` and `dates`.
   * False: decode it (it may still be valid).
   */
  scan(key: Buffer, value: Buffer | null): boolean {
    if (!plainKey(key)) return false;
    if (value === null) return true;
    this.value = value;
    const { names, keyField } = this.names;
    const { start, end, form } = this;
    start.fill(ABSENT_FIELD);
    let nonAscii = false;
    const n = value.length;
    let i = 0;
    i = skipSpace(value, i);
    if (value[i] !== OPEN) return false;
    i++;
    i = skipSpace(value, i);
    if (value[i] === CLOSE) i++;
    else
      for (;;) {
        // A member's name: ASCII without escapes, or the record is left to the decoder.
        if (value[i] !== QUOTE) return false;
        const nameAt = ++i;
        for (;;) {
          const c = value[i];
          if (c === undefined || c === BACKSLASH || c < 0x20 || c >= 0x80) return false;
          if (c === QUOTE) break;
          i++;
        }
        const nameEnd = i++;
        let field = -1;
        for (let f = 0; f < names.length; f++) {
          const name = names[f]!;
          if (name.length === nameEnd - nameAt && matches(value, nameAt, name)) {
            field = f;
            break;
          }
        }
        // A contract field given twice: JSON.parse keeps the last one; the decoder says what that is.
        if (field >= 0 && start[field] !== ABSENT_FIELD) return false;
        i = skipSpace(value, i);
        if (value[i] !== COLON) return false;
        i++;
        i = skipSpace(value, i);
        const c = value[i];
        if (c === QUOTE) {
          const at = i + 1;
          i = skipString(value, i);
          if (i < 0) return false;
          const escaped = stringEscaped;
          const wide = stringWide;
          if (wide) nonAscii = true;
          if (field >= 0) {
            start[field] = at;
            end[field] = i - 1;
            form[field] = escaped ? ESCAPED_FORM : wide ? WIDE_FORM : PLAIN_FORM;
          }
        } else if (c === 0x6e) {
          if (!matches(value, i, NULL)) return false;
          i += 4;
          if (field >= 0) start[field] = NULL_FIELD;
        } else if (field >= 0) {
          // A number, a boolean, an object or an array where the contract wants a string: invalid.
          return false;
        } else if (c === 0x74) {
          if (!matches(value, i, TRUE)) return false;
          i += 4;
        } else if (c === 0x66) {
          if (!matches(value, i, FALSE)) return false;
          i += 5;
        } else if (c === MINUS || (c !== undefined && isDigit(c))) {
          i = skipNumber(value, i);
          if (i < 0) return false;
        } else return false; // an object or an array (left to JSON.parse), or not JSON
        i = skipSpace(value, i);
        const next = value[i];
        if (next === CLOSE) {
          i++;
          break;
        }
        if (next !== COMMA) return false;
        i++;
        i = skipSpace(value, i);
      }
    i = skipSpace(value, i);
    if (i !== n) return false;
    if (nonAscii && !isUtf8(value)) return false;
    return this.valid(key, value, keyField);
  }

  /**
   * Lets go of the value last scanned once its fields are read. A fetched record's value is a view of its
   * Fetch response, so holding it holds the whole response (tens of MB while catching up), until the next
   * record of the table, and for good on a table that goes quiet.
   */
  release(): void {
    this.value = NO_BYTES;
  }

  /**
   * The string of field `f` of the value last scanned, whatever its form: what JSON.parse of the value holds
   * there (a WIDE one's bytes are valid UTF-8, and an ESCAPED one's literal has been checked).
   */
  text(f: number): string {
    return scannedString(this.value, this.start[f]!, this.end[f]!, this.form[f]!);
  }

  /** The contract's checks on the fields found (views/decode.ts `rowOf`); false where it would refuse. */
  private valid(key: Buffer, value: Buffer, keyField: number): boolean {
    const { start, end, form, dates } = this;
    const { required, id, date } = this.names;
    const own = start[keyField]!;
    if (own >= 0) {
      if (form[keyField] !== PLAIN_FORM || end[keyField]! - own !== key.length || !matches(value, own, key))
        return false;
    }
    for (let f = 0; f < keyField; f++) {
      const at = start[f]!;
      if (required[f] && at < 0) return false;
      if (id[f]) {
        // Plain, so that its length in bytes is its length.
        if (form[f] !== PLAIN_FORM) return false;
        const length = end[f]! - at;
        if (length === 0 || length > MAX_KEY_BYTES) return false;
      }
      if (date[f]) {
        dates[f] = undefined;
        if (at < 0) continue;
        if (form[f] !== PLAIN_FORM) return false;
        const iso = normalizeDateTime(value.toString('latin1', at, end[f]));
        if (iso === undefined) return false;
        dates[f] = iso;
      }
    }
    return true;
  }
}

/** A record key the decoder takes as it is: 1 to MAX_KEY_BYTES ASCII bytes. */
export function plainKey(key: Uint8Array): boolean {
  const n = key.length;
  if (n === 0 || n > MAX_KEY_BYTES) return false;
  for (let i = 0; i < n; i++) if (key[i]! >= 0x80) return false;
  return true;
}
