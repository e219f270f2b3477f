/**
 * Issue 5, acceptance 1 and 2: real graphql-ws clients against the running server fed by the librdkafka
 * mock cluster. Every subscription starts with a SNAPSHOT, then per user the commit sequence strictly
 * increases, and the last event of every user equals the final `user(id)` — also for 200 subscriptions
 * started while changes are flowing.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Client } from 'graphql-ws';
import { afterAll, describe, expect, it } from 'vitest';
import { useKafka } from '../utils/kafka-mock.js';
import {
  eventually,
  freshTopics,
  graphql,
  startTestServer,
  USER_FIELDS,
  type TestServer,
} from '../utils/server.js';
import {
  lastOf,
  orderProblem,
  produceWorkload,
  record,
  USER_CHANGED,
  USERS_CHANGED,
  WAIT_MS,
  workload,
  wsClient,
  type Recording,
  type Workload,
} from './helpers.js';

const kafka = useKafka();
const servers: TestServer[] = [];
const clients: Client[] = [];

afterAll(async () => {
  for (const c of clients) await c.dispose();
  for (const s of servers) await s.close();
});

async function serve(): Promise<{ server: TestServer; topics: ReturnType<typeof freshTopics> }> {
  const topics = freshTopics();
  const server = await startTestServer({ brokers: kafka.brokers, topics });
  servers.push(server);
  return { server, topics };
}

function client(server: TestServer): Client {
  const c = wsClient(server.url);
  clients.push(c);
  return c;
}

const userIds = (prefix: string) =>
  Array.from({ length: 50 }, (_, i) => `${prefix}${String(i).padStart(2, '0')}`);

/** `users(ids)` over HTTP, as a Map by id, once the view holds exactly the workload's final counts. */
async function finalUsers(
  server: TestServer,
  ids: readonly string[],
  wl: Workload,
): Promise<Map<string, unknown>> {
  return eventually(
    async () => {
      const res = await graphql<{ users: (Record<string, unknown> | null)[] }>(
        server.url,
        `query($ids: [ID!]!) { users(ids: $ids) { ${USER_FIELDS} } }`,
        { ids },
      );
      const users = res.data?.users ?? [];
      const done = ids.every((id, i) => {
        const u = users[i];
        const want = wl.expected.get(id)!;
        return (
          u != null &&
          u['tweetCount'] === want.tweetCount &&
          u['likeCount'] === want.likeCount &&
          u['followingCount'] === want.followingCount &&
          u['followerCount'] === want.followerCount &&
          u['name'] === want.name
        );
      });
      return done ? new Map(ids.map((id, i) => [id, users[i]])) : undefined;
    },
    WAIT_MS,
    'the view to reach the final counts of the workload',
  );
}

/** Waits until each watched user's last event equals its final state, then asserts order and equality. */
async function expectConverged(
  recordings: readonly { rec: Recording; ids: readonly string[] }[],
  final: Map<string, unknown>,
) {
  const converged = () =>
    recordings.every(({ rec, ids }) =>
      ids.every((id) => isDeepStrictEqual(lastOf(id, rec.events)?.user, final.get(id))),
    );
  await eventually(
    () => (converged() ? true : undefined),
    WAIT_MS,
    'every subscription to reach the final states',
  ).catch(
    () => undefined, // the assertions below say what is missing
  );
  const problems = recordings.flatMap(({ rec, ids }) =>
    ids.map((id) => orderProblem(id, rec.events)).filter((p) => p !== undefined),
  );
  expect(problems).toEqual([]);
  for (const { rec, ids } of recordings) {
    expect(Object.fromEntries(ids.map((id) => [id, lastOf(id, rec.events)?.user]))).toEqual(
      Object.fromEntries(ids.map((id) => [id, final.get(id)])),
    );
  }
}

describe('subscriptions fed by Kafka', () => {
  it('should deliver a snapshot then every change in commit order for 1,000 random changes to 50 users, ending at user(id)', async () => {
    const { server, topics } = await serve();
    const ids = userIds('a');
    const wl = workload(ids, 1000, 5);
    const c = client(server);
    const all = record(c, USERS_CHANGED, { ids });
    const singles = ids.slice(0, 5).map((id) => ({ rec: record(c, USER_CHANGED, { id }), ids: [id] }));
    // Subscribed (every snapshot arrived) before the first record is produced.
    await eventually(
      () => (all.events.length >= 50 && singles.every((s) => s.rec.events.length >= 1) ? true : undefined),
      WAIT_MS,
      'snapshots',
    );
    expect(all.events.map((e) => [e.userId, e.kind, e.user])).toEqual(
      ids.map((id) => [id, 'SNAPSHOT', null]),
    );

    await produceWorkload(kafka.brokers, topics, wl.records);
    const final = await finalUsers(server, ids, wl);
    await expectConverged([{ rec: all, ids }, ...singles], final);
    // More than one state per user went through (not just a snapshot and the end).
    expect(all.events.length).toBeGreaterThan(ids.length * 2);
  });

  it('should give 200 subscriptions started while changes flow their final states, never a sequence going backwards', async () => {
    const { server, topics } = await serve();
    const ids = userIds('r');
    const wl = workload(ids, 1000, 11);
    const sockets = [client(server), client(server), client(server), client(server)];
    const started: { rec: Recording; ids: string[] }[] = [];
    const startTen = (): void => {
      for (let k = 0; k < 10; k++) {
        const n = started.length;
        const c = sockets[n % sockets.length]!;
        // Even: userChanged(one id); odd: usersChanged over three ids, overlapping other subscriptions.
        const watched =
          n % 2 === 0 ? [ids[n % ids.length]!] : [0, 17, 33].map((d) => ids[(n + d) % ids.length]!);
        const rec =
          watched.length === 1
            ? record(c, USER_CHANGED, { id: watched[0] })
            : record(c, USERS_CHANGED, { ids: watched });
        started.push({ rec, ids: watched });
      }
    };
    // 20 chunks of 50 records; ten subscriptions start after each chunk is acknowledged by the cluster,
    // while the server is still fetching and applying earlier chunks.
    await produceWorkload(kafka.brokers, topics, wl.records, { chunk: 50, afterChunk: startTen });
    expect(started).toHaveLength(200);

    const final = await finalUsers(server, ids, wl);
    await expectConverged(started, final);
    // The race was real: some subscriptions saw changes after their snapshot.
    expect(started.filter(({ rec }) => rec.events.some((e) => e.kind !== 'SNAPSHOT')).length).toBeGreaterThan(
      0,
    );
    expect(server.running.live.stats().subscriptions).toBe(200);
    for (const { rec } of started) rec.stop();
    await eventually(
      () => (server.running.live.stats().indexEntries === 0 ? true : undefined),
      WAIT_MS,
      'unsubscribed',
    );
  });
});
