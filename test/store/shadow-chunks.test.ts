/**
 * A rebuild's chunks (src/store/shadow-chunks.ts): batches for a shadow generation apply in memory and are
 * written together; what is stored is what committing them one by one stores; a chunk whose generation was
 * swapped in or abandoned meanwhile writes nothing; a lost chunk stops its generation's batches.
 * The exactness of a chunk itself is checked against the commit body in
 * test/materializer/reference-model.test.ts.
 */
import type { Worker } from 'node:worker_threads';
import { describe, expect, it, vi } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { MemoryIndex } from '../../src/materializer/memory-state.js';
import { BufferedIndex } from '../../src/store/buffered-generation.js';
import type { Database, RootDatabase } from 'lmdb';
import type { Generation } from '../../src/store/generation.js';
import { openStore, type LmdbStore, type StoreOptions } from '../../src/store/lmdb-store.js';
import { readGenerationInfo } from '../../src/store/write.js';
import { USER_INFORMATION } from '../../src/views/user-information.js';
import type { ShadowChunks } from '../../src/store/shadow-chunks.js';
import type { Generations } from '../../src/store/generations.js';
import { VIEWS } from '../../src/views/registry.js';
import type { KvSpace, ViewModule } from '../../src/views/types.js';
import {
  commitInput,
  FOUR_TWEETS as TWEETS,
  profile as user,
  record as change,
  tweetRecord as tweet,
  TWO_USERS as USERS,
} from '../utils/changes.js';
import { eventually } from '../utils/server.js';
import {
  OVER_STORED_ROWS,
  OVER_STORED_ROWS_END,
  OVER_STORED_ROWS_SERVED,
  rowLookups,
  servedOverStoredRows,
  STORED_TWEETS_LOOKED_UP,
} from '../utils/over-stored-rows.js';
import { tempDir } from '../utils/tmp.js';

const usersInput = () => commitInput(USERS, [{ topic: 'users', partition: 0, next: '2' }]);
const tweetsInput = () => commitInput(TWEETS, [{ topic: 'tweets', partition: 0, next: '4' }]);

/** The store's own chunks (the writer thread off: they run on this thread). */
const chunksOf = (store: LmdbStore): ShadowChunks => (store as unknown as { chunks: ShadowChunks }).chunks;
/** The store's generations, whose swap does not write a chunk first. */
const generationsOf = (store: LmdbStore): Generations =>
  (store as unknown as { generations: Generations }).generations;

describe('buffered index', () => {
  it('should list the first keys of a prefix as the index with its buffered moves written would', () => {
    const rnd = prng(5);
    const keys = Array.from({ length: 300 }, (_, i) => `${i % 3}${String(1000 + ((i * 7919) % 997))}`);
    const pick = () => keys[Math.floor(rnd() * keys.length)]!;
    let checks = 0;
    for (let round = 0; round < 40; round++) {
      const base = new MemoryIndex(8);
      const reference = new MemoryIndex(8);
      for (let i = 0; i < 150; i++) {
        const k = pick();
        base.add(k);
        reference.add(k);
      }
      const buffered = new BufferedIndex(base);
      for (let i = 0; i < 400; i++) {
        // Mostly removals, so that they hide many stored keys ahead of the ones asked for.
        const k = pick();
        if (rnd() < 0.7) {
          buffered.remove(k);
          reference.remove(k);
        } else {
          buffered.add(k);
          reference.add(k);
        }
        const prefix = ['', '0', '1', '2', '10'][Math.floor(rnd() * 5)]!;
        const limit = 1 + Math.floor(rnd() * 20);
        expect(buffered.first(prefix, limit)).toEqual(reference.first(prefix, limit));
        checks++;
      }
      expect([...buffered.all()]).toEqual([...reference.all()]);
      buffered.write();
      expect([...base.all()]).toEqual([...reference.all()]);
    }
    expect(checks).toBe(16_000);
  });
});

/** 30 batches of a tweet and a profile edit of one of four users. */
const feed = Array.from({ length: 30 }, (_, i) =>
  commitInput(
    [tweet(`t${i}`, `u${i % 4}`, i), change('users', `u${i % 4}`, user(`n${i}`), i)],
    [
      { topic: 'tweets', partition: 0, next: String(i + 1) },
      { topic: 'users', partition: 0, next: String(i + 1) },
    ],
  ),
);
const FEED_END = [
  { topic: 'tweets', partition: 0, next: '30' },
  { topic: 'users', partition: 0, next: '30' },
];
const FEED_USERS = ['u0', 'u1', 'u2', 'u3'];

/** The served users, without their versions, and the tweets total. */
function servedOf(store: LmdbStore) {
  return {
    users: FEED_USERS.map((id) => {
      const { version: _v, ...view } = store.getUser(id)!;
      return view;
    }),
    totals: store.totals()!.tweets,
  };
}

