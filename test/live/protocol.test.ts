/**
 * Issue 5, acceptance 4 and 5: protocol violations close only the offending socket with the graphql-ws
 * close code for it, limits answer with clear errors, and unsubscribing or disconnecting leaves nothing in
 * the live index. Raw `ws` sockets break the protocol on purpose; a graphql-ws client stays subscribed
 * throughout and must keep receiving changes. Fed by the embedded changelog (no broker needed here).
 */
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveCloseCode } from '../../api/ws/close-codes.js';
import { eventually, freshTopics, startTestServer, type TestServer } from '../utils/server.js';
import {
  RawSocket,
  record,
  USER_CHANGED,
  USERS_CHANGED,
  WAIT_MS,
  wsClient,
  type ChangeEvent,
  type Recording,
} from './helpers.js';

const TOKEN = 'test-token-0123456789abcdef';
const topics = freshTopics();
let server: TestServer;
let guarded: TestServer;
let healthy: Client;
let watching: Recording;
const raws: RawSocket[] = [];
let tweets = 0;

beforeAll(async () => {
  server = await startTestServer({
    topics,
    env: {
      WS_INIT_TIMEOUT_MS: '300',
      WS_MAX_SUBSCRIPTIONS: '3',
      WS_MAX_PAYLOAD_BYTES: '4000',
      MAX_IDS: '5',
      MAX_QUERY_DEPTH: '4',
    },
  });
  guarded = await startTestServer({
    topics: freshTopics(),
    env: { WS_AUTH_TOKENS: `other-token-0000000000,${TOKEN}` },
  });
  await server.running.writer.send(topics.users, [
    { key: 'h1', value: JSON.stringify({ userId: 'h1', username: 'healthy' }) },
  ]);
  healthy = wsClient(server.url);
  watching = record(healthy, SHALLOW, { id: 'h1' });
  await eventually(() => seen(watching, (e) => e.user !== null), WAIT_MS, 'the healthy client to see h1');
});
afterAll(async () => {
  for (const r of raws) r.close();
  await healthy?.dispose();
  await server?.close();
  await guarded?.close();
});

async function open(
  target: TestServer = server,
  options: { protocol?: string | null; path?: string } = {},
): Promise<RawSocket> {
  const raw = await RawSocket.open(target.url, options);
  raws.push(raw);
  return raw;
}

/** For `eventually`: true once an event matches; throws the subscription's error if it ended with one. */
function seen(rec: Recording, match: (e: ChangeEvent) => boolean): true | undefined {
  if (rec.error() !== undefined) throw rec.error();
  return rec.events.some(match) ? true : undefined;
}

/** One more tweet for h1; the healthy client must see the new count. */
async function expectOthersUnaffected(): Promise<void> {
  tweets++;
  await server.running.writer.send(topics.tweets, [
    { key: `ht${tweets}`, value: JSON.stringify({ tweetId: `ht${tweets}`, userId: 'h1' }) },
  ]);
  await eventually(
    () => seen(watching, (e) => e.user?.['tweetCount'] === tweets),
    WAIT_MS,
    `h1 at ${tweets} tweets`,
  );
}

/** Depth 4: within this server's MAX_QUERY_DEPTH, unlike the full USER_FIELDS selection. */
const SHALLOW =
  'subscription($id: ID!) { userChanged(id: $id) { userId kind user { tweetCount version { sequence } } } }';

const subscribe = (id: string, query: string, variables: Record<string, unknown> = {}) => ({
  id,
  type: 'subscribe',
  payload: { query, variables },
});

/** The `error` message for operation `id`, as `[{ message, code }]`. */
async function errorsOf(raw: RawSocket, id: string): Promise<{ message: string; code: unknown }[]> {
  const m = await raw.waitFor(
    (x) => x['id'] === id && (x['type'] === 'error' || x['type'] === 'next'),
    `error for ${id}`,
  );
  expect(m['type']).toBe('error');
  return (m['payload'] as { message: string; extensions?: { code?: unknown } }[]).map((e) => ({
    message: e.message,
    code: e.extensions?.code,
  }));
}

