/**
 * Traffic for the fault tests: an endless, seeded stream of valid changelog records (creates, updates
 * that move a row to another user, tombstones of known and unknown keys, users rows deleted and
 * re-created), and a bounded producer loop that writes it to the mock cluster while faults are injected.
 *
 * What the view must end as is never derived from this stream: the verifier reads the topics back
 * (reference.ts), like Kafka's exactly-once system test verifies against the log, so retried or
 * duplicated sends while the cluster is frozen cannot make the expectation wrong.
 */
import kafkajs from 'kafkajs';
import type { Producer } from 'kafkajs';
import type { Table } from '../../../src/views/source.js';
import type { TestTopics } from '../../utils/server.js';

const { Kafka, logLevel } = kafkajs;

export interface ChangeRecord {
  readonly table: Table;
  readonly key: string;
  /** JSON text of the full row; null is a tombstone. */
  readonly value: string | null;
}

/** Seeded PRNG (mulberry32), shared with the demo generator, so a run can be replayed from its seed. */
import { mulberry32 as prng } from '../../../src/demo/generator.js';

export { prng };

/**
 * `userCount` user ids `u0`…; the returned function yields the next record each call. With
 * `deleteUsers: false` users rows are only ever upserted (a load test that reads `/users/:id` expects 200).
 */
export function changeStream(
  seed: number,
  userCount: number,
  options: { deleteUsers?: boolean } = {},
): () => ChangeRecord {
  const deleteUsers = options.deleteUsers ?? true;
  const random = prng(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const users = Array.from({ length: userCount }, (_, i) => `u${i}`);
  const live: Record<Exclude<Table, 'users'>, string[]> = { tweets: [], follows: [], likes: [] };
  let n = 0;
  const day = (k: number) => new Date(Date.UTC(2020, 0, 1) + k * 86_400_000).toISOString();

  const row = (table: Exclude<Table, 'users'>, key: string): string => {
    switch (table) {
      case 'tweets':
        return JSON.stringify({
          tweetId: key,
          userId: pick(users),
          text: `tweet ${n}`,
          createdAt: day(n % 999),
        });
      case 'follows':
        return JSON.stringify({ followId: key, followerId: pick(users), followeeId: pick(users) });
      case 'likes':
        return JSON.stringify({ likeId: key, userId: pick(users), tweetId: `t${Math.floor(random() * 50)}` });
    }
  };

  return () => {
    n++;
    const r = random();
    if (r < 0.1) {
      const userId = pick(users);
      if (random() < 0.15 && deleteUsers) return { table: 'users', key: userId, value: null };
      return {
        table: 'users',
        key: userId,
        value: JSON.stringify({
          userId,
          username: `user_${userId}`,
          name: `User ${userId} #${n}`,
          location: random() < 0.5 ? null : 'Chicago, IL',
          ...(random() < 0.5 ? { joinedDate: day(n % 5000) } : {}),
        }),
      };
    }
    const table = r < 0.5 ? 'tweets' : r < 0.75 ? 'follows' : 'likes';
    const keys = live[table];
    const action = random();
    if (action < 0.1 && keys.length > 0) {
      // Tombstone of a live row; a second tombstone of the same key later is a no-op.
      const i = Math.floor(random() * keys.length);
      const key = keys[i]!;
      if (random() < 0.8) keys.splice(i, 1);
      return { table, key, value: null };
    }
    if (action < 0.13) return { table, key: `${table}-unknown-${n}`, value: null };
    if (action < 0.3 && keys.length > 0) {
      const key = pick(keys); // an update, usually moving the row to another user
      return { table, key, value: row(table, key) };
    }
    const key = `${table[0]}${n}`;
    keys.push(key);
    if (keys.length > 5_000) keys.shift();
    return { table, key, value: row(table, key) };
  };
}

export interface Producing {
  /** Records acknowledged by the cluster so far. */
  produced(): number;
  /** Sends that failed (each chunk is sent again until it is acknowledged). */
  failures(): number;
  /** Stops after the chunk in flight; resolves when the producer is disconnected. */
  stop(): Promise<void>;
}

export interface ProduceOptions {
  /** Records per chunk (one `sendBatch` over the four topics). */
  readonly perChunk: number;
  /** Pause between chunks. */
  readonly pauseMs: number;
  /**
   * Pace at perChunk per pauseMs, counting the send time in: a chunk starts when it is due rather than
   * pauseMs after the previous one ended (which falls short of the rate by the time sends take).
   */
  readonly fixedRate?: boolean;
  /** Hard bound on records, whatever happens. */
  readonly maxRecords: number;
  /** Hard bound on time, whatever happens. */
  readonly maxMs: number;
}

/**
 * Produces `next()` records in chunks with one kafkajs producer (acks=all), one chunk at a time so
 * records of a key stay in order. A failed chunk is retried as is after a pause (it may land twice:
 * harmless, the reference reads the topics back). Bounded in count and time.
 */
export function produceContinuously(
  brokers: readonly string[],
  topics: TestTopics,
  next: () => ChangeRecord,
  options: ProduceOptions,
): Producing {
  const producer: Producer = new Kafka({
    brokers: [...brokers],
    clientId: 'matview-fault-producer',
    logLevel: logLevel.NOTHING,
    // The cluster may be frozen or gone for a while: give up on a request in 5 s and try again.
    requestTimeout: 5_000,
    retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 1_000 },
  }).producer({ allowAutoTopicCreation: true });
  let produced = 0;
  let failures = 0;
  let stopping = false;
  const deadline = Date.now() + options.maxMs;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const loop = (async () => {
    await producer.connect();
    const startedAt = Date.now();
    let chunk: ChangeRecord[] = [];
    while (!stopping && Date.now() < deadline && produced < options.maxRecords) {
      if (chunk.length === 0) {
        const size = Math.min(options.perChunk, options.maxRecords - produced);
        chunk = Array.from({ length: size }, next);
      }
      const byTopic = new Map<string, { key: string; value: string | null }[]>();
      for (const r of chunk) {
        const topic = topics[r.table];
        let list = byTopic.get(topic);
        if (list === undefined) byTopic.set(topic, (list = []));
        list.push({ key: r.key, value: r.value });
      }
      try {
        await producer.sendBatch({
          acks: -1,
          topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
        });
        produced += chunk.length;
        chunk = [];
        const due = startedAt + (produced / options.perChunk) * options.pauseMs;
        await sleep(options.fixedRate === true ? Math.max(0, due - Date.now()) : options.pauseMs);
      } catch {
        failures++;
        await sleep(500);
      }
    }
  })();
  loop.catch(() => undefined);

  return {
    produced: () => produced,
    failures: () => failures,
    async stop() {
      stopping = true;
      await loop.catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
    },
  };
}
