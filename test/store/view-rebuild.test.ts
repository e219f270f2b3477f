/**
 * Issue 16, point 2: a version per view. Bumping one view's version rebuilds that view (and the views that
 * depend on it) alone, from the stored rows; every other view, the rows and the offsets stay byte for byte
 * what they were.
 */
import { cpSync } from 'node:fs';
import { open, type RootDatabase } from 'lmdb';
import { describe, expect, it, vi } from 'vitest';
import { openStore } from '../../src/store/lmdb-store.js';
import { userChanges, type CommitEvent } from '../../src/store/types.js';
import { verifyGeneration } from '../../src/store/verify.js';
import { REPLAY_ORDER, replayPages } from '../../src/store/view-rebuild.js';
import { VIEWS } from '../../src/views/registry.js';
import { TABLES, type Table } from '../../src/views/source.js';
import { encodeView } from '../../src/views/codec.js';
import { RANKINGS, TOP_USERS_VERSION } from '../../src/views/top-users.js';
import { USER_INFORMATION_VERSION } from '../../src/views/user-information.js';
import { commitInput, follow, like, profile, sequential, tweet } from '../utils/changes.js';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { tempDir } from '../utils/tmp.js';

const bump = (name: string) => VIEWS.map((v) => (v.name === name ? { ...v, version: v.version + 1 } : v));
const topicOf = (table: Table) => `${table}-topic`;

/** Every database of the store, name → every (key, value) as hex. */
async function dump(path: string): Promise<Map<string, string>> {
  const env = open({ path, maxDbs: 128 });
  const out = new Map<string, string>();
  for (const name of [...env.getKeys()] as string[]) {
    const db = env.openDB<Buffer, string>({ name, encoding: 'binary', keyEncoding: 'binary' });
    const entries: string[] = [];
    for (const { key, value } of db.getRange())
      entries.push(
        `${Buffer.from(key as unknown as Buffer).toString('hex')}=${Buffer.from(value).toString('hex')}`,
      );
    out.set(name, entries.join(','));
  }
  await env.close();
  return out;
}

async function seeded(): Promise<string> {
  const path = tempDir();
  const store = openStore({ path });
  await store.applyBatch(
    commitInput(
      sequential([
        ['users', 'a', profile('alice')],
        ['users', 'b', profile('bob')],
        ['users', 'c', profile('carol')],
        ['tweets', 't1', tweet('a')],
        ['tweets', 't2', tweet('b')],
        ['tweets', 't3', tweet('b')],
        ['follows', 'f1', follow('a', 'b')],
        ['follows', 'f2', follow('c', 'b')],
        ['follows', 'f3', follow('b', 'c')],
        ['likes', 'l1', like('c')],
        ['tweets', 't4', tweet('ghost')],
      ]),
    ),
  );
  await store.close();
  return path;
}