/**
 * Waits until `generation` stores the tweets position `next`: a full chunk's write commits while the batches
 * after it apply, so the batch that filled it resolves before it is stored.
 */
async function storedThrough(store: LmdbStore, generation: Generation, next: string): Promise<void> {
  await eventually(
    () => Promise.resolve(store.position('tweets', 0, generation) === next ? true : undefined),
    10_000,
    `the shadow's chunk through tweets offset ${next} to be written`,
  );
}

/** What `feed` gives committed batch by batch into an active generation. */
async function feedCommitted() {
  const store = openStore({ path: tempDir(), writerThread: false });
  for (const input of feed) await store.applyBatch(input);
  const served = servedOf(store);
  await store.close();
  return served;
}

/** A generation's info as stored now (the writer thread writes it), and its stored view of `userId`. */
function storedShadow(store: LmdbStore, generation: Generation, userId: string) {
  const { env, meta } = store as unknown as { env: RootDatabase; meta: Database<string, string> };
  env.resetReadTxn();
  const views = generation.spaces(USER_INFORMATION)['views'] as KvSpace<unknown>;
  return { info: readGenerationInfo(meta, generation.id), view: views.get(userId) };
}

describe.each([{ writerThread: false }, { writerThread: true }])('rebuild chunks (%o)', (mode) => {
  it('should store what batch-by-batch commits store, writing batches that waited together as one chunk', async () => {
    const results = [];
    for (const chunkRecords of [0, 1_000]) {
      const store = openStore({ ...mode, path: tempDir(), rebuildChunkRecords: chunkRecords });
      const { generation } = await store.beginShadow('requested');
      const before = store.sequence();
      // Submitted together: the first commits alone, the rest wait for it and go in together.
      const applied = await Promise.all(feed.map((input) => store.applyBatch(input, generation)));
      const required = [
        { topic: 'tweets', partition: 0, next: '30' },
        { topic: 'users', partition: 0, next: '30' },
      ];
      const swap = await store.trySwap(generation, required);
      results.push({
        chunkRecords,
        writes: Number(swap.sequence! - before) - 1,
        resolvedWith: [...new Set(applied.map((a) => a.sequence - before))],
        users: ['u0', 'u1', 'u2', 'u3'].map((id) => {
          const { version: _v, ...view } = store.getUser(id)!;
          return view;
        }),
        totals: store.totals()!.tweets,
      });
      await store.close();
    }
    // On this thread the grouping is deterministic: without chunks two commits (the first batch, then the 29
    // that waited); with chunks the first batch is held because 29 more wait for it, and one write stores all
    // 30 (their results name the sequence before it: nothing of them was visible or durable yet). The writer
    // thread receives the batches one message at a time, so its groups depend on timing.
    if (!mode.writerThread)
      expect(results.map((r) => [r.writes, r.resolvedWith])).toEqual([
        [2, [1n, 2n]],
        [1, [0n]],
      ]);
    expect(results[1]!.users).toEqual(results[0]!.users);
    expect(results[1]!.totals).toBe(30);
  });

  it("should store each chunk's rows and positions, keep the views in memory until the swap, and swap in what batch-by-batch commits store", async () => {
    const expected = await feedCommitted();
    // Every batch (two records) fills a chunk; the views are written with the swap, or with every chunk
    // when the buffer holds one entry at most.
    for (const viewRebuildBufferEntries of [undefined, 1]) {
      const store = openStore({
        ...mode,
        path: tempDir(),
        rebuildChunkRecords: 2,
        ...(viewRebuildBufferEntries === undefined ? {} : { viewRebuildBufferEntries }),
      });
      const { generation } = await store.beginShadow('requested');
      for (const input of feed) await store.applyBatch(input, generation);
      // The last chunk commits while the next batch could apply (none comes): stored soon after.
      await storedThrough(store, generation, '30');
      const before = storedShadow(store, generation, 'u1');
      if (viewRebuildBufferEntries === undefined) {
        expect(before.info?.viewsPending).toBe(true);
        expect(before.view).toBeUndefined();
        // Not swapped in with its views behind its rows (the store's own swap writes them first).
        expect(await generationsOf(store).trySwap(generation, FEED_END)).toEqual({
          swapped: false,
          behind: [],
        });
      } else {
        expect(before.info?.viewsPending).toBeUndefined();
        expect(before.view).toMatchObject({ userId: 'u1', username: 'n29', tweetCount: 8 });
      }
      const swap = await store.trySwap(generation, FEED_END);
      expect(swap.swapped).toBe(true);
      expect(storedShadow(store, generation, 'u1').info?.viewsPending).toBeUndefined();
      expect(servedOf(store)).toEqual(expected);
      await store.close();
    }
  });
});

