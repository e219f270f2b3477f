/**
 * Issue 6, acceptance 4: `matview snapshot` of a store a server is using, then `matview restore` into a
 * fresh data dir: the restored instance starts from the snapshot's offsets, consumes only the records
 * written after them, and becomes ready with the same view as a full replay would give.
 * Also `matview rebuild`: requested against a running server (and waited for), and without one.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/lmdb-store.js';
import { produce, useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics, graphql } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';
import { scrape, startOpsServer, type OpsServer } from '../ops/helpers.js';
import { runCli } from './run-cli.js';

const kafka = useKafka();
const servers: OpsServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

const json = (o: object) => JSON.stringify(o);
const USERS = ['s0', 's1', 's2', 's3', 's4'];
const QUERY = `query($ids: [ID!]!) { users(ids: $ids) { userId username tweetCount likeCount } }`;
const tweets = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, k) => ({
    key: `t${from + k}`,
    value: json({ userId: USERS[(from + k) % 5] }),
  }));
const expected = (n: number) =>
  USERS.map((u, i) => ({
    userId: u,
    username: u.toUpperCase(),
    tweetCount: Array.from({ length: n }, (_, k) => k).filter((k) => k % 5 === i).length,
    likeCount: 1,
  }));

async function viewOf(server: OpsServer, n: number) {
  return eventually(
    async () => {
      const r = await graphql<{ users: unknown[] }>(server.url, QUERY, { ids: USERS });
      return JSON.stringify(r.data?.users) === JSON.stringify(expected(n)) ? r.data!.users : undefined;
    },
    45_000,
    `the view of ${n} tweets`,
  );
}

/** Fresh topics with the five users, a like each and `n` tweets, served by a new server once it shows them. */
async function serveUsersWithTweets(n: number) {
  const topics = freshTopics();
  await produce(
    kafka.brokers,
    topics.users,
    USERS.map((u) => ({ key: u, value: json({ username: u.toUpperCase() }) })),
  );
  await produce(
    kafka.brokers,
    topics.likes,
    USERS.map((u, i) => ({ key: `l${i}`, value: json({ userId: u, tweetId: 'x' }) })),
  );
  await produce(kafka.brokers, topics.tweets, tweets(0, n));
  const server = await startOpsServer({ brokers: kafka.brokers, topics });
  servers.push(server);
  await viewOf(server, n);
  return { topics, server };
}

describe('snapshot and restore', () => {
  it('should restore a snapshot taken while serving and consume only the records after its offsets', async () => {
    const { topics, server: a } = await serveUsersWithTweets(300);
    const atSnapshot = a.running.store.positions();

    const file = join(tempDir(), 'matview.snapshot');
    const snap = await runCli(['snapshot', file], { DATA_DIR: a.config.dataDir });
    expect({ code: snap.code, stderr: snap.stderr }).toEqual({ code: 0, stderr: '' });
    expect(snap.stdout).toMatch(
      /^snapshot: wrote .*matview\.snapshot \(\d+ bytes\): generation 1, views user-information@2 top-users@3 totals@1, sequence \d+, instance /,
    );
    expect(existsSync(`${file}.tmp-${process.pid}`)).toBe(false);
    // Refuses to overwrite without --force.
    expect((await runCli(['snapshot', file], { DATA_DIR: a.config.dataDir })).code).toBe(1);

    await produce(kafka.brokers, topics.tweets, tweets(300, 340));

    const dataDir = tempDir();
    const restore = await runCli(['restore', file], {
      DATA_DIR: dataDir,
      KAFKA_BROKERS: kafka.brokers.join(','),
    });
    expect({
      code: restore.code,
      stderr: restore.stderr,
      last: restore.stdout.trim().split('\n').pop(),
    }).toEqual({
      code: 0,
      stderr: '',
      last: 'restore: `matview serve` resumes the feed from these offsets',
    });
    const restored = openStore({ path: join(dataDir, 'view'), create: false });
    const identity = { positions: restored.positions(), instanceId: restored.instanceId };
    await restored.close();
    expect(identity.positions).toEqual(atSnapshot);
    expect(identity.instanceId).not.toBe(a.running.store.instanceId);
    // Restoring over an existing store needs --force.
    expect((await runCli(['restore', file], { DATA_DIR: dataDir })).code).toBe(1);

    // A runs on, in its own consumer group; B joins its own (new identity) and reads only the 40 new tweets.
    const b = await startOpsServer({ brokers: kafka.brokers, topics, dataDir });
    servers.push(b);
    await eventually(
      async () => ((await fetch(`${b.url}/health/ready`)).status === 200 ? true : undefined),
      45_000,
      'B ready',
    );
    await viewOf(b, 340);
    const metrics = await scrape(b.url);
    expect({
      applied: metrics.sum('matview_records_applied_total'),
      skipped: metrics.sum('matview_records_skipped_total'),
      appliedUsers: metrics.sum('matview_records_applied_total', { topic: topics.users }),
    }).toEqual({ applied: 40, skipped: 0, appliedUsers: 0 });
  });

  it('should move the snapshot in with --move, and give back a file that is not a snapshot', async () => {
    const source = tempDir();
    const store = openStore({ path: join(source, 'view') });
    const instanceId = store.instanceId;
    await store.close();
    const file = join(tempDir(), 'moved.mdb');
    expect((await runCli(['snapshot', file], { DATA_DIR: source })).code).toBe(0);

    const target = tempDir();
    const moved = await runCli(['restore', '--move', file], { DATA_DIR: target });
    expect({ code: moved.code, stderr: moved.stderr, fileLeft: existsSync(file) }).toEqual({
      code: 0,
      stderr: '',
      fileLeft: false,
    });
    const restored = openStore({ path: join(target, 'view'), create: false });
    const restoredId = restored.instanceId;
    await restored.close();
    expect(restoredId).not.toBe(instanceId);

    const bogus = join(tempDir(), 'bogus.mdb');
    writeFileSync(bogus, 'not an LMDB file'.repeat(1000));
    const refused = await runCli(['restore', '--move', bogus], { DATA_DIR: tempDir() });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('is not a matview snapshot');
    expect(readFileSync(bogus, 'utf8')).toBe('not an LMDB file'.repeat(1000));
  });

  it('should hand a rebuild request to the running server, and record one for the next start without a server', async () => {
    const { server } = await serveUsersWithTweets(50);

    const waited = await runCli(['rebuild', '--wait', '--timeout-ms', '45000'], {
      DATA_DIR: server.config.dataDir,
    });
    expect({
      code: waited.code,
      stderr: waited.stderr,
      last: waited.stdout.trim().split('\n').pop(),
    }).toEqual({
      code: 0,
      stderr: '',
      last: 'rebuild: done: generation 2 is active (was 1)',
    });
    expect(server.running.store.activeGeneration().id).toBe(2);
    await viewOf(server, 50);
    const metrics = await scrape(server.url);
    expect(metrics.sum('matview_view_swaps_total', { reason: 'requested' })).toBe(1);
    await server.close();

    const offline = await runCli(['rebuild'], { DATA_DIR: server.config.dataDir });
    expect({ code: offline.code, out: offline.stdout.trim() }).toEqual({
      code: 0,
      out: 'rebuild: requested; no server is running on DATA_DIR, the next `matview serve` rebuilds the view (serving the current one meanwhile)',
    });
    const noServer = await runCli(['rebuild', '--wait'], { DATA_DIR: server.config.dataDir });
    expect(noServer.code).toBe(1);
  });
});
