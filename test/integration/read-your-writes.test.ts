/**
 * Issue 18, point 3, with real Kafka offsets: a service writes with a kafkajs producer and reads its own write
 * at once by passing the offsets the producer got back as `extensions.minOffsets`. Every read sees the write
 * it waited for (without it, a read right after the send usually does not: the consumer has yet to fetch).
 * An offset the view cannot reach in MIN_OFFSETS_TIMEOUT_MS gets NOT_YET_APPLIED.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { produce, useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics, graphql, startTestServer, type TestServer } from '../utils/server.js';

const kafka = useKafka();
let server: TestServer;
const topics = freshTopics();

beforeAll(async () => {
  server = await startTestServer({
    brokers: kafka.brokers,
    topics,
    // Long enough for a fetch on a loaded 2-core box; the unreachable offset below waits this long.
    env: { MIN_OFFSETS_TIMEOUT_MS: '10000' },
  });
});
afterAll(async () => {
  await server?.close();
});

interface Answer {
  data?: { user: { tweetCount: number } | null };
  errors?: { message: string; extensions: { code: string } }[];
  extensions?: { asOf: { sequence: string; lagRecords: number | null } };
}

async function readAfter(minOffsets: Record<string, Record<string, string>>): Promise<Answer> {
  const res = await fetch(`${server.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query: 'query($id: ID!) { user(id: $id) { tweetCount } }',
      variables: { id: 'rw1' },
      extensions: { minOffsets },
    }),
  });
  return (await res.json()) as Answer;
}

describe('read-your-writes with a kafkajs producer', () => {
  it('should answer each read only once the write whose offset it names is applied', async () => {
    const [created] = await produce(kafka.brokers, topics.users, [
      { key: 'rw1', value: JSON.stringify({ userId: 'rw1', username: 'writer' }) },
    ]);
    const first = await readAfter({ [topics.users]: { [String(created!.partition)]: created!.baseOffset! } });
    expect(first.data).toEqual({ user: { tweetCount: 0 } });
    let lastSequence = BigInt(first.extensions!.asOf.sequence);
    for (let i = 1; i <= 5; i++) {
      const [sent] = await produce(kafka.brokers, topics.tweets, [
        { key: `rw-t${i}`, value: JSON.stringify({ tweetId: `rw-t${i}`, userId: 'rw1' }) },
      ]);
      const read = await readAfter({ [topics.tweets]: { [String(sent!.partition)]: sent!.baseOffset! } });
      expect(read.data).toEqual({ user: { tweetCount: i } });
      // The store commit it was read at moved on with the write.
      const sequence = BigInt(read.extensions!.asOf.sequence);
      expect(sequence).toBeGreaterThan(lastSequence);
      lastSequence = sequence;
    }
  });

  it('should refuse with NOT_YET_APPLIED an offset the view does not reach in time', async () => {
    const [sent] = await produce(kafka.brokers, topics.tweets, [
      { key: 'rw-late', value: JSON.stringify({ tweetId: 'rw-late', userId: 'rw1' }) },
    ]);
    const beyond = String(BigInt(sent!.baseOffset!) + 1000n);
    const read = await readAfter({ [topics.tweets]: { [String(sent!.partition)]: beyond } });
    expect(read.data).toBeUndefined();
    expect(read.errors?.map((e) => e.extensions.code)).toEqual(['NOT_YET_APPLIED']);
    expect(read.errors?.[0]?.message).toContain(`${topics.tweets}/${sent!.partition} offset ${beyond}`);
    // The write itself is applied meanwhile.
    await eventually(async () => {
      const r = await graphql<{ user: { tweetCount: number } }>(
        server.url,
        '{ user(id: "rw1") { tweetCount } }',
      );
      return r.data?.user.tweetCount === 6 ? true : undefined;
    });
  });
});
