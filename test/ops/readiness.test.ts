/**
 * Issue 6, acceptance 2: `/health/ready` answers 503 while a new instance catches up with 50k records
 * on the Kafka mock and 200 once it reached the end offsets seen at start, and the freshness histogram
 * has exactly one observation per applied record.
 *
 * The probe runs from before the server exists (its port is picked up front), so its first answer is
 * necessarily from before the feed started: no timing assumption.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { produce, useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics } from '../utils/server.js';
import { freePort, scrape, startOpsServer, type OpsServer } from './helpers.js';

const kafka = useKafka();
let server: OpsServer | undefined;
afterAll(async () => {
  await server?.close();
});

const TOTAL = 50_000;
const CHUNK = 5_000;

/** 5k users, 20k tweets, 15k follows, 10k likes, produced in chunks of 5k. */
async function produce50k(brokers: readonly string[], topics: ReturnType<typeof freshTopics>): Promise<void> {
  const users = 5_000;
  const user = (i: number) => `r${i % users}`;
  const plan: [string, number, (i: number) => object][] = [
    [topics.users, users, (i) => ({ username: `user${i}` })],
    [topics.tweets, 20_000, (i) => ({ userId: user(i) })],
    [topics.follows, 15_000, (i) => ({ followerId: user(i), followeeId: user(i * 7 + 1) })],
    [topics.likes, 10_000, (i) => ({ userId: user(i * 3), tweetId: `t${i}` })],
  ];
  for (const [topic, count, value] of plan) {
    for (let from = 0; from < count; from += CHUNK) {
      const n = Math.min(CHUNK, count - from);
      await produce(
        brokers,
        topic,
        Array.from({ length: n }, (_, k) => ({
          key: `k${from + k}`,
          value: JSON.stringify(value(from + k)),
        })),
      );
    }
  }
}

describe('readiness during catch-up', () => {
  it('should answer 503 until 50k records are applied, then 200, with one freshness observation per record', async () => {
    const topics = freshTopics();
    await produce50k(kafka.brokers, topics);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;

    const statuses: number[] = [];
    let probing = true;
    const probe = (async () => {
      while (probing) {
        const status = await fetch(`${url}/health/ready`).then(
          (r) => r.status,
          () => undefined,
        );
        if (status !== undefined && statuses[statuses.length - 1] !== status) statuses.push(status);
        if (status === 200) return;
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      server = await startOpsServer({ brokers: kafka.brokers, topics, port });
      await eventually(() => (statuses.includes(200) ? true : undefined), 60_000, 'ready');
    } finally {
      probing = false;
      await probe;
    }
    expect(statuses).toEqual([503, 200]);

    const metrics = await scrape(url);
    expect({
      applied: metrics.sum('matview_records_applied_total'),
      eventAges: metrics.sum('matview_event_age_seconds_count'),
      ready: metrics.sum('matview_ready'),
    }).toEqual({ applied: TOTAL, eventAges: TOTAL, ready: 1 });
  });
});