describe('graphql-transport-ws protocol violations', () => {
  it('should close a socket that never sends connection_init with 4408', async () => {
    const raw = await open();
    expect(await raw.closed).toEqual({
      code: LiveCloseCode.ConnectionInitialisationTimeout,
      reason: 'Connection initialisation timeout',
    });
    await expectOthersUnaffected();
  });

  it.each([
    ['text that is not JSON', 'hello?'],
    ['JSON that is not a message', '[1,2,3]'],
    ['an unknown message type', { type: 'gimme' }],
    ['a subscribe without an id', { type: 'subscribe', payload: { query: '{ __typename }' } }],
  ])('should close a socket that sends %s with 4400', async (_what, frame) => {
    const raw = await open();
    await raw.init();
    raw.send(frame);
    expect((await raw.closed).code).toBe(LiveCloseCode.BadRequest);
    await expectOthersUnaffected();
  });

  it('should close with 4401 on subscribe before the ack, 4409 on a duplicate id and 4429 on a second init', async () => {
    const early = await open();
    early.send(subscribe('1', SHALLOW, { id: 'h1' }));
    const dup = await open();
    await dup.init();
    dup.send(subscribe('same', SHALLOW, { id: 'h1' }));
    await dup.waitFor((m) => m['id'] === 'same' && m['type'] === 'next', 'the first subscription running');
    dup.send(subscribe('same', SHALLOW, { id: 'h1' }));
    const twice = await open();
    await twice.init();
    twice.send({ type: 'connection_init' });
    expect([(await early.closed).code, (await dup.closed).code, (await twice.closed).code]).toEqual([
      LiveCloseCode.Unauthorized,
      LiveCloseCode.SubscriberAlreadyExists,
      LiveCloseCode.TooManyInitialisationRequests,
    ]);
    await expectOthersUnaffected();
  });

  it('should refuse a socket without the graphql-transport-ws subprotocol (4406), other paths (404) and oversized frames (1009)', async () => {
    const bare = await open(server, { protocol: null });
    expect((await bare.closed).code).toBe(LiveCloseCode.SubprotocolNotAcceptable);
    // A client asking only for the legacy subscriptions-transport-ws protocol gets none and gives up itself.
    await expect(open(server, { protocol: 'graphql-ws' })).rejects.toThrow('Server sent no subprotocol');
    await expect(open(server, { path: '/elsewhere' })).rejects.toThrow('HTTP 404');
    const big = await open();
    await big.init();
    big.send(subscribe('big', `subscription { userChanged(id: "${'x'.repeat(5000)}") { userId } }`));
    expect((await big.closed).code).toBe(LiveCloseCode.MessageTooBig);
    await expectOthersUnaffected();
  });
});

describe('subscription limits', () => {
  it('should answer a subscribe past WS_MAX_SUBSCRIPTIONS with a clear error, keep the others and accept one after a complete', async () => {
    const raw = await open();
    await raw.init();
    for (const id of ['s1', 's2', 's3']) raw.send(subscribe(id, SHALLOW, { id: 'h1' }));
    for (const id of ['s1', 's2', 's3'])
      await raw.waitFor((m) => m['id'] === id && m['type'] === 'next', `snapshot of ${id}`);
    raw.send(subscribe('s4', SHALLOW, { id: 'h1' }));
    expect(await errorsOf(raw, 's4')).toEqual([
      {
        message: 'Too many operations on this connection: at most 3 may run at once; complete one first.',
        code: 'TOO_MANY_SUBSCRIPTIONS',
      },
    ]);
    raw.send({ id: 's1', type: 'complete' });
    await eventually(
      () => (server.running.live.stats().perSubscription.length === 3 ? true : undefined),
      WAIT_MS,
      's1 gone',
    );
    raw.send(subscribe('s5', SHALLOW, { id: 'h1' }));
    await raw.waitFor((m) => m['id'] === 's5' && m['type'] === 'next', 'snapshot of s5');
    const before = raw.messages.length;
    await expectOthersUnaffected();
    await eventually(
      () =>
        ['s2', 's3', 's5'].every((id) => raw.messages.slice(before).some((m) => m['id'] === id))
          ? true
          : undefined,
      WAIT_MS,
      'the three running subscriptions to receive the change',
    );
    expect(raw.ws.readyState).toBe(raw.ws.OPEN);
    raw.close();
  });

  it('should validate subscription documents with the same limits as queries, keeping the socket open', async () => {
    const raw = await open();
    await raw.init();
    const six = ['1', '2', '3', '4', '5', '6'];
    // One at a time: an operation counts against WS_MAX_SUBSCRIPTIONS (3 here) until its error is sent.
    const codes = async (id: string, query: string, variables: Record<string, unknown> = {}) => {
      raw.send(subscribe(id, query, variables));
      return (await errorsOf(raw, id)).map((e) => e.code);
    };
    expect({
      idsVar: await codes('ids-var', 'subscription($ids: [ID!]!) { usersChanged(ids: $ids) { userId } }', {
        ids: six,
      }),
      idsLit: await codes('ids-lit', `subscription { usersChanged(ids: ${JSON.stringify(six)}) { userId } }`),
      syntax: await codes('syntax', 'subscription { userChanged(id: "h1") { userId }'),
      unknown: await codes('unknown', 'subscription { userChanged(id: "h1") { userId shoeSize } }'),
      deep: await codes(
        'deep',
        'subscription { userChanged(id: "h1") { user { version { source { topic } } } } }',
      ),
      tokens: await codes('tokens', `subscription { userChanged(id: "h1") { ${'a '.repeat(1001)} } }`),
    }).toEqual({
      idsVar: ['TOO_MANY_IDS'],
      idsLit: ['TOO_MANY_IDS'],
      syntax: ['GRAPHQL_PARSE_FAILED'],
      unknown: ['GRAPHQL_VALIDATION_FAILED'],
      deep: ['QUERY_TOO_DEEP'],
      tokens: ['TOO_MANY_TOKENS'],
    });
    expect((await errorsOf(raw, 'ids-var'))[0]?.message).toBe('ids has 6 items; the maximum is 5.');
    expect(raw.ws.readyState).toBe(raw.ws.OPEN);
    raw.close();
  });
});

