/**
 * Issue 3, acceptance 5: each kind of invalid record from the contract lands on `<topic>.dlq` with
 * its original key, value and headers plus the documented matview.* headers, and the records after
 * it are applied.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordErrorCode } from '../../src/errors.js';
import { consumeAll, produce, useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics, graphql, startTestServer, type TestServer } from '../utils/server.js';

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

describe('dead-letter topic', () => {
  it('should copy every kind of invalid record to <topic>.dlq with diagnostics and keep applying the rest', async () => {
    const invalid: { key: string | Buffer | null; value: string | Buffer; code: string }[] = [
      { key: 'bad-json', value: '{"userId": "u1",', code: RecordErrorCode.JsonInvalid },
      { key: 'not-object', value: '"u1"', code: RecordErrorCode.NotObject },
      {
        key: 'missing',
        value: json({ tweetId: 'missing', text: 'no owner' }),
        code: RecordErrorCode.FieldMissing,
      },
      { key: 'mistyped', value: json({ userId: 7 }), code: RecordErrorCode.FieldType },
      { key: 'mismatch', value: json({ tweetId: 'other', userId: 'u1' }), code: RecordErrorCode.KeyMismatch },
      { key: null, value: json({ userId: 'u1' }), code: RecordErrorCode.KeyInvalid },
      { key: 'x'.repeat(600), value: json({ userId: 'u1' }), code: RecordErrorCode.KeyInvalid },
      {
        key: 'bad-date',
        value: json({ userId: 'u1', createdAt: '22/01/2008' }),
        code: RecordErrorCode.DateInvalid,
      },
    ];
    // One partition so "the records after it" have a defined order.
    await produce(kafka.brokers, topics.users, [
      { key: 'u1', value: json({ username: 'zcox' }), partition: 0 },
    ]);
    await produce(kafka.brokers, topics.tweets, [
      { key: 'ok-1', value: json({ userId: 'u1' }), partition: 0 },
      ...invalid.map((r) => ({
        key: r.key,
        value: r.value,
        headers: { 'trace-id': `trace-${r.code}` },
        partition: 0,
      })),
      { key: 'ok-2', value: json({ userId: 'u1' }), partition: 0 },
    ]);

    await eventually(
      async () => {
        const r = await graphql<{ user: { tweetCount: number } | null }>(
          server.url,
          '{ user(id: "u1") { tweetCount } }',
        );
        return r.data?.user?.tweetCount === 2 ? true : undefined;
      },
      30_000,
      'valid tweets applied',
    );

    const dlq = await consumeAll(kafka.brokers, `${topics.tweets}.dlq`, invalid.length, 30_000);
    const got = dlq
      .map((r) => ({
        key: r.key === null ? null : r.key.toString(),
        value: r.value?.toString(),
        trace: r.headers['trace-id']?.toString(),
        topic: r.headers['matview.source.topic']?.toString(),
        partition: r.headers['matview.source.partition']?.toString(),
        offset: Number(r.headers['matview.source.offset']?.toString()),
        code: r.headers['matview.error.code']?.toString(),
        hasMessage: (r.headers['matview.error.message']?.length ?? 0) > 0,
      }))
      .sort((a, b) => a.offset - b.offset);
    expect(got).toEqual(
      invalid.map((r, i) => ({
        key: r.key === null ? null : r.key.toString(),
        value: r.value.toString(),
        trace: `trace-${r.code}`,
        topic: topics.tweets,
        partition: '0',
        offset: i + 1,
        code: r.code,
        hasMessage: true,
      })),
    );
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain(
      `matview_records_invalid_total{topic="${topics.tweets}",code="${RecordErrorCode.KeyInvalid}"} 2`,
    );
  });
});
