/**
 * The JsonConverter's schema, read once per distinct text (src/formats/converter-wrapper.ts): a decoder that
 * has seen a topic's records decodes every record, valid or not, exactly as a decoder that sees it first
 * (which takes the general path), and it does take the shortcut for the records laid out as the converter
 * writes them.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { ConverterSchemas, endOfValue } from '../../src/formats/converter-wrapper.js';
import { DebeziumScan } from '../../src/formats/debezium-scan.js';
import { createDecoders } from '../../src/formats/index.js';
import type { Decoded } from '../../src/formats/types.js';
import { parseLosslessJson } from '../../src/formats/lossless-json.js';
import type { Table } from '../../src/views/source.js';
import {
  envelopeSchema,
  event,
  flattened,
  keySchema,
  toJson,
  tombstone,
  truncate,
  type Connector,
  type EventOptions,
  type Message,
} from './fixtures/debezium.js';
import { BIG } from './fixtures/story.js';
import { brokenJson, deploySources, record } from './helpers.js';

const bytes = (s: string): Buffer => Buffer.from(s);

describe('endOfValue', () => {
  it('should end an object or array at its closing bracket, whatever its strings hold', () => {
    const text = '{"a":"}]\\"{[","b":[1,{"c":"\\\\"}],"d":{}} tail';
    expect(endOfValue(bytes(text), 0)).toBe(text.indexOf(' tail'));
    expect(endOfValue(bytes('x[1,[2]],'), 1)).toBe(8);
  });

  it('should find no end for an unclosed value or one that is not an object or array', () => {
    expect(endOfValue(bytes('{"a":[1}'), 0)).toBe(-1);
    expect(endOfValue(bytes('{"a":"}'), 0)).toBe(-1);
    expect(endOfValue(bytes('"{}"'), 0)).toBe(-1);
    expect(endOfValue(bytes('12'), 0)).toBe(-1);
  });
});

describe('ConverterSchemas', () => {
  const schema =
    '{"type":"struct","fields":[{"field":"id","type":"int64","default":1234567890123456789,"doc":"},\\"payload\\":"}]}';
  const wrapped = (payload: string, s = schema): Buffer => bytes(`{"schema":${s},"payload":${payload}}`);

  it('should remember a schema from its second record and then split records at it', () => {
    const schemas = new ConverterSchemas();
    const first = wrapped('{"id":1}');
    expect(schemas.split(first)).toBeUndefined();
    schemas.learn(first);
    expect(schemas.split(first)).toBeUndefined();
    schemas.learn(wrapped('{"id":2}'));
    const record = Buffer.concat([wrapped(' {"id":3}\t'), bytes(' \r\n')]);
    const split = schemas.split(record)!;
    expect(split.schema.value).toEqual(parseLosslessJson(schema));
    expect(
      JSON.stringify(split.schema.value, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)),
    ).toContain('1234567890123456789n');
    expect(record.subarray(split.from, split.to).toString()).toBe(' {"id":3}\t');
    expect(schemas.payload(record, split)).toEqual({ id: 3 });
  });

  it('should keep the last four schemas, the least recently split forgotten first', () => {
    const schemas = new ConverterSchemas();
    const of = (n: number): string => `{"n":${n}}`;
    for (const n of [1, 2, 3, 4, 5]) for (let i = 0; i < 2; i++) schemas.learn(wrapped('null', of(n)));
    expect([1, 2, 3, 4, 5].map((n) => schemas.split(wrapped('null', of(n))) !== undefined)).toEqual([
      false,
      true,
      true,
      true,
      true,
    ]);
    // 2 was split last: 3 is now the oldest.
    expect(schemas.split(wrapped('null', of(2)))).toBeDefined();
    for (let i = 0; i < 2; i++) schemas.learn(wrapped('null', of(6)));
    expect([2, 3, 4, 5, 6].map((n) => schemas.split(wrapped('null', of(n))) !== undefined)).toEqual([
      true,
      false,
      true,
      true,
      true,
    ]);
  });

  it('should not split a record laid out otherwise', () => {
    const schemas = new ConverterSchemas();
    for (let i = 0; i < 2; i++) schemas.learn(wrapped('null'));
    expect(schemas.split(wrapped('null'))).toBeDefined();
    for (const text of [
      `{ "schema":${schema},"payload":null}`,
      `{"payload":null,"schema":${schema}}`,
      `{"schema":${schema} ,"payload":null}`,
      `{"schema":${schema.slice(0, -1)}, "x":1},"payload":null}`,
      `{"schema":${schema},"payload":null`,
      `{"schema":${schema},"payload":null} x`,
      `{"schema":${schema}`,
    ])
      expect(schemas.split(bytes(text)), text).toBeUndefined();
  });

  it('should leave to the general path a payload that is not one JSON value in UTF-8', () => {
    const schemas = new ConverterSchemas();
    for (let i = 0; i < 2; i++) schemas.learn(wrapped('null'));
    for (const payload of ['{"id":1},"x":2', '{"id":1', '', '{"id":1} {}']) {
      const record = wrapped(payload);
      const split = schemas.split(record);
      expect(split === undefined || schemas.payload(record, split) === undefined, payload).toBe(true);
    }
    const record = wrapped('{"id":"\u00ff"}');
    expect(schemas.payload(record, schemas.split(record)!)).toEqual({ id: '\u00ff' });
    const broken = Buffer.from(record);
    broken[broken.indexOf(0xc3)] = 0xff;
    expect(schemas.payload(broken, schemas.split(broken)!)).toBeUndefined();
  });

  it('should not remember a schema text that is not one JSON value', () => {
    const schemas = new ConverterSchemas();
    const broken = '{"a":[1}]}';
    for (let i = 0; i < 3; i++) schemas.learn(wrapped('null', broken));
    expect(schemas.split(wrapped('null', broken))).toBeUndefined();
  });
});

const sources = deploySources();
const TOPICS: Record<Table, string> = {
  users: sources.topics.users.topic,
  tweets: sources.topics.tweets.topic,
  follows: sources.topics.follows.topic,
  likes: sources.topics.likes.topic,
};
const decodersOf = () => createDecoders(sources, TOPICS);

/** Change events of every table and kind, Postgres and MySQL, with the converter's schemas. */
function messages(connector: Connector, random: () => number): [Table, Message][] {
  const o: EventOptions = { connector, schemas: true, tsMs: 1_700_000_000_000 };
  const time = (n: number): bigint | number =>
    connector === 'postgresql' ? BigInt(1_700_000_000_000 + n) * 1000n : 1_700_000_000_000 + n;
  const id = (n: number): bigint | number => (random() < 0.2 ? BIG + BigInt(n) : n);
  const text = (): string | null =>
    random() < 0.2 ? null : ['plain', 'q"uote', 'back\\slash', 'ünï', '}],"payload":{', '😀'][n(6)]!;
  const n = (k: number): number => Math.floor(random() * k);
  const out: [Table, Message][] = [];
  for (let i = 0; i < 40; i++) {
    const user = {
      id: id(i),
      username: `u${i}`,
      name: text(),
      description: text(),
      location: null,
      url: null,
      profile_image_url: null,
      background_image_url: null,
      created_at: connector === 'postgresql' ? '2020-01-01T00:00:00Z' : 18_262,
    };
    const tweet = { id: id(100 + i), user_id: id(i), text: text(), created_at: time(i) };
    const follow = { id: id(200 + i), follower_id: id(i), followee_id: id(i + 1), created_at: time(i) };
    const like = { id: id(300 + i), user_id: id(i), tweet_id: id(100 + i), created_at: time(i) };
    const rows = { users: user, tweets: tweet, follows: follow, likes: like };
    for (const table of Object.keys(rows) as Table[]) {
      const row = rows[table];
      const kind = n(10);
      const m =
        kind < 6
          ? event(table, (['c', 'u', 'r'] as const)[n(3)]!, kind < 3 ? null : row, row, o)
          : kind === 6
            ? event(table, 'd', row, null, o)
            : kind === 7
              ? tombstone(table, row.id, o)
              : kind === 8 && connector === 'postgresql'
                ? truncate(table, o)
                : flattened(table, row, random() < 0.3, o);
      out.push([table, m]);
    }
  }
  return out;
}