describe('a view version bump', () => {
  it('should rebuild that view alone from the rows and leave everything else byte for byte as it was', async () => {
    const path = await seeded();
    const before = await dump(path);

    const store = openStore({ path, views: bump('top-users') });
    const events: CommitEvent[] = [];
    store.onCommit((e) => events.push(e));
    expect({ stale: store.staleViews(), full: store.fullRebuildReason() }).toEqual({
      stale: ['top-users'],
      full: undefined,
    });
    const top = Object.fromEntries(RANKINGS.map((r) => [r, store.topUserIds(r, 10)]));
    const result = await store.rebuildStaleViews(topicOf);
    expect({ rebuilt: result?.rebuilt, rows: result?.rows, sequence: result?.sequence }).toEqual({
      rebuilt: ['top-users'],
      rows: 11,
      sequence: 2n,
    });
    // The same rankings, from the new build; nobody's list changed, so no event names the view.
    expect(Object.fromEntries(RANKINGS.map((r) => [r, store.topUserIds(r, 10)]))).toEqual(top);
    expect(top['FOLLOWERS']).toEqual(['b', 'c', 'a']);
    expect(events.map((e) => [e.sequence, [...e.views.keys()]])).toEqual([[2n, []]]);
    // No user's view can have gone: resuming subscriptions still know when the last one did.
    expect(store.userViewsRemovedAt()).toBe(0n);
    expect({ stale: store.staleViews(), versions: store.viewVersions() }).toEqual({
      stale: [],
      versions: {
        'user-information': USER_INFORMATION_VERSION,
        'top-users': TOP_USERS_VERSION + 1,
        totals: 1,
      },
    });
    expect(verifyGeneration(store.registry, store.activeGeneration()).differences).toEqual([]);
    await store.close();

    const after = await dump(path);
    const changed = [...new Set([...before.keys(), ...after.keys()])].filter(
      (n) => before.get(n) !== after.get(n),
    );
    // Only the ranking's databases (old build dropped, new one written) and meta (generation info, sequence).
    expect(changed.sort()).toEqual([
      'g1/top-users#1/meta',
      'g1/top-users#1/rank',
      'g1/top-users#2/meta',
      'g1/top-users#2/rank',
      'meta',
    ]);
    expect(after.has('g1/top-users#1/rank')).toBe(false);
  });

  it('should rebuild the views that depend on a rebuilt view; a value that comes out the same keeps its version, a changed one gets the rebuild commit', async () => {
    const path = await seeded();
    const old = openStore({ path });
    const views = Object.fromEntries(['a', 'b', 'c'].map((id) => [id, old.getUser(id)!]));
    await old.close();
    // a's stored view is wrong (say, written by a buggy version of the view): the rebuild recomputes it.
    const env = open({ path, maxDbs: 128 });
    await env
      .openDB<Buffer, string>({ name: 'g1/user-information#1/views', encoding: 'binary' })
      .put('a', encodeView({ ...views['a']!, tweetCount: 99 }));
    await env.close();
    const before = await dump(path);

    const store = openStore({ path, views: bump('user-information') });
    // Read in the listener: the event compares the builds, and the old one is dropped after it (CommitEvent).
    const events: [bigint, string[]][] = [];
    store.onCommit((e) => events.push([e.sequence, [...userChanges(e).keys()].sort()]));
    const result = await store.rebuildStaleViews(topicOf);
    expect(result?.rebuilt).toEqual(['user-information', 'top-users']);
    // b and c come out as they were: the same version, no event (no empty pushes).
    for (const id of ['b', 'c']) expect(store.getUser(id)).toEqual(views[id]);
    // a is fixed: the rebuild commit, and a current row that moved the user in the replay.
    const { version, ...rest } = store.getUser('a')!;
    const { version: _old, ...was } = views['a']!;
    expect(rest).toEqual(was);
    expect(version.sequence).toBe('2');
    expect(version.source.topic).toMatch(/-topic$/);
    expect(events).toEqual([[2n, ['a']]]);
    // A rebuilt UserInformation may lack users it had: resuming subscriptions treat it as a removal.
    expect(store.userViewsRemovedAt()).toBe(2n);
    expect(verifyGeneration(store.registry, store.activeGeneration()).differences).toEqual([]);
    await store.close();

    const after = await dump(path);
    for (const name of ['g1/rows', 'g1/offsets', 'g1/totals#1/totals'])
      expect(after.get(name)).toBe(before.get(name));
  });
});