describe("a rebuild's views left behind its rows", () => {
  it('should be rebuilt from the rows when the rebuild resumes, which then swaps in what batch-by-batch commits store', async () => {
    const expected = await feedCommitted();
    const path = tempDir();
    const options = { path, writerThread: false, rebuildChunkRecords: 2 };
    let store = openStore(options);
    const { generation } = await store.beginShadow('requested');
    for (const input of feed.slice(0, 15)) await store.applyBatch(input, generation);
    // The process ends with the views in memory only (a crash): rows and positions of 15 batches are stored.
    chunksOf(store).discard();
    await store.close();

    store = openStore(options);
    await expect(store.beginShadow('requested')).rejects.toThrow(
      `shadow generation ${generation.id} needs its views rebuilt from its rows: beginShadow needs topicOf`,
    );
    const resumed = await store.beginShadow('requested', (table) => `${table}-topic`);
    // 15 tweets and 4 users rows.
    expect(resumed).toMatchObject({ resumed: true, viewsRebuiltFrom: 19 });
    const rebuilt = storedShadow(store, resumed.generation, 'u1');
    expect(rebuilt.info?.viewsPending).toBeUndefined();
    // Rebuilt from the rows as inserts, table by table with the users rows last: the row that moved u1 last is
    // its users row (offset 13, after its four tweets), read from the topic `topicOf` names.
    expect(rebuilt.view).toMatchObject({
      userId: 'u1',
      username: 'n13',
      tweetCount: 4,
      version: { source: { topic: 'users-topic', partition: 0, offset: '13' } },
    });
    for (const input of feed.slice(15)) await store.applyBatch(input, resumed.generation);
    expect((await store.trySwap(resumed.generation, FEED_END)).swapped).toBe(true);
    expect(servedOf(store)).toEqual(expected);
    await store.close();
  });
});

