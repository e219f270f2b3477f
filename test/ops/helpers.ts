/**
 * Helpers for the operations tests: an in-process server with StartOptions (view version, swap hook),
 * a Prometheus text parser, and a free port picked up front so a probe can run before the server is up.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadConfig, type Config } from '../../src/ops/config.js';
import { silentLogger } from '../../src/ops/logger.js';
import { startServer, type Running, type StartOptions } from '../../src/ops/runtime.js';
import type { TestTopics } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';

export interface OpsServer {
  readonly url: string;
  readonly config: Config;
  readonly running: Running;
  close(): Promise<void>;
}

/** The environment startTestServer uses, plus `env`. */
export function testConfig(options: {
  brokers?: readonly string[];
  topics: TestTopics;
  dataDir?: string;
  port?: number;
  env?: Record<string, string>;
}): Config {
  return loadConfig({
    PORT: String(options.port ?? 0),
    HOST: '127.0.0.1',
    DATA_DIR: options.dataDir ?? tempDir(),
    TOPIC_USERS: options.topics.users,
    TOPIC_TWEETS: options.topics.tweets,
    TOPIC_FOLLOWS: options.topics.follows,
    TOPIC_LIKES: options.topics.likes,
    KAFKA_FETCH_MAX_WAIT_MS: '50',
    KAFKA_SESSION_TIMEOUT_MS: '6000',
    DEMO: 'false',
    ...(options.brokers ? { KAFKA_BROKERS: options.brokers.join(',') } : {}),
    ...options.env,
  });
}

export async function startOpsServer(
  options: {
    brokers?: readonly string[];
    topics: TestTopics;
    dataDir?: string;
    port?: number;
    env?: Record<string, string>;
  },
  start: StartOptions = {},
): Promise<OpsServer> {
  const config = testConfig(options);
  const running = await startServer(config, silentLogger, start);
  return { url: `http://127.0.0.1:${running.port}`, config, running, close: () => running.close() };
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Scrape {
  /** `# TYPE` of each metric family. */
  readonly types: ReadonlyMap<string, string>;
  readonly samples: readonly Sample[];
  /** Sum of the samples named `name` whose labels include `labels`. */
  sum(name: string, labels?: Readonly<Record<string, string>>): number;
}

/** Parses the Prometheus text format (enough of it for our own output). */
export function parseMetrics(text: string): Scrape {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return {
    types,
    samples,
    sum: (name, want = {}) =>
      samples
        .filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v))
        .reduce((n, s) => n + s.value, 0),
  };
}

export async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(`${url}/metrics`);
  return parseMetrics(await res.text());
}

/** `| `name` | type | `a`, `b` | meaning |` rows of docs/metrics.md. */
export function documentedMetrics(): { name: string; type: string; labels: string[] }[] {
  const doc = readFileSync('docs/metrics.md', 'utf8');
  // Cells may be padded (prettier aligns markdown tables).
  return [...doc.matchAll(/^\| `(matview_[a-z_]+)`\s*\| (\w+)\s*\|([^|]*)\|/gm)].map((m) => ({
    name: m[1]!,
    type: m[2]!,
    labels: [...m[3]!.matchAll(/`([a-z_]+)`/g)].map((l) => l[1]!),
  }));
}
