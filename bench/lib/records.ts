/**
 * Changelog workloads: a deterministic mix of records over a set of users, as raw Kafka messages (for the
 * end-to-end scenarios) or as decoded commit inputs (for the materializer and the store alone), plus Kafka
 * helpers (mock cluster, fast producer, a matview server process).
 *
 * Mix after the users are created: 40 % new tweets, 30 % new follows, 20 % new likes, 10 % profile updates.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import kafkajs from 'kafkajs';
import { ChangeBatch, type CommitInput } from '../../src/materializer/change-batch.js';
import type { Row, Table } from '../../src/views/source.js';
import { killOnExit, prng, ROOT, waitFor } from './common.js';
import { profileOf } from './dataset.js';

const { CompressionTypes, Kafka, logLevel } = kafkajs;

export interface RawRecord {
  readonly table: Table;
  readonly key: string;
  readonly value: string;
}

/** Record i of a workload over `users` users (the first `users` records create them). */
export function recordAt(
  i: number,
  users: number,
  random: () => number,
): { table: Table; key: string; row: Row } {
  if (i < users) return { table: 'users', key: String(i), row: { table: 'users', ...profileOf(i) } };
  const u = String(Math.floor(random() * users));
  const r = random();
  if (r < 0.4) return { table: 'tweets', key: `t${i}`, row: { table: 'tweets', userId: u } };
  if (r < 0.7) {
    return {
      table: 'follows',
      key: `f${i}`,
      row: { table: 'follows', followerId: u, followeeId: String(Math.floor(random() * users)) },
    };
  }
  if (r < 0.9) return { table: 'likes', key: `l${i}`, row: { table: 'likes', userId: u, tweetId: 't1' } };
  const k = Number(u);
  return { table: 'users', key: u, row: { table: 'users', ...profileOf(k), description: `edit ${i}` } };
}

/** The row as its source table would publish it (JSON value). */
export function valueOf(key: string, row: Row): string {
  switch (row.table) {
    case 'users': {
      const { table: _t, ...profile } = row;
      return JSON.stringify({ userId: key, ...profile });
    }
    case 'tweets':
      return JSON.stringify({ tweetId: key, userId: row.userId, text: 'just setting up my twttr' });
    case 'follows':
      return JSON.stringify({ followId: key, followerId: row.followerId, followeeId: row.followeeId });
    case 'likes':
      return JSON.stringify({ likeId: key, userId: row.userId, tweetId: 't1' });
  }
}

/** Decoded changes [from, to) of a workload, positions on one partition per table. */
/** Records [from, to) as one commit input (decoded, in columns), all on partition 0 of their table's topic. */
export function changes(from: number, to: number, users: number, random: () => number): CommitInput {
  const batch = new ChangeBatch();
  const now = Date.now();
  const next = new Map<Table, number>();
  for (let i = from; i < to; i++) {
    const r = recordAt(i, users, random);
    batch.push(r.table, r.key, r.row, r.table, 0, String(i), now);
    next.set(r.table, i + 1);
  }
  return {
    changes: batch.columns(),
    positions: [...next].map(([topic, n]) => ({ topic, partition: 0, next: String(n) })),
  };
}

export { prng };

// ---- Kafka ----

export const quietKafka = (brokers: readonly string[]) =>
  new Kafka({ brokers: [...brokers], clientId: 'matview-bench', logLevel: logLevel.NOTHING });

export interface Topics {
  readonly users: string;
  readonly tweets: string;
  readonly follows: string;
  readonly likes: string;
}

export function freshTopics(prefix: string): Topics {
  const tag = `${prefix}-${Date.now().toString(36)}`;
  return { users: `users-${tag}`, tweets: `tweets-${tag}`, follows: `follows-${tag}`, likes: `likes-${tag}` };
}

/** Records i in [from, to) of a workload as raw Kafka records. */
function* workloadRecords(
  topics: Topics,
  from: number,
  to: number,
  users: number,
  seed: number,
): Generator<ChangelogRecord> {
  const random = prng(seed);
  for (let i = from; i < to; i++) {
    const r = recordAt(i, users, random);
    yield { topic: topics[r.table], key: r.key, value: valueOf(r.key, r.row) };
  }
}

/** Produces records i in [from, to) of a workload, in big batches; returns the time it took (ms). */
export async function produceWorkload(
  brokers: readonly string[],
  topics: Topics,
  from: number,
  to: number,
  users: number,
  seed: number,
): Promise<number> {
  return produceRecords(brokers, workloadRecords(topics, from, to, users, seed), 20_000, { ordered: false });
}