describe.each([{ writerThread: false }, { writerThread: true }])(
  'a rebuild that replays its rows first (%o)',
  (mode) => {
    const topicOf = (table: string) => `${table}-topic`;
    const at = (next: string) => [
      { topic: 'tweets', partition: 0, next },
      { topic: 'users', partition: 0, next },
    ];

    it('should store rows only, build its views from them once, then apply views commit by commit and swap in what batch-by-batch commits store', async () => {
      const expected = await feedCommitted();
      const options = { ...mode, path: tempDir(), rebuildChunkRecords: 2 };
      let store = openStore(options);
      const begun = await store.beginShadow('requested', topicOf, { rowsFirst: true });
      expect(begun).toMatchObject({ resumed: false, rowsOnly: true });
      expect(storedShadow(store, begun.generation, 'u1').info?.viewsPending).toBe(true);
      for (const input of feed.slice(0, 20)) await store.applyBatch(input, begun.generation);
      await storedThrough(store, begun.generation, '20');
      // Rows and positions stored, no view: the swap refuses it.
      expect(storedShadow(store, begun.generation, 'u1')).toMatchObject({
        info: { viewsPending: true },
        view: undefined,
      });
      expect(await store.trySwap(begun.generation, at('20'))).toEqual({ swapped: false, behind: [] });
      await store.close();

      // Resumed (a restart): still rows only, its views not rebuilt at the start.
      store = openStore(options);
      const resumed = await store.beginShadow('requested', topicOf, { rowsFirst: true });
      expect(resumed).toEqual({
        generation: resumed.generation,
        resumed: true,
        rowsOnly: true,
        drain: false,
      });
      expect(resumed.generation.id).toBe(begun.generation.id);
      expect(storedShadow(store, resumed.generation, 'u1').view).toBeUndefined();

      // 20 tweets and 4 users rows; u1's last users row is offset 17, after its five tweets.
      expect(await store.buildShadowViews(resumed.generation, topicOf)).toBe(24);
      expect(storedShadow(store, resumed.generation, 'u1')).toMatchObject({
        info: { views: resumed.generation.info.views },
        view: {
          userId: 'u1',
          username: 'n17',
          tweetCount: 5,
          version: { source: { topic: 'users-topic', partition: 0, offset: '17' } },
        },
      });
      expect(storedShadow(store, resumed.generation, 'u1').info?.viewsPending).toBeUndefined();
      // Not behind its rows any more: nothing to build.
      expect(await store.buildShadowViews(resumed.generation, topicOf)).toBeUndefined();

      // The rest with views applied commit by commit (the views buffered across chunks, written with the swap).
      const again = await store.beginShadow('requested', topicOf, { rowsFirst: true, resume: true });
      expect(again).toMatchObject({ resumed: true, rowsOnly: false });
      for (const input of feed.slice(20)) await store.applyBatch(input, again.generation);
      expect((await store.trySwap(again.generation, FEED_END)).swapped).toBe(true);
      expect(servedOf(store)).toEqual(expected);
      await store.close();
    });

    it('should give the values it built from the rows that equal the old ones their old versions, swapped in with no commit after the build', async () => {
      const store = openStore({ ...mode, path: tempDir(), rebuildChunkRecords: 2 });
      for (const input of feed) await store.applyBatch(input);
      const old = FEED_USERS.map((id) => store.getUser(id)!.version);
      const swapEvents: string[][] = [];
      store.onCommit((event) =>
        swapEvents.push([
          ...((event.views.get(USER_INFORMATION) ?? new Map()) as Map<string, unknown>).keys(),
        ]),
      );
      const { generation } = await store.beginShadow('requested', topicOf, { rowsFirst: true });
      for (const input of feed) await store.applyBatch(input, generation);
      await store.buildShadowViews(generation, topicOf);
      // Nothing commits between the build and the swap: the swap's sequence is still above the build's values'.
      const swap = await store.trySwap(generation, FEED_END);
      expect(swap.swapped).toBe(true);
      expect(swapEvents).toEqual([[]]);
      expect(FEED_USERS.map((id) => store.getUser(id)!.version)).toEqual(old);
      await store.reconciled();
      expect(FEED_USERS.map((id) => store.getUser(id)!.version)).toEqual(old);
      await store.close();
    });

    it('should stop building its views at a stop, leave them behind its rows, and build them whole the next time', async () => {
      const store = openStore({ ...mode, path: tempDir() });
      const { generation } = await store.beginShadow('requested', topicOf, { rowsFirst: true });
      // 60k tweets rows of 100 users: pages of SHADOW_BUILD_PAGE_ROWS (20k), so the build has pages left.
      const rows = 60_000;
      const tweets = Array.from({ length: rows }, (_, i) => tweet(`t${i}`, `u${i % 100}`, i));
      await store.applyBatch(commitInput(tweets), generation);
      await store.applyBatch(
        commitInput(Array.from({ length: 100 }, (_, i) => change('users', `u${i}`, user(`n${i}`), i))),
        generation,
      );
      const building = store.buildShadowViews(generation, topicOf);
      store.abortShadowBuild();
      await expect(building).rejects.toThrow('stopped before the views were built');
      expect(storedShadow(store, generation, 'u1')).toMatchObject({
        info: { viewsPending: true },
        view: undefined,
      });
      expect(await store.buildShadowViews(generation, topicOf)).toBe(rows + 100);
      expect(storedShadow(store, generation, 'u1')).toMatchObject({
        view: { userId: 'u1', username: 'n1', tweetCount: rows / 100 },
      });
      expect(storedShadow(store, generation, 'u1').info?.viewsPending).toBeUndefined();
      await store.close();
    });

    it('should apply views commit by commit when its commits do not go through chunks (REBUILD_CHUNK_RECORDS=0)', async () => {
      const store = openStore({ ...mode, path: tempDir(), rebuildChunkRecords: 0 });
      const begun = await store.beginShadow('requested', topicOf, { rowsFirst: true });
      expect(begun).toMatchObject({ resumed: false, rowsOnly: false });
      for (const input of feed.slice(0, 2)) await store.applyBatch(input, begun.generation);
      expect(storedShadow(store, begun.generation, 'u1')).toMatchObject({
        view: { userId: 'u1', username: 'n1', tweetCount: 1 },
      });
      expect(storedShadow(store, begun.generation, 'u1').info?.viewsPending).toBeUndefined();
      await store.close();
    });
  },
);

