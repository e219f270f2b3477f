/**
 * Issue 15: Debezium's documented change events (Postgres and MySQL connectors, JsonConverter with and
 * without schemas, envelope and ExtractNewRecordState's flattened rows) decode to the contract, and the
 * story of deploy/debezium (snapshot, insert, update, key-only delete + tombstone, truncate) ends in the
 * exact view the contract's SQL gives.
 */
import { describe, expect, it } from 'vitest';
import { RecordErrorCode } from '../../src/errors.js';
import { createDecoders } from '../../src/formats/index.js';
import type { Decoded } from '../../src/formats/types.js';
import { event, keySchema, sourceBlock, toJson, truncate, type EventOptions } from './fixtures/debezium.js';
import { BIG, expectedViews, story } from './fixtures/story.js';
import { deploySources, materializeAll, record, restViews, withUnits } from './helpers.js';

const combos = (['postgresql', 'mysql'] as const).flatMap((connector) =>
  ([true, false] as const).flatMap((schemas) =>
    (['envelope', 'flattened'] as const).map((form) => ({ connector, schemas, form })),
  ),
);

describe('debezium-json: the deploy/debezium story', () => {
  it.each(combos)(
    'should end in the contract view: $connector, schemas.enable=$schemas, $form',
    async ({ connector, schemas, form }) => {
      // Without the converter's schema the numbers' units come from the mapping.
      const sources = deploySources(schemas ? undefined : withUnits(connector));
      const decoders = createDecoders(sources, {
        users: sources.topics.users.topic,
        tweets: sources.topics.tweets.topic,
        follows: sources.topics.follows.topic,
        likes: sources.topics.likes.topic,
      });
      const state = await materializeAll(decoders, sources, story({ connector, schemas, form, tsMs: 0 }));
      expect(restViews(state)).toEqual(expectedViews(connector));
    },
  );
});

const sources = deploySources();
const decoders = createDecoders(sources, {
  users: 'pg.public.users',
  tweets: 'pg.public.tweets',
  follows: 'pg.public.follows',
  likes: 'pg.public.likes',
});
const decode = (
  table: 'users' | 'tweets' | 'follows' | 'likes',
  key: string | null,
  value: string | null,
): Decoded => {
  const topic = `pg.public.${table}`;
  return decoders.get(topic)!.decode(record(topic, key, value));
};
const pg = (schemas: boolean, tsMs = 1_559_033_904_863): EventOptions => ({
  connector: 'postgresql',
  schemas,
  tsMs,
});
// A string date: these rows are also sent without the converter schema, where a number would need a unit.
const tweetRow = { id: 7, user_id: BIG, text: 'x', created_at: '2020-01-01T00:00:00Z' };

