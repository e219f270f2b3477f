/**
 * Helpers for the operations tests: an in-process server with StartOptions (view version, swap hook),
 * a Prometheus text parser, and a free port picked up front so a probe can run before the server is up.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { produce } from '../utils/kafka-mock.js';
import { freshTopics } from '../utils/server.js';

export type { TestServer as OpsServer } from '../utils/server.js';
/** The ops tests share the integration tests' server: same configuration, StartOptions passed through. */
export { startTestServer as startOpsServer, testServerConfig as testConfig } from '../utils/server.js';

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

/** A test's fresh topics (`freshTopics`). */
export type Topics = ReturnType<typeof freshTopics>;
const json = (o: object) => JSON.stringify(o);

/**
 * Tweets and follows [from, to) among `users`: tweet i is user i % n's; in follow i, user i % n follows user
 * (i + 3) % n (n = `users.length`).
 */
export async function produceRange(
  brokers: readonly string[],
  topics: Topics,
  users: readonly string[],
  from: number,
  to: number,
): Promise<void> {
  const n = users.length;
  const ids = Array.from({ length: to - from }, (_, k) => from + k);
  await produce(
    brokers,
    topics.tweets,
    ids.map((i) => ({ key: `t${i}`, value: json({ userId: users[i % n] }) })),
  );
  await produce(
    brokers,
    topics.follows,
    ids.map((i) => ({
      key: `f${i}`,
      value: json({ followerId: users[i % n], followeeId: users[(i + 3) % n] }),
    })),
  );
}

/** Fresh topics holding `users`' profiles (username = id), then records [0, `records`) of `produceRange`. */
export async function topicsWith(
  brokers: readonly string[],
  users: readonly string[],
  records: number,
): Promise<Topics> {
  const topics = freshTopics();
  await produce(
    brokers,
    topics.users,
    users.map((u) => ({ key: u, value: json({ username: u }) })),
  );
  await produceRange(brokers, topics, users, 0, records);
  return topics;
}
