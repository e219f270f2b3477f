/**
 * The fast path must be invisible: for every query it serves, the bytes equal what Apollo + graphql-js
 * send for the same query over the same data, and whatever it cannot reproduce exactly it leaves to Apollo.
 */
import { describe, expect, it } from 'vitest';
import { createAsOfSource } from '../../api/consistency/as-of.js';
import { createFastPath, type Variables } from '../../api/fast-path.js';
import { knownResultType } from '../../api/http/negotiate.js';
import { createOperationValidator } from '../../api/limits.js';
import { buildApiSchema } from '../../api/schema/build.js';
import type { UserInformation } from '../../src/views/user-information.js';
import type { FeedStatusSnapshot } from '../../api/feed-monitor.js';
import { EMPTY_TOTALS } from '../../api/schema/dashboard-reads.js';
import type { TotalsValue } from '../../src/views/totals.js';
import {
  asOfOf,
  FakeFeedMonitor,
  FakeViewReader,
  gql,
  ALL_USER_FIELDS as ALL_FIELDS,
  seededRandom,
  serializableUsers,
  unserializableUsers,
  testConfig,
  useTestApi,
} from '../utils/testkit.js';

const users: UserInformation[] = serializableUsers(seededRandom(2));
/** Values graphql-js turns into errors; the fast path must hand these to Apollo. */
const broken: UserInformation[] = unserializableUsers();

/** Seed 002's fields in seed 002's order: answered with the stored REST bytes (api/fast-path/splice.ts). */
const REST_SELECTION = `userId username name description location webPageUrl joinedDate profileImageUrl
  backgroundImageUrl tweetCount followingCount followerCount likeCount`;

const FAST_QUERIES: [string, string, Variables?][] = [
  ...[...users.map((u) => u.userId), 'nope'].map((id): [string, string, Variables] => [
    `REST selection, user ${id}`,
    `query($id: ID!) { user(id: $id) { ${REST_SELECTION} } }`,
    { id },
  ]),
  ['REST selection, aliased root', `{ me: user(id: "3") { ${REST_SELECTION} } }`],
  [
    'REST selection, one field aliased',
    `{ user(id: "3") { ${REST_SELECTION.replace('likeCount', 'likes: likeCount')} } }`,
  ],
  ['all fields', `{ user(id: "1") { ${ALL_FIELDS} } }`],
  [
    'every user, all fields',
    `query($ids: [ID!]!) { users(ids: $ids) { ${ALL_FIELDS} } }`,
    { ids: users.map((u) => u.userId) },
  ],
  ['unknown user', '{ user(id: "nope") { userId } }'],
  ['field order as asked', '{ user(id: "2") { likeCount userId version { source { offset } sequence } } }'],
  [
    'aliases',
    '{ a: user(id: "1") { id: userId n: name } b: user(id: "2") { userId } c: user(id: "x") { userId } }',
  ],
  [
    'named fragments',
    `query Q { user(id: "3") { ...F version { ...V } } }
     fragment F on User { userId ... on User { username } }
     fragment V on ViewVersion { sequence source { ...S } }
     fragment S on SourcePosition { offset }`,
  ],
  [
    'merged selections',
    '{ user(id: "1") { userId version { sequence } } user(id: "1") { username version { appliedAt } } }',
  ],
  [
    '__typename everywhere',
    '{ __typename user(id: "4") { __typename version { __typename source { __typename } } } }',
  ],
  ['variable', 'query One($id: ID!) { user(id: $id) { userId name } }', { id: '5' }],
  ['default variable', 'query($id: ID! = "6") { user(id: $id) { userId } }'],
  ['mixed id list', 'query($x: ID!) { users(ids: ["1", $x, "nope", "1"]) { userId name } }', { x: '7' }],
  ['empty list', '{ users(ids: []) { userId } }'],
  ['int id literal', '{ user(id: 8) { userId } }'],
  ['single id for a list', '{ users(ids: "9") { userId } }'],
  ['union condition', '{ user(id: "1") { ... on _Entity { ... on User { userId } } } }'],
  ['non-canonical dates', '{ users(ids: ["21", "22"]) { joinedDate name } }'],
  [
    'feed status, every field',
    `{ feedStatus { __typename ready source state reason newestEventAgeSeconds sequence viewVersion
        partitions { __typename topic partition next highWatermark lag } } }`,
  ],
  [
    'feed status next to users, aliased',
    '{ u: user(id: "1") { userId } s: feedStatus { state p: partitions { lag } } users(ids: ["2"]) { userId } }',
  ],
  ['top users, default limit', '{ topUsers(by: FOLLOWERS) { userId followerCount } }'],
  [
    'top users, every field, limit and ranking in variables',
    `query($by: UserRanking!, $n: Int) { topUsers(by: $by, limit: $n) { ${ALL_FIELDS} } }`,
    { by: 'LIKES', n: 5 },
  ],
  ['top users, variable default', 'query($n: Int = 3) { topUsers(by: TWEETS, limit: $n) { userId } }'],
  ['top users, variable not given', 'query($n: Int) { topUsers(by: FOLLOWING, limit: $n) { userId } }'],
  [
    'all four rankings and the totals, aliased',
    `{ f: topUsers(by: FOLLOWERS, limit: 1) { userId } t: topUsers(by: TWEETS, limit: 2) { userId }
       l: topUsers(by: LIKES, limit: 3) { userId } g: topUsers(by: FOLLOWING, limit: 4) { userId }
       totals { __typename users tweets follows likes version { sequence appliedAt eventTime source { topic partition offset } } } }`,
  ],
  [
    'totals before the first row',
    '{ totals { users version { sequence appliedAt eventTime source { partition offset } } } }',
  ],
  [
    'nullable fields',
    '{ users(ids: ["10", "11", "12", "13"]) { name description location webPageUrl joinedDate version { eventTime } } }',
  ],
];

