/**
 * The schema is a contract (CONTRACT.md §3, and issue 16's dashboard fields): the checked-in SDL must match
 * the code, and every type, field, argument, default and nullability the contract names must be there exactly.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  buildSchema,
  extendSchema,
  isEnumType,
  isObjectType,
  parse,
  type GraphQLField,
  type GraphQLNamedType,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { buildApiSchema } from '../../api/schema/build.js';
import { printSchemaSdl } from '../../api/schema/print.js';

const SDL_PATH = fileURLToPath(new URL('../../schema/schema.graphql', import.meta.url));

/** CONTRACT.md §3, verbatim but for `@key` (checked separately) and FeedStatus (ours to design). */
const CONTRACT = /* GraphQL */ `
  scalar DateTime
  type FeedStatus {
    ready: Boolean!
  }
  type User {
    userId: ID!
    username: String!
    name: String
    description: String
    location: String
    webPageUrl: String
    joinedDate: DateTime
    profileImageUrl: String
    backgroundImageUrl: String
    tweetCount: Int!
    followingCount: Int!
    followerCount: Int!
    likeCount: Int!
    version: ViewVersion!
  }
  type ViewVersion {
    sequence: String!
    appliedAt: DateTime!
    eventTime: DateTime
    source: SourcePosition!
  }
  type SourcePosition {
    topic: String!
    partition: Int!
    offset: String!
  }
  type Query {
    user(id: ID!): User
    users(ids: [ID!]!): [User]!
    feedStatus: FeedStatus!
  }
  type Subscription {
    userChanged(id: ID!, after: String): UserChange!
    usersChanged(ids: [ID!]!, after: String): UserChange!
  }
  type UserChange {
    userId: ID!
    kind: ChangeKind!
    user: User
  }
  enum ChangeKind {
    SNAPSHOT
    UPDATED
    DELETED
  }
`;

/** Issue 16's dashboard views, verbatim (the issue fixes these names). */
const DASHBOARD = /* GraphQL */ `
  enum UserRanking {
    FOLLOWERS
    TWEETS
    LIKES
    FOLLOWING
  }
  type Totals {
    users: Int!
    tweets: Int!
    follows: Int!
    likes: Int!
    version: ViewVersion!
  }
  extend type Query {
    topUsers(by: UserRanking!, limit: Int = 10): [User!]!
    totals: Totals!
  }
  extend type Subscription {
    topUsersChanged(by: UserRanking!, limit: Int = 10): [User!]!
    totalsChanged: Totals!
  }
`;

function signature(field: GraphQLField<unknown, unknown>): string {
  const args = field.args
    .map(
      (a) =>
        `${a.name}: ${String(a.type)}${a.defaultValue === undefined ? '' : ` = ${String(a.defaultValue)}`}`,
    )
    .join(', ');
  return `${field.name}${args === '' ? '' : `(${args})`}: ${String(field.type)}`;
}

describe('schema/schema.graphql', () => {
  it('is the SDL the code generates', () => {
    const checkedIn = readFileSync(SDL_PATH, 'utf8');
    const generated = printSchemaSdl();
    if (checkedIn !== generated) {
      expect.fail('schema/schema.graphql is out of date: run `npm run schema:print`');
    }
  });

  it('declares a Federation 2 subgraph with User keyed by userId', () => {
    const sdl = printSchemaSdl();
    expect(sdl).toMatch(/^extend schema\s+@link\(url: "https:\/\/specs\.apollo\.dev\/federation\/v2\.\d+"/);
    expect(sdl).toMatch(/type User\s+@key\(fields: "userId"\)/);
  });
});

describe('contract shape', () => {
  const ours = buildApiSchema();
  const contract = extendSchema(buildSchema(CONTRACT), parse(DASHBOARD));
  const contractTypes = Object.values(contract.getTypeMap()).filter((t) => !t.name.startsWith('__'));

  it.each(contractTypes.map((t): [string, GraphQLNamedType] => [t.name, t]))(
    '%s matches the contract',
    (name, type) => {
      const mine = ours.getType(name);
      expect(mine?.constructor).toBe(type.constructor);
      if (isObjectType(type) && isObjectType(mine)) {
        const mineFields = mine.getFields();
        for (const field of Object.values(type.getFields())) {
          const ourField = mineFields[field.name];
          expect(ourField && signature(ourField), `${name}.${field.name}`).toBe(signature(field));
        }
        if (name !== 'Query' && name !== 'FeedStatus') {
          // No extra fields on contract types (Query gains only the federation fields).
          expect(Object.keys(mineFields).sort()).toEqual(Object.keys(type.getFields()).sort());
        }
      }
      if (isEnumType(type) && isEnumType(mine)) {
        expect(mine.getValues().map((v) => v.name)).toEqual(type.getValues().map((v) => v.name));
      }
    },
  );

  it('Query has exactly the contract fields plus _service and _entities', () => {
    expect(Object.keys(ours.getQueryType()?.getFields() ?? {}).sort()).toEqual(
      ['_entities', '_service', 'feedStatus', 'topUsers', 'totals', 'user', 'users'].sort(),
    );
  });

  it('FeedStatus carries readiness, per-partition position and lag, freshness, and the dead letters waiting', () => {
    const feedStatus = ours.getType('FeedStatus');
    const partition = ours.getType('PartitionStatus');
    if (!isObjectType(feedStatus) || !isObjectType(partition)) throw new Error('FeedStatus types missing');
    expect(Object.values(feedStatus.getFields()).map(signature)).toEqual([
      'ready: Boolean!',
      'source: FeedSourceKind!',
      'state: FeedState!',
      'reason: String',
      'partitions: [PartitionStatus!]!',
      'newestEventAgeSeconds: Float',
      'feedDownSeconds: Float',
      'sequence: String!',
      'viewVersion: Int!',
      'deadLettersWaiting: Int!',
    ]);
    expect(Object.values(partition.getFields()).map(signature)).toEqual([
      'topic: String!',
      'partition: Int!',
      'next: String!',
      'highWatermark: String',
      'lag: String',
    ]);
  });
});
