/**
 * Issue 18, point 5: Apollo Router's HTTP callback protocol for subscriptions (`callback/1.0`), subgraph side,
 * against a stand-in router written here from the protocol: it sends the subscription with
 * `extensions.subscription`, answers `check` (204) for the ids it issued and 404 for others, takes `next` and
 * `complete`. What must hold: a `check` before the subscription's answer (`{"data":null}`), then `next` with the
 * snapshot and with every change, heartbeats, the subscription released when the router forgets it, `complete`
 * when the server shuts down; a callback URL outside SUBSCRIPTION_CALLBACK_URLS is refused before any request
 * is sent (no server-side request forgery), and callbacks are off when the setting is unset.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, freshTopics, startTestServer, type TestServer } from '../utils/server.js';

interface CallbackMessage {
  readonly path: string;
  readonly protocol: string | undefined;
  readonly kind: string;
  readonly action: string;
  readonly id: string;
  readonly verifier: string;
  readonly payload?: {
    data?: { userChanged?: { kind: string; user: { tweetCount: number } | null } };
    extensions?: { asOf?: { sequence: string; lagRecords: number | null } };
  };
  readonly errors?: unknown[];
}

/** The router's side of the protocol: the subscriptions it issued, what it received, which ids it has dropped. */
class StandInRouter {
  readonly received: CallbackMessage[] = [];
  readonly issued = new Map<string, string>(); // id → verifier
  readonly forgotten = new Set<string>();
  private server!: Server;
  base = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.onCallback(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async onCallback(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const message = {
      path: req.url ?? '',
      protocol: req.headers['subscription-protocol'] as string | undefined,
      ...JSON.parse(body),
    } as CallbackMessage;
    this.received.push(message);
    const known = this.issued.get(message.id) === message.verifier && !this.forgotten.has(message.id);
    // Protocol: 204 for a check of a live subscription, 200 for next, 202 for complete, 404 for anything unknown.
    const status = !known
      ? 404
      : message.action === 'check'
        ? 204
        : message.action === 'complete'
          ? 202
          : 200;
    res.writeHead(status).end();
  }

  /** Sends the subscription to the subgraph as the router does; returns the HTTP answer. */
  async subscribe(subgraph: string, id: string, query: string, variables: object, callbackUrl?: string) {
    const verifier = `verifier-${id}`;
    this.issued.set(id, verifier);
    const res = await fetch(`${subgraph}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({
        query,
        variables,
        extensions: {
          subscription: {
            callbackUrl: callbackUrl ?? `${this.base}/callback/${id}`,
            subscriptionId: id,
            verifier,
            heartbeatIntervalMs: 100,
          },
        },
      }),
    });
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown>,
      receivedBefore: this.received.length,
    };
  }

  of(id: string, action?: string): CallbackMessage[] {
    return this.received.filter((m) => m.id === id && (action === undefined || m.action === action));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const WATCH = 'subscription Watch($id: ID!) { userChanged(id: $id) { kind user { tweetCount } } }';
const router = new StandInRouter();
const topics = freshTopics();
let server: TestServer;
let closed = false;

beforeAll(async () => {
  await router.start();
  server = await startTestServer({ topics, env: { SUBSCRIPTION_CALLBACK_URLS: `${router.base}/callback` } });
});
afterAll(async () => {
  if (!closed) await server?.close();
  await router.close();
});

const send = (topic: string, key: string, value: object) =>
  server.running.writer.send(topic, [{ key, value: JSON.stringify(value) }]);
const nexts = (id: string) =>
  router
    .of(id, 'next')
    .map((m) => [m.payload?.data?.userChanged?.kind, m.payload?.data?.userChanged?.user?.tweetCount]);

describe('the subscription callback protocol with a stand-in router', () => {
  it('checks first, answers data null, then sends next for the snapshot and each change, and heartbeats', async () => {
    await send(topics.users, 'cb1', { userId: 'cb1', username: 'callback' });
    await eventually(() => (server.running.store.getUser('cb1') !== undefined ? true : undefined));
    const snapshotAt = server.running.store.getUser('cb1')!.version.sequence;
    const answer = await router.subscribe(server.url, 's1', WATCH, { id: 'cb1' });
    expect({ status: answer.status, data: answer.body['data'] }).toEqual({ status: 200, data: null });
    // The check came before the answer, with the protocol's header and the router's verifier.
    const firstCheck = router.of('s1', 'check')[0];
    expect(router.received.indexOf(firstCheck!)).toBeLessThan(answer.receivedBefore);
    expect(firstCheck).toMatchObject({
      path: '/callback/s1',
      protocol: 'callback/1.0',
      kind: 'subscription',
      verifier: 'verifier-s1',
    });

    await eventually(() => (nexts('s1').length === 1 ? true : undefined), 30_000, 'the snapshot');
    await send(topics.tweets, 'cb-t1', { tweetId: 'cb-t1', userId: 'cb1' });
    await eventually(() => (nexts('s1').length === 2 ? true : undefined), 30_000, 'the change');
    expect(nexts('s1')).toEqual([
      ['SNAPSHOT', 0],
      ['UPDATED', 1],
    ]);
    // Each payload carries the commit its state comes from, as an event over WebSocket does: what a client
    // resumes `after`.
    const changedAt = server.running.store.getUser('cb1')!.version.sequence;
    expect(changedAt).not.toBe(snapshotAt);
    expect(router.of('s1', 'next').map((m) => m.payload?.extensions?.asOf?.sequence)).toEqual([
      snapshotAt,
      changedAt,
    ]);
    for (const m of router.of('s1', 'next'))
      expect(Object.keys(m.payload?.extensions?.asOf ?? {})).toEqual(['sequence', 'lagRecords']);
    await eventually(() => (router.of('s1', 'check').length >= 3 ? true : undefined), 30_000, 'heartbeats');
  });

  it('releases the subscription when the router answers 404 (it forgot the id)', async () => {
    const before = server.running.live.stats().subscriptions;
    await router.subscribe(server.url, 's2', WATCH, { id: 'cb1' });
    await eventually(() => (server.running.live.stats().subscriptions === before + 1 ? true : undefined));
    router.forgotten.add('s2');
    await eventually(
      () => (server.running.live.stats().subscriptions === before ? true : undefined),
      30_000,
      'release',
    );
  });

  it('refuses a callback URL outside SUBSCRIPTION_CALLBACK_URLS before sending anything', async () => {
    const count = router.received.length;
    const { port } = new URL(router.base);
    for (const url of [
      `${router.base}/callbackevil/x`,
      `${router.base}/admin`,
      `http://127.0.0.2:${port}/callback/x`,
      `http://user:secret@127.0.0.1:${port}/callback/x`,
      `${router.base}/callback/x?redirect=1`,
      `${router.base}/callback/../admin`.replace('/../', '/%2e%2e/'),
      'file:///etc/passwd',
    ]) {
      const answer = await router.subscribe(server.url, 'evil', WATCH, { id: 'cb1' }, url);
      expect({
        url,
        status: answer.status,
        code: (answer.body['errors'] as { extensions: { code: string } }[])[0]?.extensions.code,
      }).toEqual({
        url,
        status: 400,
        code: 'CALLBACK_URL_NOT_ALLOWED',
      });
    }
    expect(router.received.slice(count).filter((m) => m.id === 'evil')).toEqual([]);
  });

  it('sends complete for every running subscription when the server shuts down', async () => {
    await router.subscribe(server.url, 's3', WATCH, { id: 'cb1' });
    await eventually(() => (nexts('s3').length === 1 ? true : undefined));
    await server.close();
    closed = true;
    expect(router.of('s1', 'complete')).toHaveLength(1);
    expect(router.of('s3', 'complete')).toHaveLength(1);
  });
});

describe('without SUBSCRIPTION_CALLBACK_URLS', () => {
  it('refuses subscription callbacks and keeps refusing subscriptions over plain HTTP', async () => {
    const plain = await startTestServer({ topics: freshTopics() });
    try {
      const answer = await router.subscribe(plain.url, 'off', WATCH, { id: 'cb1' });
      expect(answer).toMatchObject({
        status: 400,
        body: { errors: [{ extensions: { code: 'CALLBACK_URL_NOT_ALLOWED' } }] },
      });
      expect(router.of('off')).toEqual([]);
      const res = await fetch(`${plain.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: WATCH, variables: { id: 'cb1' } }),
      });
      expect(await res.json()).toMatchObject({
        errors: [{ extensions: { code: 'SUBSCRIPTIONS_UNAVAILABLE' } }],
      });
    } finally {
      await plain.close();
    }
  });
});
