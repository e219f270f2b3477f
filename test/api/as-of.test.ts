/**
 * `extensions.asOf.sequence` (api/consistency/as-of.ts) is the commit the answer's data was read at, not the last
 * commit this process published: the two differ whenever a commit is readable before its reply is handled
 * (the writer thread may commit N+1 before the event loop handles N's reply) or another process commits into
 * the store (`matview rebuild`). Reproduced deterministically with a second store on the same path committing
 * behind the served one's back. Before, the answer said 1 while its data was at 2, and a read-your-writes
 * client saw two writes' answers under one sequence (test/integration/read-your-writes.test.ts, flaky then).
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAsOfSource } from '../../api/consistency/as-of.js';
import { openStore, type LmdbStore } from '../../src/store/lmdb-store.js';
import { commitInput, profile, record, tweetRecord } from '../utils/changes.js';
import { tempDir } from '../utils/tmp.js';

const opened: LmdbStore[] = [];
afterAll(async () => {
  for (const store of opened.reverse()) await store.close();
});

/** lmdb-js renews a thread's read snapshot on the first read after a macrotask. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

describe('extensions.asOf against a store committed into behind its back', () => {
  it('names the commit the data was read at, in the fast path text and the Apollo object', async () => {
    const path = join(tempDir(), 'view');
    const served = openStore({ path, writerThread: true }); // what `matview serve` ships
    opened.push(served);
    await served.applyBatch(commitInput([record('users', 'u1', profile('one'), 0)]));
    const other = openStore({ path });
    opened.push(other);
    await other.applyBatch(commitInput([tweetRecord('t1', 'u1', 0)]));
    await nextTurn();

    const asOf = createAsOfSource(served, { lagRecords: () => 7 });
    // The fast path's order: the extension's text, then the data, in one synchronous stretch.
    const text = asOf.json();
    expect(served.getUser('u1')?.tweetCount).toBe(1);
    expect(served.sequence()).toBe(1n); // all this process published
    expect(text).toBe(',"extensions":{"asOf":{"sequence":"2","lagRecords":7}}');
    expect(asOf.current()).toEqual({ sequence: '2', lagRecords: 7 });

    // Once the served store commits again, its own reply and the snapshot agree.
    await served.applyBatch(commitInput([tweetRecord('t2', 'u1', 1)]));
    await nextTurn();
    expect(asOf.json()).toBe(',"extensions":{"asOf":{"sequence":"3","lagRecords":7}}');
    expect(served.getUser('u1')?.tweetCount).toBe(2);
    expect(served.sequence()).toBe(3n);
  });
});
