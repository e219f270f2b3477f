/**
 * The key encoding of the store's string-keyed databases (rows, offsets, every view space, the published
 * views): lmdb-js' own to write (ordered-binary), so every key is stored, found and ordered exactly as
 * before, and a reader that gives back the string that was written.
 *
 * ordered-binary writes a string of fewer than 64 UTF-16 units with its characters U+0000-U+0004 escaped
 * (byte 4, then the character) and a longer one as plain UTF-8, but its reader takes any byte 0-4 as the
 * boundary of a compound key, and byte 4 as an escape. So a long key holding such a character came back
 * from an iteration as an array (or without its U+0004): a row key of about 57 characters or more
 * (`<table>\0<key>`), a topic name of about 62 or more in the offsets (`<topic>\0<partition>`), a long
 * userId with a control character. Whatever iterated failed on it: the positions read at start, a
 * truncate, a rebuild from the rows, `matview verify`, the rankings. Exact reads and writes were right all
 * along, which is why the write side stays as it is.
 *
 * What stays as ordered-binary makes it: a long key whose bytes are exactly a shorter key's escaped form
 * (U+0004 followed by U+0000-U+0004 where the short one has the second alone) is that key in the store, and
 * reads as the short one; a lone surrogate in a long key is stored as U+FFFD.
 */
import type { DatabaseOptions } from 'lmdb';
import { readKey, writeKey } from 'ordered-binary';

/** ordered-binary's marker before a string whose first character is below U+001C (either form). */
const LEADING_ESCAPE = 27;
/** Strings of this many UTF-16 units or more are written as plain UTF-8, shorter ones escaped. */
const LONG_UNITS = 64;

/** Plain UTF-8, a leading U+FEFF kept (it is part of the key, not a byte-order mark). */
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });
/** Where a key is written again to tell the two forms apart (keys are at most a few hundred bytes). */
const scratch = new Uint8Array(8192);

/** Whether ordered-binary writes `key` as exactly bytes `start` to `end` of `bytes`. */
function writesAs(key: string, bytes: Uint8Array, start: number, end: number): boolean {
  if ((end - start) * 3 + 16 > scratch.length) return false;
  const n = writeKey(key, scratch, 0);
  if (n !== end - start) return false;
  for (let i = 0; i < n; i++) if (scratch[i] !== bytes[start + i]) return false;
  return true;
}

/** The string a stored key holds (bytes `start` to `end` of `bytes`, as ordered-binary wrote them). */
export function readStringKey(bytes: Uint8Array, start: number, end: number): string {
  // Fewer bytes than LONG_UNITS: fewer units too, so the escaped form, which ordered-binary reads right (its
  // own decoder also gives back a lone surrogate, which a UTF-8 decoder would replace).
  if (end - start < LONG_UNITS) {
    const key = readKey(bytes, start, end);
    if (typeof key === 'string') return key;
  } else {
    // The escaped form when reading it so gives a short string written as exactly these bytes. That comes
    // first: a 63-unit row key with its \0 escaped is 64 bytes, which read as plain UTF-8 are a 64-unit
    // string written as the same bytes (one key in the store; ours have \0, not U+0004 then \0).
    const key = escapedForm(bytes, start, end);
    if (key !== undefined) return key;
  }
  return utf8.decode(bytes.subarray(bytes[start] === LEADING_ESCAPE ? start + 1 : start, end));
}

/** The short string whose escaped form is these bytes, if any. */
function escapedForm(bytes: Uint8Array, start: number, end: number): string | undefined {
  let key: unknown;
  try {
    key = readKey(bytes, start, end);
  } catch {
    return undefined;
  }
  return typeof key === 'string' && key.length < LONG_UNITS && writesAs(key, bytes, start, end)
    ? key
    : undefined;
}

const STRING_KEYS = {
  /**
   * ordered-binary's writer, for strings and for the raw bytes of a range's bounds (generation.ts): the same
   * bytes (and the same zeros after them, which lmdb-js' word-wise comparison reads) as lmdb-js' default.
   */
  writeKey: (key: unknown, target: Uint8Array, position: number): number =>
    writeKey(key as string | Uint8Array, target, position),
  readKey: readStringKey,
};

/** `options` of lmdb-js' `openDB` for a string-keyed database: with the key encoder above (its typings omit it). */
export function stringKeyed<O extends DatabaseOptions & { name: string }>(options: O): O {
  return { ...options, keyEncoder: STRING_KEYS };
}
