/**
 * Issue 3, acceptance 2: records produced with kafkajs and with kcat (every compression codec,
 * headers, tombstones) land in the view, and `user(id)` over HTTP returns the exact counts.
 */
import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { produce, useKafka } from '../utils/kafka-mock.js';
import { kcatProduce } from '../utils/kcat.js';
import { eventually, freshTopics, graphql, startTestServer, type TestServer } from '../utils/server.js';

const { CompressionTypes } = kafkajs;

const kafka = useKafka();
let server: TestServer;
const topics = freshTopics();

beforeAll(async () => {
  server = await startTestServer({ brokers: kafka.brokers, topics });
});
afterAll(async () => {
  await server?.close();
});

const json = (o: object) => JSON.stringify(o);
const COUNTS = 'userId username name location joinedDate tweetCount followingCount followerCount likeCount';

describe('Kafka changelogs to GraphQL', () => {
  it('should apply records from kafkajs and from kcat with gzip, snappy, lz4 and zstd and serve exact counts', async () => {
    const { brokers } = kafka;
    await produce(brokers, topics.users, [
      {
        key: 'u1',
        value: json({
          userId: 'u1',
          username: 'zcox',
          name: 'Zach Cox',
          location: 'Chicago, IL',
          joinedDate: 'Tue Jan 22 15:14:44 +0000 2008',
        }),
      },
      { key: 'u2', value: json({ userId: 'u2', username: 'ada', unknownField: [1, 2] }) },
      { key: 'u3', value: json({ username: 'grace', joinedDate: '2010-03-04T05:06:07+01:00' }) },
    ]);
    await produce(
      brokers,
      topics.tweets,
      ['u1', 'u1', 'u1', 'u2', 'u2'].map((userId, i) => ({
        key: `t-k${i + 1}`,
        value: json({ tweetId: `t-k${i + 1}`, userId, text: 'hi' }),
      })),
      { compression: CompressionTypes.GZIP },
    );
    await kcatProduce(
      brokers,
      topics.tweets,
      ['u1', 'u2', 'u3'].map((userId, i) => ({
        key: `t-l${i + 1}`,
        value: json({ tweetId: `t-l${i + 1}`, userId }),
        headers: { trace: 'lz4' },
      })),
      { compression: 'lz4' },
    );
    await kcatProduce(
      brokers,
      topics.follows,
      [
        ['f-s1', 'u1', 'u2'],
        ['f-s2', 'u3', 'u2'],
        ['f-s3', 'u2', 'u1'],
      ].map(([key, followerId, followeeId]) => ({
        key: key!,
        value: json({ followId: key, followerId, followeeId, createdAt: '2020-01-01T00:00:00Z' }),
      })),
      { compression: 'snappy' },
    );
    await kcatProduce(
      brokers,
      topics.likes,
      [
        ['l-z1', 'u1'],
        ['l-z2', 'u1'],
        ['l-z3', 'u3'],
      ].map(([key, userId]) => ({ key: key!, value: json({ likeId: key, userId, tweetId: 't-k4' }) })),
      { compression: 'zstd' },
    );

    const expected = (u1Tweets: number) => ({
      users: [
        {
          userId: 'u1',
          username: 'zcox',
          name: 'Zach Cox',
          location: 'Chicago, IL',
          joinedDate: '2008-01-22T15:14:44.000Z',
          tweetCount: u1Tweets,
          followingCount: 1,
          followerCount: 1,
          likeCount: 2,
        },
        {
          userId: 'u2',
          username: 'ada',
          name: null,
          location: null,
          joinedDate: null,
          tweetCount: 3,
          followingCount: 1,
          followerCount: 2,
          likeCount: 0,
        },
        {
          userId: 'u3',
          username: 'grace',
          name: null,
          location: null,
          joinedDate: '2010-03-04T04:06:07.000Z',
          tweetCount: 1,
          followingCount: 1,
          followerCount: 0,
          likeCount: 1,
        },
        null,
      ],
    });
    const query = `query($ids: [ID!]!) { users(ids: $ids) { ${COUNTS} } }`;
    const ids = { ids: ['u1', 'u2', 'u3', 'nobody'] };
    await eventually(
      async () => {
        const r = await graphql(server.url, query, ids);
        return JSON.stringify(r.data) === JSON.stringify(expected(4)) ? r : undefined;
      },
      30_000,
      'all records applied',
    );

    // A tombstone written by a foreign producer (kcat, gzip) deletes the tweet exactly once.
    await kcatProduce(
      brokers,
      topics.tweets,
      [
        { key: 't-k1', value: null },
        { key: 't-k1', value: null },
      ],
      { compression: 'gzip' },
    );
    await eventually(
      async () => {
        const r = await graphql(server.url, query, ids);
        return JSON.stringify(r.data) === JSON.stringify(expected(3)) ? r : undefined;
      },
      30_000,
      'tombstone applied',
    );

    const single = await graphql(server.url, `{ user(id: "u1") { ${COUNTS} } }`);
    const asOf = {
      asOf: { sequence: String(server.running.store.sequence()), lagRecords: expect.any(Number) },
    };
    expect(single).toEqual({ data: { user: expected(3).users[0] }, extensions: asOf });
    expect(
      await graphql(
        server.url,
        `
          {
            user(id: "nobody") {
              userId
            }
          }
        `,
      ),
    ).toEqual({ data: { user: null }, extensions: asOf });
  });
});