describe.each([{ writerThread: false }, { writerThread: true }])(
  'rebuild chunks over rows earlier chunks stored (%o)',
  (mode) => {
    const served = (path: string) => servedOverStoredRows({ ...mode, path });

    it('should find every row an earlier chunk stored, in this process and after a restart, and look up no new one', async () => {
      const direct = tempDir();
      const committed = openStore({ ...mode, path: direct });
      for (const input of OVER_STORED_ROWS) await committed.applyBatch(input);
      await committed.close();
      const expected = await served(direct);
      expect(expected).toMatchObject(OVER_STORED_ROWS_SERVED);

      // In one process: after the first chunk, rows are looked up only where an earlier chunk stored them.
      const path = tempDir();
      const lookedUp = await rowLookups(async () => {
        const store = openStore({ ...mode, path, rebuildChunkRecords: 2 });
        const { generation } = await store.beginShadow('requested');
        for (const input of OVER_STORED_ROWS) await store.applyBatch(input, generation);
        expect((await store.trySwap(generation, OVER_STORED_ROWS_END)).swapped).toBe(true);
        await store.close();
      });
      expect(await served(path)).toEqual(expected);
      // The writer thread looks its rows up in its own copy of the module.
      if (!mode.writerThread) {
        expect(lookedUp).toContain('users/u0');
        // Those stored by an earlier batch, each once at most: one that the chunk before holds while it
        // commits is found there (its write overlaps the next chunk's batches), not in LMDB.
        const tweets = lookedUp.filter((k) => k.startsWith('tweets/'));
        expect(tweets.filter((k) => !STORED_TWEETS_LOOKED_UP.includes(k))).toEqual([]);
        expect(new Set(tweets).size).toBe(tweets.length);
      }

      // Stopped after three chunks, resumed by another process over the rows they stored.
      const resumedPath = tempDir();
      let store = openStore({ ...mode, path: resumedPath, rebuildChunkRecords: 2 });
      const { generation } = await store.beginShadow('requested');
      for (const input of OVER_STORED_ROWS.slice(0, 3)) await store.applyBatch(input, generation);
      await store.close();
      store = openStore({ ...mode, path: resumedPath, rebuildChunkRecords: 2 });
      const resumed = await store.beginShadow('requested', (table) => table);
      expect(resumed.resumed).toBe(true);
      for (const input of OVER_STORED_ROWS.slice(3)) await store.applyBatch(input, resumed.generation);
      expect((await store.trySwap(resumed.generation, OVER_STORED_ROWS_END)).swapped).toBe(true);
      await store.close();
      expect(await served(resumedPath)).toEqual(expected);
    });
  },
);

/**
 * A store in a new directory, with the writer thread off, whose rebuild writes a chunk every two records;
 * every chunk write that fails on its own is collected in `errors`.
 */
function chunkEveryTwoRecords(options: Partial<StoreOptions> = {}) {
  const errors: unknown[] = [];
  const path = tempDir();
  const store = openStore({
    ...options,
    path,
    writerThread: false,
    rebuildChunkRecords: 2,
    onChunkWriteError: (e) => errors.push(e),
  });
  return { store, errors, path };
}

describe('a rebuild chunk that commits while the next batches apply', () => {
  type Transaction = RootDatabase['transaction'];
  /**
   * A store (writer thread off) whose rebuild writes a chunk every batch of OVER_STORED_ROWS, the write of
   * the second chunk (t0 and t1 of u0) going through `writeSecond` (given lmdb-js' own transaction).
   */
  async function secondChunkThrough(writeSecond: (transaction: Transaction) => Transaction) {
    const { store, errors, path } = chunkEveryTwoRecords();
    const { generation } = await store.beginShadow('requested');
    await store.applyBatch(OVER_STORED_ROWS[0]!, generation);
    const env = (store as unknown as { env: RootDatabase }).env;
    vi.spyOn(env, 'transaction').mockImplementationOnce(writeSecond(env.transaction.bind(env)));
    // Resolves once its chunk (full) has written its rows in its transaction, which commits meanwhile.
    await store.applyBatch(OVER_STORED_ROWS[1]!, generation);
    return { store, generation, errors, path };
  }

  it('should have the next batch read the shadow through it until its write settled, and store what batch-by-batch commits store', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    // The write runs, and what it returns settles once `held` does: in flight as the store sees it.
    const { store, generation, path } = await secondChunkThrough((transaction) => (write) => {
      const done = transaction(write);
      return held.then(() => done);
    });
    // The third batch moves t1, stored by the held chunk: found in the chunk, not looked up in LMDB.
    let third: Promise<unknown> | undefined;
    const lookedUp = await rowLookups(async () => {
      third = store.applyBatch(OVER_STORED_ROWS[2]!, generation);
      const chunk = () => (chunksOf(store) as unknown as { chunk?: { records: number } }).chunk;
      await eventually(
        () => Promise.resolve(chunk()?.records === 2 ? true : undefined),
        10_000,
        'the third batch to apply',
      );
    });
    expect(lookedUp.filter((k) => k.startsWith('tweets/'))).toEqual([]);
    release();
    await third;
    for (const input of OVER_STORED_ROWS.slice(3)) await store.applyBatch(input, generation);
    expect((await store.trySwap(generation, OVER_STORED_ROWS_END)).swapped).toBe(true);
    await store.close();
    expect(await servedOverStoredRows({ path, writerThread: false })).toMatchObject(OVER_STORED_ROWS_SERVED);
  });

  it('should, when it fails, be reported, and leave the shadow at the chunk before, refusing its later batches', async () => {
    const { store, generation, errors } = await secondChunkThrough(
      () => () => Promise.reject(new Error('I/O error')),
    );
    const failed = 'LMDB write failed (rebuild chunk): I/O error';
    for (const input of OVER_STORED_ROWS.slice(2))
      await expect(store.applyBatch(input, generation)).rejects.toThrow(
        `an earlier chunk of this rebuild was lost (${failed})`,
      );
    expect(errors.map((e) => (e as Error).message)).toEqual([failed]);
    expect([store.position('users', 0, generation), store.position('tweets', 0, generation)]).toEqual([
      '2',
      undefined,
    ]);
    await store.close();
  });
});

