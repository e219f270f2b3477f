/**
 * LMDB environments of the store and the embedded changelog (each its own): how both are opened and how
 * both write.
 */
import type { RootDatabase } from 'lmdb';

/** lmdb-js `open` options both environments need, whatever else each sets. */
export const LMDB_OPEN_OPTIONS = {
  // Every write is an explicit transaction (`atomicTransaction`, or a `batch` whose promise the writer awaits:
  // a view rebuild's buffered entries, view-rebuild.ts). With event-turn batching lmdb-js adds an
  // internal commit promise per event turn that nobody can handle: a failed commit (disk full, I/O error)
  // became an unhandled rejection that killed the process instead of a clear error.
  eventTurnBatching: false,
  // lmdb-js' default on Linux, and unsafe with more than one process: while one process commits, another
  // that opens the environment (a CLI next to the server: verify, snapshot, rebuild; a demo appending to
  // the embedded changelog), even read-only, makes the first lose whole commits it already reported done,
  // and sometimes crash (SIGSEGV): with it, lmdb-js rolls back to the previous snapshot when a process
  // opens the environment first. Measured with lmdb 3.5.6: most runs of a writer with six processes
  // opening next to it lost commits. Off, a commit can still be lost, far more rarely, by the LMDB bug
  // ITS#9496 that lmdb-js' copy of LMDB still has: the open gate (lmdb-open-gate.ts) is what keeps a
  // read-only open from doing that. Off, a commit syncs to disk before the next one starts instead of while
  // it runs: the same ingest rate here; `user(id)` p99 while a fresh server catches up went from ~100 to
  // ~190 ms in the bench's catchup scenario (200k records, two runs each), not in a simpler reader (README).
  overlappingSync: false,
} as const;

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
