/**
 * JSON text as the byte-level readers see it (json-scan.ts, converter-wrapper.ts): the structural characters,
 * JSON's whitespace, and bytes compared where they lie.
 */

export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const COMMA = 0x2c;
export const COLON = 0x3a;
export const OPEN = 0x7b;
export const CLOSE = 0x7d;
export const OPEN_ARRAY = 0x5b;
export const CLOSE_ARRAY = 0x5d;

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

/** `word`'s bytes at `at` in `b`. */
export function matches(b: Uint8Array, at: number, word: Buffer): boolean {
  const n = word.length;
  if (at + n > b.length) return false;
  if (n > SHORT_WORD) return word.compare(b, at, at + n) === 0;
  for (let i = 0; i < n; i++) if (b[at + i] !== word[i]) return false;
  return true;
}
