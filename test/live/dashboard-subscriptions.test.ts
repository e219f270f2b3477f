/**
 * Issue 16's subscriptions on a real server fed through the Kafka protocol, with real graphql-ws clients:
 * `topUsersChanged` sends the current list first, then the list whenever its members, their order or their
 * selected fields change — a deleted follow moves a user down, a deleted users row takes the user out, a
 * change of a field the subscriber did not select sends nothing, a change of one it selected does — and
 * `totalsChanged` sends the current totals, then each change of what it selected.
 *
 * Each step waits until the previous one reached the subscribers, so every step is its own commit and the
 * event lists can be compared whole: an extra push would show as an extra element.
 */
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { produce, useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics, startTestServer, type TestServer } from '../utils/server.js';
import { record, WAIT_MS, wsClient, type Recording } from './helpers.js';

const kafka = useKafka();
let server: TestServer;
let client: Client;
const topics = freshTopics();

beforeAll(async () => {
  server = await startTestServer({ brokers: kafka.brokers, topics });
  client = wsClient(server.url);
});
afterAll(async () => {
  await client?.dispose();
  await server?.close();
});

const json = (o: object) => JSON.stringify(o);
const follow = (key: string, followerId: string, followeeId: string) => ({
  key,
  value: json({ followId: key, followerId, followeeId }),
});

/** The events of a recording: each the value of the subscription's root field. */
const eventsOf = <T>(r: Recording) => r.events as unknown as T[];

async function until<T>(r: Recording, count: number, what: string): Promise<T[]> {
  await eventually(
    () => {
      if (r.error() !== undefined) throw r.error();
      return r.events.length >= count ? true : undefined;
    },
    WAIT_MS,
    what,
  );
  return eventsOf<T>(r);
}

type Ranked = { userId: string; followerCount: number; name?: string | null };
const TOP = 'subscription($n: Int) { topUsersChanged(by: FOLLOWERS, limit: $n) { userId followerCount } }';
const TOP_NAMED =
  'subscription($n: Int) { topUsersChanged(by: FOLLOWERS, limit: $n) { userId followerCount name } }';
const TOTALS = 'subscription { totalsChanged { users follows } }';

describe('dashboard subscriptions', () => {
  it('should send the current list, then each change of members, order or selected fields, and nothing else', async () => {
    // b has 2 followers, a 1, c none.
    await produce(
      kafka.brokers,
      topics.users,
      ['a', 'b', 'c'].map((id) => ({
        key: id,
        value: json({ userId: id, username: id, name: `User ${id}` }),
      })),
    );
    await produce(kafka.brokers, topics.follows, [
      follow('f1', 'a', 'b'),
      follow('f2', 'c', 'b'),
      follow('f3', 'b', 'a'),
    ]);
    await eventually(
      () =>
        server.running.store.totals()?.follows === 3 && server.running.store.totals()?.users === 3
          ? true
          : undefined,
      WAIT_MS,
      'the first rows applied',
    );

    const top = record(client, TOP, { n: 3 });
    const named = record(client, TOP_NAMED, { n: 3 });
    const totals = record(client, TOTALS, {});
    const first = [
      { userId: 'b', followerCount: 2 },
      { userId: 'a', followerCount: 1 },
      { userId: 'c', followerCount: 0 },
    ];
    expect(await until<Ranked[]>(top, 1, 'the first list')).toEqual([first]);
    expect(await until<Ranked[]>(named, 1, 'the first named list')).toEqual([
      first.map((u) => ({ ...u, name: `User ${u.userId}` })),
    ]);
    expect(await until(totals, 1, 'the first totals')).toEqual([{ users: 3, follows: 3 }]);

    // A deleted follow moves b down: a and b tie at 1, a first by userId.
    await produce(kafka.brokers, topics.follows, [{ key: 'f2', value: null }]);
    const moved = [
      { userId: 'a', followerCount: 1 },
      { userId: 'b', followerCount: 1 },
      { userId: 'c', followerCount: 0 },
    ];
    expect((await until<Ranked[]>(top, 2, 'the list after the unfollow')).at(-1)).toEqual(moved);
    expect((await until(totals, 2, 'the totals after the unfollow')).at(-1)).toEqual({
      users: 3,
      follows: 2,
    });

    // A deleted users row takes a out of the list (its counts stay, it is just not ranked).
    await produce(kafka.brokers, topics.users, [{ key: 'a', value: null }]);
    const left = moved.slice(1);
    expect((await until<Ranked[]>(top, 3, 'the list after the delete')).at(-1)).toEqual(left);
    expect((await until(totals, 3, 'the totals after the delete')).at(-1)).toEqual({ users: 2, follows: 2 });

    // c renamed: only the subscriber that selected `name` hears of it.
    await produce(kafka.brokers, topics.users, [
      { key: 'c', value: json({ userId: 'c', username: 'c', name: 'Cee' }) },
    ]);
    const renamed = await until<Ranked[]>(named, 4, 'the rename, for the subscriber selecting name');
    expect(renamed.at(-1)).toEqual([
      { userId: 'b', followerCount: 1, name: 'User b' },
      { userId: 'c', followerCount: 0, name: 'Cee' },
    ]);

    // The rename is committed; a new follow is a change every subscriber selected.
    await produce(kafka.brokers, topics.follows, [follow('f4', 'c', 'b')]);
    const last = [
      { userId: 'b', followerCount: 2 },
      { userId: 'c', followerCount: 0 },
    ];
    expect(await until<Ranked[]>(top, 4, 'the list after the new follow')).toEqual([
      first,
      moved,
      left,
      last,
    ]);
    expect(await until(totals, 4, 'the totals after the new follow')).toEqual([
      { users: 3, follows: 3 },
      { users: 3, follows: 2 },
      { users: 2, follows: 2 },
      { users: 2, follows: 3 },
    ]);
    expect((await until<Ranked[]>(named, 5, 'the named list after the new follow')).at(-1)).toEqual([
      { userId: 'b', followerCount: 2, name: 'User b' },
      { userId: 'c', followerCount: 0, name: 'Cee' },
    ]);
    // Nothing else arrived meanwhile: no push for the rename to the subscribers that did not select `name`.
    expect({ top: top.events.length, totals: totals.events.length, named: named.events.length }).toEqual({
      top: 4,
      totals: 4,
      named: 5,
    });
    for (const r of [top, named, totals]) r.stop();
  });

  it('should refuse a limit outside 1..100 with LIMIT_OUT_OF_RANGE', async () => {
    const r = record(client, TOP, { n: 0 });
    await expect(r.finished).rejects.toThrow(/LIMIT_OUT_OF_RANGE/);
  });
});