/** Queries (or variables) the fast path declines; Apollo answers them, usually with errors. */
const APOLLO_QUERIES: [string, string, Variables?][] = [
  ['REST selection, Int overflow', `{ user(id: "90") { ${REST_SELECTION} } }`],
  ['REST selection, null username', `{ user(id: "91") { ${REST_SELECTION} } }`],
  ['REST selection, invalid stored date', `{ user(id: "92") { ${REST_SELECTION} } }`],
  ['Int overflow', '{ user(id: "90") { tweetCount } }'],
  ['null in a non-null field', '{ user(id: "91") { userId username } }'],
  ['invalid stored date', '{ user(id: "92") { joinedDate } }'],
  ['directive', '{ user(id: "1") { userId name @include(if: false) } }'],
  ['other root field', '{ user(id: "1") { userId } _service { sdl } }'],
  ['numeric variable', 'query($id: ID!) { user(id: $id) { userId } }', { id: 5 }],
  ['missing variable', 'query($id: ID!) { user(id: $id) { userId } }'],
  ['null variable', 'query($ids: [ID!]) { users(ids: $ids) { userId } }', { ids: null }],
  ['two operations', 'query A { user(id: "1") { userId } } query B { user(id: "2") { userId } }'],
  ['unknown field', '{ user(id: "1") { nope } }'],
  ['top users reaching a broken view', '{ topUsers(by: FOLLOWERS, limit: 100) { userId username } }'],
  ['limit 0', '{ topUsers(by: TWEETS, limit: 0) { userId } }'],
  ['limit 101 in a variable', 'query($n: Int) { topUsers(by: TWEETS, limit: $n) { userId } }', { n: 101 }],
  ['limit null', 'query($n: Int) { topUsers(by: TWEETS, limit: $n) { userId } }', { n: null }],
  ['limit as a float', 'query($n: Int) { topUsers(by: TWEETS, limit: $n) { userId } }', { n: 2.5 }],
  ['unknown ranking', 'query($by: UserRanking!) { topUsers(by: $by) { userId } }', { by: 'RETWEETS' }],
];

const config = testConfig();
const schema = buildApiSchema();
const reader = new FakeViewReader([...users, ...broken]);
const feed = new FakeFeedMonitor();
// Its own reader and feed, holding what the Apollo server's hold: `extensions.asOf` must come out the same.
const fastPath = createFastPath({
  schema,
  reader,
  feed,
  validate: createOperationValidator(schema, config),
  maxTokens: config.limits.maxTokens,
  maxIds: config.limits.maxIds,
  asOf: createAsOfSource(reader, feed),
});

