/**
 * Test kit for the API (and anyone who needs a store or feed stand-in): an in-memory `ViewReader` and
 * `FeedMonitor` with the real interfaces, deterministic user fixtures, and an API server on port 0 that
 * is disposed automatically. The fakes stay honest: same signatures, same undefined-for-unknown rules,
 * and `getUserJson` built from `REST_FIELDS` like the store's.
 */
import type { LiveSource } from '../../src/live/types.js';
import { afterAll, beforeAll } from 'vitest';
import type { PartitionPosition } from '../../src/feed/types.js';
import { loadConfig, type Config } from '../../src/ops/config.js';
import type { FeedMonitor, FeedStatusSnapshot } from '../../api/feed-monitor.js';
import { silentLogger, type Logger } from '../../src/ops/logger.js';
import { createMetrics, type Metrics } from '../../src/ops/metrics.js';
import type { ViewReader } from '../../src/store/types.js';
import { REST_FIELDS, type UserInformation } from '../../src/views/user-information.js';
import { encodeView } from '../../src/views/codec.js';
import { compareCodePoints } from '../../src/materializer/memory-state.js';
import { RANKED_BY, type Ranking } from '../../src/views/top-users.js';
import type { TotalsValue } from '../../src/views/totals.js';
import { createApiServer, type ApiServer, type ApiServerOptions } from '../../api/server.js';

/** Seeded PRNG (mulberry32), shared with the demo generator, so a run can be replayed from its seed. */
import { mulberry32 as seededRandom } from '../../src/demo/generator.js';

export { seededRandom };

const AWKWARD = [
  'Zach "zcox" Cox',
  'Chicago, IL',
  'émoji 🎉 ok',
  'line\nbreak\ttab',
  'back\\slash',
  '</script>',
  '',
];

/** User number `n`; with `random`, optional fields vary (nulls, quotes, non-ASCII) to exercise escaping. */
export function makeUser(
  n: number,
  random?: () => number,
  overrides: Partial<UserInformation> = {},
): UserInformation {
  const pick = (value: string): string | null => {
    if (random === undefined) return value;
    const r = random();
    return r < 0.2 ? null : r < 0.4 ? (AWKWARD[Math.floor(random() * AWKWARD.length)] ?? value) : value;
  };
  const count = (base: number): number => (random === undefined ? base : Math.floor(random() * 100_000));
  const joined = new Date(Date.UTC(2008, 0, 22, 15, 14, 44) + n * 86_400_000).toISOString();
  const user: UserInformation = {
    userId: String(n),
    username: `user${n}`,
    name: pick(`User ${n}`),
    description: pick(`Description of user ${n}`),
    location: pick('Chicago, IL'),
    webPageUrl: pick(`https://example.com/${n}`),
    joinedDate: random !== undefined && random() < 0.2 ? null : joined,
    profileImageUrl: pick(`https://img.example.com/${n}.jpg`),
    backgroundImageUrl: pick(`https://img.example.com/${n}-bg.jpg`),
    tweetCount: count(n % 1000),
    followingCount: count(n % 300),
    followerCount: count(n % 700),
    likeCount: count(n % 200),
    version: {
      sequence: String(1000 + n),
      appliedAt: new Date(Date.UTC(2024, 5, 1) + n * 1000).toISOString(),
      eventTime:
        random !== undefined && random() < 0.2
          ? null
          : new Date(Date.UTC(2024, 5, 1) + n * 999).toISOString(),
      source: { topic: 'users', partition: n % 3, offset: String(n * 7) },
    },
  };
  return { ...user, ...overrides };
}

/**
 * Users whose views serialize exactly (the fast path's and the subscription writer's byte comparisons):
 * 20 with optional fields varied by `random`, and two with non-canonical stored dates.
 */
export function serializableUsers(random: () => number): UserInformation[] {
  return [
    ...Array.from({ length: 20 }, (_, i) => makeUser(i + 1, random)),
    makeUser(21, undefined, { joinedDate: '2008-01-22T15:14:44Z', name: 'non-canonical date' }),
    makeUser(22, undefined, { joinedDate: '2008-01-22T16:14:44+01:00' }),
  ];
}

/** Users 90-92, with values graphql-js turns into errors (an Int out of range, a null username, a bad date). */
export function unserializableUsers(): UserInformation[] {
  return [
    makeUser(90, undefined, { tweetCount: 2 ** 40 }),
    makeUser(91, undefined, { username: null as unknown as string }),
    makeUser(92, undefined, { joinedDate: 'not a date' }),
  ];
}

