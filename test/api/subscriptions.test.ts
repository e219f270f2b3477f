/**
 * The subscription resolvers and their seam to the live layer: events come from the injected LiveSource,
 * arguments pass through, and without a LiveSource subscribing is a clear error. (The WebSocket transport
 * is tested with the live layer.)
 */
import { parse, subscribe, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { LiveSource, LiveUserChange } from '../../src/live/types.js';
import { buildApiSchema } from '../../api/schema/build.js';
import { createContextFactory } from '../../api/schema/context.js';
import { FakeFeedMonitor, FakeViewReader, makeUser } from '../utils/testkit.js';

const schema = buildApiSchema();

/** A LiveSource that replays fixed events and records what was asked and whether it was released. */
function scriptedLive(events: LiveUserChange[]) {
  const asked: (readonly string[])[] = [];
  let released = 0;
  const live: LiveSource = {
    subscribeUsers(ids) {
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
    },
    subscribeTopUsers: () => ({
      [Symbol.asyncIterator]: () => ({ next: async () => ({ value: undefined, done: true }) }),
    }),
    subscribeTotals: () => ({
      [Symbol.asyncIterator]: () => ({ next: async () => ({ value: undefined, done: true }) }),
    }),
  };
  return { live, asked, released: () => released };
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
    const result = await subscribe({
      schema,
      document: parse('subscription { userChanged(id: "1") { kind } }'),
      contextValue: createContext(),
    });
    const [only] = await collect(result);
    expect(only?.errors?.map((e) => [e.message, e.extensions['code']])).toEqual([
      ['Subscriptions are not available on this server.', 'SUBSCRIPTIONS_UNAVAILABLE'],
    ]);
  });
});
