/**
 * Issue 5, acceptance 3: a client that stops reading. Its socket is paused (TCP backpressure builds up for
 * real), changes keep coming, and the server stops pulling events for it: each subscription's pending
 * changes stay at most one per watched user (the conflation bound). When it resumes it receives the latest
 * state of every user, with sequences still increasing.
 *
 * Ten operations share the socket, each watching five users, as a dashboard would. What holds events back
 * here is graphql-ws waiting for each send before pulling the next event; the bufferedAmount gate has its
 * own deterministic tests (backpressure.test.ts), since which of the two engages first depends on timing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, freshTopics, startTestServer, type TestServer } from '../utils/server.js';
import { lastOf, orderProblem, RawSocket, WAIT_MS, type ChangeEvent } from './helpers.js';

const topics = freshTopics();
let server: TestServer;
let raw: RawSocket | undefined;

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