describe('fast path vs Apollo', () => {
  const apollo = useTestApi({ users: [...users, ...broken], fastPath: false });

  it.each(FAST_QUERIES)('%s: same bytes', async (name, query, variables) => {
    // Both sides at the same commit; the lag takes turns between unknown, none and some.
    expect(reader.sequence()).toBe(apollo.reader.sequence());
    feed.lag = apollo.feed.lag = [null, 0, 12345678901][name.length % 3]!;
    const plan = fastPath.planFor(query, undefined);
    expect(plan, 'the fast path should serve this query').toBeDefined();
    const fast = plan?.run(variables);
    expect(fast).toBeDefined();
    const res = await gql(apollo.url, variables === undefined ? { query } : { query, variables });
    expect(res.status).toBe(200);
    expect(fast).toBe(res.text);
  });

  it('answers the REST selection from the stored bytes, without decoding the view', () => {
    const plan = fastPath.planFor(`query($id: ID!) { user(id: $id) { ${REST_SELECTION} } }`, undefined);
    const before = { ...reader.calls };
    feed.lag = apollo.feed.lag = 3;
    expect(plan?.run({ id: '4' })).toBe(
      `{"data":{"user":${reader.getUserJson('4')!.toString()}},"extensions":{"asOf":{"sequence":"${reader.sequence()}","lagRecords":3}}}\n`,
    );
    expect([reader.calls.getUser - before.getUser, reader.calls.getUserJson - before.getUserJson]).toEqual([
      0, 2,
    ]);
    // A non-canonical stored date takes the general plan (the DateTime scalar re-formats it), reading
    // the view without its version, which the selection does not ask for.
    const general = plan?.run({ id: '21' });
    expect(reader.calls.getUsersUnversioned - before.getUsersUnversioned).toBe(1);
    expect(reader.calls.getUser - before.getUser).toBe(0);
    expect(general).toContain('"joinedDate":"2008-01-22T15:14:44.000Z"');
  });

  it('reads versions only for selections that ask for them', () => {
    const reads = (query: string) => {
      const before = { ...reader.calls };
      expect(fastPath.planFor(query, undefined)?.run(undefined)).toBeDefined();
      return {
        versioned: reader.calls.getUser - before.getUser + reader.calls.getUsers - before.getUsers,
        unversioned: reader.calls.getUsersUnversioned - before.getUsersUnversioned,
      };
    };
    expect(reads('{ user(id: "1") { userId tweetCount } }')).toEqual({ versioned: 0, unversioned: 1 });
    expect(reads('{ user(id: "1") { userId version { sequence } } }')).toEqual({
      versioned: 1,
      unversioned: 0,
    });
    expect(reads('{ users(ids: ["1", "2"]) { userId } }')).toEqual({ versioned: 0, unversioned: 1 });
    expect(
      reads('{ a: users(ids: ["1"]) { userId } b: user(id: "2") { ... on User { version { sequence } } } }'),
    ).toEqual({ versioned: 1, unversioned: 0 });
  });

  it.each(APOLLO_QUERIES)('%s: left to Apollo', (_name, query, variables) => {
    expect(fastPath.planFor(query, undefined)?.run(variables)).toBeUndefined();
  });

  it.each<[string, Partial<FeedStatusSnapshot>]>([
    ['not ready, retrying', { ready: false, state: 'retrying', reason: 'broker down: ECONNREFUSED "x"' }],
    ['before the first record', { newestEventAgeSeconds: null, partitions: [] }],
    ['a fractional age', { newestEventAgeSeconds: 1234.000001, state: 'crashed', source: 'kafka' }],
  ])('feed status %s: same bytes as Apollo', async (_name, status) => {
    const query =
      '{ feedStatus { ready source state reason newestEventAgeSeconds partitions { next lag } } }';
    feed.status = { ...feed.status, ...status };
    apollo.feed.status = feed.status;
    feed.isReady = apollo.feed.isReady = feed.status.ready;
    feed.why = apollo.feed.why = feed.status.reason;
    const fast = fastPath.planFor(query, undefined)?.run(undefined);
    const res = await gql(apollo.url, { query });
    expect(fast).toBeDefined();
    expect(fast).toBe(res.text);
  });

  it.each<[string, TotalsValue]>([
    [
      'stored',
      {
        users: 3,
        tweets: 2 ** 31 - 1,
        follows: 0,
        likes: 7,
        version: {
          sequence: '18446744073709551615',
          appliedAt: '2024-06-01T00:00:00.000Z',
          eventTime: null,
          source: { topic: 'likes "quoted"', partition: 3, offset: '9007199254740993' },
        },
      },
    ],
    [
      'with a non-canonical event time',
      {
        ...EMPTY_TOTALS,
        users: 1,
        version: { ...EMPTY_TOTALS.version, eventTime: '2008-01-22T16:14:44+01:00' },
      },
    ],
  ])('totals %s: same bytes as Apollo', async (_name, totals) => {
    const query =
      '{ totals { users tweets follows likes version { sequence appliedAt eventTime source { topic partition offset } } } }';
    reader.totalsValue = apollo.reader.totalsValue = totals;
    try {
      const fast = fastPath.planFor(query, undefined)?.run(undefined);
      const res = await gql(apollo.url, { query });
      expect(fast).toBeDefined();
      expect(fast).toBe(res.text);
    } finally {
      reader.totalsValue = apollo.reader.totalsValue = undefined;
    }
  });

  it('leaves totals it cannot serialize exactly to Apollo', () => {
    reader.totalsValue = { ...EMPTY_TOTALS, likes: 2 ** 31 };
    try {
      expect(fastPath.planFor('{ totals { likes } }', undefined)?.run(undefined)).toBeUndefined();
      expect(fastPath.planFor('{ totals { users } }', undefined)?.run(undefined)).toBeDefined();
    } finally {
      reader.totalsValue = undefined;
    }
  });

  it('leaves a feed status it cannot serialize exactly to Apollo', async () => {
    feed.status = { ...feed.status, state: 'paused' as FeedStatusSnapshot['state'] };
    expect(fastPath.planFor('{ feedStatus { state } }', undefined)?.run(undefined)).toBeUndefined();
    feed.status = { ...feed.status, state: 'running', newestEventAgeSeconds: Number.NaN };
    expect(fastPath.planFor('{ feedStatus { ready } }', undefined)?.run(undefined)).toBeDefined();
    expect(
      fastPath.planFor('{ feedStatus { newestEventAgeSeconds } }', undefined)?.run(undefined),
    ).toBeUndefined();
    feed.status = new FakeFeedMonitor().status;
  });

  it('declines an operationName that does not match', () => {
    expect(fastPath.planFor('query A { user(id: "1") { userId } }', 'B')).toBeUndefined();
    expect(fastPath.planFor('query A { user(id: "1") { userId } }', 'A')).toBeDefined();
    expect(fastPath.planFor('{ user(id: "1") { userId } }', 'A')).toBeUndefined();
  });

  it('declines documents past the limits', () => {
    const deep = fastPath.planFor('{ user(id: "1") { version { source { offset } } } }', undefined);
    expect(deep).toBeDefined();
    const many = Array.from(
      { length: config.limits.maxAliases + 1 },
      (_, i) => `a${i}: user(id: "1") { userId }`,
    );
    expect(fastPath.planFor(`{ ${many.join(' ')} }`, undefined)).toBeUndefined();
    const ids = Array.from({ length: config.limits.maxIds + 1 }, (_, i) => String(i));
    expect(
      fastPath.planFor('query($ids: [ID!]!) { users(ids: $ids) { userId } }', undefined)?.run({ ids }),
    ).toBeUndefined();
  });
});

