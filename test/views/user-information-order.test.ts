/**
 * The order UserInformation writes (and reports) the users of a commit in: key order where its spaces write
 * through to LMDB (page after page), the order the commit's transitions first touch them where its spaces
 * keep their writes in memory (a rebuild's buffer sorts its own writes). The same views either way.
 */
import { describe, expect, it } from 'vitest';
import { commitBatch, commitPlan } from '../../src/materializer/commit.js';
import { MemoryState } from '../../src/materializer/memory-state.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { userChanges, type CommitEvent } from '../../src/store/types.js';
import { createRegistry } from '../../src/views/registry.js';
import { USER_INFORMATION } from '../../src/views/user-information.js';
import { commitInput, profile, sequential, tweet, type TestRecord } from '../utils/changes.js';
import { tempDir } from '../utils/tmp.js';

const USERS = ['u1', 'u2', 'u3'];
/** The users' rows, then tweets t1, t2, t3 (the transitions' order) of u3, u2, u1. */
const COMMITS: readonly TestRecord[][] = [
  sequential(USERS.map((u) => ['users', u, profile(u)])),
  sequential(
    [...USERS].reverse().map((u, i) => ['tweets', `t${i + 1}`, tweet(u)]),
    10,
  ),
];

/** The users of the second commit's event, in its order, with the views' spaces writing through or not. */
function eventOrder(writesThrough: boolean): { users: string[]; views: unknown } {
  const registry = createRegistry();
  const plan = commitPlan(registry);
  const state = new MemoryState(registry);
  if (writesThrough)
    for (const space of Object.values(state.spaces(USER_INFORMATION)))
      Object.assign(space, { writesThrough });
  commitBatch(state, plan, commitInput(COMMITS[0]!), 1n, 0);
  const event = commitBatch(state, plan, commitInput(COMMITS[1]!), 2n, 0).events.get(USER_INFORMATION)!;
  return { users: [...event.keys()], views: Object.fromEntries(event) };
}

describe('UserInformation write order', () => {
  it('should take the users of a commit in key order where its spaces write through, else as first touched', () => {
    const through = eventOrder(true);
    const inMemory = eventOrder(false);
    expect(through.users).toEqual(USERS);
    expect(inMemory.users).toEqual([...USERS].reverse());
    expect(inMemory.views).toEqual(through.views);
  });

  it.each([{ writerThread: false }, { writerThread: true }])(
    "should take them in key order in the store's LMDB spaces (%o)",
    async (mode) => {
      const store = openStore({ ...mode, path: tempDir() });
      const events: CommitEvent[] = [];
      store.onCommit((e) => events.push(e));
      for (const records of COMMITS) await store.applyBatch(commitInput(records));
      await store.close();
      expect([...userChanges(events[1]!).keys()]).toEqual(USERS);
    },
  );
});
