/**
 * Issue 16: a `topUsersChanged` client that stops reading gets the latest list when it resumes, not every
 * list in between (CONTRACT.md §3's promise for slow readers, applied to rankings). Its socket is paused, so
 * TCP backpressure builds up for real; each event is a 100-user list with long descriptions, so the buffers
 * fill within a few rounds, and every round is one commit that changes the list.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, freshTopics, graphql, startTestServer, type TestServer } from '../utils/server.js';
import { RawSocket, WAIT_MS } from './helpers.js';

const topics = freshTopics();
let server: TestServer;
let raw: RawSocket | undefined;

beforeAll(async () => {
  server = await startTestServer({
    topics,
    // As in slow-consumer.test.ts: a low gate threshold, and no pings a paused client could not answer.
    env: { WS_BACKPRESSURE_BYTES: '16384', WS_KEEPALIVE_MS: '0' },
  });
});
afterAll(async () => {
  raw?.close();
  await server?.close();
});

const ids = Array.from({ length: 100 }, (_, i) => `r${String(i).padStart(2, '0')}`);
const filler = 'x'.repeat(4000);
const SELECTION = 'userId tweetCount description';
type Ranked = { userId: string; tweetCount: number; description: string };

function listsOf(socket: RawSocket): Ranked[][] {
  return socket.messages
    .filter((m) => m['type'] === 'next')
    .map((m) => (m['payload'] as { data: { topUsersChanged: Ranked[] } }).data.topUsersChanged);
}

/** Round `n`: one tweet, applied (one commit that moves a member's count). */
async function tweet(n: number): Promise<void> {
  await server.running.writer.send(topics.tweets, [
    { key: `t${n}`, value: JSON.stringify({ tweetId: `t${n}`, userId: ids[n % ids.length] }) },
  ]);
  await eventually(
    () => (server.running.store.totals()?.tweets === n ? true : undefined),
    WAIT_MS,
    `tweet ${n} applied`,
  );
}

const tweetsIn = (list: readonly Ranked[]) => list.reduce((n, u) => n + u.tweetCount, 0);

describe('a slow dashboard reader', () => {
  it('should get the latest list after it stalled, with intermediate lists skipped and none reordered', async () => {
    await server.running.writer.send(
      topics.users,
      ids.map((id) => ({
        key: id,
        value: JSON.stringify({ userId: id, username: id, description: filler }),
      })),
    );
    await eventually(
      () => (server.running.store.totals()?.users === ids.length ? true : undefined),
      WAIT_MS,
      'the users',
    );
    raw = await RawSocket.open(server.url);
    await raw.init();
    raw.send({
      id: 'top',
      type: 'subscribe',
      payload: { query: `subscription { topUsersChanged(by: TWEETS, limit: 100) { ${SELECTION} } }` },
    });
    await eventually(() => (listsOf(raw!).length === 1 ? true : undefined), WAIT_MS, 'the first list');

    raw.ws.pause();
    const conflated = async () => (await server.running.metrics.conflatedEvents.get()).values[0]?.value ?? 0;
    let round = 0;
    // Bounded by the round cap, not by time: until the server has clearly stopped handing lists to this client.
    while ((await conflated()) < 5 && round < 400) await tweet(++round);
    expect(await conflated()).toBeGreaterThanOrEqual(5);

    raw.ws.resume();
    const served = await graphql<{ topUsers: Ranked[] }>(
      server.url,
      `{ topUsers(by: TWEETS, limit: 100) { ${SELECTION} } }`,
    );
    await eventually(
      () => (tweetsIn(listsOf(raw!).at(-1) ?? []) === round ? true : undefined),
      WAIT_MS,
      'the latest list after resuming',
    );
    const lists = listsOf(raw);
    expect(lists.at(-1)).toEqual(served.data!.topUsers);
    // Each list is newer than the one before (never reordered), and fewer lists than commits arrived.
    const totals = lists.map(tweetsIn);
    expect(totals.every((n, i) => i === 0 || n > totals[i - 1]!)).toBe(true);
    expect(lists.length).toBeLessThan(round + 1);
  });
});