describe('debezium-json: one event at a time', () => {
  it('should read c, u and r as upserts of `after`, with source.ts_ms as the event time', () => {
    for (const op of ['c', 'u', 'r'] as const) {
      const m = event('tweets', op, null, tweetRow, pg(true));
      expect(decode('tweets', m.key, m.value)).toEqual({
        ok: true,
        key: '7',
        row: {
          table: 'tweets',
          userId: '1234567890123456789',
          text: 'x',
          createdAt: '2020-01-01T00:00:00.000Z',
        },
        eventTime: 1_559_033_904_863,
      });
    }
  });

  it('should delete by key when `before` holds only the primary key, and read the tombstone after it as a delete too', () => {
    const d = event('likes', 'd', { id: 302 }, null, pg(true));
    expect(decode('likes', d.key, d.value)).toEqual({
      ok: true,
      key: '302',
      row: null,
      eventTime: 1_559_033_904_863,
    });
    expect(decode('likes', d.key, null)).toEqual({ ok: true, key: '302', row: null });
  });

  it('should take the key from `before` or `after` when the record has no key', () => {
    const d = event('likes', 'd', { id: 302 }, null, pg(false));
    expect(decode('likes', null, d.value)).toMatchObject({ ok: true, key: '302', row: null });
    const c = event('tweets', 'c', null, tweetRow, pg(false));
    expect(decode('tweets', null, c.value)).toMatchObject({ ok: true, key: '7' });
  });

  it('should read a truncate (no key, no rows) as a truncate of the table', () => {
    for (const schemas of [true, false]) {
      const t = truncate('likes', pg(schemas));
      expect(decode('likes', t.key, t.value)).toEqual({
        ok: true,
        truncate: true,
        eventTime: 1_559_033_904_863,
      });
    }
  });

  it('should keep 64-bit ids exact in keys and values, with and without the converter schema', () => {
    for (const schemas of [true, false]) {
      const m = event(
        'follows',
        'c',
        null,
        { id: BIG, follower_id: BIG + 1n, followee_id: 1, created_at: null },
        pg(schemas),
      );
      expect(decode('follows', m.key, m.value)).toMatchObject({
        ok: true,
        key: '1234567890123456789',
        row: { table: 'follows', followerId: '1234567890123456790', followeeId: '1' },
      });
    }
  });

  it('should read keys as a string, a number, a JSON string, a struct and a wrapped struct', () => {
    const value = toJson({
      before: null,
      after: tweetRow,
      source: sourceBlock('postgresql', 'tweets', 1),
      op: 'c',
    });
    const keys = [
      '7',
      '"7"',
      '{"id":7}',
      toJson({ schema: keySchema('postgresql', 'tweets'), payload: { id: 7 } }),
    ];
    for (const key of keys) expect(decode('tweets', key, value)).toMatchObject({ ok: true, key: '7' });
    expect(decode('tweets', 'u-7', toJson({ ...tweetRow, id: 'u-7' }))).toMatchObject({
      ok: true,
      key: 'u-7',
    });
  });

  it('should fall back to the Kafka timestamp when the source has no commit time (MySQL snapshot rows say 0)', () => {
    const m = event('tweets', 'r', null, tweetRow, { connector: 'mysql', schemas: false, tsMs: 0 });
    const d = decode('tweets', m.key, m.value);
    expect(d.ok && 'eventTime' in d).toBe(false);
  });

  it('should convert every Debezium temporal encoding, named by the converter schema, to ISO-8601 UTC', () => {
    const cases: [string, string, unknown, string][] = [
      ['io.debezium.time.Date', 'int32', 13_900, '2008-01-22T00:00:00.000Z'],
      ['org.apache.kafka.connect.data.Date', 'int32', 13_900, '2008-01-22T00:00:00.000Z'],
      ['io.debezium.time.Timestamp', 'int64', 1_201_014_884_123, '2008-01-22T15:14:44.123Z'],
      ['org.apache.kafka.connect.data.Timestamp', 'int64', 1_201_014_884_123, '2008-01-22T15:14:44.123Z'],
      ['io.debezium.time.MicroTimestamp', 'int64', 1_201_014_884_123_456n, '2008-01-22T15:14:44.123Z'],
      ['io.debezium.time.NanoTimestamp', 'int64', 1_201_014_884_123_456_789n, '2008-01-22T15:14:44.123Z'],
      [
        'io.debezium.time.ZonedTimestamp',
        'string',
        '2008-01-22T16:14:44.123456+01:00',
        '2008-01-22T15:14:44.123Z',
      ],
      ['io.debezium.time.MicroTimestamp', 'int64', -1n, '1969-12-31T23:59:59.999Z'],
    ];
    for (const [name, type, v, iso] of cases) {
      const row = {
        type: 'struct',
        fields: [
          { field: 'id', type: 'int64', optional: false },
          { field: 'username', type: 'string', optional: false },
          { field: 'created_at', type, optional: true, name },
        ],
      };
      const after = { id: 5, username: 'u', created_at: v };
      const envelope = toJson({
        schema: {
          type: 'struct',
          fields: [
            { ...row, field: 'after', optional: true },
            { field: 'op', type: 'string' },
          ],
        },
        payload: { before: null, after, op: 'c', source: {} },
      });
      const flat = toJson({ schema: row, payload: after });
      for (const value of [envelope, flat])
        expect({ name, v: String(v), d: decode('users', '5', value) }).toMatchObject({
          name,
          d: { ok: true, row: { joinedDate: iso } },
        });
    }
  });

  it('should send a number date without a schema or a unit to the DLQ, saying to set the unit', () => {
    const d = decode('tweets', '1', toJson({ id: 1, user_id: 2, created_at: 1_577_836_800_000_000n }));
    expect(d).toMatchObject({ ok: false, code: RecordErrorCode.DateInvalid });
    expect(!d.ok && d.message).toMatch(/no schema names its unit: set its "unit"/);
  });

  it.each([
    ['bad JSON', '{"before":', RecordErrorCode.JsonInvalid],
    ['not an object', '[1,2]', RecordErrorCode.NotObject],
    [
      'an op that is no row change',
      toJson({ op: 'm', source: {}, message: {} }),
      RecordErrorCode.EnvelopeInvalid,
    ],
    [
      'c without after',
      toJson({ op: 'c', before: null, after: null, source: {} }),
      RecordErrorCode.EnvelopeInvalid,
    ],
    ['a row without its required column', toJson({ id: 1, text: 'no owner' }), RecordErrorCode.FieldMissing],
    ['a key that differs from the row', toJson({ id: 2, user_id: 1 }), RecordErrorCode.KeyMismatch],
    ['an id that is not an integer', toJson({ id: 1, user_id: 1.5 }), RecordErrorCode.FieldType],
  ])('should reject %s', (_what, value, code) => {
    expect(decode('tweets', '1', value)).toMatchObject({ ok: false, code });
  });

  it('should say when the converter schema lacks the column mapped to a required field', () => {
    const value = toJson({
      schema: {
        type: 'struct',
        fields: [
          { field: 'id', type: 'int64' },
          { field: 'owner', type: 'int64' },
        ],
      },
      payload: { id: 1, owner: 2 },
    });
    expect(decode('tweets', '1', value)).toEqual({
      ok: false,
      code: RecordErrorCode.SchemaMismatch,
      message: `the record's row has no column "user_id" for the required field "userId" (mapped in the sources file)`,
    });
  });

  it('should reject a key struct without the key column and a record with neither key nor key column', () => {
    const value = toJson({ id: 1, user_id: 2 });
    expect(decode('tweets', '{"tweet_id":1}', value)).toMatchObject({
      ok: false,
      code: RecordErrorCode.KeyInvalid,
    });
    expect(decode('tweets', null, toJson({ user_id: 2 }))).toMatchObject({
      ok: false,
      code: RecordErrorCode.KeyInvalid,
    });
    expect(decode('tweets', null, null)).toMatchObject({ ok: false, code: RecordErrorCode.KeyInvalid });
  });
});
