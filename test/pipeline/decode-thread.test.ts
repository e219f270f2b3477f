/**
 * The decode thread (src/pipeline/decode-thread.ts) gives what decoding on the event loop gives
 * (decode-records.ts): the same chunks (packed bytes, lengths, last offsets), invalid records and truncates by
 * index, event times, counts. Random batches of the `json` format and of Debezium JSON (the row-scan test's
 * generator: every op, three converter schemas, broken JSON), with chunk sizes that split them; the records
 * cross as their bytes (record-wire.ts), from plain records and from fetched ones (views of a Kafka record
 * batch). A thread that dies fails the batch it held, and the next batch starts another.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { decodeFetchedBatch, type FetchedRecord } from '../../src/feed/record-batch.js';
import type { FeedRecord } from '../../src/feed/types.js';
import { debeziumJsonDecoder } from '../../src/formats/debezium-json.js';
import { jsonDecoder } from '../../src/formats/json.js';
import type { FormatDecoder } from '../../src/formats/types.js';
import { Chunks } from '../../src/pipeline/batch-steps.js';
import { decodeRecords, type DecodedRecords } from '../../src/pipeline/decode-records.js';
import { DecodeThread } from '../../src/pipeline/decode-thread.js';
import { fromWire, toWire } from '../../src/pipeline/record-wire.js';
import { ALL_FIELDS, PackingChangeBatch, type CrossingFields } from '../../src/store/packed-changes.js';
import { createRegistry } from '../../src/views/registry.js';
import type { Table } from '../../src/views/source.js';
import { debeziumRecords, MAPPINGS, TIME } from '../formats/fixtures/debezium-records.js';
import { encodeBatch, encodeRecord } from '../utils/kafkajs-encoders.js';

const TOPIC = 'changelog';
/** What the store packs for the built-in views (lmdb-store.ts `packedFields`): some fields do not cross. */
const VIEW_FIELDS: CrossingFields = createRegistry().storedFields;

const thread = new DecodeThread({ niceIncrement: 0 });
afterAll(() => thread.close());

/** Random `json` records of `table`: valid rows, deletes, broken or refused JSON, non-ASCII, long values. */
function jsonRecords(table: 'tweets' | 'users', random: () => number) {
  const n = (k: number): number => Math.floor(random() * k);
  const pick = <T>(xs: readonly T[]): T => xs[n(xs.length)]!;
  const text = (): string => pick(['plain', 'ünï', '😀', 'q"uote', 'x'.repeat(300), '']);
  return (): { key: Buffer | null; value: Buffer | null } => {
    const id = pick(['u1', 'u2', 'ü3', `u${n(50)}`, '']);
    const key = random() < 0.03 ? null : Buffer.from(id);
    if (random() < 0.08) return { key, value: random() < 0.5 ? null : Buffer.alloc(0) };
    const row: Record<string, unknown> =
      table === 'users'
        ? { userId: id, username: text(), name: text(), joinedDate: pick(['2020-01-01T00:00:00Z', 'nope']) }
        : { tweetId: id, userId: pick(['u1', 'u2', `u${n(50)}`]), text: text() };
    if (random() < 0.05) delete row[table === 'users' ? 'username' : 'userId'];
    if (random() < 0.05) row.extra = { nested: [1, 2] };
    const value = JSON.stringify(row);
    return { key, value: Buffer.from(random() < 0.05 ? value.slice(0, -1) : value) };
  };
}

/** `count` records from `next` at offsets from `first`. */
function records(
  next: () => { key: Buffer | null; value: Buffer | null },
  count: number,
  first: number,
): FeedRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    topic: TOPIC,
    partition: 3,
    offset: String(first + i),
    timestamp: String(TIME + i),
    ...next(),
    headers: {},
  }));
}

/** The same records as a fetch delivers them: views of a Kafka record batch kafkajs encoded. */
async function fetched(plain: readonly FeedRecord[]): Promise<FetchedRecord[]> {
  const first = BigInt(plain[0]!.offset);
  const written = await encodeBatch({
    firstOffset: first.toString(),
    firstTimestamp: plain[0]!.timestamp,
    lastOffsetDelta: plain.length - 1,
    records: plain.map((r, i) =>
      encodeRecord({
        offsetDelta: i,
        timestampDelta: Number(r.timestamp) - Number(plain[0]!.timestamp),
        key: r.key,
        value: r.value,
      }),
    ),
  });
  const out: FetchedRecord[] = [];
  await decodeFetchedBatch(Buffer.from(written.buffer), 0, TOPIC, 3, out);
  return out;
}

/** What a result holds, comparable: each chunk's commit input and last offset, and the rest. */
function comparable(d: DecodedRecords<{ readonly length: number; input(p: []): unknown }>, last: string) {
  const done = d.chunks.finish(last);
  return {
    chunks: done.map((c) => ({
      length: c.batch!.length,
      input: c.batch!.input([]),
      lastOffset: c.lastOffset,
    })),
    invalid: d.invalid,
    truncates: d.truncates,
    eventTimes: [...d.eventTimes],
    valid: d.valid,
    newestEventMs: d.newestEventMs,
  };
}

