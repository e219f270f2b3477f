/**
 * The subscription resolvers and their seam to the live layer: events come from the injected LiveSource,
 * arguments pass through, and without a LiveSource subscribing is a clear error. (The WebSocket transport
 * is tested with the live layer.)
 */
import { parse, subscribe, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { LiveSource, LiveUserChange } from '../../src/live/types.js';
import type { Ranking } from '../../src/views/top-users.js';
import type { TotalsValue } from '../../src/views/totals.js';
import type { UserInformation } from '../../src/views/user-information.js';
import { EMPTY_TOTALS } from '../../api/schema/dashboard-reads.js';
import { createSharedSubscribe } from '../../api/shared-results.js';
import { buildApiSchema } from '../../api/schema/build.js';
import { createContextFactory } from '../../api/schema/context.js';
import { FakeFeedMonitor, FakeViewReader, makeUser, userLive } from '../utils/testkit.js';

const schema = buildApiSchema();

/** A LiveSource that replays fixed events and records what was asked and whether it was released. */
function scriptedLive(events: LiveUserChange[]) {
  const asked: (readonly string[])[] = [];
  let released = 0;
  const live: LiveSource = userLive((ids) => {
    asked.push(ids);
    return {
      async *[Symbol.asyncIterator]() {
        try {
          for (const event of events) yield event;
        } finally {
          released++;
        }
      },
    };
  });
  return { live, asked, released: () => released };
}

/** The message and code of each error the one result of a refused subscription carries. */
async function refusal(query: string, contextValue: object): Promise<unknown> {
  const [only] = await collect(await subscribe({ schema, document: parse(query), contextValue }));
  return only?.errors?.map((e) => [e.message, e.extensions['code']]);
}

async function collect(result: Awaited<ReturnType<typeof subscribe>>): Promise<ExecutionResult[]> {
  if (!(Symbol.asyncIterator in result)) return [result];
  const out: ExecutionResult[] = [];
  for await (const event of result) out.push(event);
  return out;
}

describe('subscriptions', () => {
  const user = makeUser(1);
  const events: LiveUserChange[] = [
    { userId: '1', kind: 'SNAPSHOT', user },
    { userId: '1', kind: 'UPDATED', user: { ...user, tweetCount: 99 } },
    { userId: '1', kind: 'DELETED', user: null },
  ];

  it('userChanged streams the LiveSource events', async () => {
    const { live, asked, released } = scriptedLive(events);
    const createContext = createContextFactory({
      reader: new FakeViewReader(),
      feed: new FakeFeedMonitor(),
      live,
    });
    const result = await subscribe({
      schema,
      document: parse(
        'subscription { userChanged(id: "1") { userId kind user { tweetCount version { sequence } } } }',
      ),
      contextValue: createContext(),
    });
    expect(await collect(result)).toEqual([
      {
        data: {
          userChanged: {
            userId: '1',
            kind: 'SNAPSHOT',
            user: { tweetCount: 1, version: { sequence: '1001' } },
          },
        },
      },
      {
        data: {
          userChanged: {
            userId: '1',
            kind: 'UPDATED',
            user: { tweetCount: 99, version: { sequence: '1001' } },
          },
        },
      },
      { data: { userChanged: { userId: '1', kind: 'DELETED', user: null } } },
    ]);
    expect(asked).toEqual([['1']]);
    expect(released()).toBe(1);
  });

  it('usersChanged passes every id to the LiveSource', async () => {
    const { live, asked } = scriptedLive(events.slice(0, 1));
    const createContext = createContextFactory({
      reader: new FakeViewReader(),
      feed: new FakeFeedMonitor(),
      live,
    });
    const result = await subscribe({
      schema,
      document: parse('subscription($ids: [ID!]!) { usersChanged(ids: $ids) { userId kind } }'),
      variableValues: { ids: ['1', '2', '3'] },
      contextValue: createContext(),
    });
    expect(await collect(result)).toEqual([{ data: { usersChanged: { userId: '1', kind: 'SNAPSHOT' } } }]);
    expect(asked).toEqual([['1', '2', '3']]);
  });

  it('without a LiveSource, subscribing is a SUBSCRIPTIONS_UNAVAILABLE error', async () => {
    const createContext = createContextFactory({ reader: new FakeViewReader(), feed: new FakeFeedMonitor() });
    expect(await refusal('subscription { userChanged(id: "1") { kind } }', createContext())).toEqual([
      ['Subscriptions are not available on this server.', 'SUBSCRIPTIONS_UNAVAILABLE'],
    ]);
  });
});

describe('dashboard subscriptions', () => {
  const a = makeUser(1);
  const b = makeUser(2);
  /** A LiveSource whose rankings replay fixed lists (the same objects to every subscriber, like the hub). */
  function scriptedRankings(
    lists: readonly (readonly UserInformation[])[],
    totals: (TotalsValue | null)[] = [],
  ) {
    const asked: { ranking: Ranking; limit: number; print: (users: readonly UserInformation[]) => string }[] =
      [];
    const printsTotals: ((t: TotalsValue | null) => string)[] = [];
    const replay = <T>(values: readonly T[]): AsyncIterable<T> => ({
      async *[Symbol.asyncIterator]() {
        yield* values;
      },
    });
    const live: LiveSource = {
      subscribeUsers: () => replay([]),
      subscribeTopUsers(ranking, limit, print) {
        asked.push({ ranking, limit, print });
        return replay(lists);
      },
      subscribeTotals(print) {
        printsTotals.push(print);
        return replay(totals);
      },
    };
    const context = createContextFactory({ reader: new FakeViewReader(), feed: new FakeFeedMonitor(), live });
    return { asked, printsTotals, context };
  }

  it('topUsersChanged passes the ranking, the limit and a print of the selection to the LiveSource', async () => {
    const { asked, context } = scriptedRankings([[a, b], [b]]);
    const result = await subscribe({
      schema,
      document: parse(
        'subscription($n: Int) { topUsersChanged(by: LIKES, limit: $n) { likeCount ... on User { version { sequence } } } }',
      ),
      variableValues: { n: 2 },
      contextValue: context(),
    });
    expect(await collect(result)).toEqual([
      {
        data: {
          topUsersChanged: [
            { likeCount: a.likeCount, version: { sequence: '1001' } },
            { likeCount: b.likeCount, version: { sequence: '1002' } },
          ],
        },
      },
      { data: { topUsersChanged: [{ likeCount: b.likeCount, version: { sequence: '1002' } }] } },
    ]);
    expect(asked.map(({ ranking, limit }) => ({ ranking, limit }))).toEqual([{ ranking: 'LIKES', limit: 2 }]);
    // The members by userId, then what was selected; a field not selected does not change the print.
    const print = asked[0]!.print;
    expect(print([a])).toBe(JSON.stringify([['1', a.likeCount, ['1001']]]));
    expect(print([{ ...a, name: 'other', tweetCount: 5 }])).toBe(print([a]));
  });

  it('totalsChanged answers zeros with the empty version before the first row, and passes a print of its selection', async () => {
    const stored = { ...EMPTY_TOTALS, users: 2, version: { ...EMPTY_TOTALS.version, sequence: '9' } };
    const { printsTotals, context } = scriptedRankings([], [null, stored]);
    const result = await subscribe({
      schema,
      document: parse('subscription { totalsChanged { users version { sequence } } }'),
      contextValue: context(),
    });
    expect(await collect(result)).toEqual([
      { data: { totalsChanged: { users: 0, version: { sequence: '0' } } } },
      { data: { totalsChanged: { users: 2, version: { sequence: '9' } } } },
    ]);
    expect(printsTotals[0]!(null)).toBe(JSON.stringify([0, ['0']]));
    expect(printsTotals[0]!({ ...stored, likes: 5 })).toBe(JSON.stringify([2, ['9']]));
  });

  it('shares one execution per list among subscribers of the same document (api/shared-results.ts)', async () => {
    const { context } = scriptedRankings([[a, b]]);
    const document = parse('subscription { topUsersChanged(by: TWEETS) { userId tweetCount } }');
    const shared = createSharedSubscribe();
    const open = async () => {
      const stream = await shared({ schema, document, contextValue: context() });
      if (!(Symbol.asyncIterator in stream)) throw new Error(JSON.stringify(stream));
      return (await stream[Symbol.asyncIterator]().next()).value as ExecutionResult;
    };
    const [one, two] = [await open(), await open()];
    expect(one).toEqual({
      data: {
        topUsersChanged: [
          { userId: '1', tweetCount: 1 },
          { userId: '2', tweetCount: 2 },
        ],
      },
    });
    expect(two).toBe(one);
  });

  it('a limit outside 1..100 is LIMIT_OUT_OF_RANGE before anything is subscribed', async () => {
    const { asked, context } = scriptedRankings([[a]]);
    expect(
      await refusal('subscription { topUsersChanged(by: TWEETS, limit: 101) { userId } }', context()),
    ).toEqual([['limit must be between 1 and 100; got 101.', 'LIMIT_OUT_OF_RANGE']]);
    expect(asked).toEqual([]);
  });
});
