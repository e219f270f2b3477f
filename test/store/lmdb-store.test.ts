import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/lmdb-store.js';
import { userChanges, type CommitEvent } from '../../src/store/types.js';
import { decodeView, encodeView, restJsonOf } from '../../src/views/codec.js';
import { VIEWS } from '../../src/views/registry.js';
import type { ViewModule } from '../../src/views/types.js';
import { USER_INFORMATION } from '../../src/views/user-information.js';
import { commitInput, profile as user, sequential, tweet } from '../utils/changes.js';
import { tempDir } from '../utils/tmp.js';

const profile = (username: string) =>
  user(username, { name: 'Zach Cox', location: 'Chicago, IL', joinedDate: '2008-01-22T15:14:44.000Z' });

// Every case on both write paths: commits on this thread, and on the writer thread.
describe.each([{ writerThread: false }, { writerThread: true }])('LmdbStore (%o)', (mode) => {
  it('should commit rows, views, offsets and sequence together and keep them across reopen', async () => {
    const path = tempDir();
    const store = openStore({ ...mode, path });
    const events: CommitEvent[] = [];
    store.onCommit((e) => events.push(e));
    await store.applyBatch(
      commitInput([
        { table: 'users', key: 'u1', row: profile('zcox'), offset: 0 },
        { table: 'tweets', key: 't1', row: tweet('u1'), offset: 0 },
      ]),
    );
    expect(store.getUser('u1')).toMatchObject({
      userId: 'u1',
      username: 'zcox',
      tweetCount: 1,
      version: { sequence: '1' },
    });
    expect(JSON.parse(store.getUserJson('u1')!.toString())).toEqual({
      userId: 'u1',
      username: 'zcox',
      name: 'Zach Cox',
      description: null,
      location: 'Chicago, IL',
      webPageUrl: null,
      joinedDate: '2008-01-22T15:14:44.000Z',
      profileImageUrl: null,
      backgroundImageUrl: null,
      tweetCount: 1,
      followingCount: 0,
      followerCount: 0,
      likeCount: 0,
    });
    // The same view without its version, for reads that do not select it; unknown ids stay undefined.
    const { version: _version, ...unversioned } = store.getUser('u1')!;
    expect(store.getUsersUnversioned(['nope', 'u1'])).toEqual([undefined, unversioned]);
    expect(events.map((e) => [e.sequence, [...userChanges(e).keys()], [...e.views.keys()]])).toEqual([
      [1n, ['u1'], ['user-information', 'top-users', 'totals']],
    ]);
    expect({ top: store.topUserIds('TWEETS', 10), totals: store.totals() }).toMatchObject({
      top: ['u1'],
      totals: { users: 1, tweets: 1, follows: 0, likes: 0, version: { sequence: '1' } },
    });
    const instanceId = store.instanceId;
    await store.close();

    const again = openStore({ ...mode, path });
    expect({
      seq: again.sequence(),
      pos: again.positions(),
      id: again.instanceId,
      tweets: again.getUser('u1')?.tweetCount,
      stale: again.staleViews(),
    }).toEqual({
      seq: 1n,
      pos: [
        { topic: 'tweets', partition: 0, next: '1' },
        { topic: 'users', partition: 0, next: '1' },
      ],
      id: instanceId,
      tweets: 1,
      stale: [],
    });
    expect(again.getUsers(['nobody', 'u1']).map((u) => u?.userId)).toEqual([undefined, 'u1']);
    await again.close();
  });

  it('should record the last commit that took a user view away, with that commit, across reopen', async () => {
    const path = tempDir();
    const store = openStore({ ...mode, path });
    const at = () => store.userViewsRemovedAt();
    expect(at()).toBe(0n); // a new store: no view was ever taken away
    let offset = 0;
    const commit = (records: Parameters<typeof sequential>[0]) =>
      store.applyBatch(commitInput(sequential(records, (offset += 10))));
    await commit([
      ['users', 'u1', profile('one')],
      ['users', 'u2', profile('two')],
    ]); // 1
    await commit([['tweets', 't1', tweet('u1')]]); // 2: counts move, no view goes
    expect(at()).toBe(0n);
    await commit([['users', 'u2', null]]); // 3: u2's view goes
    expect({ seq: store.sequence(), at: at() }).toEqual({ seq: 3n, at: 3n });
    await commit([['users', 'nobody', null]]); // 4: a delete of a row that had no view takes nothing away
    await commit([['tweets', 't1', null]]); // 5
    expect({ seq: store.sequence(), at: at() }).toEqual({ seq: 5n, at: 3n });
    await store.close();
    const again = openStore({ ...mode, path });
    expect(again.userViewsRemovedAt()).toBe(3n);
    await again.close();
  });

  it('should apply a record at most once, whatever delivers it again', async () => {
    const store = openStore({ ...mode, path: tempDir() });
    const first = sequential([
      ['users', 'u1', profile('a')],
      ['tweets', 't1', tweet('u1')],
      ['tweets', 't2', tweet('u1')],
    ]);
    await store.applyBatch(commitInput(first));
    // A redelivered batch, a prefix of it, and a batch that repeats a record inside itself.
    const again = await store.applyBatch(commitInput(first));
    const prefix = await store.applyBatch(commitInput(first.slice(0, 2)));
    const inside = await store.applyBatch(
      commitInput([
        { table: 'tweets', key: 't3', row: tweet('u1'), offset: 3 },
        { table: 'tweets', key: 't3', row: tweet('u1'), offset: 3 },
        { table: 'tweets', key: 't9', row: tweet('u1'), offset: 2 },
      ]),
    );
    expect({
      again: [again.accepted, again.skipped],
      prefix: [prefix.accepted, prefix.skipped],
      inside: [inside.accepted, inside.skipped],
      tweets: store.getUser('u1')?.tweetCount,
    }).toEqual({ again: [0, 3], prefix: [0, 2], inside: [1, 2], tweets: 3 });
    await store.close();
  });

  it('should commit batches that arrive together in one transaction, each partition in order', async () => {
    const store = openStore({ ...mode, path: tempDir() });
    const events: CommitEvent[] = [];
    store.onCommit((e) => events.push(e));
    // Submitted in one turn: the first commits alone, the other three wait for it and go in together.
    const results = await Promise.all([
      store.applyBatch(commitInput([{ table: 'users', key: 'u1', row: profile('a'), offset: 0 }])),
      store.applyBatch(
        commitInput([{ table: 'tweets', key: 't1', row: tweet('u1'), partition: 1, offset: 0 }]),
      ),
      store.applyBatch(
        commitInput([{ table: 'tweets', key: 't2', row: tweet('u1'), partition: 2, offset: 0 }]),
      ),
      store.applyBatch(
        commitInput([{ table: 'users', key: 'u1', row: profile('b'), partition: 1, offset: 0 }]),
      ),
    ]);
    expect(results.map((r) => [r.sequence, r.batches])).toEqual([
      [1n, 1],
      [2n, 3],
      [2n, 3],
      [2n, 3],
    ]);
    // One event per commit; u1 changed by three batches of commit 2 is one change with its final state.
    expect(events.map((e) => [e.sequence, userChanges(e).get('u1')?.tweetCount])).toEqual([
      [1n, 0],
      [2n, 2],
    ]);
    expect(store.getUser('u1')).toMatchObject({ username: 'b', tweetCount: 2 });
    await store.close();
  });

  it('should keep committing when a commit listener throws', async () => {
    const errors: unknown[] = [];
    const store = openStore({ ...mode, path: tempDir(), onListenerError: (e) => errors.push(e) });
    store.onCommit(() => {
      throw new Error('listener bug');
    });
    await store.applyBatch(commitInput([{ table: 'users', key: 'u1', row: profile('a'), offset: 0 }]));
    await store.applyBatch(commitInput([{ table: 'users', key: 'u2', row: profile('b'), offset: 1 }]));
    expect({ errors: errors.length, seq: store.sequence(), u2: store.getUser('u2')?.username }).toEqual({
      errors: 2,
      seq: 2n,
      u2: 'b',
    });
    await store.close();
  });
});