async function expectSame(
  batch: readonly FeedRecord[],
  table: Table,
  onLoop: FormatDecoder,
  inThread: FormatDecoder,
  size: number,
  crossing: CrossingFields,
): Promise<ReturnType<typeof comparable>> {
  const here = await decodeRecords(
    batch,
    table,
    onLoop,
    new Chunks(() => new PackingChangeBatch(crossing), size),
  );
  const there = await thread.decode(batch, table, inThread.thread!, size, crossing);
  const last = batch[batch.length - 1]!.offset;
  const expected = comparable(here, last);
  expect(comparable(there, last)).toEqual(expected);
  return expected;
}

describe('the records crossing to the decode thread', () => {
  it('arrive with their keys, values, offsets and timestamps, from plain and fetched records', async () => {
    const random = prng(7);
    const next = jsonRecords('users', random);
    const plain = records(next, 400, 2 ** 40);
    const strip = (r: FeedRecord) => ({ ...r, key: r.key, value: r.value, headers: {} });
    expect(fromWire(toWire(plain, TOPIC, 3)).map(strip)).toEqual(plain.map(strip));
    const views = await fetched(plain);
    expect(fromWire(toWire(views, TOPIC, 3)).map(strip)).toEqual(plain.map(strip));
    // A merged batch: records of two fetches (two byte arrays, each copied once) around plain ones.
    const mixed = [
      ...(await fetched(plain.slice(0, 150))),
      ...plain.slice(150, 250),
      ...(await fetched(plain.slice(250))),
    ];
    expect(fromWire(toWire(mixed, TOPIC, 3)).map(strip)).toEqual(plain.map(strip));
    // Offsets beyond 2^53 cross as their text.
    const far = records(next, 3, 0).map((r, i) => ({ ...r, offset: (2n ** 60n + BigInt(i)).toString() }));
    expect(fromWire(toWire(far, TOPIC, 3)).map((r) => r.offset)).toEqual(far.map((r) => r.offset));
  });
});

describe('the decode thread', () => {
  it.each(['tweets', 'users'] as const)('gives what the event loop gives: json, %s', async (table) => {
    const random = prng(table === 'tweets' ? 11 : 13);
    const next = jsonRecords(table, random);
    let invalid = 0;
    let chunks = 0;
    for (let round = 0; round < 6; round++) {
      const batch = records(next, 300 + Math.floor(random() * 900), round * 2000);
      const input = round % 2 === 0 ? batch : await fetched(batch);
      const crossing = round % 3 === 0 ? VIEW_FIELDS : ALL_FIELDS;
      const seen = await expectSame(
        input,
        table,
        jsonDecoder(table),
        jsonDecoder(table),
        97 + round * 50,
        crossing,
      );
      invalid += seen.invalid.length;
      chunks += seen.chunks.length;
    }
    expect(invalid).toBeGreaterThan(20);
    expect(chunks).toBeGreaterThan(10);
  });

  it.each(['tweets', 'users'] as const)(
    'gives what the event loop gives: debezium-json, %s',
    async (table) => {
      const random = prng(table === 'tweets' ? 17 : 19);
      const next = debeziumRecords(table, random);
      const ctx = { table, mapping: MAPPINGS[table], envelopes: true };
      // Each side keeps its own decoder across batches, as the event loop and the thread do.
      const onLoop = debeziumJsonDecoder(ctx);
      let truncates = 0;
      let invalid = 0;
      let newest = 0;
      for (let round = 0; round < 6; round++) {
        const batch = records(next, 400 + Math.floor(random() * 800), round * 2000);
        const input = round % 2 === 1 ? batch : await fetched(batch);
        const seen = await expectSame(input, table, onLoop, onLoop, 250, ALL_FIELDS);
        truncates += seen.truncates.length;
        invalid += seen.invalid.length;
        if (seen.newestEventMs !== undefined) newest++;
      }
      expect(truncates).toBeGreaterThan(0);
      expect(invalid).toBeGreaterThan(50);
      expect(newest).toBe(6);
    },
  );

  it('fails the batch it held when it dies, and starts again for the next', async () => {
    const batch = records(jsonRecords('tweets', prng(23)), 500, 0);
    const spec = { format: 'json', table: 'tweets' } as const;
    await thread.decode(batch, 'tweets', spec, 1000, ALL_FIELDS); // started
    // Dies with the batch handed to it: the request is posted before the thread is seen to exit.
    const worker = (thread as unknown as { worker: { terminate(): Promise<number> } }).worker;
    const dying = worker.terminate();
    const decoding = thread.decode(batch, 'tweets', spec, 1000, ALL_FIELDS);
    await dying;
    await expect(decoding).rejects.toThrow(/the decode thread exited/);
    const again = await thread.decode(batch, 'tweets', spec, 1000, ALL_FIELDS);
    expect(again.valid + again.invalid.length).toBe(500);
  });
});