/** A raw changelog record: `value` null is a tombstone. */
export interface ChangelogRecord {
  readonly topic: string;
  readonly key: string;
  readonly value: string | null;
}

/**
 * Sends `records` in sends of `perSend` records; returns the time it took (ms). `ordered` (the default) waits
 * for each send before the next: kafkajs does not keep the order of concurrent sends, even to one partition
 * (a later send can overtake one being retried or waiting for metadata), and the catch-up workload's updates
 * and tombstones must follow the record they change. Unordered, four sends are in flight.
 */
export async function produceRecords(
  brokers: readonly string[],
  records: Iterable<ChangelogRecord>,
  perSend: number,
  options: { ordered?: boolean; gzip?: boolean } = {},
): Promise<number> {
  const inFlight = options.ordered === false ? 4 : 1;
  const compression = options.gzip === true ? { compression: CompressionTypes.GZIP } : {};
  const producer = quietKafka(brokers).producer({ allowAutoTopicCreation: true });
  await producer.connect();
  const t0 = performance.now();
  try {
    const pending: Promise<unknown>[] = [];
    let byTopic = new Map<string, { key: string; value: string | null }[]>();
    let held = 0;
    const flush = async () => {
      pending.push(
        producer.sendBatch({
          acks: 1,
          ...compression,
          topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
        }),
      );
      byTopic = new Map();
      held = 0;
      if (pending.length >= inFlight) await pending.shift();
    };
    for (const r of records) {
      let list = byTopic.get(r.topic);
      if (list === undefined) byTopic.set(r.topic, (list = []));
      list.push({ key: r.key, value: r.value });
      if (++held >= perSend) await flush();
    }
    if (held > 0) await flush();
    await Promise.all(pending);
  } finally {
    await producer.disconnect();
  }
  return performance.now() - t0;
}

/** First and next offsets (log start and high watermark) of every partition of the topics. */
export async function endOffsets(
  brokers: readonly string[],
  topics: readonly string[],
): Promise<{ topic: string; partition: number; low: bigint; high: bigint }[]> {
  const admin = quietKafka(brokers).admin();
  await admin.connect();
  try {
    const out: { topic: string; partition: number; low: bigint; high: bigint }[] = [];
    for (const topic of topics)
      for (const p of await admin.fetchTopicOffsets(topic))
        out.push({ topic, partition: p.partition, low: BigInt(p.low), high: BigInt(p.high) });
    return out;
  } finally {
    await admin.disconnect();
  }
}

// ---- a matview server process ----

export interface ServerProcess {
  readonly url: string;
  readonly pid: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/** V8 flags matview ships with (the Docker image's NODE_OPTIONS and `npm start`). */
export const SHIPPED_NODE_ARGS: readonly string[] = ['--max-semi-space-size=16'];

/** `node bin/matview.js serve` (as an operator runs it, with SHIPPED_NODE_ARGS) with the given environment; port 0. */
export async function startMatviewProcess(
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
): Promise<ServerProcess> {
  // BENCH_SERVER_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the server processes.
  const extra = (process.env['BENCH_SERVER_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
  const args = [...SHIPPED_NODE_ARGS, ...extra, ...nodeArgs, `${ROOT}/bin/matview.js`, 'serve'];
  const child = spawn(process.execPath, args, {
    // LOG_LEVEL info: the port comes from the `API listening` line.
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      DEMO: 'false',
      NODE_ENV: 'production',
      ...env,
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  killOnExit(child);
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === 'API listening' && entry.port !== undefined) resolve(entry.port);
      } catch {
        /* not a log line */
      }
    });
    child.once('exit', (code) => reject(new Error(`matview serve exited with ${String(code)}`)));
    setTimeout(() => reject(new Error('matview serve did not listen within 60 s')), 60_000).unref();
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid ?? 0,
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      if (!(await waitFor(() => child.exitCode !== null || child.signalCode !== null, 15_000, 50)))
        child.kill('SIGKILL');
    },
  };
}

/** Resident memory of a process in bytes, from /proc. */
export function rssOf(pid: number, read: (path: string) => string): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(read(`/proc/${pid}/status`));
  return m?.[1] === undefined ? NaN : Number(m[1]) * 1024;
}
