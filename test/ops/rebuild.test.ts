/**
 * Issue 6, acceptance 3: a server asked to rebuild (`matview rebuild`) against a populated store rebuilds
 * the view from the feed in a shadow generation while it keeps answering the old one, then swaps
 * atomically, whichever way the rebuild replays (views commit by commit, or its rows first and then its
 * views from them: REBUILD_ROWS_FIRST, src/wiring/rebuild.ts). Issue 16: a server started with a bumped
 * view version rebuilds that view alone from the stored rows before it consumes. After either, the rankings
 * and totals equal the reference model over the topics read back, and a totals subscriber across the swap
 * never sees its version step back.
 *
 * A reader hammers `users(ids)` for the whole rebuild: no error, no null, and never fewer counts than the
 * complete view had (a half-built shadow would show fewer). The swap hook holds the fully built shadow
 * until the test has seen reads of the old generation and produced more records, so "during the rebuild"
 * is a state the test controls, not a timing guess.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/lmdb-store.js';
import { VIEWS } from '../../src/views/registry.js';
import { TOP_USERS_VERSION } from '../../src/views/top-users.js';
import { USER_INFORMATION_VERSION } from '../../src/views/user-information.js';
import {
  computeReference,
  expectServedDashboardEquals,
  readTopics,
  waitCaughtUp,
} from '../faults/support/reference.js';
import { lastOf, orderProblem, record, USERS_CHANGED, wsClient, type Recording } from '../live/helpers.js';
import { useKafka } from '../utils/kafka-mock.js';
import { eventually, graphql } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';
import {
  produceRange as produceUsersRange,
  scrape,
  startOpsServer,
  topicsWith as topicsWithUsers,
  type OpsServer,
  type Topics,
} from './helpers.js';

const kafka = useKafka();
const servers: OpsServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

const USERS = Array.from({ length: 20 }, (_, i) => `v${i}`);
const QUERY = `query Read($ids: [ID!]!) { users(ids: $ids) { userId tweetCount followerCount version { sequence } } }`;

interface Read {
  userId: string;
  tweetCount: number;
  followerCount: number;
  version: { sequence: string };
}

const TOTALS_CHANGED = 'subscription { totalsChanged { tweets version { sequence } } }';
/** The events of a `totalsChanged` recording (`record` keeps each event's root field value as is). */
const totalsOf = (r: Recording) =>
  r.events as unknown as readonly { tweets: number; version: { sequence: string } }[];