/** Every field of `User`, nested version included, as a selection. */
export const ALL_USER_FIELDS = `userId username name description location webPageUrl joinedDate profileImageUrl
  backgroundImageUrl tweetCount followingCount followerCount likeCount
  version { sequence appliedAt eventTime source { topic partition offset } }`;

/** Seed 002's JSON object for a user, in `REST_FIELDS` order. */
export function restJson(user: UserInformation): string {
  const out: Record<string, unknown> = {};
  for (const field of REST_FIELDS) out[field] = user[field];
  return JSON.stringify(out);
}

/** In-memory `ViewReader` that counts calls (spies for batching tests). */
export class FakeViewReader implements ViewReader {
  readonly users = new Map<string, UserInformation>();
  readonly calls = {
    getUser: 0,
    getUserJson: 0,
    getUserJsonVersioned: 0,
    getUsers: 0,
    getUsersIds: [] as (readonly string[])[],
    getUsersUnversioned: 0,
  };
  readonly #json = new Map<string, Buffer>();
  #sequence = 0n;
  #positions: PartitionPosition[] = [];
  readonly #listeners = new Set<() => void>();
  /** Set to make every read throw (store failure). */
  failWith: Error | undefined;

  constructor(users: Iterable<UserInformation> = []) {
    for (const user of users) this.put(user);
  }

  put(user: UserInformation): void {
    this.users.set(user.userId, user);
    this.#json.set(user.userId, Buffer.from(restJson(user)));
    this.#commit();
  }

  delete(userId: string): void {
    this.users.delete(userId);
    this.#json.delete(userId);
    this.#commit();
  }

  /** A commit that moves the stored positions (and nothing else). */
  setPositions(positions: PartitionPosition[]): void {
    this.#positions = positions;
    this.#commit();
  }

