/**
 * Issue 19, the view topic across processes, on the mock cluster: one materializing `matview serve`
 * (VIEW_TOPIC_OUT) and three replicas (VIEW_TOPIC_IN), random changelog traffic, and faults:
 * - the materializer is SIGKILLed mid-stream: the replicas keep serving, and their readiness and `feedStatus`
 *   say they are behind (its status records stopped); restarted on its data directory it republishes what it
 *   may not have, and everything converges;
 * - a replica is SIGKILLed and restarted: it resumes from its stored offsets;
 * - a fourth replica starts late and catches up from the topic (the mock does not compact: it reads every
 *   record, which a compacted topic bounds to one per user).
 * Throughout, a poller reads every user's `version.sequence` from every replica: none ever goes backwards.
 * At the end every replica (and the materializer) equals the reference model over the changelogs read back.
 *
 * VIEW_TOPIC_MAX_SILENCE_MS is set to 3 s (the shipped 15 s would only make the test wait longer): how long
 * a silent producer takes to make a replica "behind" is the point here. Every incarnation gets its own
 * consumer group (positions live in LMDB; a SIGKILLed member's session would otherwise have to expire).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/lmdb-store.js';
import { isReady, spawnChildServer, startChildServer, type ChildServer } from '../utils/child-server.js';
import { uniqueTopic, useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics, graphql } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';
import {
  computeReference,
  endOffsets,
  expectServedViewEquals,
  feedStatus,
  readTopics,
  servedView,
  waitCaughtUp,
  type Reference,
} from './support/reference.js';
import { changeStream, produceContinuously } from './support/workload.js';

const kafka = useKafka();
const USERS = 40;
const ids = Array.from({ length: USERS }, (_, i) => `u${i}`);

/** Per replica, the highest version.sequence seen for each user; and every time one went back. */
class VersionWatch {
  private readonly highest = new Map<string, Map<string, bigint>>();
  readonly regressions: string[] = [];
  reads = 0;

  async poll(name: string, child: ChildServer): Promise<void> {
    if (!child.alive()) return;
    let users: ({ userId: string; version: { sequence: string } } | null)[] | undefined;
    try {
      const r = await graphql<{ users: typeof users }>(
        child.url(),
        'query($ids: [ID!]!) { users(ids: $ids) { userId version { sequence } } }',
        { ids },
      );
      users = r.data?.users;
    } catch {
      return; // not listening yet, or killed meanwhile
    }
    if (users === undefined) return;
    this.reads++;
    const seen = this.highest.get(name) ?? new Map<string, bigint>();
    this.highest.set(name, seen);
    for (const u of users) {
      if (u === null) continue;
      const seq = BigInt(u.version.sequence);
      const before = seen.get(u.userId) ?? 0n;
      if (seq < before) this.regressions.push(`${name}: ${u.userId} went from ${before} to ${seq}`);
      else seen.set(u.userId, seq);
    }
  }
}

/**
 * SIGKILLs the materializer right after its metrics showed commits not yet published, then reads its store
 * (the process is gone: nothing holds LMDB's locks) to be sure it died in that window: its mark behind its
 * sequence. When the publisher had caught up in between, the materializer is started again and the kill
 * tried again. The caller restarts it after the last kill.
 */
async function killWithUnpublishedCommits(
  start: () => ChildServer,
  first: ChildServer,
  dataDir: string,
  topic: string,
): Promise<void> {
  let child = first;
  for (let attempt = 0; attempt < 20; attempt++) {
    await eventually(
      async () => {
        const text = await (await fetch(`${child.url()}/metrics`)).text();
        return /^matview_view_topic_unpublished_commits [1-9]/m.test(text) ? true : undefined;
      },
      60_000,
      'commits waiting to be published',
    );
    await child.kill();
    const store = openStore({ path: join(dataDir, 'view'), create: false });
    const { index } = await store.publishedIndex(topic);
    // Commits not yet published, and their changes waiting in the view outbox.
    const behind = index.mark() < store.sequence() && index.outboxSize() > 0;
    await store.close();
    if (behind) return;
    child = start();
    await child.listening;
  }
  throw new Error('the materializer was never killed with commits not yet published');
}