/** `text` with one of the changes a broken or unusual producer makes. */
function mutated(text: string, random: () => number): Buffer {
  const kind = Math.floor(random() * 9);
  switch (kind) {
    case 4:
      return bytes(text.replace('"payload":', '"payload": '));
    case 5:
      return bytes(
        text.replace(
          /"payload":.*\}$/s,
          `"payload":${['null', '[1]', '"x"', '7', '{}'][Math.floor(random() * 5)]}}`,
        ),
      );
    case 6:
      return bytes(text.replace('"optional":false', '"optional":true'));
    case 7:
      return bytes(text.replace('"schema":', '"schema": '));
    case 8:
      return brokenJson(text, 4, random); // a byte-order mark
    default:
      return brokenJson(text, kind, random);
  }
}

describe('debezium-json: a decoder that remembers its schemas decodes as one that does not', () => {
  afterEach(() => vi.restoreAllMocks());

  it.each(['postgresql', 'mysql'] as const)('%s, valid and broken records', (connector) => {
    const random = prng(connector === 'postgresql' ? 7 : 8);
    // A payload after a remembered schema is read by the scan (debezium-scan.ts) or parsed.
    const payloads = [
      vi.spyOn(ConverterSchemas.prototype, 'payload'),
      vi.spyOn(DebeziumScan.prototype, 'envelope'),
      vi.spyOn(DebeziumScan.prototype, 'row'),
    ];
    const warm = decodersOf();
    let compared = 0;
    for (let round = 0; round < 6; round++)
      for (const [table, m] of messages(connector, random)) {
        const topic = TOPICS[table];
        const variants: [string | Buffer | null, string | Buffer | null][] = [[m.key, m.value]];
        if (round > 0) {
          if (m.value !== null) variants.push([m.key, mutated(m.value, random)]);
          if (m.key !== null) variants.push([mutated(m.key, random), m.value]);
        }
        for (const [key, value] of variants) {
          const r = record(topic, key, value);
          const expected = decodersOf().get(topic)!.decode(r);
          expect(warm.get(topic)!.decode(r), `${key}\n${value}`).toEqual(expected);
          compared++;
        }
      }
    // Most keys and values were read from their payloads (two per record).
    const taken = payloads
      .flatMap((spy) => spy.mock.results as { type: string; value: unknown }[])
      .filter((x) => x.type === 'return' && x.value !== undefined).length;
    expect(taken).toBeGreaterThan(compared);
  });

  it('should read the same values whatever the schema says, the schema from the record that carries it', () => {
    // Two schemas of one topic alternating (a connector upgrade half rolled out): each record's own.
    const o: EventOptions = { connector: 'postgresql', schemas: true, tsMs: 1_700_000_000_000 };
    const m = event(
      'tweets',
      'c',
      null,
      { id: 1, user_id: 2, text: 'x', created_at: 1_700_000_000_000_000 },
      o,
    );
    const payload = JSON.parse(m.value!).payload as unknown;
    const millis = envelopeSchema('postgresql', 'tweets');
    const json = JSON.stringify(millis).replace(
      /"io\.debezium\.time\.MicroTimestamp"/g,
      '"io.debezium.time.Timestamp"',
    );
    const key = toJson({ schema: keySchema('postgresql', 'tweets'), payload: { id: 1 } });
    const micro = bytes(m.value!);
    const milli = bytes(`{"schema":${json},"payload":${toJson(payload)}}`);
    const warm = decodersOf().get(TOPICS.tweets)!;
    const results: Decoded[] = [];
    for (let i = 0; i < 6; i++)
      for (const value of [micro, milli]) results.push(warm.decode(record(TOPICS.tweets, key, value)));
    // The Postgres schema reads 1.7e15 as µs; the other one as ms, past the contract's dates.
    expect(results[0]).toMatchObject({ ok: true, row: { createdAt: '2023-11-14T22:13:20.000Z' } });
    expect(results[1]).toMatchObject({ ok: false });
    results.forEach((d, i) => expect(d).toEqual(results[i % 2]));
  });
});