  /** Like `LmdbStore.onCommit`: called after each put, delete and setPositions. */
  onCommit(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #commit(): void {
    this.#sequence += 1n;
    for (const listener of this.#listeners) listener();
  }

  resetCalls(): void {
    this.calls.getUser = 0;
    this.calls.getUserJson = 0;
    this.calls.getUserJsonVersioned = 0;
    this.calls.getUsers = 0;
    this.calls.getUsersIds = [];
    this.calls.getUsersUnversioned = 0;
  }

  getUser(userId: string): UserInformation | undefined {
    this.calls.getUser++;
    if (this.failWith !== undefined) throw this.failWith;
    return this.users.get(userId);
  }

  getUserJson(userId: string): Buffer | undefined {
    this.calls.getUserJson++;
    if (this.failWith !== undefined) throw this.failWith;
    return this.#json.get(userId);
  }

  getUserJsonVersioned(userId: string): { json: Buffer; sequence: string } | undefined {
    this.calls.getUserJsonVersioned++;
    if (this.failWith !== undefined) throw this.failWith;
    const json = this.#json.get(userId);
    const user = this.users.get(userId);
    return json === undefined || user === undefined ? undefined : { json, sequence: user.version.sequence };
  }

  getUsers(userIds: readonly string[]): (UserInformation | undefined)[] {
    this.calls.getUsers++;
    this.calls.getUsersIds.push([...userIds]);
    if (this.failWith !== undefined) throw this.failWith;
    return userIds.map((id) => this.users.get(id));
  }

  getUsersUnversioned(userIds: readonly string[]): (Omit<UserInformation, 'version'> | undefined)[] {
    this.calls.getUsersUnversioned++;
    if (this.failWith !== undefined) throw this.failWith;
    return userIds.map((id) => {
      const user = this.users.get(id);
      if (user === undefined) return undefined;
      const { version: _version, ...rest } = user;
      return rest;
    });
  }

  getViewBytes(userId: string): Buffer | undefined {
    const user = this.users.get(userId);
    return user === undefined ? undefined : encodeView(user);
  }

  /** The rankings by the SQL definition over the users held (count desc, userId asc). */
  topUserIds(ranking: Ranking, limit: number): string[] {
    const field = RANKED_BY[ranking];
    return [...this.users.values()]
      .sort((a, b) => b[field] - a[field] || compareCodePoints(a.userId, b.userId))
      .slice(0, limit)
      .map((u) => u.userId);
  }

  /** Set by tests of the totals. */
  totalsValue: TotalsValue | undefined;

  totals(): TotalsValue | undefined {
    return this.totalsValue;
  }

  positions(): PartitionPosition[] {
    return [...this.#positions];
  }

  sequence(): bigint {
    return this.#sequence;
  }

  /** Its commits are published as they are made: the snapshot's commit is the last one. */
  readSequence(): bigint {
    return this.#sequence;
  }
}

/** `FeedMonitor` whose answers tests set directly. */
export class FakeFeedMonitor implements FeedMonitor {
  isReady = true;
  isLive = true;
  why: string | null = null;
  status: FeedStatusSnapshot = {
    ready: true,
    source: 'embedded',
    state: 'running',
    reason: null,
    partitions: [
      { topic: 'users', partition: 0, next: '42', highWatermark: '42', lag: '0' },
      { topic: 'tweets', partition: 0, next: '9007199254740993', highWatermark: null, lag: null },
    ],
    newestEventAgeSeconds: 0.25,
    feedDownSeconds: null,
    sequence: '18446744073709551615',
    viewVersion: 1,
    deadLettersWaiting: 0,
  };

  ready(): boolean {
    return this.isReady;
  }
  live(): boolean {
    return this.isLive;
  }
  reason(): string | null {
    return this.why;
  }
  snapshot(): FeedStatusSnapshot {
    return { ...this.status, ready: this.isReady, reason: this.why };
  }
  /** What `lagRecords()` answers. */
  lag: number | null = 0;
  lagRecords(): number | null {
    return this.lag;
  }
}

/** A validated config for tests: port 0 on loopback, no demo; `env` overrides any variable. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ PORT: '0', HOST: '127.0.0.1', DEMO: 'false', LOG_LEVEL: 'silent', ...env });
}

export interface TestApi {
  readonly api: ApiServer;
  readonly url: string;
  readonly reader: FakeViewReader;
  readonly feed: FakeFeedMonitor;
  readonly metrics: Metrics;
  close(): Promise<void>;
}

export interface TestApiOptions {
  readonly env?: Record<string, string>;
  readonly users?: Iterable<UserInformation>;
  readonly logger?: Logger;
  readonly fastPath?: boolean;
  readonly live?: ApiServerOptions['live'];
}

/** Starts an API server on port 0 over fakes. Prefer `useTestApi`, which also disposes it. */
export async function startTestApi(options: TestApiOptions = {}): Promise<TestApi> {
  const reader = new FakeViewReader(options.users ?? []);
  const feed = new FakeFeedMonitor();
  const metrics = createMetrics({ defaultMetrics: false });
  const api = createApiServer({
    config: testConfig(options.env),
    reader,
    feed,
    metrics,
    logger: options.logger ?? silentLogger,
    commits: reader,
    ...(options.fastPath === undefined ? {} : { fastPath: options.fastPath }),
    ...(options.live === undefined ? {} : { live: options.live }),
  });
  const { port } = await api.listen();
  return { api, url: `http://127.0.0.1:${port}`, reader, feed, metrics, close: () => api.close() };
}

/**
 * Registers `beforeAll`/`afterAll` for one server per describe block; the returned object's fields are
 * filled in before the first test runs.
 */
export function useTestApi(options: TestApiOptions = {}): TestApi {
  const handle = {} as { -readonly [K in keyof TestApi]: TestApi[K] };
  beforeAll(async () => {
    Object.assign(handle, await startTestApi(options));
  });
  afterAll(async () => {
    await handle.close?.();
  });
  return handle;
}

/**
 * The `extensions` every GraphQL response of a test API carries (api/consistency/as-of.ts): its fake store's
 * sequence and its fake feed's lag, exactly.
 */
export function asOfOf(t: Pick<TestApi, 'reader' | 'feed'>): {
  asOf: { sequence: string; lagRecords: number | null };
} {
  return { asOf: { sequence: String(t.reader.readSequence()), lagRecords: t.feed.lag } };
}

/** Response of `gql` / `http`: status, headers and body text, with `json()` for convenience. */
export interface TestResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
}

/** Sends a request and reads the whole response. */
export async function http(url: string, init: RequestInit = {}): Promise<TestResponse> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: <T>() => JSON.parse(text) as T };
}

/** POST /graphql with a JSON body. */
export function gql(
  baseUrl: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<TestResponse> {
  return http(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** A LiveSource for tests of user subscriptions: `subscribeUsers` as given; the dashboard ones end at once. */
export function userLive(subscribeUsers: LiveSource['subscribeUsers']): LiveSource {
  const none = <T>(): AsyncIterable<T> => ({
    [Symbol.asyncIterator]: () => ({ next: async () => ({ value: undefined, done: true }) }),
  });
  return { subscribeUsers, subscribeTopUsers: none, subscribeTotals: none };
}
