/**
 * Issue 18, point 2, with the graphql-ws client: subscriptions resumed with `after` across sockets dropped for
 * real (a TCP proxy cuts every connection, no close frame) while changes keep flowing. The client does what the
 * live page does: it keeps the commit of the last event (`extensions.asOf.sequence`) in the subscribe payload's
 * `after`, and graphql-ws resends that payload when it reconnects.
 *
 * What must hold: the last state received for every user is its final state (never missed), no SNAPSHOT after
 * the first connection, and no state received twice: for `userChanged` never; for `usersChanged` only a user
 * of the very commit the client resumed after (the drop may come between two events of one commit).
 * Also: a peer that stops answering pings is closed with 4410 and a reason telling it to resume with `after`.
 */
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { LiveCloseCode } from '../../api/ws/close-codes.js';
import { eventually, freshTopics, graphql, startTestServer, type TestServer } from '../utils/server.js';
import { startTcpProxy, type TcpProxy } from '../utils/tcp-proxy.js';
import { prng, WAIT_MS } from './helpers.js';

const topics = freshTopics();
let server: TestServer;
let proxy: TcpProxy;

beforeAll(async () => {
  server = await startTestServer({ topics });
  proxy = await startTcpProxy(server.url);
});
afterAll(async () => {
  await proxy?.close();
  await server?.close();
});

const send = (topic: string, key: string, value: object) =>
  server.running.writer.send(topic, [{ key, value: JSON.stringify(value) }]);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Received {
  readonly userId: string;
  readonly kind: string;
  readonly tweetCount: number | null;
  /** `extensions.asOf.sequence`: the commit the state comes from. */
  readonly at: bigint;
  /** The `after` the subscription that delivered it was (re)started with; null for the first one. */
  readonly resumedAfter: string | null;
}

