/**
 * Opening a store's LMDB environment and checking what is there: one environment per instance
 * (DATA_DIR/view: data.mdb + lock.mdb), a `meta` sub-database, and the sub-databases of its generations.
 *
 * We keep lmdb-js's default durable commits (no `noSync`, no `writeMap`): a commit has reached the OS
 * before its promise resolves, and LMDB's copy-on-write B-tree with two meta pages makes a killed process
 * (even mid-commit) reopen at the last committed transaction.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { StoreWriteError, commitFailure, isMatviewError } from '../errors.js';
import { openThroughGate } from '../lmdb-open-gate.js';
import { atomicTransaction, LMDB_OPEN_OPTIONS } from '../lmdb-transaction.js';

/**
 * lmdb-js opens at most this many named databases per environment: two generations of rows, offsets and
 * view spaces, a view rebuilt beside its old version, and meta, with room for more views.
 */
const MAX_DBS = 128;

/** Path of an environment's data file (lmdb-js opens an extension-less path as a directory). */
export const dataFileOf = (path: string): string => join(path, 'data.mdb');

/** LMDB's meta-page magic (`MDB_MAGIC`), little-endian, after the page header of the first page. */
const LMDB_MAGIC = 0xbeefc0de;

/**
 * True when `file` starts with an LMDB meta page. The page header is 16 bytes in LMDB 0.9 and 24 in the
 * LMDB 1.0 that lmdb-js embeds; an empty file is one LMDB would initialize.
 */
export function isLmdbDataFile(file: string): boolean {
  const head = Buffer.alloc(32);
  const fd = openSync(file, 'r');
  try {
    const n = readSync(fd, head, 0, head.length, 0);
    if (n === 0) return true;
    return (
      n === head.length && (head.readUInt32LE(16) === LMDB_MAGIC || head.readUInt32LE(24) === LMDB_MAGIC)
    );
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens the environment of a store (this thread's handle; the writer thread opens its own on the same
 * path, and LMDB serializes their write transactions). Always a directory (data.mdb + lock.mdb): lmdb-js
 * would treat a path with a dot (`view.restore-1`) as a file.
 */
export function openEnvironment(
  path: string,
  mapSize: number | undefined,
  access: 'read' | 'write' = 'write',
): RootDatabase {
  if (access === 'write') return open({ path, ...environmentOptions(mapSize) });
  // A read-only open goes through the open gate of the process that writes the store, if one does
  // (lmdb-open-gate.ts): opening next to it unprotected can make it lose a commit.
  return openThroughGate(path, () => open({ path, ...environmentOptions(mapSize), readOnly: true }));
}

/** lmdb-js `open` options of a store's environment (but its path). */
export const environmentOptions = (mapSize: number | undefined) => ({
  noSubdir: false,
  maxDbs: MAX_DBS,
  mapSize: mapSize ?? 1024 * 1024 * 1024,
  ...LMDB_OPEN_OPTIONS,
});

/** Entries of one database, as LMDB counts them (its stats; lmdb-js' typings leave them untyped). */
export const entryCount = (db: Pick<Database, 'getStats'>): number =>
  (db.getStats() as { entryCount?: number }).entryCount ?? 0;

export const metaOf = (env: RootDatabase): Database<string, string> =>
  env.openDB<string, string>({ name: 'meta', encoding: 'string' });

/** The message of a failed batch transaction (on either thread). */
export async function batchFailure(error: unknown): Promise<string> {
  return `LMDB write failed, nothing of the batch was applied: ${await commitFailure(error)}`;
}

/**
 * What a failed batch rejects with: a matview error thrown inside as it is, anything else (LMDB refusing the
 * transaction) as a StoreWriteError saying why. Reading the failure consumes lmdb-js' `commitError` promise,
 * which left alone is an unhandled rejection that ends the thread.
 */
export async function batchError(error: unknown): Promise<unknown> {
  return isMatviewError(error) ? error : new StoreWriteError(await batchFailure(error), { cause: error });
}

/** A failed view rebuild as it reaches callers, as `batchError` does for a batch. */
export async function viewRebuildError(error: unknown): Promise<unknown> {
  return isMatviewError(error)
    ? error
    : new StoreWriteError(
        `LMDB write failed, the view rebuild did not finish: ${await commitFailure(error)}`,
        { cause: error },
      );
}

/**
 * Runs one write transaction; a failed commit becomes a StoreWriteError naming `what` and the real cause (and
 * lmdb-js' `commitError` promise is consumed, so it cannot surface as an unhandled rejection). A matview error
 * thrown by `action` passes as it is.
 */
export async function writeTransaction<T>(env: RootDatabase, what: string, action: () => T): Promise<T> {
  try {
    return await atomicTransaction(env, action);
  } catch (e) {
    if (isMatviewError(e)) throw e;
    throw new StoreWriteError(`LMDB write failed (${what}): ${await commitFailure(e)}`, { cause: e });
  }
}
