/**
 * Issue 5, acceptance 3: a client that stops reading. Its socket is paused (TCP backpressure builds up for
 * real), changes keep coming, and the server stops pulling events for it: each subscription's pending
 * changes stay at most one per watched user (the conflation bound). When it resumes it receives the latest
 * state of every user, with sequences still increasing.
 *
 * Ten operations share the socket, each watching five users, as a dashboard would. What holds events back
 * here is graphql-ws waiting for each send before pulling the next event; the bufferedAmount gate has its
 * own deterministic tests (backpressure.test.ts), since which of the two engages first depends on timing.
 *
 * Issue 16: the same for a `topUsersChanged` client. Each event is a 100-user list with long descriptions,
 * so the buffers fill within a few rounds, and every round is one commit that changes the list; after
 * resuming the client gets the latest list, with intermediate lists skipped and none reordered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, freshTopics, graphql, startTestServer, type TestServer } from '../utils/server.js';
import { lastOf, orderProblem, RawSocket, WAIT_MS, type ChangeEvent } from './helpers.js';

const topics = freshTopics();
let server: TestServer;
let raw: RawSocket | undefined;
const sockets: RawSocket[] = [];

beforeAll(async () => {
  server = await startTestServer({
    topics,
    // A low threshold so the gate, not only the kernel buffers, holds the events back; no keep-alive pings,
    // which a paused client could not answer (that would test the dead-peer timeout instead).
    env: { WS_BACKPRESSURE_BYTES: '16384', WS_KEEPALIVE_MS: '0' },
  });
});
afterAll(async () => {
  raw?.close();
  for (const s of sockets) s.close();
  await server?.close();
});

const ids = Array.from({ length: 50 }, (_, i) => `slow${String(i).padStart(2, '0')}`);
/** ~4 KB per event, so the socket's buffers fill after a few rounds rather than thousands. */
const filler = 'x'.repeat(4000);
const describeAt = (round: number) => `${filler} round ${round}`;

/** Ten operations, five users each. */
const groups = Array.from({ length: 10 }, (_, g) => ids.slice(g * 5, g * 5 + 5));

/** The `usersChanged` events received so far, in order (each user is watched by exactly one operation). */
function eventsOf(socket: RawSocket): ChangeEvent[] {
  return socket.messages
    .filter((m) => m['type'] === 'next')
    .map((m) => (m['payload'] as { data: { usersChanged: ChangeEvent } }).data.usersChanged);
}

async function writeRound(round: number): Promise<void> {
  const rows = ids.map((id) => ({
    key: id,
    value: JSON.stringify({ userId: id, username: id, description: describeAt(round) }),
  }));
  await server.running.writer.send(topics.users, rows);
  // Applied (the store holds this round for the last user written), so each round is at least one commit.
  await eventually(
    () =>
      server.running.store.getUser(ids[ids.length - 1]!)?.description === describeAt(round)
        ? true
        : undefined,
    WAIT_MS,
    `round ${round} applied`,
  );
}