describe('bearer tokens (WS_AUTH_TOKENS)', () => {
  it('should close with 4403 without a known token and serve a client that presents one', async () => {
    const none = await open(guarded);
    none.send({ type: 'connection_init' });
    const wrong = await open(guarded);
    wrong.send({ type: 'connection_init', payload: { authorization: 'Bearer not-the-token-at-all' } });
    const refusals = [await none.closed, await wrong.closed];
    expect(refusals.map((r) => r.code)).toEqual([LiveCloseCode.Forbidden, LiveCloseCode.Forbidden]);
    expect(refusals[0]?.reason).toContain('connectionParams.authorization');

    const ok = await open(guarded);
    await ok.init({ authorization: `Bearer ${TOKEN}` });
    ok.send(subscribe('1', USER_CHANGED, { id: 'nobody' }));
    const first = await ok.waitFor((m) => m['id'] === '1', 'the snapshot');
    expect(first['payload']).toEqual({
      data: { userChanged: { userId: 'nobody', kind: 'SNAPSHOT', user: null } },
      extensions: { asOf: { sequence: String(guarded.running.store.sequence()), lagRecords: 0 } },
    });
    ok.close();
  });
});

describe('index cleanup', () => {
  it('should remove every index entry when subscriptions complete and when clients disconnect', async () => {
    const own = await startTestServer({ topics: freshTopics() });
    try {
      const hub = own.running.live;
      const a = wsClient(own.url);
      const subs = [record(a, USERS_CHANGED, { ids: ['x', 'y', 'z'] }), record(a, USER_CHANGED, { id: 'x' })];
      const raw = await RawSocket.open(own.url);
      await raw.init();
      raw.send(subscribe('r1', USERS_CHANGED, { ids: ['y', 'w'] }));
      raw.send(subscribe('r2', USER_CHANGED, { id: 'v' }));
      await eventually(
        () => (hub.stats().subscriptions === 4 ? true : undefined),
        WAIT_MS,
        'four subscriptions',
      );
      expect(hub.stats()).toMatchObject({ indexedUsers: 5, indexEntries: 7 });

      // complete: one from the graphql-ws client, one from the raw socket
      subs[0]!.stop();
      raw.send({ id: 'r2', type: 'complete' });
      await eventually(() => (hub.stats().subscriptions === 2 ? true : undefined), WAIT_MS, 'two completes');
      expect(hub.stats()).toMatchObject({ indexedUsers: 3, indexEntries: 3 });

      // disconnect: a graceful dispose, and a socket cut without a close frame
      await a.dispose();
      raw.close();
      await eventually(() => (hub.stats().subscriptions === 0 ? true : undefined), WAIT_MS, 'disconnects');
      expect(hub.stats()).toEqual({
        subscriptions: 0,
        indexedUsers: 0,
        indexEntries: 0,
        pending: 0,
        perSubscription: [],
      });
      expect((await own.running.metrics.subscriptionsActive.get()).values[0]?.value).toBe(0);
    } finally {
      await own.close();
    }
  });
});
