/**
 * The DLQ sink against a fake ChangelogWriter (what is written where, failure mapping), then
 * end to end through the kafkajs writer to the mock cluster and read back.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DeadLetterHeader, createDeadLetterSink } from '../../src/feed/dead-letter.js';
import { createKafkaWriter } from '../../src/feed/kafka-writer.js';
import type { ChangelogWriter, FeedRecord, OutgoingMessage } from '../../src/feed/types.js';
import { DeadLetterWriteError, InvariantError, RecordErrorCode, isRetriable } from '../../src/errors.js';
import { silentLogger } from '../../src/ops/logger.js';
import { consumeAll, startKafka, uniqueTopic, type KafkaHandle } from '../utils/kafka-mock.js';

class FakeWriter implements ChangelogWriter {
  readonly sent: { topic: string; messages: readonly OutgoingMessage[] }[] = [];
  failOn: string | undefined;

  async send(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (topic === this.failOn) throw new Error(`broker said no to ${topic}`);
    this.sent.push({ topic, messages });
  }
  async close(): Promise<void> {}
}

const record = (over: Partial<FeedRecord> = {}): FeedRecord => ({
  topic: 'tweets',
  partition: 2,
  offset: '41',
  timestamp: '1700000000000',
  key: Buffer.from('t1'),
  value: Buffer.from('{not json'),
  headers: { 'trace-id': Buffer.from('abc'), empty: undefined },
  ...over,
});

const text = (v: string | Buffer | undefined) => (v === undefined ? undefined : v.toString());

describe('createDeadLetterSink', () => {
  it('should copy key, value and headers and add the source and error headers', async () => {
    const writer = new FakeWriter();
    const sink = createDeadLetterSink(writer, '.dlq');
    const r = record();
    await sink.send([{ record: r, code: RecordErrorCode.JsonInvalid, message: 'Unexpected token n' }]);

    expect(writer.sent).toHaveLength(1);
    const [{ topic, messages }] = writer.sent as [{ topic: string; messages: OutgoingMessage[] }];
    expect(topic).toBe('tweets.dlq');
    const [m] = messages as [OutgoingMessage];
    // The very same bytes, not a re-encoding.
    expect(m.key).toBe(r.key);
    expect(m.value).toBe(r.value);
    expect(m.partition).toBeUndefined();
    const headers = Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, text(v)]));
    expect(headers).toEqual({
      'trace-id': 'abc',
      [DeadLetterHeader.SourceTopic]: 'tweets',
      [DeadLetterHeader.SourcePartition]: '2',
      [DeadLetterHeader.SourceOffset]: '41',
      [DeadLetterHeader.ErrorCode]: 'MV_ERR_RECORD_JSON_INVALID',
      [DeadLetterHeader.ErrorMessage]: 'Unexpected token n',
    });
  });

  it('should keep null and empty keys/values as they were', async () => {
    const writer = new FakeWriter();
    await createDeadLetterSink(writer, '.dlq').send([
      { record: record({ key: null, value: null }), code: RecordErrorCode.KeyInvalid, message: 'no key' },
      {
        record: record({ key: Buffer.alloc(0), value: Buffer.alloc(0) }),
        code: RecordErrorCode.KeyInvalid,
        message: 'empty',
      },
    ]);
    const messages = writer.sent[0]?.messages ?? [];
    expect(messages.map((m) => [m.key, m.value])).toEqual([
      [null, null],
      [Buffer.alloc(0), Buffer.alloc(0)],
    ]);
  });

  it('should group per source topic with the configured suffix, keeping order', async () => {
    const writer = new FakeWriter();
    await createDeadLetterSink(writer, '-dead').send([
      { record: record({ topic: 'likes', offset: '1' }), code: 'c', message: 'm' },
      { record: record({ topic: 'users', offset: '7' }), code: 'c', message: 'm' },
      { record: record({ topic: 'likes', offset: '2' }), code: 'c', message: 'm' },
    ]);
    expect(
      writer.sent.map((s) => [
        s.topic,
        s.messages.map((m) => text(m.headers?.[DeadLetterHeader.SourceOffset])),
      ]),
    ).toEqual([
      ['likes-dead', ['1', '2']],
      ['users-dead', ['7']],
    ]);
  });

  it('should let matview headers win over same-named original headers and bound the message', async () => {
    const writer = new FakeWriter();
    const r = record({ headers: { [DeadLetterHeader.ErrorCode]: Buffer.from('OLD') } });
    await createDeadLetterSink(writer, '.dlq').send([
      { record: r, code: 'NEW', message: 'x'.repeat(10_000) },
    ]);
    const headers = writer.sent[0]?.messages[0]?.headers ?? {};
    expect(text(headers[DeadLetterHeader.ErrorCode])).toBe('NEW');
    expect(text(headers[DeadLetterHeader.ErrorMessage])?.length).toBeLessThan(2_100);
  });

  it('should do nothing for no entries', async () => {
    const writer = new FakeWriter();
    await createDeadLetterSink(writer, '.dlq').send([]);
    expect(writer.sent).toEqual([]);
  });

  it('should reject with a retriable DeadLetterWriteError carrying the cause', async () => {
    const writer = new FakeWriter();
    writer.failOn = 'tweets.dlq';
    const error = await createDeadLetterSink(writer, '.dlq')
      .send([{ record: record(), code: 'c', message: 'm' }])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeadLetterWriteError);
    expect(isRetriable(error)).toBe(true);
    expect((error as DeadLetterWriteError).topic).toBe('tweets.dlq');
    expect(((error as Error).cause as Error).message).toBe('broker said no to tweets.dlq');
  });
});

describe('dead letters through the Kafka writer', () => {
  let kafka: KafkaHandle | undefined;
  afterAll(async () => {
    await kafka?.stop();
  });

  it('should land on <topic>.dlq with original bytes and headers, readable by a consumer', async () => {
    kafka = await startKafka();
    const writer = createKafkaWriter({
      brokers: kafka.brokers,
      clientId: 'matview-test-dlq',
      connectionTimeoutMs: 2_000,
      logger: silentLogger,
      compression: 'gzip',
    });
    const source = uniqueTopic('tweets');
    const bad = [
      record({
        topic: source,
        partition: 1,
        offset: '5',
        key: Buffer.from('t1'),
        value: Buffer.from('{nope'),
      }),
      record({ topic: source, partition: 3, offset: '9', key: Buffer.from('t2'), value: null, headers: {} }),
    ];
    await createDeadLetterSink(writer, '.dlq').send([
      { record: bad[0]!, code: RecordErrorCode.JsonInvalid, message: 'bad JSON' },
      { record: bad[1]!, code: RecordErrorCode.FieldMissing, message: 'userId is required' },
    ]);
    await writer.close();
    await expect(writer.send('x', [{ key: 'k', value: 'v' }])).rejects.toBeInstanceOf(InvariantError);

    const got = await consumeAll(kafka.brokers, `${source}.dlq`, 2);
    const text = (b: Buffer | null | undefined) => (b == null ? null : b.toString());
    expect(
      got
        .map((r) => ({
          key: text(r.key),
          value: text(r.value),
          headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, text(v)])),
        }))
        .sort((a, b) => String(a.key).localeCompare(String(b.key))),
    ).toEqual([
      {
        key: 't1',
        value: '{nope',
        headers: {
          'trace-id': 'abc',
          [DeadLetterHeader.SourceTopic]: source,
          [DeadLetterHeader.SourcePartition]: '1',
          [DeadLetterHeader.SourceOffset]: '5',
          [DeadLetterHeader.ErrorCode]: 'MV_ERR_RECORD_JSON_INVALID',
          [DeadLetterHeader.ErrorMessage]: 'bad JSON',
        },
      },
      {
        key: 't2',
        value: null,
        headers: {
          [DeadLetterHeader.SourceTopic]: source,
          [DeadLetterHeader.SourcePartition]: '3',
          [DeadLetterHeader.SourceOffset]: '9',
          [DeadLetterHeader.ErrorCode]: 'MV_ERR_RECORD_FIELD_MISSING',
          [DeadLetterHeader.ErrorMessage]: 'userId is required',
        },
      },
    ]);
  });
});
