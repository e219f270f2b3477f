/**
 * Issue 8.4, disk full and store errors.
 *
 * - The LMDB map grows by itself: a store opened with a 1 MiB map takes far more than 1 MiB (lmdb-js
 *   resizes the map when a commit hits MDB_MAP_FULL), so LMDB_MAP_SIZE_MB is a starting size, never a
 *   cap that could stop the feed.
 * - A real full disk: DATA_DIR is a 16 MiB tmpfs (mounted by this test; it needs root, and is skipped
 *   with a message otherwise), filled with a filler file, while big records keep arriving. The commit
 *   that cannot be written fails (LMDB reports it as an I/O error); the feed stops applying with a log
 *   line and `matview_store_errors_total`, the feed reports itself crashed (the CLI then exits non-zero
 *   so a supervisor restarts it), reads keep being answered from the last commit, and the store is exactly
 *   a prefix of the feed: the served view and the stored state equal the reference over the records below
 *   the stored offsets (no offset was stored past what was applied, nothing applied past the offsets).
 *   With the filler removed, a restart on the same DATA_DIR resumes and ends equal to the full reference.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { FeedRecord } from '../../src/feed/types.js';
import { loadConfig } from '../../src/ops/config.js';
import { startServer, type Running } from '../../src/wiring/runtime.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { openEmbeddedChangelog } from '../../src/feed/embedded-changelog.js';
import { silentLogger } from '../../src/ops/logger.js';
import { StoreWriteError } from '../../src/errors.js';
import { commitInput, profile } from '../utils/changes.js';
import { produce, useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics, graphql, type TestTopics } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';
import {
  computeReference,
  expectServedViewEquals,
  expectStoreEquals,
  feedStatus,
  readTopics,
  waitCaughtUp,
} from './support/reference.js';

const kafka = useKafka();
const mounts: string[] = [];
const servers: Running[] = [];
afterAll(async () => {
  await Promise.allSettled(servers.map((s) => s.close()));
  for (const m of mounts) {
    try {
      execFileSync('umount', [m], { stdio: 'ignore' });
    } catch {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    }
  }
});

/** Mounts a tmpfs of `mb` MiB, or returns why it cannot (not root, no mount permission). */
function mountTmpfs(mb: number): { dir: string } | { skip: string } {
  const dir = join(tempDir('matview-tmpfs-'), 'mnt');
  mkdirSync(dir);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    return { skip: `cannot mount a tmpfs here (needs root): ${(e as Error).message.split('\n')[0]}` };
  }
  mounts.push(dir);
  return { dir };
}

/** A 16 MiB tmpfs for the test, or the test skipped with the reason (not root). */
function tmpfsOrSkip(ctx: { skip: () => never }): { dir: string } {
  const mounted = mountTmpfs(16);
  if ('skip' in mounted) {
    console.log(`disk-full: skipped: ${mounted.skip}`);
    ctx.skip();
  }
  return mounted;
}

/** Fills the filesystem holding `dir` with one file, until the kernel says ENOSPC. */
function fill(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  return path;
}

async function serve(dataDir: string, topics: TestTopics, logs: string[]): Promise<Running> {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    TOPIC_USERS: topics.users,
    TOPIC_TWEETS: topics.tweets,
    TOPIC_FOLLOWS: topics.follows,
    TOPIC_LIKES: topics.likes,
    KAFKA_BROKERS: kafka.brokers.join(','),
    LMDB_MAP_SIZE_MB: '1',
    DEMO: 'false',
  });
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
  const running = await startServer(config, logger);
  servers.push(running);
  return running;
}

const json = (o: object) => JSON.stringify(o);
/** `n` users rows of ~`kb` KiB each (a long description), keys u<from>…. */
const bigUsers = (from: number, n: number, kb: number) =>
  Array.from({ length: n }, (_, i) => ({
    key: `u${from + i}`,
    value: json({ userId: `u${from + i}`, username: `user${from + i}`, description: 'd'.repeat(kb * 1024) }),
  }));