describe.each([{ writerThread: false }, { writerThread: true }])('rebuild chunks, idle (%o)', (mode) => {
  it('should write a chunk on its own once no batch came for a while, and when the store closes', async () => {
    const path = tempDir();
    const store = openStore({ ...mode, path });
    const { generation } = await store.beginShadow('requested');
    await store.applyBatch(usersInput(), generation);
    await eventually(
      () => Promise.resolve(store.position('users', 0, generation) === '2' ? true : undefined),
      10_000,
      'the idle chunk to be written',
    );
    await store.applyBatch(tweetsInput(), generation);
    await store.close();
    const reopened = openStore({ ...mode, path });
    const shadow = reopened.shadowGeneration()!;
    expect([reopened.position('users', 0, shadow), reopened.position('tweets', 0, shadow)]).toEqual([
      '2',
      '4',
    ]);
    await reopened.close();
  });
});

describe('rebuild chunks under steady traffic', () => {
  it('should write a chunk once its first batch is old enough, though batches keep coming', async () => {
    // No idle pause ever long enough: only the chunk's age writes it (the swap waits for stored positions).
    const store = openStore({
      path: tempDir(),
      writerThread: false,
      rebuildChunkTiming: { idleMs: 3_600_000, maxAgeMs: 50 },
    });
    const { generation } = await store.beginShadow('requested');
    let offset = 0;
    await eventually(
      async () => {
        await store.applyBatch(commitInput([tweet(`t${offset}`, 'u1', offset)]), generation);
        offset++;
        await new Promise((r) => setTimeout(r, 10));
        return store.position('tweets', 0, generation) !== undefined ? true : undefined;
      },
      10_000,
      'a chunk written while batches keep coming',
    );
    await store.close();
  });
});

describe('rebuild chunks on the writer thread', () => {
  it('should refuse the batches of a shadow whose chunk may have ended with the writer thread', async () => {
    const store = openStore({ path: tempDir(), writerThread: true });
    const { generation } = await store.beginShadow('requested');
    await store.applyBatch(usersInput(), generation);
    // The worker ends (a crash of the thread): whether it wrote its chunk is unknown here.
    const worker = (store as unknown as { writer: { worker: Worker } }).writer.worker;
    await worker.terminate();
    await expect(store.applyBatch(tweetsInput(), generation)).rejects.toThrow(
      'the writer thread ended while it held a chunk of this rebuild',
    );
    // A new worker serves the active generation.
    expect((await store.applyBatch(tweetsInput())).accepted).toBe(4);
    await store.close();
  });
});

describe('rebuild chunks and the generations they are for', () => {
  it('should write nothing into a shadow that was swapped in or abandoned while its chunk waited', async () => {
    const store = openStore({ path: tempDir(), writerThread: false });
    await store.applyBatch(usersInput());
    await store.applyBatch(tweetsInput());
    const chunks = chunksOf(store);
    const { generation } = await store.beginShadow('requested');

    await chunks.apply(usersInput(), generation.id, 1);
    // Held in memory: neither rows nor positions are stored before the chunk's write.
    expect(store.position('users', 0, generation)).toBeUndefined();
    await chunks.write();
    expect(store.position('users', 0, generation)).toBe('2');

    // The tweets wait in the next chunk while the swap (asked only for the users) happens: they came after
    // the chunk the swap wrote first (LmdbStore.trySwap), so its transaction alone runs here.
    await chunks.apply(tweetsInput(), generation.id, 1);
    expect(chunks.pending).toBe(generation.id);
    const swap = await generationsOf(store).trySwap(generation, [
      { topic: 'users', partition: 0, next: '2' },
    ]);
    expect(swap.swapped).toBe(true);
    await chunks.write();
    // The live feed applies those records to the generation now active: the chunk wrote nothing.
    expect({ position: store.position('tweets', 0), tweets: store.getUser('u1')!.tweetCount }).toEqual({
      position: undefined,
      tweets: 0,
    });
    const late = await chunks.apply(tweetsInput(), generation.id, 1);
    expect({ accepted: late.accepted, skipped: late.skipped, pending: chunks.pending }).toEqual({
      accepted: 0,
      skipped: 4,
      pending: undefined,
    });

    await store.reconciled();
    const next = await store.beginShadow('requested');
    await chunks.apply(usersInput(), next.generation.id, 1);
    await store.abandonShadow();
    await chunks.write(); // its generation is gone: nothing to write, no error
    await expect(chunks.apply(usersInput(), next.generation.id, 1)).rejects.toThrow(
      `the store has no generation ${next.generation.id}`,
    );
    await store.close();
  });

  it('should refuse the batches of a generation whose chunk was lost, and leave it at its last written chunk', async () => {
    // A view with a broken invariant on one key: the commit body throws halfway through the commit.
    const broken: ViewModule = {
      name: 'broken',
      version: 1,
      reads: {},
      dependsOn: [],
      spaces: {},
      apply(input) {
        for (let i = 0; i < input.transitions.length; i++)
          if (input.transitions.key[i] === 'boom') throw new Error('invariant broken');
        return {};
      },
    };
    const store = openStore({ path: tempDir(), writerThread: false, views: [...VIEWS, broken] });
    const { generation } = await store.beginShadow('requested');
    await store.applyBatch(usersInput(), generation);
    await chunksOf(store).write();
    expect(store.position('users', 0, generation)).toBe('2');

    const held = store.applyBatch(
      commitInput([tweet('t1', 'u1', 0)], [{ topic: 'tweets', partition: 0, next: '1' }]),
      generation,
    );
    const failing = store.applyBatch(
      commitInput([tweet('boom', 'u1', 1)], [{ topic: 'tweets', partition: 0, next: '2' }]),
      generation,
    );
    const after = store.applyBatch(
      commitInput([tweet('t3', 'u1', 2)], [{ topic: 'tweets', partition: 0, next: '3' }]),
      generation,
    );
    // `held` resolved into the chunk; `failing` and `after` were merged into one commit, which threw halfway,
    // so the chunk is lost; retried one by one, both are refused for it.
    await held;
    await expect(failing).rejects.toThrow('an earlier chunk of this rebuild was lost (invariant broken)');
    await expect(after).rejects.toThrow('an earlier chunk of this rebuild was lost (invariant broken)');
    expect(store.position('tweets', 0, generation)).toBeUndefined();
    // The active generation commits as before.
    expect((await store.applyBatch(tweetsInput())).accepted).toBe(4);
    await store.close();
  });
});

