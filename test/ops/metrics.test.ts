/**
 * Issue 6, acceptance 1: every documented metric is on `/metrics` with its documented type, and the
 * feed, freshness, store, API and subscription metrics move as records are applied and served.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { wsClient, record, USER_CHANGED } from '../live/helpers.js';
import { produce, useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics, graphql } from '../utils/server.js';
import { documentedMetrics, scrape, startOpsServer, type OpsServer } from './helpers.js';

const kafka = useKafka();
let server: OpsServer | undefined;
afterAll(async () => {
  await server?.close();
});

const json = (o: object) => JSON.stringify(o);
const USERS = Array.from({ length: 10 }, (_, i) => `m${i}`);

describe('/metrics', () => {
  it('should expose every documented metric with its type, and move them as records are applied and read', async () => {
    const topics = freshTopics();
    server = await startOpsServer({ brokers: kafka.brokers, topics });
    const { url } = server;
    await eventually(
      async () => ((await fetch(`${url}/health/ready`)).status === 200 ? true : undefined),
      45_000,
      'ready',
    );
    const before = await scrape(url);
    for (const m of documentedMetrics())
      expect({ name: m.name, type: before.types.get(m.name) }).toEqual({ name: m.name, type: m.type });
    expect({
      applied: before.sum('matview_records_applied_total'),
      ready: before.sum('matview_ready'),
      live: before.sum('matview_live'),
    }).toEqual({
      applied: 0,
      ready: 1,
      live: 1,
    });

    await produce(
      kafka.brokers,
      topics.users,
      USERS.map((u) => ({ key: u, value: json({ username: u }) })),
    );
    await produce(kafka.brokers, topics.tweets, [
      ...USERS.map((u, i) => ({ key: `t${i}`, value: json({ userId: u }) })),
      { key: 'bad', value: '{not json' },
    ]);
    await produce(
      kafka.brokers,
      topics.follows,
      USERS.map((u, i) => ({
        key: `f${i}`,
        value: json({ followerId: u, followeeId: USERS[(i + 1) % 10] }),
      })),
    );
    await produce(
      kafka.brokers,
      topics.likes,
      USERS.map((u, i) => ({ key: `l${i}`, value: json({ userId: u, tweetId: `t${i}` }) })),
    );
    const valid = USERS.length * 4;

    // Read and subscribe, so the API metrics move too.
    const client = wsClient(url);
    const sub = record(client, USER_CHANGED, { id: USERS[0] });
    await eventually(
      async () => {
        const r = await graphql<{ user: { likeCount: number } | null }>(
          url,
          `query Probe { user(id: "${USERS[0]}") { likeCount } }`,
        );
        return r.data?.user?.likeCount === 1 ? true : undefined;
      },
      45_000,
      'records applied',
    );

    const after = await eventually(
      async () => {
        const s = await scrape(url);
        const settled =
          s.sum('matview_records_applied_total') === valid &&
          s.sum('matview_lmdb_size_bytes') > before.sum('matview_lmdb_size_bytes') &&
          s.sum('matview_subscriptions_active') === 1;
        return settled ? s : undefined;
      },
      45_000,
      'metrics to settle',
    );
    sub.stop();
    await client.dispose();

    expect({
      appliedPerTopic: [topics.users, topics.tweets, topics.follows, topics.likes].map((topic) =>
        after.sum('matview_records_applied_total', { topic }),
      ),
      invalid: after.sum('matview_records_invalid_total', {
        topic: topics.tweets,
        code: 'MV_ERR_RECORD_JSON_INVALID',
      }),
      eventAges: after.sum('matview_event_age_seconds_count'),
      batchRecords: after.sum('matview_batch_records_sum'),
      lagPartitions: new Set(
        after.samples.filter((s) => s.name === 'matview_partition_lag').map((s) => s.labels['topic']),
      ).size,
      totalLag: after.sum('matview_partition_lag'),
      probeRequests: after.sum('matview_graphql_request_seconds_count', { operation: 'Probe' }) > 0,
      subscriptions: after.sum('matview_subscriptions_active'),
      conflated: after.sum('matview_subscription_conflated_total') >= 0,
      newestAgeKnown: after.samples.some((s) => s.name === 'matview_newest_event_age_seconds'),
    }).toEqual({
      appliedPerTopic: [10, 10, 10, 10],
      invalid: 1,
      eventAges: valid,
      batchRecords: valid + 1,
      lagPartitions: 4,
      totalLag: 0,
      probeRequests: true,
      subscriptions: 1,
      conflated: true,
      newestAgeKnown: true,
    });
    expect(after.sum('matview_batch_apply_seconds_count')).toBeGreaterThan(
      before.sum('matview_batch_apply_seconds_count'),
    );
    expect(after.sum('matview_store_commits_total')).toBeGreaterThan(
      before.sum('matview_store_commits_total'),
    );
    // One observation of each per commit; the commits' records are the valid records (the invalid one went to
    // the dead letters, with the offset that passes it).
    const commits = after.sum('matview_store_commits_total');
    expect({
      recordsCount: after.sum('matview_store_commit_records_count'),
      records: after.sum('matview_store_commit_records_sum') - before.sum('matview_store_commit_records_sum'),
      secondsCount: after.sum('matview_store_commit_seconds_count'),
      timed: after.sum('matview_store_commit_seconds_sum') > before.sum('matview_store_commit_seconds_sum'),
    }).toEqual({ recordsCount: commits, records: valid, secondsCount: commits, timed: true });
    expect(after.sum('matview_feed_last_progress_timestamp_seconds')).toBeGreaterThan(
      before.sum('matview_feed_last_progress_timestamp_seconds'),
    );
  });
});