describe('fast path over HTTP', () => {
  const fast = useTestApi({ users });
  const apollo = useTestApi({ users, fastPath: false });
  const query = '{ user(id: "1") { userId name joinedDate } }';
  const accepts = [
    undefined,
    '*/*',
    'application/json',
    'application/graphql-response+json',
    'application/graphql-response+json, application/json',
    'application/graphql-response+json, application/json;q=0.9',
    'application/graphql-response+json;charset=utf-8, application/json;charset=utf-8;q=0.9',
    'application/json, application/graphql-response+json',
    'application/json, text/plain, */*',
    'text/html, application/json;q=0.5',
    'text/html',
  ];

  it.each(accepts.map((a) => [a ?? '(none)', a]))(
    'Accept %s: same status, type and body',
    async (_label, accept) => {
      const headers = accept === undefined ? {} : { accept };
      fast.reader.resetCalls();
      const [a, b] = await Promise.all([
        gql(fast.url, { query }, headers),
        gql(apollo.url, { query }, headers),
      ]);
      expect({ status: a.status, type: a.headers.get('content-type'), body: a.text }).toEqual({
        status: b.status,
        type: b.headers.get('content-type'),
        body: b.text,
      });
      // The fast path reads one user, without its version (not selected); Apollo goes through the
      // DataLoader's getUsers.
      const served = knownResultType(accept) !== undefined;
      expect(fast.reader.calls.getUsersUnversioned).toBe(served ? 1 : 0);
      expect(fast.reader.calls.getUsers).toBe(served ? 0 : 1);
    },
  );

  it('serves POST with variables and operationName', async () => {
    fast.reader.resetCalls();
    const res = await gql(fast.url, {
      query: 'query Get($id: ID!) { user(id: $id) { userId } }',
      variables: { id: '2' },
      operationName: 'Get',
    });
    expect(res.json()).toEqual({ data: { user: { userId: '2' } }, extensions: asOfOf(fast) });
    expect(fast.reader.calls.getUsersUnversioned).toBe(1);
  });

  it('falls back to Apollo when the store throws, and masks the error', async () => {
    fast.reader.failWith = new Error('disk on fire');
    try {
      const res = await gql(fast.url, { query });
      expect(res.json()).toEqual({
        data: { user: null },
        errors: [
          {
            message: 'Unexpected error.',
            locations: [{ line: 1, column: 3 }],
            path: ['user'],
            extensions: { code: 'INTERNAL_SERVER_ERROR' },
          },
        ],
        extensions: asOfOf(fast),
      });
    } finally {
      fast.reader.failWith = undefined;
    }
  });
});