/** A view of one KV space whose values run `onEncode` as they are encoded (written to LMDB). */
const encodingView = (name: string, onEncode: () => void): ViewModule => ({
  name,
  version: 1,
  reads: { tweets: ['userId'] },
  dependsOn: [],
  spaces: {
    seen: {
      kind: 'kv',
      codec: {
        encode: (value) => {
          onEncode();
          return Buffer.from(String(value));
        },
        decode: (bytes) => bytes.toString(),
      },
    },
  },
  apply(input, spaces) {
    for (let i = 0; i < input.transitions.length; i++)
      (spaces['seen'] as KvSpace<unknown>).put(input.transitions.key[i]!, 'yes');
    return {};
  },
});

/**
 * A view whose stored values cannot be encoded while `full()`: a chunk's write fails as on a full disk (values
 * are encoded when the chunk is written, not when its batches apply).
 */
const fullDiskView = (full: () => boolean): ViewModule =>
  encodingView('full-disk', () => {
    if (full()) throw new Error('no space left');
  });

/**
 * A store whose rebuild has one chunk waiting (a batch of tweets applied to its shadow), with the full-disk
 * view and the idle pause given; every chunk write that fails is collected in `errors`. Its views are kept
 * across chunks up to one entry: each chunk writes them.
 */
async function chunkOnFullDisk(full: () => boolean, idleMs: number) {
  const errors: unknown[] = [];
  const store = openStore({
    path: tempDir(),
    writerThread: false,
    views: [...VIEWS, fullDiskView(full)],
    rebuildChunkTiming: { idleMs },
    viewRebuildBufferEntries: 1,
    onChunkWriteError: (e) => errors.push(e),
  });
  const { generation } = await store.beginShadow('requested');
  await store.applyBatch(tweetsInput(), generation);
  return { store, generation, errors };
}

describe('a rebuild chunk that fails to be written', () => {
  it('should be reported, kept and written again once it can be, when nothing waited for it', async () => {
    let full = true;
    const { store, generation, errors } = await chunkOnFullDisk(() => full, 10);
    await eventually(
      () => Promise.resolve(errors.length > 0 ? true : undefined),
      10_000,
      'the idle write to fail',
    );
    expect((errors[0] as Error).message).toBe('LMDB write failed (rebuild chunk): no space left');
    expect(store.position('tweets', 0, generation)).toBeUndefined();
    full = false;
    // Tried again RETRY_WRITE_MS after each failure, with the chunk it kept.
    await eventually(
      () => Promise.resolve(store.position('tweets', 0, generation) === '4' ? true : undefined),
      10_000,
      'the kept chunk to be written',
    );
    await store.close();
  });

  it('should be reported when the store closes', async () => {
    const { store, errors } = await chunkOnFullDisk(() => true, 3_600_000);
    expect(errors).toEqual([]);
    await store.close();
    expect(errors.map((e) => (e as Error).message)).toEqual([
      'LMDB write failed (rebuild chunk): no space left',
    ]);
  });
});

