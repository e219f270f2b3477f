/**
 * Our record batch decoder (src/feed/record-batch.ts) against kafkajs 2.2.4's own, on batches written by
 * kafkajs' own encoder: random records (null and empty keys and values, headers with repeated, empty and
 * odd keys, timestamp deltas of every size, negative ones included), first offsets and timestamps near and
 * beyond 2^53 and at the int64 limits, compressed and not, transactional, control and log-append-time
 * batches (flags set in the written batch), several batches back to back and a batch cut short. Both
 * results must be deeply equal, field for field.
 *
 * And the records a fetch delivers (`decodeFetchedBatch`, FetchedRecord) against kafkajs' records put
 * through the feed's conversion (`toFeedBatch`), on the same batches.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { registerCodecs } from '../../src/feed/codecs.js';
import { toFeedBatch } from '../../src/feed/partition-feed.js';
import {
  CorruptBatchError,
  decodeFetchedBatch,
  decodeRecordBatch,
  FetchedRecord,
} from '../../src/feed/record-batch.js';
import type { FeedRecord } from '../../src/feed/types.js';
import { plainRecord } from '../utils/feed-records.js';
import { encodeBatch, encodeRecord } from '../utils/kafkajs-encoders.js';

const require = createRequire(import.meta.url);
type Long = { readonly __long: true };
const LongClass = require('kafkajs/src/utils/long.js') as { fromString(s: string): Long };
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (buffer: Buffer) => unknown;
const kafkajsDecode = require('kafkajs/src/protocol/recordBatch/v0/decoder.js') as (
  decoder: unknown,
) => Promise<{ records: unknown[] }>;
const { Types } = require('kafkajs/src/protocol/message/compression/index.js') as {
  Types: Record<string, number>;
};

registerCodecs();

/** Offset of the attributes (int16) in a written batch: first offset, length, epoch, magic, CRC. */
const ATTRIBUTES_AT = 8 + 4 + 4 + 1 + 4;

const INT64_TEXTS = [
  '0',
  '1',
  '-1',
  '9007199254740991',
  '9007199254740992',
  '9223372036854775807',
  '-9223372036854775808',
  '1764930000000',
  '123456789012345678',
];

function bytes(next: () => number): Buffer | null {
  const r = next();
  if (r < 0.1) return null;
  if (r < 0.15) return Buffer.alloc(0);
  return Buffer.from(Array.from({ length: Math.floor(next() * 40) }, () => Math.floor(next() * 256)));
}

const headerValue = (next: () => number): Buffer => bytes(next) ?? Buffer.alloc(0);

