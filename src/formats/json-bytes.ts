/**
 * JSON text as the byte-level readers see it (json-scan.ts, converter-wrapper.ts, debezium-scan.ts): the
 * structural characters, digits, literals and JSON's whitespace, bytes compared where they lie, and the
 * strings, escapes and numbers of the grammar passed over.
 */
import { ESCAPED_FORM, PLAIN_FORM } from '../views/scanned-row.js';

export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const COMMA = 0x2c;
export const COLON = 0x3a;
export const OPEN = 0x7b;
export const CLOSE = 0x7d;
export const OPEN_ARRAY = 0x5b;
export const CLOSE_ARRAY = 0x5d;
export const MINUS = 0x2d;
export const PLUS = 0x2b;
export const DOT = 0x2e;
export const ZERO = 0x30;
export const NINE = 0x39;

export const isDigit = (c: number): boolean => c >= ZERO && c <= NINE;
export const isHex = (c: number): boolean =>
  isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

export const TRUE = Buffer.from('true');
export const FALSE = Buffer.from('false');
export const NULL = Buffer.from('null');

/** JSON's whitespace (RFC 8259): space, line feed, carriage return, tab. */
export const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Past the JSON whitespace at `i` in `b`. */
export function skipSpace(b: Uint8Array, i: number): number {
  while (i < b.length && isSpace(b[i]!)) i++;
  return i;
}

/**
 * Words up to this long are compared byte by byte (field names, literals, the converter's wrapper): a native
 * call costs more than the loop. Longer ones (a converter schema's ~2 KB text) in one native compare.
 */
const SHORT_WORD = 16;

/** `word`'s bytes at `at` in `b`, before `end`. */
export function matches(b: Uint8Array, at: number, word: Buffer, end = b.length): boolean {
  const n = word.length;
  if (at + n > end) return false;
  if (n > SHORT_WORD) return word.compare(b, at, at + n) === 0;
  for (let i = 0; i < n; i++) if (b[at + i] !== word[i]) return false;
  return true;
}

/**
 * Past the escape whose backslash is at `i` in a JSON string (`\uXXXX`, or one of `\" \\ \/ \b \f \n \r \t`),
 * before `end`; -1 when it is none of those.
 */
export function skipEscape(b: Uint8Array, i: number, end = b.length): number {
  const e = b[i + 1];
  if (e === 0x75) {
    for (let h = 2; h < 6; h++) if (i + h >= end || !isHex(b[i + h]!)) return -1;
    return i + 6;
  }
  return e === QUOTE ||
    e === BACKSLASH ||
    e === 0x2f ||
    e === 0x62 ||
    e === 0x66 ||
    e === 0x6e ||
    e === 0x72 ||
    e === 0x74
    ? i + 2
    : -1;
}

/** Whether the last string `skipString` passed over held an escape. */
export let stringEscaped = false;
/** Whether the last string `skipString` passed over held a byte at or above 0x80. */
export let stringWide = false;

/**
 * Past the JSON string whose opening quote is at `i` (its escapes checked, no control character), before
 * `end`; -1 when it is not one. Sets `stringEscaped` and `stringWide`: whether it held an escape, and a byte at or
 * above 0x80 (whose UTF-8 the caller checks).
 */
export function skipString(b: Uint8Array, i: number, end = b.length): number {
  let escaped = false;
  let wide = false;
  for (i++; i < end;) {
    const c = b[i]!;
    if (c === QUOTE) {
      stringEscaped = escaped;
      stringWide = wide;
      return i + 1;
    }
    if (c < 0x20) return -1;
    if (c !== BACKSLASH) {
      if (c >= 0x80) wide = true;
      i++;
      continue;
    }
    escaped = true;
    i = skipEscape(b, i, end);
    if (i < 0) return -1;
  }
  return -1;
}

/** Past the JSON number at `i` (RFC 8259: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?), before `end`; or -1. */
export function skipNumber(b: Uint8Array, i: number, end = b.length): number {
  if (i < end && b[i] === MINUS) i++;
  if (i >= end) return -1;
  const first = b[i]!;
  if (first === ZERO) i++;
  else if (first > ZERO && first <= NINE) while (i < end && isDigit(b[i]!)) i++;
  else return -1;
  if (i < end && b[i] === DOT) {
    i++;
    if (i >= end || !isDigit(b[i]!)) return -1;
    while (i < end && isDigit(b[i]!)) i++;
  }
  if (i < end && (b[i] === 0x65 || b[i] === 0x45)) {
    i++;
    if (i < end && (b[i] === PLUS || b[i] === MINUS)) i++;
    if (i >= end || !isDigit(b[i]!)) return -1;
    while (i < end && isDigit(b[i]!)) i++;
  }
  return i;
}

/**
 * The string whose bytes run from `start` to `end` of `value` (inside its quotes), read by its form
 * (views/scanned-row.ts): what JSON.parse of the value holds there. A WIDE one's bytes are valid UTF-8 and an
 * ESCAPED one's literal has been checked (the scans' `text`).
 */
export function scannedString(value: Buffer, start: number, end: number, form: number): string {
  if (form === ESCAPED_FORM) return JSON.parse(value.toString('utf8', start - 1, end + 1)) as string;
  return value.toString(form === PLAIN_FORM ? 'latin1' : 'utf8', start, end);
}
