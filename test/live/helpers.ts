/**
 * Helpers for the live tests: a raw graphql-transport-ws socket (for protocol violations), a recorder of
 * subscription events over a real graphql-ws client, the per-user ordering check, and a seeded workload of
 * changelog records with the counts it must produce.
 */
import { createClient, type Client } from 'graphql-ws';
import kafkajs from 'kafkajs';
import WebSocket from 'ws';
import { USER_FIELDS } from '../utils/server.js';
import type { TestTopics } from '../utils/server.js';

const { Kafka, logLevel } = kafkajs;

/** Generous bound for anything the tests wait for; never an assertion on speed. */
export const WAIT_MS = 45_000;

/** A subscription event as the client sees it. */
export interface ChangeEvent {
  readonly userId: string;
  readonly kind: 'SNAPSHOT' | 'UPDATED' | 'DELETED';
  readonly user: (Record<string, unknown> & { version: { sequence: string } }) | null;
}

export const USERS_CHANGED = `subscription Live($ids: [ID!]!) { usersChanged(ids: $ids) { userId kind user { ${USER_FIELDS} } } }`;
export const USER_CHANGED = `subscription One($id: ID!) { userChanged(id: $id) { userId kind user { ${USER_FIELDS} } } }`;

/** A graphql-ws client with the `ws` implementation, as a Node consumer would build it. */
export function wsClient(httpUrl: string, connectionParams?: Record<string, unknown>): Client {
  return createClient({
    url: `${httpUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    ...(connectionParams === undefined ? {} : { connectionParams }),
  });
}

/** Records every event of one subscription. */
export interface Recording {
  readonly events: ChangeEvent[];
  /** The error that ended the operation, if any: waits throw it instead of timing out silently. */
  readonly error: () => unknown;
  /** Settles when the server completes the operation; rejects on an error message or socket error. */
  readonly finished: Promise<void>;
  /** Sends `complete` (unsubscribe). */
  stop(): void;
}

export function record(client: Client, query: string, variables: Record<string, unknown>): Recording {
  const events: ChangeEvent[] = [];
  let failure: unknown;
  let stop: () => void = () => {};
  const finished = new Promise<void>((resolve, reject) => {
    stop = client.subscribe<Record<string, ChangeEvent>>(
      { query, variables },
      {
        next: (result) => {
          if (result.errors !== undefined) reject(new Error(JSON.stringify(result.errors)));
          const change =
            result.data === undefined || result.data === null ? undefined : Object.values(result.data)[0];
          if (change !== undefined) events.push(change);
        },
        error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))),
        complete: resolve,
      },
    );
  });
  finished.catch((e: unknown) => (failure = e));
  return { events, error: () => failure, finished, stop: () => stop() };
}

/**
 * The subscription promises of CONTRACT.md §3 for one user's events: the first is a SNAPSHOT, no other is,
 * and the commit sequence of the states strictly increases (a DELETED has no state and no sequence).
 * Returns a readable problem, or undefined when the events keep them.
 */
export function orderProblem(userId: string, events: readonly ChangeEvent[]): string | undefined {
  const mine = events.filter((e) => e.userId === userId);
  if (mine.length === 0) return `${userId}: no events`;
  if (mine[0]!.kind !== 'SNAPSHOT') return `${userId}: first event is ${mine[0]!.kind}`;
  let last = -1n;
  for (const [i, e] of mine.entries()) {
    if (i > 0 && e.kind === 'SNAPSHOT') return `${userId}: SNAPSHOT again at event ${i}`;
    if (e.kind === 'DELETED' && e.user !== null) return `${userId}: DELETED with a user at event ${i}`;
    if (e.user === null) continue;
    const seq = BigInt(e.user.version.sequence);
    if (seq <= last) return `${userId}: sequence ${seq} after ${last} at event ${i}`;
    last = seq;
  }
  return undefined;
}

/** The last event of a user, or undefined. */
export function lastOf(userId: string, events: readonly ChangeEvent[]): ChangeEvent | undefined {
  for (let i = events.length - 1; i >= 0; i--) if (events[i]!.userId === userId) return events[i];
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Raw protocol socket

/** A bare graphql-transport-ws socket: frames are sent as given, so tests can break the protocol. */
export class RawSocket {
  readonly messages: Record<string, unknown>[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly listeners = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const l of this.listeners) l();
      }),
    );
    ws.on('message', (data) => {
      try {
        this.messages.push(JSON.parse(String(data)) as Record<string, unknown>);
      } catch {
        this.messages.push({ unparsed: String(data) });
      }
      for (const l of this.listeners) l();
    });
    ws.on('error', () => {}); // handshake refusals surface through `opened`
  }

  /** Opens a socket to `/graphql` (or `path`); rejects when the handshake is refused. */
  /** `protocol: null` offers no subprotocol at all. */
  static open(
    httpUrl: string,
    options: { protocol?: string | null; path?: string } = {},
  ): Promise<RawSocket> {
    const url = `${httpUrl.replace(/^http/, 'ws')}${options.path ?? '/graphql'}`;
    const protocol = options.protocol === undefined ? 'graphql-transport-ws' : options.protocol;
    const ws = protocol === null ? new WebSocket(url) : new WebSocket(url, protocol);
    const socket = new RawSocket(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(socket));
      ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`handshake refused: HTTP ${res.statusCode}`)),
      );
      ws.once('error', reject);
    });
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** connection_init and wait for the ack. */
  async init(payload?: Record<string, unknown>): Promise<void> {
    this.send({ type: 'connection_init', ...(payload === undefined ? {} : { payload }) });
    await this.waitFor((m) => m['type'] === 'connection_ack', 'connection_ack');
  }

  /** The first message (already received or future) matching `match`. */
  waitFor(match: (m: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.messages.find(match);
        if (found !== undefined) finish(() => resolve(found));
        else if (this.ws.readyState === WebSocket.CLOSED)
          finish(() => reject(new Error(`socket closed before ${what}`)));
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`no ${what} within ${WAIT_MS} ms`))),
        WAIT_MS,
      );
      const finish = (f: () => void): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
        f();
      };
      this.listeners.add(check);
      check();
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Workload

/** Seeded PRNG (mulberry32), shared with the demo generator, so a run can be replayed from its seed. */
import { mulberry32 as prng } from '../../src/demo/generator.js';

export { prng };

export interface WorkloadRecord {
  readonly table: keyof TestTopics;
  readonly key: string;
  /** null: tombstone. */
  readonly value: string | null;
}

export interface Workload {
  readonly records: readonly WorkloadRecord[];
  /** The counts the view must end with, per user. */
  readonly expected: ReadonlyMap<
    string,
    { tweetCount: number; likeCount: number; followingCount: number; followerCount: number; name: string }
  >;
}

/**
 * `total` changes touching `userIds`, in random order: each users row created once and sometimes renamed,
 * tweets created and some deleted again, likes and follows. Every record changes some user's view.
 */
export function workload(userIds: readonly string[], total: number, seed: number): Workload {
  const random = prng(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const records: WorkloadRecord[] = [];
  const names = new Map<string, string>();
  const tweets = new Map<string, string>(); // live tweetId → userId
  const tweetCount = new Map<string, number>();
  const likeCount = new Map<string, number>();
  const following = new Map<string, number>();
  const followers = new Map<string, number>();
  const bump = (m: Map<string, number>, id: string, by: number) => m.set(id, (m.get(id) ?? 0) + by);
  const uncreated = [...userIds];
  let n = 0;
  while (records.length < total) {
    n++;
    const r = random();
    // Create every users row somewhere in the first half, in random order among the other changes.
    if (uncreated.length > 0 && (r < 0.12 || records.length + uncreated.length >= total / 2)) {
      const id = uncreated.splice(Math.floor(random() * uncreated.length), 1)[0]!;
      names.set(id, `User ${id}`);
      records.push({
        table: 'users',
        key: id,
        value: JSON.stringify({ userId: id, username: `u${id}`, name: `User ${id}` }),
      });
    } else if (r < 0.16 && names.size > 0) {
      const id = pick([...names.keys()]);
      const name = `User ${id} #${n}`;
      names.set(id, name);
      records.push({
        table: 'users',
        key: id,
        value: JSON.stringify({ userId: id, username: `u${id}`, name }),
      });
    } else if (r < 0.22 && tweets.size > 0) {
      const tweetId = pick([...tweets.keys()]);
      bump(tweetCount, tweets.get(tweetId)!, -1);
      tweets.delete(tweetId);
      records.push({ table: 'tweets', key: tweetId, value: null });
    } else if (r < 0.32) {
      const userId = pick(userIds);
      bump(likeCount, userId, 1);
      records.push({
        table: 'likes',
        key: `l${n}`,
        value: JSON.stringify({ likeId: `l${n}`, userId, tweetId: 'any' }),
      });
    } else if (r < 0.4) {
      const followerId = pick(userIds);
      const followeeId = pick(userIds);
      bump(following, followerId, 1);
      bump(followers, followeeId, 1);
      records.push({
        table: 'follows',
        key: `f${n}`,
        value: JSON.stringify({ followId: `f${n}`, followerId, followeeId }),
      });
    } else {
      const userId = pick(userIds);
      tweets.set(`t${n}`, userId);
      bump(tweetCount, userId, 1);
      records.push({
        table: 'tweets',
        key: `t${n}`,
        value: JSON.stringify({ tweetId: `t${n}`, userId, text: `tweet ${n}` }),
      });
    }
  }
  const expected = new Map(
    userIds.map((id) => [
      id,
      {
        tweetCount: tweetCount.get(id) ?? 0,
        likeCount: likeCount.get(id) ?? 0,
        followingCount: following.get(id) ?? 0,
        followerCount: followers.get(id) ?? 0,
        name: names.get(id) ?? '',
      },
    ]),
  );
  return { records, expected };
}

