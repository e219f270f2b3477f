/**
 * Runs `matview serve` in-process for a test: fresh temp data dir, port 0, fresh topics, and the
 * same startServer the CLI uses. Disposed with `close()`.
 */
import { loadConfig, type Config } from '../../src/ops/config.js';
import { silentLogger } from '../../src/ops/logger.js';
import { startServer, type Running, type StartOptions } from '../../src/wiring/runtime.js';
import { uniqueTopic } from './kafka-mock.js';
import { tempDir } from './tmp.js';

export interface TestTopics {
  readonly users: string;
  readonly tweets: string;
  readonly follows: string;
  readonly likes: string;
}

export function freshTopics(): TestTopics {
  return {
    users: uniqueTopic('users'),
    tweets: uniqueTopic('tweets'),
    follows: uniqueTopic('follows'),
    likes: uniqueTopic('likes'),
  };
}

export interface TestServer {
  readonly url: string;
  readonly config: Config;
  readonly running: Running;
  close(): Promise<void>;
}

export interface TestServerOptions {
  readonly brokers?: readonly string[];
  readonly topics: TestTopics;
  readonly dataDir?: string;
  /** Default 0 (any free port); the ops tests pick one up front so a probe can run before the server. */
  readonly port?: number;
  readonly env?: Record<string, string>;
}

/** The configuration every in-process test server uses: loopback, port 0, fresh data dir, no demo; the rest shipped defaults. */
export function testServerConfig(options: TestServerOptions): Config {
  return loadConfig({
    PORT: String(options.port ?? 0),
    HOST: '127.0.0.1',
    DATA_DIR: options.dataDir ?? tempDir(),
    // A sources file names the topics itself (and refuses TOPIC_* next to it); a replica reads no source topic.
    ...(options.env?.['SOURCES_FILE'] === undefined && options.env?.['VIEW_TOPIC_IN'] === undefined
      ? {
          TOPIC_USERS: options.topics.users,
          TOPIC_TWEETS: options.topics.tweets,
          TOPIC_FOLLOWS: options.topics.follows,
          TOPIC_LIKES: options.topics.likes,
        }
      : {}),
    DEMO: 'false',
    ...(options.brokers ? { KAFKA_BROKERS: options.brokers.join(',') } : {}),
    ...options.env,
  });
}

/** Starts `matview serve` in-process; `start` passes StartOptions (view version, swap hook) through. */
export async function startTestServer(
  options: TestServerOptions,
  start: StartOptions = {},
): Promise<TestServer> {
  const config = testServerConfig(options);
  const running = await startServer(config, silentLogger, start);
  return { url: `http://127.0.0.1:${running.port}`, config, running, close: () => running.close() };
}

/** POST /graphql and return the parsed body. */
export async function graphql<T = unknown>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<{ data?: T; errors?: unknown[] }> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data?: T; errors?: unknown[] };
}

/** Polls `check` until it returns a value other than undefined, or rejects with the last state after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const USER_FIELDS = `userId username name description location webPageUrl joinedDate profileImageUrl backgroundImageUrl
  tweetCount followingCount followerCount likeCount version { sequence appliedAt eventTime source { topic partition offset } }`;

/** Waits until `source` runs with no failure reported (connected, authenticated, fetching). */
export const runningWithoutFailures = (source: { status(): { state: string; reason?: string } }) =>
  eventually(
    () => {
      const s = source.status();
      return s.state === 'running' && s.reason === undefined ? s : undefined;
    },
    20_000,
    'the source to run without failures',
  );
