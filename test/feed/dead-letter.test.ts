/**
 * The dead-letter copy of an invalid record: where it goes and what it carries. Sending it (outbox,
 * drainer, Kafka) is tested in test/pipeline/dead-letter-drainer.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { DeadLetterHeader, toOutboxEntry } from '../../src/feed/dead-letter.js';
import type { FeedRecord } from '../../src/feed/types.js';
import { RecordErrorCode } from '../../src/errors.js';

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

describe('a dead letter of a fetched record', () => {
  it("should hold its own copy of the key and value, not the fetch's bytes they are a view of", () => {
    const fetched = Buffer.allocUnsafeSlow(64 * 1024).fill(0x61);
    const key = fetched.subarray(10, 12);
    const value = fetched.subarray(100, 109);
    const { message: m } = toOutboxEntry(
      { record: record({ key, value }), code: RecordErrorCode.JsonInvalid, message: 'bad' },
      '.dlq',
    );
    expect(m.key).toEqual(key);
    expect(m.value).toEqual(value);
    for (const copy of [m.key, m.value] as Buffer[]) expect(copy.buffer).not.toBe(fetched.buffer);
  });
});

describe('toOutboxEntry', () => {
  it('should copy key, value and headers and add the source and error headers', () => {
    const r = record();
    const { topic, message: m } = toOutboxEntry(
      { record: r, code: RecordErrorCode.JsonInvalid, message: 'Unexpected token n' },
      '.dlq',
    );
    expect(topic).toBe('tweets.dlq');
    // The same bytes, not a re-encoding, copied out of the fetched bytes they are a view of.
    expect(m.key).toEqual(r.key);
    expect(m.value).toEqual(r.value);
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

  it('should copy a header named __proto__ as a header', () => {
    const headers = {};
    Object.defineProperty(headers, '__proto__', { value: Buffer.from('p'), enumerable: true });
    const { message: m } = toOutboxEntry(
      { record: record({ headers }), code: RecordErrorCode.JsonInvalid, message: 'x' },
      '.dlq',
    );
    expect(Object.getPrototypeOf(m.headers)).toBe(Object.prototype);
    expect(text(Object.getOwnPropertyDescriptor(m.headers, '__proto__')?.value as Buffer)).toBe('p');
  });

  it('should keep null and empty keys/values as they were', () => {
    const messages = [
      { record: record({ key: null, value: null }), code: RecordErrorCode.KeyInvalid, message: 'no key' },
      {
        record: record({ key: Buffer.alloc(0), value: Buffer.alloc(0) }),
        code: RecordErrorCode.KeyInvalid,
        message: 'empty',
      },
    ].map((e) => toOutboxEntry(e, '.dlq').message);
    expect(messages.map((m) => [m.key, m.value])).toEqual([
      [null, null],
      [Buffer.alloc(0), Buffer.alloc(0)],
    ]);
  });

  it('should go to the source topic with the configured suffix', () => {
    expect(
      toOutboxEntry({ record: record({ topic: 'likes' }), code: 'c', message: 'm' }, '-dead').topic,
    ).toBe('likes-dead');
  });

  it('should let matview headers win over same-named original headers and bound the message', () => {
    const r = record({ headers: { [DeadLetterHeader.ErrorCode]: Buffer.from('OLD') } });
    const headers =
      toOutboxEntry({ record: r, code: 'NEW', message: 'x'.repeat(10_000) }, '.dlq').message.headers ?? {};
    expect(text(headers[DeadLetterHeader.ErrorCode])).toBe('NEW');
    expect(text(headers[DeadLetterHeader.ErrorMessage])?.length).toBeLessThan(2_100);
  });
});
