/**
 * Issue 19, the store's pieces for the view topic: a replica's commit goes through the same machinery as a
 * materializer's (group commit, on the writer thread or not, positions in the transaction, commit events),
 * the store records its role, and the index of what a view topic holds follows its topic.
 */
import { describe, expect, it } from 'vitest';
import { ReplicaBatch, type ReplicaInput } from '../../src/materializer/change-batch.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { userChanges, type CommitEvent } from '../../src/store/types.js';
import { TOTALS_KEY, type TotalsValue } from '../../src/views/totals.js';
import type { UserInformation } from '../../src/views/user-information.js';
import { commitInput, profile } from '../utils/changes.js';
import { makeUser } from '../utils/testkit.js';
import { tempDir } from '../utils/tmp.js';

const TOPIC = 'views';

function input(
  values: [string, UserInformation | TotalsValue | null][],
  first: number,
  partition = 0,
): ReplicaInput {
  const batch = new ReplicaBatch();
  values.forEach(([key, value], i) =>
    batch.push(
      key === TOTALS_KEY ? 'totals' : 'user-information',
      key,
      value,
      TOPIC,
      partition,
      String(first + i),
    ),
  );
  return {
    replica: batch.columns(),
    positions: [{ topic: TOPIC, partition, next: String(first + values.length) }],
  };
}

describe.each([{ writerThread: false }, { writerThread: true }])('a replica store (%o)', (mode) => {
  it('should commit view values with their versions, positions and a sequence no lower than them', async () => {
    const path = tempDir();
    const store = openStore({ ...mode, path });
    const events: CommitEvent[] = [];
    store.onCommit((e) => events.push(e));
    const u1 = makeUser(1, undefined, { followerCount: 5 });
    const u2 = makeUser(2, undefined, { followerCount: 9 });
    const totals: TotalsValue = { users: 2, tweets: 0, follows: 14, likes: 0, version: u2.version };
    // Merged into one commit or not, what is applied is the same.
    const [a, b] = await Promise.all([
      store.applyBatch(
        input(
          [
            ['1', u1],
            [TOTALS_KEY, totals],
          ],
          0,
          0,
        ),
      ),
      store.applyBatch(input([['2', u2]], 0, 1)),
    ]);
    expect(store.getUser('1')).toEqual(u1);
    expect(store.getUser('2')).toEqual(u2);
    expect(store.topUserIds('FOLLOWERS', 10)).toEqual(['2', '1']);
    expect(store.totals()).toEqual(totals);
    expect(store.positions()).toEqual([
      { topic: TOPIC, partition: 0, next: '2' },
      { topic: TOPIC, partition: 1, next: '1' },
    ]);
    const highest = BigInt(u2.version.sequence);
    expect(a!.sequence >= highest && b!.sequence >= highest).toBe(true);
    expect(store.sequence()).toBe(b!.sequence > a!.sequence ? b!.sequence : a!.sequence);
    expect(events.flatMap((e) => [...userChanges(e).keys()]).sort()).toEqual(['1', '2']);

    const gone = await store.applyBatch(input([['1', null]], 2, 0));
    expect(gone.sequence).toBe(store.sequence());
    expect(store.getUser('1')).toBeUndefined();
    expect(store.topUserIds('FOLLOWERS', 10)).toEqual(['2']);
    await store.close();
  });
});

describe('store roles and the published index', () => {
  it('should record its role, and read an old store that committed as a materializer', async () => {
    const store = openStore({ path: tempDir() });
    expect(store.role()).toBeUndefined();
    await store.recordRole({ kind: 'replica', topic: TOPIC });
    expect(store.role()).toEqual({ kind: 'replica', topic: TOPIC });
    await store.close();

    const old = openStore({ path: tempDir() });
    await old.applyBatch(commitInput([{ table: 'users', key: 'u1', row: profile('zcox'), offset: 0 }]));
    expect(old.role()).toEqual({ kind: 'materializer' });
    await old.close();
  });
});
