import { describe, expect, it } from 'vitest';
import type { Change } from '../../src/materializer/materialize.js';
import { openStore } from '../../src/store/lmdb-store.js';
import type { CommitEvent } from '../../src/store/types.js';
import { decodeView, encodeView, restJsonOf } from '../../src/views/codec.js';
import type { Row } from '../../src/views/user-information.js';
import { tempDir } from '../utils/tmp.js';

const change = (table: Change['table'], key: string, row: Row | null, offset: number): Change => ({
  table,
  key,
  row,
  position: { topic: table, partition: 0, offset: String(offset) },
  timestamp: '1700000000000',
});
const profile = (username: string) =>
  ({
    table: 'users',
    username,
    name: 'Zach Cox',
    description: null,
    location: 'Chicago, IL',
    webPageUrl: null,
    joinedDate: '2008-01-22T15:14:44.000Z',
    profileImageUrl: null,
    backgroundImageUrl: null,
  }) as const;

// Every case on both write paths: batches committed on this thread, and on the writer thread.
describe.each([{ writerThread: false }, { writerThread: true }])('LmdbStore (%o)', (mode) => {
  it('should commit rows, views, offsets and sequence together and keep them across reopen', async () => {
    const path = tempDir();
    const store = openStore({ ...mode, path, viewVersion: 1 });
    const events: CommitEvent[] = [];
    store.onCommit((e) => events.push(e));
    await store.applyBatch({
      changes: [
        change('users', 'u1', profile('zcox'), 0),
        change('tweets', 't1', { table: 'tweets', userId: 'u1' }, 0),
      ],
      positions: [{ topic: 'users', partition: 0, next: '1' }],
    });
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
    expect(events.map((e) => [e.sequence, [...e.changes.keys()]])).toEqual([[1n, ['u1']]]);
    const instanceId = store.instanceId;
    await store.close();

    const again = openStore({ ...mode, path, viewVersion: 1 });
    expect({
      seq: again.sequence(),
      pos: again.positions(),
      id: again.instanceId,
      tweets: again.getUser('u1')?.tweetCount,
    }).toEqual({
      seq: 1n,
      pos: [{ topic: 'users', partition: 0, next: '1' }],
      id: instanceId,
      tweets: 1,
    });
    expect(again.getUsers(['nobody', 'u1']).map((u) => u?.userId)).toEqual([undefined, 'u1']);
    await again.close();
  });

  it('should keep serving the stored view when the code has another view version, and say a rebuild is needed', async () => {
    const path = tempDir();
    const store = openStore({ ...mode, path, viewVersion: 1 });
    await store.applyBatch({
      changes: [change('users', 'u1', profile('a'), 0)],
      positions: [{ topic: 'users', partition: 0, next: '1' }],
    });
    await store.close();
    const next = openStore({ ...mode, path, viewVersion: 2 });
    expect({
      needsRebuild: next.needsRebuild(),
      viewVersion: next.viewVersion,
      user: next.getUser('u1')?.username,
      positions: next.positions(),
    }).toEqual({
      needsRebuild: true,
      viewVersion: 1,
      user: 'a',
      positions: [{ topic: 'users', partition: 0, next: '1' }],
    });
    await next.close();
  });

  it('should say which commit removed the view of a user without one (removedAt, for resuming subscriptions)', async () => {
    const store = openStore({ ...mode, path: tempDir(), viewVersion: 1 });
    const created = await store.applyBatch({
      changes: [change('users', 'u1', profile('one'), 0), change('users', 'u2', profile('two'), 1)],
      positions: [{ topic: 'users', partition: 0, next: '2' }],
    });
    const deleted = await store.applyBatch({
      changes: [change('users', 'u2', null, 2)],
      positions: [{ topic: 'users', partition: 0, next: '3' }],
    });
    expect({
      withView: store.removedAt('u1'),
      deleted: store.removedAt('u2'),
      neverSeen: store.removedAt('nobody'),
    }).toEqual({ withView: undefined, deleted: deleted.sequence, neverSeen: undefined });
    expect(deleted.sequence).toBeGreaterThan(created.sequence);
    await store.close();
  });

  it('should keep committing when a commit listener throws', async () => {
    const errors: unknown[] = [];
    const store = openStore({
      ...mode,
      path: tempDir(),
      viewVersion: 1,
      onListenerError: (e) => errors.push(e),
    });
    store.onCommit(() => {
      throw new Error('listener bug');
    });
    await store.applyBatch({ changes: [change('users', 'u1', profile('a'), 0)], positions: [] });
    await store.applyBatch({ changes: [change('users', 'u2', profile('b'), 1)], positions: [] });
    expect({ errors: errors.length, seq: store.sequence(), u2: store.getUser('u2')?.username }).toEqual({
      errors: 2,
      seq: 2n,
      u2: 'b',
    });
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
