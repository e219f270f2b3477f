/**
 * LMDB write transactions for the store and the embedded changelog (both own LMDB environments).
 */
import type { RootDatabase } from 'lmdb';

/**
 * A write transaction that writes nothing when `action` throws. lmdb-js commits an asynchronous
 * transaction whatever its callback does: what the callback wrote before it threw is committed, and
 * returning lmdb-js' `ABORT` does not abort it either (lmdb 3.5.6; `transactionSync` does abort, but blocks
 * the thread until the commit is on disk). So the body runs in a child transaction, which LMDB discards when
 * it throws; the error then rejects the transaction, which commits nothing of it.
 */
export async function atomicTransaction<T>(env: RootDatabase, action: () => T): Promise<T> {
  return await env.transaction(() => env.childTransaction(action));
}
