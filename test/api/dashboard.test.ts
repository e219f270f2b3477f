/**
 * Issue 16 over HTTP, on fakes: `topUsers` and `totals` answer from the reader's rankings and totals, the
 * totals before the first row are zeros with the documented version, and a `limit` outside 1..100 is a
 * LIMIT_OUT_OF_RANGE error that changes nothing — the same answer with and without the fast path.
 */
import { describe, expect, it } from 'vitest';
import { EMPTY_TOTALS } from '../../api/schema/dashboard-reads.js';
import type { TotalsValue } from '../../src/views/totals.js';
import { asOfOf, gql, makeUser, useTestApi, type TestApi } from '../utils/testkit.js';

const users = [
  makeUser(1, undefined, { followerCount: 5, tweetCount: 1 }),
  makeUser(2, undefined, { followerCount: 9, tweetCount: 1 }),
  makeUser(3, undefined, { followerCount: 5, tweetCount: 7 }),
  makeUser(4, undefined, { followerCount: 0, tweetCount: 0 }),
];
const TOTALS: TotalsValue = {
  users: 4,
  tweets: 9,
  follows: 19,
  likes: 0,
  version: {
    sequence: '77',
    appliedAt: '2024-06-01T00:00:00.000Z',
    eventTime: '2024-05-31T23:59:59.000Z',
    source: { topic: 'follows', partition: 2, offset: '12' },
  },
};

const TOTALS_QUERY =
  '{ totals { users tweets follows likes version { sequence appliedAt eventTime source { topic partition offset } } } }';

describe.each([
  ['with the fast path', true],
  ['through Apollo only', false],
])('dashboard queries (%s)', (_name, fastPath) => {
  const t: TestApi = useTestApi({ users, fastPath });

  it('topUsers answers the ranking in order, count descending then userId, limit 10 by default', async () => {
    const res = await gql(t.url, { query: '{ topUsers(by: FOLLOWERS) { userId followerCount } }' });
    expect({ status: res.status, body: res.json() }).toEqual({
      status: 200,
      body: {
        data: {
          topUsers: [
            { userId: '2', followerCount: 9 },
            { userId: '1', followerCount: 5 },
            { userId: '3', followerCount: 5 },
            { userId: '4', followerCount: 0 },
          ],
        },
        extensions: asOfOf(t),
      },
    });
    const two = await gql(t.url, {
      query: 'query($by: UserRanking!, $n: Int) { topUsers(by: $by, limit: $n) { userId } }',
      variables: { by: 'TWEETS', n: 2 },
    });
    expect(two.json()).toEqual({
      data: { topUsers: [{ userId: '3' }, { userId: '1' }] },
      extensions: asOfOf(t),
    });
  });

  it('totals before the first row are zeros with the empty version, then the stored totals', async () => {
    t.reader.totalsValue = undefined;
    expect((await gql(t.url, { query: TOTALS_QUERY })).json()).toEqual({
      data: { totals: EMPTY_TOTALS },
      extensions: asOfOf(t),
    });
    expect(EMPTY_TOTALS.version).toEqual({
      sequence: '0',
      appliedAt: '1970-01-01T00:00:00.000Z',
      eventTime: null,
      source: { topic: '', partition: -1, offset: '-1' },
    });
    t.reader.totalsValue = TOTALS;
    expect((await gql(t.url, { query: TOTALS_QUERY })).json()).toEqual({
      data: { totals: TOTALS },
      extensions: asOfOf(t),
    });
  });

  it.each([
    ['0', '{ topUsers(by: LIKES, limit: 0) { userId } }', {}, '0'],
    ['101', '{ topUsers(by: LIKES, limit: 101) { userId } }', {}, '101'],
    ['-1 in a variable', 'query($n: Int) { topUsers(by: LIKES, limit: $n) { userId } }', { n: -1 }, '-1'],
    ['null', '{ topUsers(by: LIKES, limit: null) { userId } }', {}, 'null'],
  ])('a limit of %s is LIMIT_OUT_OF_RANGE (400)', async (_what, query, variables, shown) => {
    const res = await gql(t.url, { query, variables });
    expect({ status: res.status, body: res.json() }).toEqual({
      status: 400,
      body: {
        data: null,
        errors: [
          {
            message: `limit must be between 1 and 100; got ${shown}.`,
            locations: [{ line: 1, column: expect.any(Number) }],
            path: ['topUsers'],
            extensions: { code: 'LIMIT_OUT_OF_RANGE' },
          },
        ],
        extensions: asOfOf(t),
      },
    });
  });

  it('the request limits apply to the new fields (aliases, tokens)', async () => {
    const aliases = Array.from({ length: 16 }, (_, i) => `a${i}: topUsers(by: TWEETS, limit: 1) { userId }`);
    const many = await gql(t.url, { query: `{ ${aliases.join(' ')} }` });
    const long = await gql(t.url, { query: `{ totals { ${'users '.repeat(1000)} } }` });
    const codes = (r: typeof many) =>
      r.json<{ errors?: { extensions: { code: string } }[] }>().errors?.map((e) => e.extensions.code);
    expect({ many: [many.status, codes(many)], long: [long.status, codes(long)] }).toEqual({
      many: [400, ['TOO_MANY_ALIASES']],
      long: [400, ['TOO_MANY_TOKENS']],
    });
  });

  it('an unknown ranking is a validation error', async () => {
    const res = await gql(t.url, { query: '{ topUsers(by: RETWEETS) { userId } }' });
    expect(res.status).toBe(400);
    expect(res.json<{ errors: { extensions: { code: string } }[] }>().errors[0]!.extensions.code).toBe(
      'GRAPHQL_VALIDATION_FAILED',
    );
  });
});
