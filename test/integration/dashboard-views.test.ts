/**
 * Issue 16 on a real server fed through the Kafka protocol (librdkafka's mock cluster): before the first
 * row the dashboard answers empty rankings and zero totals; after random traffic (creates, rows moved to
 * another user, tombstones of known and unknown keys, users rows deleted and re-created) every ranking's
 * first 100 and the totals equal the reference model recomputed from the topics read back; and again after
 * a restart on the same data dir, with records produced while it was down.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { EMPTY_TOTALS } from '../../api/schema/dashboard-reads.js';
import {
  computeReference,
  expectServedDashboardEquals,
  expectServedViewEquals,
  readTopics,
  waitCaughtUp,
} from '../faults/support/reference.js';
import { changeStream, type ChangeRecord } from '../faults/support/workload.js';
import { produce, useKafka } from '../utils/kafka-mock.js';
import { freshTopics, graphql, startTestServer, type TestServer, type TestTopics } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';

const SEED = Number(process.env['DASHBOARD_SEED'] ?? Math.floor(Math.random() * 1e9));

const kafka = useKafka();
const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

/** `count` records of the seeded stream, produced per topic in stream order (a key keeps its partition). */
async function produceStream(topics: TestTopics, next: () => ChangeRecord, count: number): Promise<void> {
  const byTable = new Map<ChangeRecord['table'], { key: string; value: string | null }[]>();
  for (let i = 0; i < count; i++) {
    const r = next();
    let list = byTable.get(r.table);
    if (list === undefined) byTable.set(r.table, (list = []));
    list.push({ key: r.key, value: r.value });
  }
  for (const [table, messages] of byTable) await produce(kafka.brokers, topics[table], messages);
}

async function expectEqualsReference(url: string, topics: TestTopics): Promise<void> {
  await waitCaughtUp(url, kafka.brokers, topics);
  const reference = computeReference(await readTopics(kafka.brokers, topics));
  await expectServedDashboardEquals(url, reference);
  await expectServedViewEquals(url, reference);
}

describe('dashboard views on a real server', () => {
  it(`should equal the reference after random traffic and after a restart (seed ${SEED})`, async () => {
    console.log(`dashboard-views: DASHBOARD_SEED=${SEED}`);
    const topics = freshTopics();
    const dataDir = tempDir();
    const next = changeStream(SEED, 60);
    const first = await startTestServer({ brokers: kafka.brokers, topics, dataDir });
    servers.push(first);

    const empty = await graphql(
      first.url,
      '{ topUsers(by: FOLLOWERS) { userId } totals { users tweets follows likes version { sequence appliedAt eventTime source { topic partition offset } } } }',
    );
    expect(empty.data).toEqual({ topUsers: [], totals: EMPTY_TOTALS });

    await produceStream(topics, next, 3_000);
    await expectEqualsReference(first.url, topics);
    await first.close();

    await produceStream(topics, next, 1_000); // while it is down
    const second = await startTestServer({ brokers: kafka.brokers, topics, dataDir });
    servers.push(second);
    await expectEqualsReference(second.url, topics);
    await produceStream(topics, next, 1_000);
    await expectEqualsReference(second.url, topics);
  }, 240_000);
});