/** The served rankings and totals equal the reference model over the topics read back (issue 16). */
async function expectDashboardEqualsTopics(url: string, topics: Topics) {
  await waitCaughtUp(url, kafka.brokers, topics);
  await expectServedDashboardEquals(url, computeReference(await readTopics(kafka.brokers, topics)));
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Tweets and follows [from, to) among USERS (helpers.ts `produceRange`). */
const produceRange = (brokers: readonly string[], topics: Topics, from: number, to: number) =>
  produceUsersRange(brokers, topics, USERS, from, to);

/** Fresh topics holding USERS' profiles, then records [0, `records`) (produceRange). */
const topicsWith = (records: number): Promise<Topics> => topicsWithUsers(kafka.brokers, USERS, records);

const counts = (r: Read[]) =>
  r.map(({ userId, tweetCount, followerCount }) => ({ userId, tweetCount, followerCount }));

/** Waits until `users(ids)` at `url` shows the counts of the first `n` records of `produceRange`. */
async function countsReach(url: string, n: number, timeoutMs: number, what: string): Promise<void> {
  await eventually(
    async () => {
      const r = await graphql<{ users: Read[] }>(url, QUERY, { ids: USERS });
      return JSON.stringify(counts(r.data?.users ?? [])) === JSON.stringify(expected(n)) ? true : undefined;
    },
    timeoutMs,
    what,
  );
}

const expected = (n: number) =>
  USERS.map((u, idx) => ({
    userId: u,
    tweetCount: Array.from({ length: n }, (_, i) => i).filter((i) => i % 20 === idx).length,
    followerCount: Array.from({ length: n }, (_, i) => i).filter((i) => (i + 3) % 20 === idx).length,
  }));

describe('rebuilds on a running server', () => {
  it.each([
    // 20 users against commits of 250k: what the shipped REBUILD_ROWS_FIRST=auto picks for this store.
    { path: 'views commit by commit', env: {} },
    { path: 'rows first', env: { REBUILD_ROWS_FIRST: 'true' } },
  ])(
    'should keep answering the old view during a rebuild from the feed ($path), then swap to the new one atomically',
    async ({ env }) => {
      const topics = await topicsWith(2000);
      const dataDir = tempDir();

      const v1 = await startOpsServer({ brokers: kafka.brokers, topics, dataDir });
      servers.push(v1);
      const before = await eventually(
        async () => {
          const r = await graphql<{ users: Read[] }>(v1.url, QUERY, { ids: USERS });
          return JSON.stringify(counts(r.data?.users ?? [])) === JSON.stringify(expected(2000))
            ? r.data!.users
            : undefined;
        },
        45_000,
        'the v1 view',
      );
      const v1MaxSequence = before.reduce(
        (m, u) => (BigInt(u.version.sequence) > m ? BigInt(u.version.sequence) : m),
        0n,
      );
      await v1.close();
      // What `matview rebuild` records for the next start when no server runs.
      const tool = openStore({ path: join(dataDir, 'view'), create: false });
      tool.requestRebuild('test');
      await tool.close();

      const shadowComplete = deferred();
      const allowSwap = deferred();
      const v2 = await startOpsServer(
        { brokers: kafka.brokers, topics, dataDir, env },
        {
          beforeSwap: async () => {
            shadowComplete.resolve();
            await allowSwap.promise;
          },
        },
      );
      servers.push(v2);

      // A subscriber across the swap: events in commit order (sequences never step back), ending at the new view.
      const client = wsClient(v2.url);
      const subscription = record(client, USERS_CHANGED, { ids: USERS.slice(0, 3) });
      // And the dashboard's: the totals' version never steps back either.
      const totals = record(client, TOTALS_CHANGED, {});

      // The reader: every answer complete (at least the v1 counts), never an error or a null.
      const problems: string[] = [];
      const seen = { old: 0, new: 0 };
      let reading = true;
      const reader = (async () => {
        while (reading) {
          const r = await graphql<{ users: (Read | null)[] }>(v2.url, QUERY, { ids: USERS });
          if (r.errors !== undefined || r.data === undefined)
            problems.push(`errors: ${JSON.stringify(r.errors)}`);
          for (const [i, u] of (r.data?.users ?? []).entries()) {
            const floor = expected(2000)[i]!;
            if (u === null) problems.push(`${USERS[i]} read as null`);
            else if (u.tweetCount < floor.tweetCount || u.followerCount < floor.followerCount)
              problems.push(`${u.userId} read a partial view: ${JSON.stringify(u)}`);
            else if (BigInt(u.version.sequence) <= v1MaxSequence) seen.old++;
            else seen.new++;
          }
        }
      })();

      await shadowComplete.promise;
      // The shadow is complete but not swapped: readers still see generation 1.
      expect((await scrape(v2.url)).sum('matview_view_generation')).toBe(1);
      await eventually(
        () => (seen.old > 0 ? true : undefined),
        30_000,
        'reads of the old view during the rebuild',
      );
      // Records that arrive during the rebuild reach the old view now and the new one before it is swapped in.
      await produceRange(kafka.brokers, topics, 2000, 2100);
      await countsReach(v2.url, 2100, 30_000, 'live records applied to the old view');
      allowSwap.resolve();

      await eventually(
        async () => ((await scrape(v2.url)).sum('matview_view_generation') === 2 ? true : undefined),
        30_000,
        'the swap',
      );
      const after = await graphql<{ users: Read[] }>(v2.url, QUERY, { ids: USERS });
      reading = false;
      await reader;

      expect(problems).toEqual([]);
      expect(counts(after.data!.users)).toEqual(expected(2100));
      await eventually(
        () =>
          lastOf(USERS[0]!, subscription.events)?.user?.version.sequence ===
          after.data!.users[0]!.version.sequence
            ? true
            : undefined,
        30_000,
        'the subscriber to see the swapped-in view',
      );
      subscription.stop();
      expect(USERS.slice(0, 3).map((u) => orderProblem(u, subscription.events))).toEqual([
        undefined,
        undefined,
        undefined,
      ]);
      expect(lastOf(USERS[0]!, subscription.events)?.user).toMatchObject({
        tweetCount: expected(2100)[0]!.tweetCount,
      });
      expect(after.data!.users.every((u) => BigInt(u.version.sequence) > v1MaxSequence)).toBe(true);
      const metrics = await scrape(v2.url);
      expect({
        swaps: metrics.sum('matview_view_swaps_total', { reason: 'requested' }),
        generation: metrics.sum('matview_view_generation'),
        rebuilding: metrics.sum('matview_rebuild_in_progress'),
        rebuilt: metrics.sum('matview_rebuild_records_applied_total') >= 20 + 4000,
        store: v2.running.store.shadowGeneration(),
      }).toEqual({ swaps: 1, generation: 2, rebuilding: 0, rebuilt: true, store: undefined });

      // The live feed carries on in the new generation.
      await produceRange(kafka.brokers, topics, 2100, 2120);
      await countsReach(v2.url, 2120, 30_000, 'records after the swap');
      // Rankings and totals of the swapped-in generation, kept on after it: the reference's.
      await expectDashboardEqualsTopics(v2.url, topics);
      await eventually(
        () => (totalsOf(totals).at(-1)?.tweets === 2120 ? true : undefined),
        30_000,
        'the totals subscriber to see the records after the swap',
      );
      totals.stop();
      await client.dispose();
      const sequences = totalsOf(totals).map((e) => BigInt(e.version.sequence));
      expect(sequences.every((q, i) => i === 0 || q >= sequences[i - 1]!)).toBe(true);
    },
  );

  it('should rebuild a view whose version was bumped from the stored rows before consuming, and go on', async () => {
    const topics = await topicsWith(200);
    const dataDir = tempDir();
    const v1 = await startOpsServer({ brokers: kafka.brokers, topics, dataDir });
    servers.push(v1);
    await countsReach(v1.url, 200, 45_000, 'the first view');
    const before = await graphql<{ users: Read[] }>(v1.url, QUERY, { ids: USERS });
    await v1.close();

    // A code change bumped UserInformation's version: a view module other than VIEWS runs without the
    // writer thread (the worker serves the built-in registry).
    const bumped = VIEWS.map((v) => (v.name === 'user-information' ? { ...v, version: v.version + 1 } : v));
    const v2 = await startOpsServer(
      { brokers: kafka.brokers, topics, dataDir, env: { WRITER_THREAD: 'false' } },
      { views: bumped },
    );
    servers.push(v2);
    const rebuilt = await graphql<{ users: Read[] }>(v2.url, QUERY, { ids: USERS });
    expect(counts(rebuilt.data!.users)).toEqual(expected(200));
    // Rebuilt from the rows; the definition did not change, so every user came out as it was and keeps its
    // version (no empty pushes), and nothing was consumed before the rebuild.
    expect(rebuilt.data!.users).toEqual(before.data!.users);
    expect(v2.running.store.viewVersions()).toEqual({
      'user-information': USER_INFORMATION_VERSION + 1,
      'top-users': TOP_USERS_VERSION,
      totals: 1,
    });
    await produceRange(kafka.brokers, topics, 200, 220);
    await countsReach(v2.url, 220, 30_000, 'records after the view rebuild');
    await expectDashboardEqualsTopics(v2.url, topics);
  });
});
