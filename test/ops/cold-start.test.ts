/**
 * Issue 17 (catch-up mode, rebuild as a bulk load): a server whose store never applied a record loads the
 * topics' history as a rebuild (COLD_START_BULK_LOAD, src/wiring/cold-start.ts) and starts its live feed
 * only once that has swapped in. The swap hook holds the loaded shadow, so "during the load" is a state the
 * test controls: nothing is applied to the served generation, readiness says why it waits, liveness holds.
 * Afterwards the view, rankings and totals equal the reference model, the history's invalid record is on
 * the dead-letter topic (no live feed read it), and records produced later are applied by the live feed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { RecordErrorCode } from '../../src/errors.js';
import { coldStartBulkLoad, type ColdStartInput } from '../../src/wiring/cold-start.js';
import type { OffsetRange } from '../../src/wiring/offset-ranges.js';
import {
  computeReference,
  expectServedDashboardEquals,
  expectServedViewEquals,
  readTopics,
  waitCaughtUp,
} from '../faults/support/reference.js';
import { consumeAll, produce, useKafka } from '../utils/kafka-mock.js';
import { eventually } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';
import {
  produceRange as produceUsersRange,
  scrape,
  startOpsServer,
  topicsWith,
  type OpsServer,
  type Topics,
} from './helpers.js';

const kafka = useKafka();
const servers: OpsServer[] = [];
/** Swaps a failed test left held (a server's close waits for its handoff). */
const releases: (() => void)[] = [];
afterAll(async () => {
  for (const release of releases) release();
  for (const s of servers) await s.close();
});

const USERS = Array.from({ length: 20 }, (_, i) => `c${i}`);

/** Tweets and follows [from, to) among USERS (helpers.ts). */
const produceRange = (topics: Topics, from: number, to: number) =>
  produceUsersRange(kafka.brokers, topics, USERS, from, to);

/** The reference over the topics read back, the invalid tweet left out (it goes to the DLQ). */
async function reference(topics: Topics) {
  return computeReference(
    await readTopics(kafka.brokers, topics),
    (_table, r) => r.key?.toString() !== 'bad-json',
  );
}