/** A graphql-ws client that reconnects through the proxy, and a subscription that resumes after its last event. */
function resumingSubscription(
  query: string,
  variables: Record<string, unknown>,
): { client: Client; received: Received[]; connections: () => number } {
  let connections = 0;
  const client = createClient({
    url: `${proxy.url.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: Number.MAX_SAFE_INTEGER,
    retryWait: () => sleep(50),
    shouldRetry: () => true,
    on: { connected: () => connections++ },
  });
  const received: Received[] = [];
  const payload = { query, variables: { ...variables, after: null as string | null } };
  // Re-sent as is by graphql-ws on every reconnect: `after` is what the client holds then.
  let startedWith: string | null = null;
  let lastConnection = 0;
  client.subscribe<Record<string, { userId: string; kind: string; user: { tweetCount: number } | null }>>(
    payload,
    {
      next: (result) => {
        if (connections !== lastConnection) {
          lastConnection = connections;
          startedWith = payload.variables.after;
        }
        const change = Object.values(result.data ?? {})[0]!;
        const at = (result.extensions as { asOf: { sequence: string } }).asOf.sequence;
        received.push({
          userId: change.userId,
          kind: change.kind,
          tweetCount: change.user?.tweetCount ?? null,
          at: BigInt(at),
          resumedAfter: startedWith,
        });
        payload.variables.after = at;
      },
      error: (e) =>
        received.push({ userId: 'error', kind: String(e), tweetCount: null, at: 0n, resumedAfter: null }),
      complete: () => undefined,
    },
  );
  return { client, received, connections: () => connections };
}

/** Produces `total` tweets over `ids` at random, cutting every connection three times along the way. */
async function changesWithDrops(
  ids: readonly string[],
  total: number,
  seed: number,
): Promise<Map<string, number>> {
  const random = prng(seed);
  const counts = new Map(ids.map((id) => [id, 0]));
  for (let i = 1; i <= total; i++) {
    const id = ids[Math.floor(random() * ids.length)]!;
    await send(topics.tweets, `${id}-t${seed}-${i}`, { tweetId: `${id}-t${seed}-${i}`, userId: id });
    counts.set(id, counts.get(id)! + 1);
    if (i % Math.floor(total / 4) === 0 && i < total) proxy.cut();
    await sleep(5 + Math.floor(random() * 15));
  }
  return counts;
}

async function untilFinal(received: readonly Received[], final: ReadonlyMap<string, number>): Promise<void> {
  await eventually(
    () => {
      for (const [id, count] of final) {
        const last = received.findLast((e) => e.userId === id);
        if (last?.tweetCount !== count) return undefined;
      }
      return true;
    },
    WAIT_MS,
    'every user at its final count',
  );
}

describe('resuming subscriptions across dropped sockets', () => {
  it('userChanged: the final state, in order, no SNAPSHOT after the first, nothing twice', async () => {
    await send(topics.users, 'one', { userId: 'one', username: 'one' });
    const { client, received, connections } = resumingSubscription(
      'subscription One($id: ID!, $after: String) { userChanged(id: $id, after: $after) { userId kind user { tweetCount } } }',
      { id: 'one' },
    );
    await eventually(() => (received.length > 0 ? true : undefined), WAIT_MS, 'the snapshot');
    const final = await changesWithDrops(['one'], 80, 1);
    await untilFinal(received, final);
    client.dispose();
    expect(received.filter((e) => e.userId === 'error')).toEqual([]);
    expect(connections()).toBeGreaterThanOrEqual(4); // it did reconnect after each cut
    expect(received[0]?.kind).toBe('SNAPSHOT');
    expect(received.slice(1).filter((e) => e.kind === 'SNAPSHOT')).toEqual([]);
    const ats = received.map((e) => e.at);
    expect(ats.every((at, i) => i === 0 || at > ats[i - 1]!)).toBe(true);
  });

  it('usersChanged: every final state, commits never stepping back, a state twice only at the resume commit', async () => {
    const ids = ['m1', 'm2', 'm3', 'm4', 'm5'];
    for (const id of ids) await send(topics.users, id, { userId: id, username: id });
    await eventually(async () => {
      const r = await graphql<{ users: unknown[] }>(
        server.url,
        `{ users(ids: ${JSON.stringify(ids)}) { userId } }`,
      );
      return r.data?.users.every((u) => u !== null) === true ? true : undefined;
    });
    const { client, received, connections } = resumingSubscription(
      'subscription Many($ids: [ID!]!, $after: String) { usersChanged(ids: $ids, after: $after) { userId kind user { tweetCount } } }',
      { ids },
    );
    await eventually(() => (received.length >= ids.length ? true : undefined), WAIT_MS, 'the snapshots');
    const final = await changesWithDrops(ids, 150, 2);
    await untilFinal(received, final);
    client.dispose();
    expect(received.filter((e) => e.userId === 'error')).toEqual([]);
    expect(connections()).toBeGreaterThanOrEqual(4);
    expect(received.slice(ids.length).filter((e) => e.kind === 'SNAPSHOT')).toEqual([]);
    for (const id of ids) {
      const mine = received.filter((e) => e.userId === id);
      for (let i = 1; i < mine.length; i++) {
        const [before, now] = [mine[i - 1]!, mine[i]!];
        expect(now.at >= before.at, `${id}: commit ${now.at} after ${before.at}`).toBe(true);
        if (now.at === before.at) expect(String(now.at)).toBe(now.resumedAfter);
      }
    }
  });
});

describe('keep-alive', () => {
  it('should close a peer that stops answering pings with 4410 and a reason saying how to resume', async () => {
    const quick = await startTestServer({ topics: freshTopics(), env: { WS_KEEPALIVE_MS: '200' } });
    try {
      // A peer that reads but never answers a ping (a slow or wedged client looks the same from here).
      const ws = new WebSocket(`${quick.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws', {
        autoPong: false,
      });
      ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init' })));
      const closed = await new Promise<{ code: number; reason: string }>((resolve) =>
        ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
      );
      expect(closed.code).toBe(LiveCloseCode.KeepAliveTimeout);
      expect(closed.reason).toMatch(/Resubscribe with after/);
    } finally {
      await quick.close();
    }
  });
});
