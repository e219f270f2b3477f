/**
 * Apollo Federation 2 (CONTRACT.md §3): a stock gateway composes this subgraph with another one that
 * extends `User`, and answers queries that need both — `_service` for composition, `_entities` for joins.
 */
import { ApolloGateway, IntrospectAndCompose } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeUser, useTestApi } from '../utils/testkit.js';

/** A second subgraph: reviews, extending our User entity by key. */
const reviewsTypeDefs = parse(`
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
  type User @key(fields: "userId") {
    userId: ID!
    reviewCount: Int!
  }
  type Query {
    topReviewers: [User!]!
  }
`);

const reviewsResolvers = {
  Query: { topReviewers: () => [{ userId: '2' }, { userId: '1' }] },
  User: {
    __resolveReference: (ref: { userId: string }) => ({ userId: ref.userId }),
    reviewCount: (user: { userId: string }) => user.userId.length * 10,
  },
};

describe('federation', () => {
  const matview = useTestApi({ users: [makeUser(1), makeUser(2)] });
  const reviews = new ApolloServer({
    schema: buildSubgraphSchema({ typeDefs: reviewsTypeDefs, resolvers: reviewsResolvers }),
  });
  let gateway: ApolloServer;

  beforeAll(async () => {
    const { url } = await startStandaloneServer(reviews, { listen: { port: 0, host: '127.0.0.1' } });
    gateway = new ApolloServer({
      gateway: new ApolloGateway({
        supergraphSdl: new IntrospectAndCompose({
          subgraphs: [
            { name: 'matview', url: `${matview.url}/graphql` },
            { name: 'reviews', url },
          ],
        }),
      }),
    });
    await gateway.start();
  });

  afterAll(async () => {
    await gateway?.stop();
    await reviews.stop();
  });

  async function run(query: string) {
    const response = await gateway.executeOperation({ query });
    if (response.body.kind !== 'single') throw new Error('expected a single result');
    return response.body.singleResult;
  }

  it('answers a query starting in matview and joining reviews', async () => {
    expect(await run('{ user(id: "1") { userId username tweetCount reviewCount } }')).toEqual({
      data: { user: { userId: '1', username: 'user1', tweetCount: 1, reviewCount: 10 } },
    });
  });

  it('answers a query starting in reviews and resolving users through _entities', async () => {
    matview.reader.resetCalls();
    expect(await run('{ topReviewers { userId username reviewCount version { sequence } } }')).toEqual({
      data: {
        topReviewers: [
          { userId: '2', username: 'user2', reviewCount: 10, version: { sequence: '1002' } },
          { userId: '1', username: 'user1', reviewCount: 10, version: { sequence: '1001' } },
        ],
      },
    });
    // All representations of one gateway fetch become one batched read.
    expect(matview.reader.calls.getUsers).toBe(1);
  });
});
