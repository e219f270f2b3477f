/**
 * Issue 15: Avro with a schema registry. Records encoded by avsc in the Confluent wire format, schemas
 * served by a registry inside the test over its REST API: the deploy/debezium story ends in the exact
 * view; schema evolution keeps working; 64-bit ids stay exact; what cannot be decoded gets its reason and
 * schema id; a registry that cannot answer is retried and never turns into dead letters.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordErrorCode, SchemaRegistryError } from '../../src/errors.js';
import { AvroSchemas, avroType, readLong } from '../../src/formats/avro.js';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { createDecoders } from '../../src/formats/index.js';
import { createSchemaRegistryClient } from '../../src/formats/registry-client.js';
import type { FormatDecoder } from '../../src/formats/types.js';
import { TABLES, type Table } from '../../src/views/source.js';
import { startRegistry, type RegistryDouble } from '../utils/schema-registry.js';
import {
  encode,
  envelopeSchema,
  keySchema,
  LONG,
  toAvro,
  valueSchema,
  type AvroSchema,
} from './fixtures/avro.js';
import { sourceBlock } from './fixtures/debezium.js';
import { BIG, expectedViews, story } from './fixtures/story.js';
import { deploySources, materializeAll, record, restViews } from './helpers.js';

let registry: RegistryDouble;
beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(async () => {
  await registry.close();
});

const avroSources = (format: 'avro' | 'debezium-avro') =>
  deploySources((json) => {
    json.format = format;
    json.schemaRegistryUrl = registry.url;
  });
const topicsOf = (s: ReturnType<typeof avroSources>) =>
  Object.fromEntries(TABLES.map((t) => [t, s.topics[t].topic])) as Record<Table, string>;
const decodersFor = (format: 'avro' | 'debezium-avro', attempts = 4) => {
  const sources = avroSources(format);
  const client = createSchemaRegistryClient({ urls: [registry.url] });
  const decoders = createDecoders(sources, topicsOf(sources), {
    registry: { lookup: (id) => client.lookup(id) },
  });
  return { sources, decoders, attempts };
};

describe('EXACT_LONG: Avro longs read exactly, numbers while safe', () => {
  const exact = avroType('long');
  const expected = (v: bigint): number | bigint =>
    v >= -BigInt(Number.MAX_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;

  it('should read every int64 as avsc wrote it, and write what avsc reads back', () => {
    const random = prng(3);
    const values: bigint[] = [];
    for (const e of [0n, 1n, 63n, 64n, 2n ** 48n, 2n ** 52n, 2n ** 53n, 2n ** 56n, 2n ** 62n, 2n ** 63n])
      for (const d of [-1n, 0n, 1n]) values.push(e + d, -(e + d));
    for (let i = 0; i < 5_000; i++) {
      const bits = BigInt(Math.floor(random() * 64));
      const n = BigInt(Math.floor(random() * 2 ** 32)) * 2n ** 32n + BigInt(Math.floor(random() * 2 ** 32));
      values.push(BigInt.asIntN(64, n >> (63n - bits)));
    }
    for (const v of values.map((x) => BigInt.asIntN(64, x))) {
      const bytes = LONG.toBuffer(v);
      expect(exact.fromBuffer(bytes), String(v)).toStrictEqual(expected(v));
      expect(exact.toBuffer(expected(v)), String(v)).toEqual(bytes);
    }
  });

  it('should drop the bits past 64 of a varint longer than any writer emits', () => {
    // 11 bytes: zigzag 1 (the value -1), then continuation bytes that would add bits 70 and up.
    const bytes = Buffer.from([0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    expect(readLong(bytes)).toBe(-1);
    expect(readLong(Buffer.from([0x02]))).toBe(1);
    expect(readLong(Buffer.from([0x03]))).toBe(-2);
  });
});

describe('debezium-avro: the deploy/debezium story', () => {
  it.each([true, false])(
    'should end in the contract view (Avro keys: %s), fetching each schema once',
    async (avroKeys) => {
      const { sources, decoders } = decodersFor('debezium-avro');
      const json = story({ connector: 'postgresql', schemas: false, form: 'envelope', tsMs: 0 });
      const messages = Object.fromEntries(
        TABLES.map((t) => [t, json[t].map((m) => toAvro(registry, t, m, avroKeys))]),
      ) as Record<Table, { key: Buffer | string | null; value: Buffer | null }[]>;
      const before = registry.lookups;
      const state = await materializeAll(decoders, sources, messages);
      expect(restViews(state)).toEqual(expectedViews('postgresql'));
      // Four value schemas, plus four key schemas: each looked up once however many records use it.
      expect(registry.lookups - before).toBe(avroKeys ? 8 : 4);
    },
  );
});

const usersTopic = 'pg.public.users';
const usersValue = (fields: AvroSchema[]): AvroSchema => ({ ...valueSchema('postgresql', 'users'), fields });
const decodeOne = async (decoder: FormatDecoder, key: Buffer | string | null, value: Buffer | null) => {
  const r = record(usersTopic, key, value);
  await decoder.prepare?.([r]);
  return decoder.decode(r);
};

describe('avro: rows, evolution and failures', () => {
  const base = valueSchema('postgresql', 'users').fields as AvroSchema[];
  const row = {
    id: BIG,
    username: 'bigid',
    name: 'Big Id',
    description: null,
    location: 'Chicago, IL',
    url: 'http://b.ig',
    profile_image_url: null,
    background_image_url: null,
    created_at: '2020-01-01T00:00:00Z',
  };

  it('should keep reading as columns are added and removed (a removed optional column reads as null)', async () => {
    const { decoders } = decodersFor('avro');
    const decoder = decoders.get(usersTopic)!;
    const v1 = usersValue(base);
    const v2 = usersValue([...base, { name: 'bio', type: ['null', 'string'], default: null }]);
    const v3 = usersValue(base.filter((f) => f['name'] !== 'location'));
    const { location: _gone, ...withoutLocation } = row;
    const records = [
      encode(registry, 'users-value', v1, row),
      encode(registry, 'users-value', v2, { ...row, bio: 'added column' }),
      encode(registry, 'users-value', v3, withoutLocation),
    ];
    expect(new Set(records.map((r) => r.readUInt32BE(1))).size).toBe(3);
    const got = [];
    for (const value of records) got.push(await decodeOne(decoder, BIG.toString(), value));
    const view = {
      table: 'users',
      username: 'bigid',
      name: 'Big Id',
      description: null,
      webPageUrl: 'http://b.ig',
      joinedDate: '2020-01-01T00:00:00.000Z',
      profileImageUrl: null,
      backgroundImageUrl: null,
    };
    expect(got).toEqual([
      { ok: true, key: '1234567890123456789', row: { ...view, location: 'Chicago, IL' } },
      { ok: true, key: '1234567890123456789', row: { ...view, location: 'Chicago, IL' } },
      { ok: true, key: '1234567890123456789', row: { ...view, location: null } },
    ]);
  });

  it('should keep 1234567890123456789 exact in an Avro long key and long columns', async () => {
    const { decoders } = decodersFor('debezium-avro');
    const schema = envelopeSchema('follows', valueSchema('postgresql', 'follows'));
    const value = encode(registry, 'follows-value', schema, {
      before: null,
      after: { id: BIG, follower_id: BIG, followee_id: BIG + 1n, created_at: 1_577_836_800_000_000n },
      source: sourceBlock('postgresql', 'follows', 1_559_033_904_863),
      op: 'c',
      ts_ms: null,
      transaction: null,
    });
    const key = encode(registry, 'follows-key', keySchema('follows'), { id: BIG });
    const r = record('pg.public.follows', key, value);
    const decoder = decoders.get('pg.public.follows')!;
    await decoder.prepare?.([r]);
    expect(decoder.decode(r)).toEqual({
      ok: true,
      key: '1234567890123456789',
      row: {
        table: 'follows',
        followerId: '1234567890123456789',
        followeeId: '1234567890123456790',
        createdAt: '2020-01-01T00:00:00.000Z',
      },
      eventTime: 1_559_033_904_863,
    });
  });

  it('should read a nanosecond timestamp beyond 2^53 exactly (a long with connect.name)', async () => {
    const { decoders } = decodersFor('avro');
    const nanos = {
      name: 'created_at',
      type: { type: 'long', 'connect.version': 1, 'connect.name': 'io.debezium.time.NanoTimestamp' },
    };
    const schema = usersValue([...base.filter((f) => f['name'] !== 'created_at'), nanos]);
    const value = encode(registry, 'users-value', schema, { ...row, created_at: 1_201_014_884_123_999_999n });
    expect(await decodeOne(decoders.get(usersTopic)!, BIG.toString(), value)).toMatchObject({
      ok: true,
      row: { joinedDate: '2008-01-22T15:14:44.123Z' },
    });
  });

  it('should give the reason and the schema id of whatever cannot be decoded', async () => {
    const { decoders } = decodersFor('avro');
    const decoder = decoders.get(usersTopic)!;
    const good = encode(registry, 'users-value', usersValue(base), row);
    const unknown = Buffer.from(good);
    unknown.writeUInt32BE(9_999, 1);
    const noUsername = usersValue(base.filter((f) => f['name'] !== 'username'));
    const { username: _u, ...rowWithout } = row;
    const protobufId = registry.register('p-value', 'syntax = "proto3"; message M {}', 'PROTOBUF');
    const cases: [Buffer, object][] = [
      [unknown, { code: RecordErrorCode.SchemaUnknown, schemaId: 9_999 }],
      [Buffer.from('{"id":1}'), { code: RecordErrorCode.AvroInvalid }],
      [
        Buffer.concat([good.subarray(0, 8)]),
        { code: RecordErrorCode.AvroInvalid, schemaId: good.readUInt32BE(1) },
      ],
      [
        encode(registry, 'users-value', noUsername, rowWithout),
        { code: RecordErrorCode.SchemaMismatch, message: expect.stringContaining('no column "username"') },
      ],
      [
        Buffer.from([0, 0, 0, 0, protobufId, 1]),
        { code: RecordErrorCode.SchemaInvalid, schemaId: protobufId },
      ],
    ];
    for (const [value, want] of cases)
      expect(await decodeOne(decoder, BIG.toString(), value)).toMatchObject({ ok: false, ...want });
    const mismatch = await decodeOne(decoder, BIG.toString(), cases[3]![0]);
    expect(!mismatch.ok && mismatch.schemaId).toBe(cases[3]![0].readUInt32BE(1));
  });

  it('should retry a registry that cannot answer, reject the batch with a retriable error, and read once it is back', async () => {
    const retries: number[] = [];
    const client = createSchemaRegistryClient({ urls: [registry.url] });
    const schemas = new AvroSchemas(client, {
      attempts: 3,
      backoffMs: 1,
      onRetry: (_e, attempt) => retries.push(attempt),
    });
    const value = encode(
      registry,
      'outage-value',
      usersValue([...base, { name: 'x', type: 'int', default: 0 }]),
      {
        ...row,
        x: 1,
      },
    );
    for (const mode of ['down', 'not-a-registry'] as const) {
      registry.mode = mode;
      const error = await schemas.load([value.readUInt32BE(1)]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SchemaRegistryError);
      expect({
        retriable: (error as SchemaRegistryError).retriable,
        code: (error as SchemaRegistryError).code,
      }).toEqual({
        retriable: true,
        code: 'MV_ERR_SCHEMA_REGISTRY',
      });
      expect(schemas.get(value.readUInt32BE(1))).toBeUndefined(); // nothing decided about the records
    }
    expect(retries).toEqual([1, 2, 1, 2]);
    registry.mode = 'up';
    await schemas.load([value.readUInt32BE(1)]);
    expect(schemas.get(value.readUInt32BE(1))?.kind).toBe('avro');
    // Cached: an outage after the schema is known changes nothing.
    registry.mode = 'down';
    await schemas.load([value.readUInt32BE(1)]);
    registry.mode = 'up';
  });
});