describe('slow consumers', () => {
  it('should keep at most one pending state per watched user while a client stalls, and send the latest when it resumes', async () => {
    await writeRound(0);
    raw = await RawSocket.open(server.url);
    await raw.init();
    for (const [g, watched] of groups.entries()) {
      raw.send({
        id: `slow${g}`,
        type: 'subscribe',
        payload: {
          query:
            'subscription($ids: [ID!]!) { usersChanged(ids: $ids) { userId kind user { description version { sequence } } } }',
          variables: { ids: watched },
        },
      });
    }
    await eventually(
      () => (eventsOf(raw!).length === ids.length ? true : undefined),
      WAIT_MS,
      'the 50 snapshots',
    );

    raw.ws.pause(); // stop reading: the kernel buffers fill, then the server's socket buffer
    const hub = server.running.live;
    const subs = () => hub.stats().perSubscription;
    const conflated = () => subs().reduce((n, s) => n + s.conflated, 0);
    let round = 0;
    let worst = 0; // largest pending/users ratio of any subscription seen after any round
    // Keep changing every user until the server has clearly stopped handing events to this client: several
    // full rounds folded into the pending maps. Bounded by the round cap, not by time.
    while (conflated() < 3 * ids.length && round < 400) {
      await writeRound(++round);
      for (const s of subs()) worst = Math.max(worst, s.pending / s.users);
    }
    expect(subs()).toHaveLength(groups.length);
    expect(conflated()).toBeGreaterThanOrEqual(3 * ids.length);
    expect(worst).toBeLessThanOrEqual(1);
    expect(subs().every((s) => s.peakPending <= s.users)).toBe(true);
    const skipped = (await server.running.metrics.conflatedEvents.get()).values[0]?.value ?? 0;
    expect(skipped).toBeGreaterThanOrEqual(conflated());

    raw.ws.resume();
    const final = describeAt(round);
    await eventually(
      () =>
        ids.every((id) => lastOf(id, eventsOf(raw!))?.user?.['description'] === final) ? true : undefined,
      WAIT_MS,
      'the latest state of every user after resuming',
    ).catch(() => undefined); // the assertion below shows what is missing
    const events = eventsOf(raw);
    expect(
      Object.fromEntries(
        ids.map((id) => [id, String(lastOf(id, events)?.user?.['description']).slice(filler.length)]),
      ),
    ).toEqual(Object.fromEntries(ids.map((id) => [id, ` round ${round}`])));
    expect(ids.map((id) => orderProblem(id, events)).filter((p) => p !== undefined)).toEqual([]);
    // Intermediate versions were skipped, so the client got far fewer events than changes were committed.
    expect(events.length).toBeLessThan(ids.length * (round + 1));
    expect(subs().map((s) => s.peakPending <= s.users)).toEqual(groups.map(() => true));
  });
});

const ranked = Array.from({ length: 100 }, (_, i) => `r${String(i).padStart(2, '0')}`);
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
    { key: `t${n}`, value: JSON.stringify({ tweetId: `t${n}`, userId: ranked[n % ranked.length] }) },
  ]);
  await eventually(
    () => (server.running.store.totals()?.tweets === n ? true : undefined),
    WAIT_MS,
    `tweet ${n} applied`,
  );
}

const tweetsIn = (list: readonly Ranked[]) => list.reduce((n, u) => n + u.tweetCount, 0);

describe('slow consumers of a leaderboard', () => {
  it('should get the latest list after it stalled, with intermediate lists skipped and none reordered', async () => {
    await server.running.writer.send(
      topics.users,
      ranked.map((id) => ({
        key: id,
        value: JSON.stringify({ userId: id, username: id, description: filler }),
      })),
    );
    await eventually(
      () => (server.running.store.getUser(ranked.at(-1)!) === undefined ? undefined : true),
      WAIT_MS,
      'the users',
    );
    const socket = await RawSocket.open(server.url);
    sockets.push(socket);
    await socket.init();
    socket.send({
      id: 'top',
      type: 'subscribe',
      payload: { query: `subscription { topUsersChanged(by: TWEETS, limit: 100) { ${SELECTION} } }` },
    });
    await eventually(() => (listsOf(socket).length === 1 ? true : undefined), WAIT_MS, 'the first list');

    socket.ws.pause();
    // The counter is the server's; the users test above may have added to it.
    const counted = async () => (await server.running.metrics.conflatedEvents.get()).values[0]?.value ?? 0;
    const before = await counted();
    const conflated = async () => (await counted()) - before;
    let round = 0;
    // Bounded by the round cap, not by time: until the server has clearly stopped handing lists to this client.
    while ((await conflated()) < 5 && round < 400) await tweet(++round);
    expect(await conflated()).toBeGreaterThanOrEqual(5);

    socket.ws.resume();
    const served = await graphql<{ topUsers: Ranked[] }>(
      server.url,
      `{ topUsers(by: TWEETS, limit: 100) { ${SELECTION} } }`,
    );
    await eventually(
      () => (tweetsIn(listsOf(socket).at(-1) ?? []) === round ? true : undefined),
      WAIT_MS,
      'the latest list after resuming',
    );
    const lists = listsOf(socket);
    expect(lists.at(-1)).toEqual(served.data!.topUsers);
    // Each list is newer than the one before (never reordered), and fewer lists than commits arrived.
    const totals = lists.map(tweetsIn);
    expect(totals.every((n, i) => i === 0 || n > totals[i - 1]!)).toBe(true);
    expect(lists.length).toBeLessThan(round + 1);
  });
});