describe('a commit whose body throws halfway', () => {
  it('should store nothing of it, neither what the views before the throw wrote nor its rows and positions', async () => {
    // Applied after UserInformation, which has written the user's counts and view by then.
    const failing: ViewModule = {
      name: 'fails-on-boom',
      version: 1,
      reads: { tweets: ['userId'] },
      dependsOn: [USER_INFORMATION],
      spaces: {},
      apply(input) {
        if (input.transitions.key.includes('boom')) throw new Error('the view failed');
        return {};
      },
    };
    const path = tempDir();
    const options = { path, writerThread: false, views: [...VIEWS, failing] };
    let store = openStore(options);
    await store.applyBatch(commitInput([{ table: 'users', key: 'u1', row: profile('zcox'), offset: 0 }]));
    await expect(
      store.applyBatch(commitInput([{ table: 'tweets', key: 'boom', row: tweet('u1'), offset: 0 }])),
    ).rejects.toThrow('the view failed');
    await store.close();
    store = openStore(options);
    expect(store.getUser('u1')).toMatchObject({ tweetCount: 0, version: { sequence: '1' } });
    expect(store.position('tweets', 0)).toBeUndefined();
    expect(store.sequence()).toBe(1n);
    // The same record applies once the view lets it.
    await store.applyBatch(commitInput([{ table: 'tweets', key: 't1', row: tweet('u1'), offset: 0 }]));
    expect(store.getUser('u1')).toMatchObject({ tweetCount: 1, version: { sequence: '2' } });
    await store.close();
  });
});

describe('view codec', () => {
  it('should round-trip a view and expose the REST JSON without the version', () => {
    const view = {
      userId: 'u"1',
      username: 'zcox',
      name: null,
      description: 'Engineering @Uptake ✓',
      location: null,
      webPageUrl: null,
      joinedDate: null,
      profileImageUrl: null,
      backgroundImageUrl: null,
      tweetCount: 3826,
      followingCount: 1096,
      followerCount: 887,
      likeCount: 203,
      version: {
        sequence: '18446744073709551615',
        appliedAt: '2026-01-01T00:00:00.000Z',
        eventTime: null,
        source: { topic: 'users', partition: 3, offset: '42' },
      },
    };
    const bytes = encodeView(view);
    expect(decodeView(bytes)).toEqual(view);
    const { version: _v, ...rest } = view;
    expect(JSON.parse(restJsonOf(bytes).toString())).toEqual(rest);
    expect(Object.keys(JSON.parse(restJsonOf(bytes).toString()))).toEqual(Object.keys(rest));
  });
});