/**
 * Produces a workload in chunks with one kafkajs producer (acks=all), each chunk one `sendBatch` over the
 * four topics. Per key the production order is kept (same key, same partition). `afterChunk` runs after
 * each chunk is acknowledged: tests start subscriptions there while later chunks are still being applied.
 */
export async function produceWorkload(
  brokers: readonly string[],
  topics: TestTopics,
  records: readonly WorkloadRecord[],
  options: { chunk?: number; afterChunk?: (index: number) => void | Promise<void> } = {},
): Promise<void> {
  const producer = new Kafka({
    brokers: [...brokers],
    clientId: 'matview-live-test',
    logLevel: logLevel.ERROR,
  }).producer({
    allowAutoTopicCreation: true,
  });
  await producer.connect();
  try {
    const size = options.chunk ?? 100;
    for (let start = 0, index = 0; start < records.length; start += size, index++) {
      const byTopic = new Map<string, { key: string; value: string | null }[]>();
      for (const r of records.slice(start, start + size)) {
        const topic = topics[r.table];
        let list = byTopic.get(topic);
        if (list === undefined) byTopic.set(topic, (list = []));
        list.push({ key: r.key, value: r.value });
      }
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
      await options.afterChunk?.(index);
    }
  } finally {
    await producer.disconnect();
  }
}