/** A view that calls `onWrite` each time one of its values is encoded (written to LMDB). */
const probeView = (onWrite: () => void): ViewModule => encodingView('probe', onWrite);

/** The served users, their tweets ranking and the tweets total. */
function rankedOf(store: LmdbStore) {
  return { ...servedOf(store), top: store.topUserIds('TWEETS', 10) };
}

describe("a rebuild's many buffered views", () => {
  it.each([
    ['alone', false],
    ['behind a shadow batch that arrived meanwhile', true],
  ])(
    'should be written in slices before the swap, a live commit %s getting in between them',
    async (_, shadowBatch) => {
      const expected = await feedCommitted();
      // A batch of the rebuild's feed, arriving during the write: it waits for the write (it applies over the
      // views being written), in its own queue, not in the live commits' way (commit-queue.ts CommitQueues).
      let late: Promise<unknown> | undefined;
      // What the shadow had stored when the live commit was durable.
      let during: Promise<ReturnType<typeof storedShadow>> | undefined;
      // The probe's values are the first written (the first view). Its first write sends a live commit, once
      // out of the transaction's callback (lmdb-js runs a transaction asked for inside one as part of it).
      const sendLive = () =>
        queueMicrotask(() => {
          if (during !== undefined) return;
          if (shadowBatch)
            late = store.applyBatch(
              commitInput([tweet('t30', 'u2', 30)], [{ topic: 'tweets', partition: 0, next: '31' }]),
              generation,
            );
          during = store.applyBatch(usersInput()).then(() => storedShadow(store, generation, 'u1'));
        });
      const store = openStore({
        path: tempDir(),
        writerThread: false,
        rebuildChunkRecords: 2,
        viewWriteSlice: 3,
        views: [probeView(sendLive), ...VIEWS],
      });
      const { generation } = await store.beginShadow('requested');
      for (const input of feed) await store.applyBatch(input, generation);
      expect(during).toBeUndefined();
      const swapped = await store.trySwap(generation, FEED_END);
      // The live commit was durable while the shadow's views were still being written: LMDB ran it after the
      // first slice. In one transaction, the views and the mark's clearing come before it.
      expect(await during).toMatchObject({ info: { viewsPending: true }, view: undefined });
      expect(swapped.swapped).toBe(true);
      expect(storedShadow(store, generation, 'u1').info?.viewsPending).toBeUndefined();
      expect(servedOf(store)).toEqual(expected);
      // Applied to the chunk after the views, then dropped: its generation is active now (the live feed
      // applies those records).
      await late;
      expect(late === undefined).toBe(!shadowBatch);
      await store.close();
    },
  );

  it('should be written again whole after a slice failed, with what later commits removed removed', async () => {
    // u1's tweets t1, t5 and t9 deleted after the failed write: its count and rank key move.
    const deletions = commitInput(
      [change('tweets', 't1', null, 30), change('tweets', 't5', null, 31), change('tweets', 't9', null, 32)],
      [{ topic: 'tweets', partition: 0, next: '33' }],
    );
    const reference = openStore({ path: tempDir(), writerThread: false });
    for (const input of [...feed, deletions]) await reference.applyBatch(input);
    const expected = rankedOf(reference);
    await reference.close();
    expect(expected.users[1]).toMatchObject({ userId: 'u1', tweetCount: 5 });

    let full = false;
    const { store, errors } = chunkEveryTwoRecords({
      viewWriteSlice: 3,
      rebuildChunkTiming: { idleMs: 3_600_000 },
      // The full-disk view's values are the last written: the slices before its first one succeed.
      views: [...VIEWS, fullDiskView(() => full)],
    });
    const { generation } = await store.beginShadow('requested');
    for (const input of feed) await store.applyBatch(input, generation);
    full = true;
    await expect(store.trySwap(generation, FEED_END)).rejects.toThrow(
      'LMDB write failed (rebuild views): no space left',
    );
    // Part of the views is stored (u1's among them), still marked behind the rows: the swap refuses it.
    const partly = storedShadow(store, generation, 'u1');
    expect(partly.info?.viewsPending).toBe(true);
    expect(partly.view).toMatchObject({ userId: 'u1', tweetCount: 8 });

    full = false;
    await store.applyBatch(deletions, generation);
    const end = [
      { topic: 'tweets', partition: 0, next: '33' },
      { topic: 'users', partition: 0, next: '30' },
    ];
    expect((await store.trySwap(generation, end)).swapped).toBe(true);
    expect(rankedOf(store)).toEqual(expected);
    expect(errors).toEqual([]);
    await store.close();
  });
});