/** The partitions a server reads and its stored next offset in each (feedStatus). */
async function positions(url: string): Promise<{ topic: string; partition: number; next: string }[]> {
  const res = await graphql<{
    feedStatus: { partitions: { topic: string; partition: number; next: string }[] };
  }>(url, '{ feedStatus { partitions { topic partition next } } }');
  return res.data?.feedStatus.partitions ?? [];
}

describe('replicas of a view topic', () => {
  it('should keep serving through a materializer crash, converge after it, and survive their own', async () => {
    const topics = freshTopics();
    const viewTopic = uniqueTopic('user-information');
    let incarnation = 0;
    const common = () => ({
      KAFKA_GROUP_ID: uniqueTopic(`view-topic-${incarnation++}`),
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      KAFKA_FETCH_MAX_WAIT_MS: '50',
      LMDB_MAP_SIZE_MB: '64',
    });
    const materializerDir = tempDir();
    const materializer = (): ChildServer =>
      spawnChildServer({
        dataDir: materializerDir,
        brokers: kafka.brokers,
        topics,
        env: { ...common(), VIEW_TOPIC_OUT: viewTopic, VIEW_TOPIC_HEARTBEAT_MS: '500' },
      });
    const replicaDirs = [tempDir(), tempDir(), tempDir(), tempDir()];
    const replica = (i: number): ChildServer =>
      spawnChildServer({
        dataDir: replicaDirs[i]!,
        brokers: kafka.brokers,
        env: { ...common(), VIEW_TOPIC_IN: viewTopic, VIEW_TOPIC_MAX_SILENCE_MS: '3000' },
      });

    let m = materializer();
    await m.listening;
    const replicas: ChildServer[] = [replica(0), replica(1), replica(2)];
    await Promise.all(replicas.map((r) => r.listening));

    const watch = new VersionWatch();
    let watching = true;
    const poller = (async () => {
      while (watching) {
        await Promise.all(replicas.map((r, i) => watch.poll(`replica ${i}`, r)));
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();

    const producing = produceContinuously(kafka.brokers, topics, changeStream(4242, USERS), {
      perChunk: 100,
      pauseMs: 150,
      maxRecords: 3_000,
      maxMs: 150_000,
    });
    try {
      await eventually(() => (producing.produced() >= 800 ? true : undefined), 60_000, 'traffic');
      await eventually(
        async () => ((await feedStatus(replicas[0]!.url())).sequence !== '0' ? true : undefined),
        60_000,
        'the first replica to apply something',
      );

      // 1. The materializer dies mid-stream, with commits not yet recorded as published (checked in its store
      //    once it is dead): the replicas keep serving and say they are behind.
      await killWithUnpublishedCommits(materializer, m, materializerDir, viewTopic);
      // Once a replica has read what the topic holds (it no longer grows), no fresher status can come.
      const ends = await endOffsets(kafka.brokers, viewTopic);
      for (const [i, r] of replicas.entries()) {
        await eventually(
          async () => {
            const at = new Map(
              (await feedStatus(r.url())).partitions.map((p) => [p.partition, BigInt(p.next)]),
            );
            return ends.every((e) => (at.get(e.partition) ?? 0n) >= BigInt(e.next)) ? true : undefined;
          },
          60_000,
          `replica ${i} to read the whole view topic`,
        );
        const status = await eventually(
          async () => {
            const s = await feedStatus(r.url());
            return !s.ready && /producer .* has published nothing/.test(s.reason ?? '') ? s : undefined;
          },
          30_000,
          `replica ${i} to say it is behind`,
        );
        expect(status.reason).toContain('behind');
        expect(await isReady(r)).toBe(false);
        const served = await servedView(r.url(), ids);
        expect(
          [...served.values()].some((u) => u !== null),
          `replica ${i} serves`,
        ).toBe(true);
        const rest = await fetch(`${r.url()}/users/u1`);
        expect([200, 404]).toContain(rest.status);
      }

      // 2. Restarted on its data directory, it sends what its view outbox still holds, and goes on.
      m = materializer();
      await m.listening;
      await m.waitForLog(
        (e) => e.msg === 'publishing the view topic' && Number(e['outbox']) > 0,
        'the restarted materializer to publish its outbox',
      );
      await eventually(() => (producing.produced() >= 1_800 ? true : undefined), 90_000, 'more traffic');

      // 3. A replica dies and comes back: it resumes from its stored offsets.
      const before = await positions(replicas[1]!.url());
      await replicas[1]!.kill();
      await new Promise((resolve) => setTimeout(resolve, 500));
      replicas[1] = replica(1);
      const started = await replicas[1].waitForLog(
        (e) => e.msg === 'matview started',
        'the restarted replica to start',
      );
      expect(BigInt(started['sequence'] as string) > 0n).toBe(true); // its store, not an empty one
      // Right after the start, before anything new is applied: the positions it stored, none back at 0.
      const after = await positions(replicas[1].url());
      expect(before.length).toBeGreaterThan(0);
      for (const p of before) {
        const now = after.find((a) => a.topic === p.topic && a.partition === p.partition);
        expect({ ...p, resumedAt: BigInt(now?.next ?? '0') >= BigInt(p.next) }).toEqual({
          ...p,
          resumedAt: true,
        });
      }
      expect(before.every((p) => p.topic === viewTopic)).toBe(true);

      await eventually(() => (producing.produced() >= 3_000 ? true : undefined), 120_000, 'all the traffic');
    } finally {
      await producing.stop();
    }

    // 4. A fourth replica, started after the traffic, catches up from the topic.
    replicas.push(replica(3));
    await replicas[3]!.listening;

    await waitCaughtUp(m.url(), kafka.brokers, topics);
    const reference: Reference = computeReference(await readTopics(kafka.brokers, topics));
    await expectServedViewEquals(m.url(), reference);
    for (const [i, r] of replicas.entries()) {
      await eventually(
        async () => {
          const served = await servedView(r.url(), reference.userIds);
          const same = reference.userIds.every(
            (id) =>
              JSON.stringify(served.get(id) ?? null) === JSON.stringify(reference.users.get(id) ?? null),
          );
          return same && (await isReady(r)) ? true : undefined;
        },
        120_000,
        `replica ${i} to equal the reference and be ready`,
      );
      await expectServedViewEquals(r.url(), reference);
    }
    watching = false;
    await poller;
    expect(watch.reads).toBeGreaterThan(10);
    expect(watch.regressions).toEqual([]);

    const outbox = m.logs().find((e) => e.msg === 'publishing the view topic')?.['outbox'];
    console.log(
      `view-topic-replicas: the restarted materializer found ${String(outbox)} changes in its outbox`,
    );
    for (const child of [m, ...replicas]) expect((await child.terminate()).code).toBe(0);
  }, 290_000);

  it('should refuse to serve a replica from a materializer store, and the other way round', async () => {
    const dir = tempDir();
    const topics = freshTopics();
    const m = await startChildServer({ dataDir: dir, brokers: kafka.brokers, topics });
    await m.waitForLog((e) => e.msg === 'matview started', 'matview started');
    expect((await m.terminate()).code).toBe(0);
    const r = spawnChildServer({
      dataDir: dir,
      brokers: kafka.brokers,
      env: { VIEW_TOPIC_IN: uniqueTopic('v') },
    });
    const exit = await r.exited;
    expect(exit.code).toBe(1);
    expect(JSON.stringify(r.logs())).toContain('it holds the store of a materializing instance');

    const replicaDir = tempDir();
    const viewTopic = uniqueTopic('v');
    const served = await startChildServer({
      dataDir: replicaDir,
      brokers: kafka.brokers,
      env: { VIEW_TOPIC_IN: viewTopic },
    });
    await served.waitForLog((e) => e.msg === 'matview started', 'matview started');
    expect((await served.terminate()).code).toBe(0);
    const materializing = spawnChildServer({ dataDir: replicaDir, brokers: kafka.brokers, topics });
    expect((await materializing.exited).code).toBe(1);
    expect(JSON.stringify(materializing.logs())).toContain(
      `it holds the store of a replica of view topic \\"${viewTopic}\\"`,
    );
  });
});