function headers(next: () => number): Record<string, Buffer | Buffer[]> {
  const keys = ['a', 'trace', '', 'é', '__proto__', 'toString', 'null'];
  const out: Record<string, Buffer | Buffer[]> = {};
  const n = next() < 0.5 ? 0 : Math.floor(next() * 4);
  for (let i = 0; i < n; i++) {
    const key = keys[Math.floor(next() * keys.length)]!;
    // kafkajs' encoder writes no null header value (a test below patches one in).
    const value =
      next() < 0.3
        ? Array.from({ length: 2 + Math.floor(next() * 3) }, () => headerValue(next))
        : headerValue(next);
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

async function randomBatch(next: () => number): Promise<Buffer> {
  const count = Math.floor(next() * 30);
  const deltas = [0, 1, -1, 127, 128, -300, 2 ** 31 - 1, 2 ** 40, -(2 ** 45), 2 ** 53, 2 ** 60];
  const records = Array.from({ length: count }, (_, i) =>
    encodeRecord({
      offsetDelta: i,
      timestampDelta: next() < 0.7 ? Math.floor(next() * 1000) : deltas[Math.floor(next() * deltas.length)]!,
      key: bytes(next),
      value: bytes(next),
      headers: headers(next),
    }),
  );
  const pick = (): Long => LongClass.fromString(INT64_TEXTS[Math.floor(next() * INT64_TEXTS.length)]!);
  const compressions = [Types['None']!, Types['GZIP']!, Types['LZ4']!];
  const written = await encodeBatch({
    compression: compressions[Math.floor(next() * compressions.length)],
    firstOffset: next() < 0.5 ? LongClass.fromString(String(Math.floor(next() * 1e6))) : pick(),
    firstTimestamp: next() < 0.5 ? LongClass.fromString('1764930000000') : pick(),
    maxTimestamp: pick(),
    lastOffsetDelta: Math.max(0, count - 1),
    transactional: next() < 0.2,
    producerId: next() < 0.5 ? LongClass.fromString('-1') : pick(),
    producerEpoch: Math.floor(next() * 5),
    firstSequence: Math.floor(next() * 100),
    partitionLeaderEpoch: Math.floor(next() * 10),
    records,
  });
  const out = Buffer.from(written.buffer);
  let attributes = out.readInt16BE(ATTRIBUTES_AT);
  if (next() < 0.15) attributes |= 0x8; // log-append time
  if (next() < 0.1) attributes |= 0x20; // control batch
  out.writeInt16BE(attributes, ATTRIBUTES_AT);
  return out;
}

/** Every batch in `buffer`, kafkajs' way (as src/feed/kafkajs-internals.ts drove it before). */
async function withKafkajs(buffer: Buffer): Promise<unknown[]> {
  const decoder = new Decoder(buffer) as { canReadBytes(n: number): boolean };
  const out: unknown[] = [];
  while (decoder.canReadBytes(49)) {
    try {
      out.push(...(await kafkajsDecode(decoder)).records);
    } catch (e) {
      if ((e as Error).name === 'KafkaJSPartialMessageError') break;
      throw e;
    }
  }
  return out;
}

async function withOurs(buffer: Buffer): Promise<unknown[]> {
  const out: unknown[] = [];
  for (let at = 0; at + 49 <= buffer.length;) {
    try {
      const { records, next } = await decodeRecordBatch(buffer, at);
      out.push(...records);
      at = next;
    } catch (e) {
      if ((e as Error).name === 'KafkaJSPartialMessageError') break;
      throw e;
    }
  }
  return out;
}

/** Every batch in `buffer` as the feed's records of t[4], with each one's control flag. */
async function fetchedWithOurs(buffer: Buffer): Promise<unknown[]> {
  const out: FetchedRecord[] = [];
  for (let at = 0; at + 49 <= buffer.length;) {
    try {
      at = await decodeFetchedBatch(buffer, at, 't', 4, out);
    } catch (e) {
      if ((e as Error).name === 'KafkaJSPartialMessageError') break;
      throw e;
    }
  }
  return out.map((r) => {
    expect(r).toBeInstanceOf(FetchedRecord);
    return plainRecord(r, r.isControlRecord);
  });
}

/** kafkajs' records of `buffer` through the feed's conversion of a kafkajs record. */
async function fetchedWithKafkajs(buffer: Buffer): Promise<unknown[]> {
  const records = (await withKafkajs(buffer)) as { isControlRecord: boolean }[];
  return toFeedBatch('t', 4, records as never, '0').records.map((r, i) =>
    plainRecord(r, records[i]!.isControlRecord),
  );
}

/** Random batches back to back, the last one possibly cut short (a fetch's byte limit), per seed. */
async function randomFetch(seed: number): Promise<Buffer> {
  const next = prng(seed);
  const batches = await Promise.all(
    Array.from({ length: 1 + Math.floor(next() * 3) }, () => randomBatch(next)),
  );
  const buffer = Buffer.concat(batches);
  return next() < 0.3 ? buffer.subarray(0, buffer.length - 1 - Math.floor(next() * 20)) : buffer;
}

describe('record batch decoding', () => {
  it('gives what kafkajs gives, field for field', async () => {
    let records = 0;
    for (let seed = 1; seed <= 150; seed++) {
      const buffer = await randomFetch(seed);
      const expected = await withKafkajs(buffer);
      const actual = await withOurs(buffer);
      expect(actual).toStrictEqual(expected);
      records += expected.length;
    }
    expect(records).toBeGreaterThan(1000);
  });

  it("gives the feed's records, as kafkajs' records converted by the feed", async () => {
    let records = 0;
    let withHeaders = 0;
    for (let seed = 1; seed <= 150; seed++) {
      const buffer = await randomFetch(seed);
      const expected = await fetchedWithKafkajs(buffer);
      const actual = await fetchedWithOurs(buffer);
      expect(actual).toStrictEqual(expected);
      records += expected.length;
      withHeaders += expected.filter((r) => Object.keys((r as FeedRecord).headers).length > 0).length;
    }
    expect(records).toBeGreaterThan(1000);
    expect(withHeaders).toBeGreaterThan(100);
  });

  it('gives a header without a value as there with none, and a repeated header its last value', async () => {
    const written = await encodeBatch({
      lastOffsetDelta: 0,
      records: [
        encodeRecord({
          key: Buffer.from('k'),
          value: Buffer.from('v'),
          headers: {
            first: Buffer.from('1'),
            novalue: Buffer.alloc(0),
            twice: [Buffer.from('a'), Buffer.from('b')],
          },
        }),
      ],
    });
    // kafkajs writes no null header value: its empty one (length 0) becomes null (length -1), same size.
    const buffer = Buffer.from(written.buffer);
    const name = Buffer.concat([
      Buffer.from([2 * 'novalue'.length]),
      Buffer.from('novalue'),
      Buffer.from([0]),
    ]);
    const at = buffer.indexOf(name);
    expect(at).toBeGreaterThan(0);
    buffer[at + name.length - 1] = 0x01; // zigzag varint -1
    expect(await withKafkajs(buffer)).toMatchObject([{ headers: { novalue: null } }]);
    const fetched = await fetchedWithOurs(buffer);
    expect(fetched).toStrictEqual(await fetchedWithKafkajs(buffer));
    expect((fetched[0] as FeedRecord).headers).toStrictEqual({
      first: Buffer.from('1'),
      novalue: undefined,
      twice: Buffer.from('b'),
    });
  });

  it("gives a fetched record's key and value views of its batch's bytes, and their size", async () => {
    const written = await encodeBatch({
      lastOffsetDelta: 2,
      records: [
        encodeRecord({ offsetDelta: 0, key: Buffer.from('k0'), value: Buffer.from('value 0') }),
        encodeRecord({ offsetDelta: 1, key: null, value: Buffer.alloc(0) }),
        encodeRecord({ offsetDelta: 2, key: Buffer.alloc(0), value: null }),
      ],
    });
    const out: FetchedRecord[] = [];
    // Its own memory (not Buffer's shared pool), so that a copy would not share it.
    const buffer = Buffer.allocUnsafeSlow(written.buffer.length);
    written.buffer.copy(buffer);
    await decodeFetchedBatch(buffer, 0, 't', 0, out);
    expect(out.map((r) => [r.key?.toString() ?? null, r.value?.toString() ?? null, r.size])).toEqual([
      ['k0', 'value 0', 9],
      [null, '', 0],
      ['', null, 0],
    ]);
    const value = out[0]!.value!;
    expect(value.buffer).toBe(buffer.buffer);
    expect(
      buffer
        .subarray(value.byteOffset - buffer.byteOffset)
        .subarray(0, 7)
        .toString(),
    ).toBe('value 0');
  });

  it('gives each record its exact timestamp beyond 2^53, where sums round', async () => {
    const written = await encodeBatch({
      firstTimestamp: LongClass.fromString('9007199254740991'),
      lastOffsetDelta: 2,
      records: [1, 2, 3].map((timestampDelta, offsetDelta) =>
        encodeRecord({ offsetDelta, timestampDelta, key: null, value: null }),
      ),
    });
    const buffer = Buffer.from(written.buffer);
    const ours = (await decodeRecordBatch(buffer, 0)).records.map((r) => r.timestamp);
    expect(ours).toEqual(['9007199254740992', '9007199254740993', '9007199254740994']);
    expect(ours).toEqual((await withKafkajs(buffer)).map((r) => (r as { timestamp: string }).timestamp));
  });

  it('refuses a batch or a record whose length cannot be right, instead of decoding garbage', async () => {
    const written = await randomBatch(prng(3));
    for (const length of [-12, -1, 0, 48]) {
      const bad = Buffer.from(written);
      bad.writeInt32BE(length, 8);
      await expect(decodeRecordBatch(bad, 0)).rejects.toBeInstanceOf(CorruptBatchError);
    }
    // One record whose length runs past its batch.
    const one = Buffer.from(
      (
        await encodeBatch({
          records: [encodeRecord({ key: Buffer.from('k'), value: Buffer.from('v') })],
          lastOffsetDelta: 0,
        })
      ).buffer,
    );
    // The record area starts after the 61-byte batch header; its first byte is the record's length.
    one.writeUInt8(0x7e, 61); // zigzag 63: past the end
    await expect(decodeRecordBatch(one, 0)).rejects.toBeInstanceOf(CorruptBatchError);
    one.writeUInt8(0x01, 61); // zigzag -1
    await expect(decodeRecordBatch(one, 0)).rejects.toBeInstanceOf(CorruptBatchError);
    // A fetched record's key whose length runs past its record, or is below -1 (null).
    for (const keyLength of [0x7e, 0x03]) {
      const bad = Buffer.from(
        (
          await encodeBatch({
            records: [encodeRecord({ key: Buffer.from('k'), value: Buffer.from('v') })],
            lastOffsetDelta: 0,
          })
        ).buffer,
      );
      // Record length, attributes, timestamp delta and offset delta (one byte each), then the key's length.
      expect(bad.readUInt8(65)).toBe(0x02);
      bad.writeUInt8(keyLength, 65);
      await expect(decodeFetchedBatch(bad, 0, 't', 0, [])).rejects.toBeInstanceOf(CorruptBatchError);
    }
  });

  it('decodes batches concurrently, one waiting for its decompression', async () => {
    const next = prng(7);
    const buffers = await Promise.all(Array.from({ length: 20 }, () => randomBatch(next)));
    const expected = await Promise.all(buffers.map(withKafkajs));
    const actual = await Promise.all(buffers.map(withOurs));
    expect(actual).toStrictEqual(expected);
    const fetched = await Promise.all(buffers.map(fetchedWithOurs));
    expect(fetched).toStrictEqual(await Promise.all(buffers.map(fetchedWithKafkajs)));
  });
});
