/** The DLQ sink against a fake ChangelogWriter: what is written where, and failure mapping. */
import { describe, expect, it } from 'vitest';
import { DeadLetterHeader, createDeadLetterSink } from '../../src/feed/dead-letter.js';
import type { ChangelogWriter, FeedRecord, OutgoingMessage } from '../../src/feed/types.js';
import { DeadLetterWriteError, RecordErrorCode, isRetriable } from '../../src/errors.js';

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
