/**
 * Reads of a value without copying it out of LMDB's read path: lmdb-js' `getBinaryFast`, made safe on every
 * Node release. It returns lmdb-js' reused read buffer, a Buffer over a larger memory whose own `length`
 * property lmdb-js sets to the value's size. Buffer methods on Node 20 and 22 read that property where an end
 * is left out; on Node 24 (the Docker image's) they read the typed array's real length: `toString('utf8',
 * start)`, `subarray(start)` and `copy` then ran on into the stale bytes of earlier, longer values, and every
 * view read through GraphQL failed to parse. A Buffer of the value's exact size over the same memory (no copy,
 * ~25-35 ns) has no such property to miss. Like lmdb-js' own buffer it is valid until the next read: use it,
 * or copy what you keep, before reading again.
 *
 * `getBinaryFast` is called here only (eslint.config.js).
 */
import type { Database } from 'lmdb';

export function readFast<K extends string>(
  db: Pick<Database<unknown, K>, 'getBinaryFast'>,
  key: K,
): Buffer | undefined {
  const bytes = db.getBinaryFast(key);
  return bytes === undefined ? undefined : bytes.subarray(0, bytes.length);
}
