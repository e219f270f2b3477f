/**
 * Subscription events written without graphql-js (api/fast-path/compile.ts `compileSubscriptionData`) must
 * be the bytes graphql-js' execute gives for the same event, serialized as graphql-ws does (JSON.stringify);
 * an event it cannot write exactly (a value graphql-js turns into an error) is left to graphql-js.
 */
import { execute, parse, validate, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import { compileSubscriptionData } from '../../api/fast-path/compile.js';
import { buildApiSchema } from '../../api/schema/build.js';
import { PrerenderedResult, withExtensions } from '../../api/shared-results.js';
import type { LiveUserChange } from '../../src/live/types.js';
import type { UserInformation } from '../../src/views/user-information.js';
import {
  ALL_USER_FIELDS as ALL_FIELDS,
  seededRandom,
  serializableUsers,
  unserializableUsers,
} from '../utils/testkit.js';

const schema = buildApiSchema();
const users: UserInformation[] = serializableUsers(seededRandom(11));
/** Values graphql-js turns into errors. */
const broken: UserInformation[] = unserializableUsers();

const changesOf = (user: UserInformation): LiveUserChange[] => [
  { userId: user.userId, kind: 'SNAPSHOT', user },
  { userId: user.userId, kind: 'UPDATED', user, sequence: 17n },
  { userId: user.userId, kind: 'DELETED', user: null },
];
const CHANGES = users.flatMap(changesOf);
const LISTS = [[], users.slice(0, 3), users.slice(5, 15)];

const DOCUMENTS: [string, string, readonly unknown[], (Record<string, unknown> | undefined)?, string?][] = [
  [
    'userChanged, every field',
    `subscription($id: ID!) { userChanged(id: $id) { userId kind user { ${ALL_FIELDS} } } }`,
    CHANGES,
    { id: '1' },
  ],
  [
    'aliases and __typename',
    `subscription { c: userChanged(id: "1", after: "5") { __typename who: userId kind
      user { __typename n: name tweets: tweetCount version { __typename sequence } } } }`,
    CHANGES,
  ],
  [
    'named and inline fragments, fields merged',
    `subscription { userChanged(id: "1") { ...F kind user { ... on User { name } username name } } }
     fragment F on UserChange { userId user { userId name version { source { offset } } } }`,
    CHANGES,
  ],
  [
    'usersChanged',
    `subscription($ids: [ID!]!) { usersChanged(ids: $ids) { kind userId user { userId likeCount joinedDate } } }`,
    CHANGES,
    { ids: ['1', '2'] },
  ],
  [
    'topUsersChanged',
    `subscription { topUsersChanged(by: TWEETS, limit: 10) { userId tweetCount version { sequence eventTime } } }`,
    LISTS,
  ],
  [
    'the operation picked by name',
    `subscription A { userChanged(id: "1") { kind } } subscription B { usersChanged(ids: ["1"]) { userId user { name } } }`,
    CHANGES,
    undefined,
    'B',
  ],
];

describe('subscription events written without graphql-js', () => {
  it.each(DOCUMENTS)(
    '%s: the same bytes as graphql-js for every event',
    async (_, query, events, variables, name) => {
      const document = parse(query);
      expect(validate(schema, document)).toEqual([]);
      const write = compileSubscriptionData(schema, document, name);
      expect(write, 'this subscription should be compiled').toBeDefined();
      for (const event of events) {
        const executed = (await execute({
          schema,
          document,
          rootValue: event,
          variableValues: variables ?? {},
          operationName: name ?? null,
        })) as ExecutionResult;
        expect(executed.errors).toBeUndefined();
        expect(write!(event)).toBe(JSON.stringify(executed.data));
      }
    },
  );

  it('leaves the events graphql-js answers with an error to graphql-js', async () => {
    const document = parse(`subscription { userChanged(id: "1") { kind user { ${ALL_FIELDS} } } }`);
    const write = compileSubscriptionData(schema, document, undefined)!;
    for (const user of broken) {
      const event = changesOf(user)[1]!;
      const executed = (await execute({ schema, document, rootValue: event })) as ExecutionResult;
      expect(executed.errors?.length).toBe(1);
      expect(write(event)).toBeUndefined();
    }
  });

  it.each([
    ['a directive', 'subscription($x: Boolean!) { userChanged(id: "1") { kind @include(if: $x) } }'],
    ['totalsChanged (its resolver maps the event)', 'subscription { totalsChanged { users } }'],
    ['a query', '{ user(id: "1") { userId } }'],
  ])('compiles nothing for %s', (_, query) => {
    expect(compileSubscriptionData(schema, parse(query), undefined)).toBeUndefined();
  });

  it('compiles nothing for an operation name the document lacks', () => {
    const document = parse('subscription A { userChanged(id: "1") { kind } }');
    expect(compileSubscriptionData(schema, document, 'B')).toBeUndefined();
  });

  it("frames the event's data and extensions as JSON.stringify frames graphql-js' result", () => {
    const data = '{"userChanged":{"kind":"UPDATED","user":null}}';
    const extensions = { asOf: { sequence: '17', lagRecords: 3 } };
    const prerendered = new PrerenderedResult(data, extensions);
    const executed = withExtensions({ data: JSON.parse(data) as Record<string, unknown> }, extensions);
    expect(prerendered.json).toBe(JSON.stringify(executed));
    expect(JSON.stringify(prerendered)).toBe(prerendered.json);
    expect(prerendered.data).toEqual(executed.data);
    expect(prerendered.extensions).toEqual(executed.extensions);
    expect(new PrerenderedResult(data, undefined).extensions).toBeUndefined();
    expect(new PrerenderedResult(data, undefined).json).toBe(JSON.stringify({ data: JSON.parse(data) }));
  });
});