describe('a cold start as a bulk load', () => {
  it.each([
    // 20 users against commits of 250k: REBUILD_ROWS_FIRST=auto applies views commit by commit.
    { path: 'views commit by commit', env: {} },
    { path: 'rows first', env: { REBUILD_ROWS_FIRST: 'true' } },
  ])(
    'should load the history into a shadow, start the live feed after the swap, and route the history dead letters ($path)',
    async ({ env }) => {
      const topics = await topicsWith(kafka.brokers, USERS, 1000);
      await produce(kafka.brokers, topics.tweets, [
        { key: 'bad-json', value: '{"userId": "c1",', partition: 0 },
      ]);

      let held!: () => void;
      const shadowLoaded = new Promise<void>((resolve) => (held = resolve));
      let allow!: () => void;
      const swapAllowed = new Promise<void>((resolve) => (allow = resolve));
      releases.push(allow);
      const server = await startOpsServer(
        // The setting is the point: this history is far below the `auto` threshold (MAX_RECORDS_PER_COMMIT).
        { brokers: kafka.brokers, topics, dataDir: tempDir(), env: { COLD_START_BULK_LOAD: 'true', ...env } },
        {
          beforeSwap: async () => {
            held();
            await swapAllowed;
          },
        },
      );
      servers.push(server);

      await shadowLoaded;
      // Loaded, not swapped: the served generation applied nothing (the live feed has not started).
      expect(server.running.store.positions()).toEqual([]);
      const ready = await fetch(`${server.url}/health/ready`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { error: { message: string } }).error.message).toBe(
        "loading the topics' history into a new store (2021 records) as a rebuild, before the live feed starts",
      );
      expect((await fetch(`${server.url}/health/live`)).status).toBe(200);
      const during = await scrape(server.url);
      expect({
        generation: during.sum('matview_view_generation'),
        rebuilding: during.sum('matview_rebuild_in_progress'),
      }).toEqual({ generation: 1, rebuilding: 1 });
      allow();

      await waitCaughtUp(server.url, kafka.brokers, topics);
      await eventually(
        async () => ((await fetch(`${server.url}/health/ready`)).status === 200 ? true : undefined),
        30_000,
        'ready after the swap',
      );
      const loaded = await reference(topics);
      await expectServedViewEquals(server.url, loaded);
      await expectServedDashboardEquals(server.url, loaded);
      const after = await scrape(server.url);
      expect({
        swaps: after.sum('matview_view_swaps_total', { reason: 'cold-start' }),
        generation: after.sum('matview_view_generation'),
        rebuilding: after.sum('matview_rebuild_in_progress'),
      }).toEqual({ swaps: 1, generation: 2, rebuilding: 0 });

      // The history's invalid record reached the DLQ, though no live feed read it.
      const dlq = await consumeAll(kafka.brokers, `${topics.tweets}.dlq`, 1, 30_000);
      expect(
        dlq.map((r) => ({
          key: r.key?.toString(),
          code: r.headers['matview.error.code']?.toString(),
          offset: r.headers['matview.source.offset']?.toString(),
        })),
      ).toEqual([{ key: 'bad-json', code: RecordErrorCode.JsonInvalid, offset: expect.any(String) }]);

      // The live feed runs from where the load stands.
      await produceRange(topics, 1000, 1050);
      await waitCaughtUp(server.url, kafka.brokers, topics);
      const live = await reference(topics);
      await expectServedViewEquals(server.url, live);
      await expectServedDashboardEquals(server.url, live);
    },
  );

  it('should catch up commit by commit on the shipped default when the history is below a commit', async () => {
    const topics = await topicsWith(kafka.brokers, USERS, 100);
    const server = await startOpsServer({ brokers: kafka.brokers, topics, dataDir: tempDir() });
    servers.push(server);
    await waitCaughtUp(server.url, kafka.brokers, topics);
    await expectServedViewEquals(server.url, await reference(topics));
    const metrics = await scrape(server.url);
    expect({
      swaps: metrics.sum('matview_view_swaps_total'),
      generation: metrics.sum('matview_view_generation'),
    }).toEqual({ swaps: 0, generation: 1 });
  });
});

describe('coldStartBulkLoad', () => {
  const range = (topic: string, low: number, high: number): OffsetRange => ({
    topic,
    partition: 0,
    low: String(low),
    high: String(high),
  });
  const base = {
    setting: 'auto' as const,
    storedPositions: 0,
    usersTopic: 'users',
    maxRecordsPerCommit: 1000,
  };
  /** Times the decision asked for the ranges (a round trip to the cluster). */
  let reads = 0;
  /** The decision with the cluster holding `ranges`. */
  const decide = (input: Omit<ColdStartInput, 'ranges'> & { ranges: readonly OffsetRange[] }) =>
    coldStartBulkLoad({
      ...input,
      ranges: () => {
        reads++;
        return Promise.resolve(input.ranges);
      },
    });

  it('should load in bulk from `auto` when the topics hold at least a commit of records, weighing the users topic', async () => {
    expect(
      await decide({
        ...base,
        ranges: [range('users', 0, 300), range('tweets', 100, 600), range('likes', 0, 200)],
      }),
    ).toEqual({ expectedViewEntries: 300, records: 1000 });
    expect(
      await decide({ ...base, ranges: [range('users', 0, 300), range('tweets', 100, 799)] }),
    ).toBeUndefined();
  });

  it('should never load in bulk into a store that applied records, nor with `false` (asking the cluster nothing), nor an empty history', async () => {
    const ranges = [range('users', 0, 5000)];
    const before = reads;
    expect(await decide({ ...base, ranges, storedPositions: 1 })).toBeUndefined();
    expect(await decide({ ...base, ranges, setting: false })).toBeUndefined();
    expect(reads).toBe(before);
    expect(await decide({ ...base, setting: true, ranges: [range('users', 7, 7)] })).toBeUndefined();
  });

  it('should load any non-empty history in bulk with `true`', async () => {
    expect(await decide({ ...base, setting: true, ranges: [range('tweets', 0, 1)] })).toEqual({
      expectedViewEntries: 0,
      records: 1,
    });
  });
});
