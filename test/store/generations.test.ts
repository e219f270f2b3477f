/**
 * Store generations: a shadow is filled without readers or subscribers seeing it, swaps in only once it
 * reached the required offsets, in one transaction, and survives reopening; orphans are collected.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/lmdb-store.js';
import { REBUILD_REQUEST_FILE } from '../../src/store/requests.js';
import { userChanges, type CommitEvent } from '../../src/store/types.js';
import { VIEWS } from '../../src/views/registry.js';
import {
  commitInput,
  FOUR_TWEETS as TWEETS,
  profile as user,
  record as change,
  tweetRecord as tweet,
  TWO_USERS as USERS,
} from '../utils/changes.js';
import { tempDir } from '../utils/tmp.js';

// Every case on both write paths: batches committed on this thread, and on the writer thread.
describe.each([{ writerThread: false }, { writerThread: true }])('store generations (%o)', (mode) => {
  it('should fill a shadow invisibly, refuse to swap while it is behind, then swap atomically and drop the old one', async () => {
    const path = tempDir();
    const v1 = openStore({ ...mode, path });
    await v1.applyBatch(commitInput(USERS, [{ topic: 'users', partition: 0, next: '2' }]));
    await v1.applyBatch(commitInput(TWEETS, [{ topic: 'tweets', partition: 0, next: '4' }]));
    await v1.close();
    const store = openStore({ ...mode, path });
    const old = store.getUser('u1');
    const oldTotals = store.totals();
    // Summarized inside the listener: a swap's event reads both generations and is valid only during the call.
    const events: [bigint, string[], number | undefined][] = [];
    store.onCommit((e: CommitEvent) =>
      events.push([e.sequence, [...userChanges(e).keys()].sort(), userChanges(e).get('u1')?.tweetCount]),
    );

    const { generation, resumed } = await store.beginShadow('requested');
    expect({ resumed, id: generation.id, shadow: store.shadowGeneration()?.id }).toEqual({
      resumed: false,
      id: 2,
      shadow: 2,
    });
    const applied = await store.applyBatch(
      commitInput(USERS, [{ topic: 'users', partition: 0, next: '2' }]),
      generation,
    );
    expect({ visible: applied.visible, events: events.length, read: store.getUser('u1') }).toEqual({
      visible: false,
      events: 0,
      read: old,
    });

    const required = [
      { topic: 'users', partition: 0, next: '2' },
      { topic: 'tweets', partition: 0, next: '4' },
    ];
    const refused = await store.trySwap(generation, required);
    expect(refused).toEqual({
      swapped: false,
      behind: [{ topic: 'tweets', partition: 0, next: '0', required: '4' }],
    });
    expect({ active: store.activeGeneration().id, read: store.getUser('u1') }).toEqual({
      active: 1,
      read: old,
    });

    await store.applyBatch(
      commitInput(TWEETS.slice(0, 2), [{ topic: 'tweets', partition: 0, next: '2' }]),
      generation,
    );
    expect((await store.trySwap(generation, required)).swapped).toBe(false);
    await store.applyBatch(
      commitInput(TWEETS.slice(2), [{ topic: 'tweets', partition: 0, next: '4' }]),
      generation,
    );
    const before = store.sequence();
    const swap = await store.trySwap(generation, required);
    expect({
      swapped: swap.swapped,
      from: swap.from?.id,
      to: swap.to?.id,
      sequence: swap.sequence! > before,
      // The new generation may lack views the old one had: resuming subscriptions treat the swap as a removal.
      removedAt: store.userViewsRemovedAt() === swap.sequence,
    }).toEqual({
      swapped: true,
      from: 1,
      to: 2,
      sequence: true,
      removedAt: true,
    });
    // Same counts, produced by the shadow's own commits: the swap changed nothing visible for u1, so it reads
    // exactly as before, version included (no empty pushes), while the swap is reconciled and after;
    // and so does the REST route's version (its ETag), read without decoding the version.
    expect(store.getUser('u1')).toEqual(old);
    expect(store.getUserJsonVersioned('u1')).toEqual({
      json: store.getUserJson('u1'),
      sequence: old!.version.sequence,
    });
    expect(store.totals()).toEqual(oldTotals); // the same totals: their version stays too
    // The rebuild's consumer, not stopped yet, commits a batch it read before the swap into the generation it
    // built, which is the active one now: nothing is written (the live feed applies those records), so that
    // nothing commits between the swap and the release of the live feed.
    const late = await store.applyBatch(
      commitInput([tweet('t9', 'u2', 4)], [{ topic: 'tweets', partition: 0, next: '5' }]),
      generation,
    );
    expect({
      visible: late.visible,
      skipped: late.skipped,
      sequence: late.sequence,
      position: store.position('tweets', 0),
      tweets: store.getUser('u2')!.tweetCount,
    }).toEqual({ visible: false, skipped: 1, sequence: swap.sequence, position: '4', tweets: 1 });
    await store.reconciled();
    expect(store.getUser('u1')).toEqual(old);
    expect(store.getUserJsonVersioned('u1')?.sequence).toBe(old!.version.sequence);
    expect(store.totals()).toEqual(oldTotals);
    const later = await store.applyBatch(commitInput([tweet('t5', 'u1', 4)], []));
    expect(store.getUser('u1')!.version.sequence).toBe(String(later.sequence));
    expect(store.getUserJsonVersioned('u1')?.sequence).toBe(String(later.sequence));
    expect({
      active: store.activeGeneration().id,
      stale: store.staleViews(),
      full: store.fullRebuildReason(),
      shadow: store.shadowGeneration(),
    }).toEqual({
      active: 2,
      stale: [],
      full: undefined,
      shadow: undefined,
    });
    // The swap recomputed the same profiles and counts: its commit event names nobody (no empty pushes), so no
    // subscriber is woken by it.
    expect(events).toEqual([
      [swap.sequence, [], undefined],
      [later.sequence, ['u1'], 4],
    ]);
    await store.close();

    const env = open({ path, maxDbs: 64 });
    const names = [...env.getKeys()].sort();
    await env.close();
    expect(names).toEqual(
      [
        'meta',
        'outbox',
        'view-outbox',
        'g2/offsets',
        'g2/rows',
        'g2/top-users#1/meta',
        'g2/top-users#1/rank',
        'g2/totals#1/totals',
        'g2/user-information#1/counts',
        'g2/user-information#1/views',
      ].sort(),
    );

    const again = openStore({ ...mode, path });
    expect({
      active: again.activeGeneration().id,
      u1: again.getUser('u1')?.tweetCount,
      pos: again.positions().length,
    }).toEqual({
      active: 2,
      u1: 4,
      pos: 2,
    });
    await again.close();
  });

  it('should publish at a swap exactly the users whose profile or counts differ, and move only their versions', async () => {
    const path = tempDir();
    const store = openStore({ ...mode, path, reconcileChunk: 1 });
    const u3 = change('users', 'u3', user('three'), 2);
    await store.applyBatch(
      commitInput(
        [...USERS, u3, ...TWEETS],
        [
          { topic: 'users', partition: 0, next: '3' },
          { topic: 'tweets', partition: 0, next: '4' },
        ],
      ),
    );
    // u4 exists only in the generation being replaced (its records are gone from the topics, say).
    await store.applyBatch(commitInput([change('users', 'u4', user('four'), 9)], []));
    const { generation } = await store.beginShadow('requested');
    // The shadow reads more: a tweet of u2 (u2 differs) and the tombstone of u3 (u3 is gone).
    await store.applyBatch(
      commitInput(
        [...USERS, u3, change('users', 'u3', null, 3), ...TWEETS, tweet('t5', 'u2', 4)],
        [
          { topic: 'users', partition: 0, next: '4' },
          { topic: 'tweets', partition: 0, next: '5' },
        ],
      ),
      generation,
    );
    const u1 = store.getUser('u1')!;
    const seen: { keys: string[]; has: boolean[]; u2?: number | undefined; u3?: unknown }[] = [];
    store.onCommit((e) => {
      const changes = userChanges(e);
      seen.push({
        keys: [...changes.keys()].sort(),
        has: ['u1', 'u2', 'u3', 'nobody'].map((id) => changes.has(id)),
        u2: changes.get('u2')?.tweetCount,
        u3: changes.get('u3'),
      });
    });
    const swap = await store.trySwap(generation, []);
    expect(swap.swapped).toBe(true);
    expect(seen).toEqual([{ keys: ['u2', 'u3', 'u4'], has: [false, true, true, false], u2: 2, u3: null }]);
    // As readers see it: u1 did not change (its version stays), u2 and the totals changed at the swap (never a
    // sequence below what was served before), u3 and u4 were removed by it.
    const at = String(swap.sequence);
    const reads = (s: typeof store) => ({
      u1: s.getUser('u1'),
      u1Etag: s.getUserJsonVersioned('u1')?.sequence,
      u2: s.getUser('u2')?.version.sequence,
      u2Etag: s.getUserJsonVersioned('u2')?.sequence,
      gone: [s.getUser('u3'), s.getUser('u4')],
      totals: [s.totals()?.users, s.totals()?.tweets, s.totals()?.version.sequence],
    });
    const expected = {
      u1,
      u1Etag: u1.version.sequence,
      u2: at,
      u2Etag: at,
      gone: [undefined, undefined],
      totals: [2, 5, at],
    };
    expect(reads(store)).toEqual(expected); // while the swap is reconciled
    await store.close(); // reconcileChunk 1: stops part-way through
    const again = openStore({ ...mode, path, reconcileChunk: 1 });
    expect(again.activeGeneration().info.reconciled).toBeUndefined();
    expect(reads(again)).toEqual(expected); // the retiring generation is kept for the rest of the pass
    await again.collectGarbage(); // which the serving process resumes
    await again.reconciled();
    expect(reads(again)).toEqual(expected);
    expect(again.activeGeneration().info.reconciled).toBe(true);
    await again.close();
    const env = open({ path, maxDbs: 128 });
    const names = [...env.getKeys()].map(String);
    await env.close();
    expect(names.filter((n) => n.startsWith('g1/'))).toEqual([]);
  });

  it('should write live batches to whichever generation is active when they commit, and never move offsets back', async () => {
    const store = openStore({ ...mode, path: tempDir() });
    await store.applyBatch(commitInput(USERS, [{ topic: 'users', partition: 0, next: '2' }]));
    const { generation } = await store.beginShadow('requested');
    await store.applyBatch(
      commitInput(
        [...USERS, ...TWEETS],
        [
          { topic: 'users', partition: 0, next: '2' },
          { topic: 'tweets', partition: 0, next: '4' },
        ],
      ),
      generation,
    );
    expect((await store.trySwap(generation, [{ topic: 'users', partition: 0, next: '2' }])).swapped).toBe(
      true,
    );
    // A live consumer that was behind the shadow re-delivers old records: skipped, and the offset stays.
    const replay = await store.applyBatch(
      commitInput(TWEETS.slice(0, 1), [{ topic: 'tweets', partition: 0, next: '1' }]),
    );
    expect({
      generation: replay.generation,
      visible: replay.visible,
      skipped: replay.skipped,
      pos: store.position('tweets', 0),
      tweets: store.getUser('u1')?.tweetCount,
    }).toEqual({
      generation: 2,
      visible: true,
      skipped: 1,
      pos: '4',
      tweets: 3,
    });
    await store.close();
  });

  it('should resume a shadow of the same version after reopening and replace one of another version', async () => {
    const path = tempDir();
    const store = openStore({ ...mode, path });
    const first = await store.beginShadow('requested');
    await store.applyBatch(
      commitInput(USERS, [{ topic: 'users', partition: 0, next: '2' }]),
      first.generation,
    );
    await store.close();

    const reopened = openStore({ ...mode, path });
    const resumed = await reopened.beginShadow('resume');
    expect({
      resumed: resumed.resumed,
      id: resumed.generation.id,
      pos: reopened.position('users', 0, resumed.generation),
    }).toEqual({
      resumed: true,
      id: 2,
      pos: '2',
    });
    await reopened.close();
    // The code's views changed (a version bumped): the shadow built for the old ones is dropped.
    const bumped = VIEWS.map((v) => (v.name === 'totals' ? { ...v, version: v.version + 1 } : v));
    const next = openStore({ ...mode, writerThread: false, path, views: bumped });
    const replaced = await next.beginShadow('resume');
    expect({
      resumed: replaced.resumed,
      id: replaced.generation.id,
      pos: next.position('users', 0, replaced.generation),
    }).toEqual({
      resumed: false,
      id: 3,
      pos: undefined,
    });
    await next.close();
  });

  it('should keep a --drain mark on its shadow across reopening, add one to a shadow under way, and drop it at the swap', async () => {
    const path = tempDir();
    const store = openStore({ ...mode, path });
    await store.applyBatch(commitInput(USERS, [{ topic: 'users', partition: 0, next: '2' }]));
    const tool = openStore({ ...mode, path, create: false });
    expect(tool.requestRebuild('test', true)).toMatchObject({ reason: 'test', drain: true });
    await tool.close();
    const request = store.rebuildRequest();
    expect(request?.drain).toBe(true);
    const begun = await store.beginShadow('requested', undefined, { drain: request?.drain === true });
    expect({ drain: begun.drain, request: store.rebuildRequest() }).toEqual({
      drain: true,
      request: undefined,
    });
    await store.close();

    // A restart resumes it still marked, without the request (cleared when the shadow began).
    const reopened = openStore({ ...mode, path });
    const resumed = await reopened.beginShadow('resume');
    expect({ resumed: resumed.resumed, drain: resumed.drain }).toEqual({ resumed: true, drain: true });
    await reopened.applyBatch(
      commitInput(USERS, [{ topic: 'users', partition: 0, next: '2' }]),
      resumed.generation,
    );
    const swap = await reopened.trySwap(resumed.generation, [{ topic: 'users', partition: 0, next: '2' }]);
    expect({ swapped: swap.swapped, drain: reopened.activeGeneration().info.drain }).toEqual({
      swapped: true,
      drain: undefined,
    });

    // A shadow begun without it takes the mark from a later `--drain` request that it serves.
    const plain = await reopened.beginShadow('requested');
    expect({ drain: plain.drain, marked: await reopened.drainShadow() }).toEqual({
      drain: false,
      marked: true,
    });
    await reopened.close();
    const again = openStore({ ...mode, path });
    expect((await again.beginShadow('resume')).drain).toBe(true);
    await again.abandonShadow();
    expect(await again.drainShadow()).toBe(false);
    await again.close();
  });

  it("should keep a --drain mark given while the shadow's rows replay through the build of its views from them", async () => {
    const path = tempDir();
    const store = openStore({ ...mode, path });
    await store.applyBatch(commitInput(USERS, [{ topic: 'users', partition: 0, next: '2' }]));
    const begun = await store.beginShadow('requested', (table) => table, { rowsFirst: true });
    expect({ drain: begun.drain, marked: await store.drainShadow() }).toEqual({ drain: false, marked: true });
    await store.applyBatch(
      commitInput(USERS, [{ topic: 'users', partition: 0, next: '2' }]),
      begun.generation,
    );
    await store.buildShadowViews(begun.generation, (table) => table);
    await store.close();
    const reopened = openStore({ ...mode, path });
    expect((await reopened.beginShadow('resume')).drain).toBe(true);
    await reopened.close();
  });

  it('should honour and clear a rebuild request an earlier matview recorded in the meta records', async () => {
    const path = tempDir();
    await openStore({ ...mode, path }).close();
    const env = open({ path, maxDbs: 64 });
    const meta = env.openDB<string, string>({ name: 'meta', encoding: 'string' });
    await meta.put(
      'rebuildRequested',
      JSON.stringify({ requestedAt: '2026-01-01T00:00:00.000Z', reason: 'old' }),
    );
    await env.close();
    const server = openStore({ ...mode, path });
    expect(server.rebuildRequest()).toEqual({
      requestedAt: '2026-01-01T00:00:00.000Z',
      reason: 'old',
      drain: false,
    });
    await server.beginShadow('requested');
    expect(server.rebuildRequest()).toBeUndefined();
    await server.close();
  });

  it('should take a request file it cannot parse as a request, and clear it', async () => {
    const path = tempDir();
    const server = openStore({ ...mode, path });
    writeFileSync(join(path, REBUILD_REQUEST_FILE), '{"requestedAt": "2026-');
    expect(server.rebuildRequest()?.reason).toMatch(/^rebuild-request\.json \(unreadable: /);
    await server.beginShadow('requested');
    expect(server.rebuildRequest()).toBeUndefined();
    await server.close();
  });

  it('should record rebuild requests and the owning process across handles, and drop orphaned generations', async () => {
    const path = tempDir();
    const server = openStore({ ...mode, path });
    await server.claimOwner();
    const tool = openStore({ ...mode, path, create: false });
    expect(tool.liveOwner()?.pid).toBe(process.pid);
    // The request is a file next to the store: the tool commits nothing into the server's environment
    // (only the server writes its store: requests.ts).
    const lastTxn = await lastTxnId(path);
    expect(tool.requestRebuild('test').reason).toBe('test');
    await tool.close();
    expect(await lastTxnId(path)).toBe(lastTxn);
    expect(existsSync(join(path, REBUILD_REQUEST_FILE))).toBe(true);
    expect(server.rebuildRequest()?.reason).toBe('test');
    const { generation } = await server.beginShadow('requested');
    expect(server.rebuildRequest()).toBeUndefined();
    expect(existsSync(join(path, REBUILD_REQUEST_FILE))).toBe(false);
    await server.releaseOwner();
    expect(server.liveOwner()).toBeUndefined();
    await server.close();

    // Simulate a crash that left the shadow's dbs but no meta pointing at them.
    const env = open({ path, maxDbs: 64 });
    const meta = env.openDB<string, string>({ name: 'meta', encoding: 'string' });
    await meta.remove('shadowGeneration');
    await env.close();
    const reopened = openStore({ ...mode, path });
    expect(await reopened.collectGarbage()).toEqual([generation.id]);
    await reopened.close();
  });

  it('should refuse to open a missing store without creating one', () => {
    const path = join(tempDir(), 'nothing');
    expect(() => openStore({ ...mode, path, create: false })).toThrow(/No matview store/);
    expect(existsSync(path)).toBe(false);
  });

  it('should back up a consistent copy with its offsets', async () => {
    const store = openStore({ ...mode, path: tempDir() });
    await store.applyBatch(
      commitInput([...USERS, ...TWEETS], [{ topic: 'tweets', partition: 0, next: '4' }]),
    );
    const dir = join(tempDir(), 'copy');
    await store.backup(dir);
    const copy = openStore({ ...mode, path: dir, create: false });
    expect({
      id: copy.instanceId,
      u1: copy.getUser('u1'),
      pos: copy.positions(),
      seq: copy.sequence(),
    }).toEqual({
      id: store.instanceId,
      u1: store.getUser('u1'),
      pos: store.positions(),
      seq: store.sequence(),
    });
    await copy.close();
    await store.close();
  });
});

/** The id of the last transaction committed to the store at `path` (lmdb-js shares an open environment). */
async function lastTxnId(path: string): Promise<number> {
  const env = open({ path, maxDbs: 64 });
  try {
    return (env.getStats() as { lastTxnId: number }).lastTxnId;
  } finally {
    await env.close();
  }
}