describe('store errors', () => {
  it('should grow the LMDB map by itself past LMDB_MAP_SIZE_MB', async () => {
    const store = openStore({ path: join(tempDir(), 'view'), mapSize: 1024 * 1024 });
    try {
      const description = 'x'.repeat(16 * 1024);
      for (let b = 0; b < 16; b++) {
        await store.applyBatch(
          commitInput(
            Array.from({ length: 16 }, (_, i) => ({
              table: 'users' as const,
              key: `u${b}-${i}`,
              row: profile('n', { description }),
              offset: b * 16 + i,
            })),
          ),
        );
      }
      expect(store.sizeBytes()).toBeGreaterThan(4 * 1024 * 1024);
      expect(store.getUser('u15-15')?.description).toBe(description);
      expect(store.position('users', 0)).toBe('256');
    } finally {
      await store.close();
    }
  });

  it('should stop applying on a full disk, keep serving reads, store no offset past what was applied, and resume once there is space', async (ctx) => {
    const mounted = tmpfsOrSkip(ctx);
    const dataDir = mounted.dir;
    const topics = freshTopics();
    const logs: string[] = [];
    const first = await serve(dataDir, topics, logs);
    const url = `http://127.0.0.1:${first.port}`;
    let fatal: Error | undefined;
    void first.fatal.then((e) => (fatal = e));

    await produce(kafka.brokers, topics.users, bigUsers(0, 20, 1));
    await produce(
      kafka.brokers,
      topics.tweets,
      Array.from({ length: 100 }, (_, i) => ({ key: `t${i}`, value: json({ userId: `u${i % 20}` }) })),
    );
    await waitCaughtUp(url, kafka.brokers, topics);

    const filler = fill(dataDir);
    // ~12 MiB of new rows and views: more than any free page LMDB could reuse.
    for (let i = 0; i < 6; i++) await produce(kafka.brokers, topics.users, bigUsers(100 + i * 20, 20, 50));
    await produce(
      kafka.brokers,
      topics.tweets,
      Array.from({ length: 100 }, (_, i) => ({ key: `t${100 + i}`, value: json({ userId: `u${i % 20}` }) })),
    );

    // The feed stops, saying why, with a metric.
    await eventually(() => fatal, 60_000, 'the feed to stop on the store error');
    const status = await feedStatus(url);
    expect(status.state).toBe('CRASHED');
    expect(status.reason).toMatch(/LMDB write failed/);
    expect((await fetch(`${url}/health/live`)).status).toBe(503);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(Number(/^matview_store_errors_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    const failure = logs
      .map((l) => JSON.parse(l) as { msg: string; err?: { message?: string } })
      .find((l) => l.msg.startsWith('store commit failed'));
    expect(failure?.err?.message, 'a log line naming the store error').toMatch(
      /LMDB write failed.*(Input\/output error|No space left)/,
    );

    // Reads go on, and the store is exactly the prefix below its offsets.
    const sequence = status.sequence;
    const positions = new Map(
      first.store.positions().map((p) => [`${p.topic}/${p.partition}`, BigInt(p.next)]),
    );
    const below = (r: FeedRecord) => BigInt(r.offset) < (positions.get(`${r.topic}/${r.partition}`) ?? 0n);
    const read = await readTopics(kafka.brokers, topics);
    const prefix = computeReference(read, (_t, r) => below(r));
    const full = computeReference(read);
    expect(prefix.recordCount).toBeGreaterThan(0);
    expect([...positions.values()].reduce((n, p) => n + p, 0n)).toBeLessThan(BigInt(full.recordCount));
    await expectServedViewEquals(url, prefix);
    expect((await fetch(`${url}/users/u0`)).status).toBe(200);
    expect((await graphql(url, '{ user(id: "u1") { userId tweetCount } }')).errors).toBeUndefined();
    expect((await feedStatus(url)).sequence).toBe(sequence);

    await first.close();
    await expectStoreEquals(dataDir, topics, prefix);

    // Space again: a restart resumes from the stored offsets and ends complete.
    rmSync(filler);
    const second = await serve(dataDir, topics, logs);
    const secondUrl = `http://127.0.0.1:${second.port}`;
    await waitCaughtUp(secondUrl, kafka.brokers, topics);
    await expectServedViewEquals(secondUrl, full);
    await second.close();
    await expectStoreEquals(dataDir, topics, full);
  }, 180_000);
});

describe('a rebuild chunk on a full disk, written by the writer thread', () => {
  it('should be reported, kept, and written once there is space again', async (ctx) => {
    const mounted = tmpfsOrSkip(ctx);
    const errors: unknown[] = [];
    const store = openStore({
      path: join(mounted.dir, 'view'),
      writerThread: true,
      rebuildChunkTiming: { idleMs: 10 },
      onChunkWriteError: (e) => errors.push(e),
    });
    try {
      const { generation } = await store.beginShadow('requested');
      const filler = fill(mounted.dir);
      // 64 users of 16 KiB each: the chunk needs pages the full disk does not have.
      const description = 'x'.repeat(16 * 1024);
      const batch = commitInput(
        Array.from({ length: 64 }, (_, i) => ({
          table: 'users' as const,
          key: `u${i}`,
          row: profile('n', { description }),
          offset: i,
        })),
      );
      // Applied to the chunk in memory: it resolves before anything is written.
      await store.applyBatch(batch, generation);
      await eventually(() => (errors.length > 0 ? true : undefined), 10_000, 'the idle write to fail');
      // The real cause, read from lmdb-js' commitError (left unread, it was an unhandled rejection that ended
      // the writer thread, and the chunk with it).
      expect(errors[0]).toBeInstanceOf(StoreWriteError);
      expect((errors[0] as Error).message).toMatch(
        /^LMDB write failed \(rebuild chunk\): (Input\/output error|No space left on device)/,
      );
      expect(store.position('users', 0, generation)).toBeUndefined();
      rmSync(filler);
      await eventually(
        () => (store.position('users', 0, generation) === '64' ? true : undefined),
        10_000,
        'the kept chunk to be written',
      );
    } finally {
      await store.close();
    }
  });
});

describe('the embedded changelog on a full disk', () => {
  it('should reject the append with the cause, not end the process with an unhandled rejection', async (ctx) => {
    const mounted = tmpfsOrSkip(ctx);
    const log = await openEmbeddedChangelog({ dir: join(mounted.dir, 'changelog'), logger: silentLogger });
    await log.send('users', [{ key: 'u0', value: '{}' }]);
    fill(mounted.dir);
    const big = Array.from({ length: 64 }, (_, i) => ({ key: `u${i}`, value: 'x'.repeat(16 * 1024) }));
    const error = await log.send('users', big).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as Error | undefined)?.message).toMatch(
      /^the embedded changelog could not be written: (Input\/output error|No space left on device)/,
    );
    // Not closed: lmdb-js' close waits for the failed commit's promise, which never settles (the process
    // exits meanwhile; the tmpfs is unmounted lazily).
  });
});