describe('a view rebuilt from the rows in memory', () => {
  /** 60 users and 1,500 records: tweets, follows and likes created, moved to another user and deleted. */
  async function busy(): Promise<string> {
    const path = tempDir();
    const store = openStore({ path });
    const random = prng(7);
    const user = () => `u${Math.floor(random() * 60)}`;
    const entries: [Table, string, ReturnType<typeof tweet> | null][] = [];
    for (let i = 0; i < 60; i++) entries.push(['users', `u${i}`, profile(`user${i}`)]);
    for (let i = 0; i < 1_440; i++) {
      const key = String(Math.floor(random() * 400));
      const r = random();
      if (r < 0.3) entries.push(['tweets', `t${key}`, random() < 0.2 ? null : tweet(user())]);
      else if (r < 0.6) entries.push(['follows', `f${key}`, random() < 0.2 ? null : follow(user(), user())]);
      else if (r < 0.9) entries.push(['likes', `l${key}`, random() < 0.2 ? null : like(user())]);
      else entries.push(['users', user(), random() < 0.3 ? null : profile(`renamed${i}`)]);
    }
    await store.applyBatch(commitInput(sequential(entries)));
    await store.close();
    return path;
  }

  /** The rebuilt view's databases after a rebuild that writes every `bufferEntries` entries. */
  async function rebuilt(source: string, bufferEntries: number | undefined): Promise<Map<string, string>> {
    const path = tempDir();
    cpSync(source, path, { recursive: true });
    const store = openStore({
      path,
      views: bump('user-information'),
      ...(bufferEntries === undefined ? {} : { viewRebuildBufferEntries: bufferEntries }),
    });
    expect((await store.rebuildStaleViews(topicOf))?.rebuilt).toEqual(['user-information', 'top-users']);
    expect(verifyGeneration(store.registry, store.activeGeneration()).differences).toEqual([]);
    await store.close();
    const dbs = await dump(path);
    return new Map([...dbs].filter(([name]) => /^g1\/(user-information|top-users)#/.test(name)));
  }

  it('should write the same databases whether it buffers everything or writes after every page', async () => {
    const source = await busy();
    const whole = await rebuilt(source, undefined);
    // A write after each table's page: the later pages move rank keys and counts already written.
    const paged = await rebuilt(source, 1);
    expect([...whole.keys()].sort()).toEqual([
      'g1/top-users#2/meta',
      'g1/top-users#2/rank',
      'g1/user-information#2/counts',
      'g1/user-information#2/views',
    ]);
    expect(whole.get('g1/top-users#2/rank')!.split(',').length).toBeGreaterThan(100);
    expect(paged).toEqual(whole);
  });

  describe('its write, a slice of entries at a time', () => {
    type Slice = RootDatabase['batch'];
    /**
     * `busy()`'s store with UserInformation bumped, its rebuild writing every entry as a slice of its own:
     * each slice (an lmdb-js `batch`) goes through `through`, given the real `batch`, the slice's action and
     * the call's number from 1.
     */
    async function sliced(through: (batch: Slice, action: () => unknown, call: number) => Promise<boolean>) {
      const path = tempDir();
      cpSync(await busy(), path, { recursive: true });
      const store = openStore({ path, views: bump('user-information'), viewRebuildBufferEntries: 1 });
      const env = (store as unknown as { env: RootDatabase }).env;
      const batch = env.batch.bind(env);
      let calls = 0;
      vi.spyOn(env, 'batch').mockImplementation((action) => through(batch, action, ++calls));
      return { store, path, calls: () => calls };
    }

    it('should queue the next slice while one commits, two at most, none left queued once it returns', async () => {
      let queued = 0;
      let most = 0;
      const { store, calls } = await sliced(async (batch, action) => {
        most = Math.max(most, ++queued);
        const written = await batch(action);
        // A turn of the event loop after its commit: the next slice had its chance to queue meanwhile.
        await new Promise<void>((r) => setImmediate(r));
        queued--;
        return written;
      });
      const result = await store.rebuildStaleViews(topicOf);
      expect({ rebuilt: result?.rebuilt, queued, most }).toEqual({
        rebuilt: ['user-information', 'top-users'],
        queued: 0,
        most: 2,
      });
      expect(calls()).toBeGreaterThan(100);
      expect(verifyGeneration(store.registry, store.activeGeneration()).differences).toEqual([]);
      await store.close();
    });

    it('should fail the rebuild when a slice fails to commit, queue nothing after it, and leave the old build serving', async () => {
      const { store, path, calls } = await sliced(async (batch, action, call) => {
        const written = await batch(action);
        if (call === 3) throw new Error('MDB_MAP_FULL: Environment mapsize limit reached');
        return written;
      });
      const served = () => Array.from({ length: 60 }, (_, i) => store.getUser(`u${i}`));
      const before = { stale: store.staleViews(), users: served() };
      expect(before.stale).toEqual(['user-information']);
      expect(before.users.filter((u) => u !== undefined).length).toBeGreaterThan(40);
      await expect(store.rebuildStaleViews(topicOf)).rejects.toThrow('MDB_MAP_FULL');
      // The fourth slice was queued while the third committed; none after the failure.
      expect(calls()).toBe(4);
      expect({ stale: store.staleViews(), users: served() }).toEqual(before);
      await store.close();
      // The next start rebuilds it whole.
      const again = openStore({ path, views: bump('user-information') });
      expect((await again.rebuildStaleViews(topicOf))?.rebuilt).toEqual(['user-information', 'top-users']);
      expect(verifyGeneration(again.registry, again.activeGeneration()).differences).toEqual([]);
      await again.close();
    });
  });
});

describe('the replay of the stored rows', () => {
  // Keys whose order in the store is not JavaScript's string order: characters below 5 (escaped by the key
  // encoding in short keys, not in keys of 64 characters or more), a first character below 28, surrogates.
  const KEYS = [
    'a',
    'b\u0001',
    'b\u0005',
    `b${'\u0001'.repeat(70)}`,
    `b${'x'.repeat(70)}`,
    '\u0002z',
    '\u00e9',
    '\ud83d\ude00',
    '\uffff',
  ];
  const rowOf = (table: Table, key: string) =>
    table === 'users'
      ? profile(`n-${key}`)
      : table === 'tweets'
        ? tweet(key)
        : table === 'follows'
          ? follow(key, 'a')
          : like(key);

  it.each([1, 2, 4, 100])(
    'should give each page of %i rows exactly the rows of the pages before it, the users rows last',
    async (pageRows) => {
      const path = tempDir();
      const store = openStore({ path });
      await store.applyBatch(
        commitInput(
          sequential(
            TABLES.flatMap((t) =>
              KEYS.map((k): [Table, string, ReturnType<typeof tweet>] => [t, k, rowOf(t, k)]),
            ),
          ),
        ),
      );
      const seen: [Table, string][] = [];
      const tables: Table[] = [];
      for (const { page, rows } of replayPages(store.activeGeneration().rows, pageRows)) {
        const { table } = page;
        expect(page.length).toBeLessThanOrEqual(pageRows);
        if (tables.at(-1) !== table) tables.push(table);
        // Every stored row is present exactly when an earlier page replayed it.
        for (const t of TABLES)
          for (const k of KEYS)
            expect([t, k, rows.row(t, k) !== undefined]).toEqual([
              t,
              k,
              seen.some(([st, sk]) => st === t && sk === k),
            ]);
        for (const k of page.keys) seen.push([table, k]);
      }
      expect(tables).toEqual(REPLAY_ORDER);
      expect(REPLAY_ORDER.at(-1)).toBe('users');
      expect(seen.length).toBe(TABLES.length * KEYS.length);
      await store.close();
    },
  );
});
