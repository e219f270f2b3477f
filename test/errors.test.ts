/** The error catalogue as data (fastify test/internals/errors.test.js): every code is documented, none is stale. */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as errors from '../src/errors.js';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('error catalogue', () => {
  const codesInCode = new Set(
    [...sources('src'), ...sources('api')].flatMap((f) =>
      [...readFileSync(f, 'utf8').matchAll(/'(MV_ERR_[A-Z_]+)'/g)].map((m) => m[1]!),
    ),
  );
  const doc = readFileSync('docs/errors.md', 'utf8');
  const codesInDoc = new Set([...doc.matchAll(/^\| `(MV_ERR_[A-Z_]+)`/gm)].map((m) => m[1]!));

  it('should document exactly the codes the code raises', () => {
    expect([...codesInDoc].sort()).toEqual([...codesInCode].sort());
  });

  it('should give every record error a distinct code that starts with MV_ERR_RECORD_', () => {
    const values = Object.values(errors.RecordErrorCode);
    expect(new Set(values).size).toBe(values.length);
    for (const v of values) expect(v).toMatch(/^MV_ERR_RECORD_/);
  });

  it('should keep the cause and classify with predicates', () => {
    const cause = new Error('disk');
    const e = new errors.DeadLetterWriteError('tweets.dlq', { cause });
    expect({ code: e.code, retriable: errors.isRetriable(e), cause: e.cause, name: e.name }).toEqual({
      code: 'MV_ERR_DLQ_WRITE',
      retriable: true,
      cause,
      name: 'DeadLetterWriteError',
    });
    expect(errors.isRetriable(new errors.StoreWriteError('x'))).toBe(false);
    expect(() => errors.invariant(false, 'counts are never negative')).toThrow(/This is likely a bug/);
  });

  it('should tell how to recover a store whose free pages lmdb-js refuses, and only then', () => {
    // As lmdb-js 3.5.6 rejected a view build's write slice on a store a 10M-record rebuild had filled.
    const refused =
      'LMDB write failed, the view rebuild did not finish: MDB_BAD_TXN: Transaction must abort, has a ' +
      'child, or is invalid: freelist entry 126 had bad/duplicate entries, error code 0\n';
    const undeletable =
      'Commit failed: MDB_NOTFOUND: No matching key/data pair found: Attempting to delete free-space record';
    const full =
      'LMDB write failed, nothing of the batch was applied: MDB_MAP_FULL: Environment mapsize limit reached';
    expect([refused, undeletable, full].map((m) => new errors.StoreWriteError(m).message)).toEqual([
      `${refused} (${errors.FREE_LIST_ADVICE})`,
      `${undeletable} (${errors.FREE_LIST_ADVICE})`,
      full,
    ]);
  });
});
