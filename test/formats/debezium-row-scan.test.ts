/**
 * Debezium envelopes packed from their bytes (src/formats/debezium-scan.ts `DebeziumRowScan`, through the
 * debezium-json decoder's `pack`): whatever it takes, it packs the bytes that `decode` then `push` pack, with
 * the same event time; what it leaves is decoded as before. Random records of two tables, with and without the
 * converter's schema (one that names the date-time's unit, one that does not, one without a required column),
 * valid and not in every way the mapping and the contract check, and broken JSON; then the documented
 * envelopes of every table, op and connector.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import type { FeedRecord } from '../../src/feed/types.js';
import { debeziumJsonDecoder } from '../../src/formats/debezium-json.js';
import { createDecoders } from '../../src/formats/index.js';
import { tableMapping, type TableMapping } from '../../src/formats/mapping.js';
import type { FormatDecoder } from '../../src/formats/types.js';
import { TRUNCATE } from '../../src/materializer/change-batch.js';
import { ALL_FIELDS, PackingChangeBatch } from '../../src/store/packed-changes.js';
import type { Table } from '../../src/views/source.js';
import { event, tombstone, type Connector } from './fixtures/debezium.js';
import { BROKEN_JSON_KINDS, brokenJson, deploySources, withUnits } from './helpers.js';

const TIME = 1_700_000_000_000;
const TOPIC = 'pg.public.t';
const PG_TOPICS = { users: 'u', tweets: 't', follows: 'f', likes: 'l' };

const MAPPINGS: Readonly<Record<'tweets' | 'users', TableMapping>> = {
  tweets: tableMapping('tweets', {
    tweetId: 'id',
    userId: 'user_id',
    createdAt: { column: 'created_at', unit: 'micros' },
  }),
  users: tableMapping('users', { userId: 'id', joinedDate: 'created_at', webPageUrl: 'url' }),
};
const COLUMNS: Readonly<Record<'tweets' | 'users', readonly string[]>> = {
  tweets: ['id', 'user_id', 'text', 'created_at'],
  users: ['id', 'username', 'name', 'url', 'created_at'],
};

/** A Connect struct schema of `columns`; `timeName`: the created_at column's semantic type, if any. */
function schemaText(columns: readonly string[], timeName: string | undefined): string {
  const fields = columns.map((c) =>
    c === 'created_at' && timeName !== undefined
      ? { type: 'int64', optional: true, name: timeName, field: c }
      : { type: c === 'id' ? 'int64' : 'string', optional: c !== 'id', field: c },
  );
  const row = (field: string) => ({ type: 'struct', fields, optional: true, name: 'pg.Value', field });
  return JSON.stringify({
    type: 'struct',
    fields: [
      row('before'),
      row('after'),
      { type: 'struct', fields: [{ type: 'int64', field: 'ts_ms' }], field: 'source' },
      { type: 'string', field: 'op' },
    ],
    name: 'pg.Envelope',
  });
}

function generator(table: 'tweets' | 'users', random: () => number) {
  const n = (k: number): number => Math.floor(random() * k);
  const pickOne = <T>(xs: readonly T[]): T => xs[n(xs.length)]!;
  const space = (): string => (random() < 0.1 ? pickOne([' ', '\n', '\t ']) : '');
  const columns = COLUMNS[table];
  const schemas = [
    schemaText(columns, 'io.debezium.time.MicroTimestamp'),
    schemaText(columns, undefined),
    schemaText(
      columns.filter((c) => c !== (table === 'tweets' ? 'user_id' : 'username')),
      'io.debezium.time.Timestamp',
    ),
  ];
  // Some the prefix of another: a row's id is checked against its record's key whole.
  const ids = ['7', '1004', '100', '10', '-3', '9007199254740993', '12345678901234567890', '0'];
  const id = (): string =>
    pickOne([
      () => pickOne(ids),
      () => JSON.stringify(pickOne(ids)),
      () =>
        pickOne([
          '"u-42"',
          '"007"',
          '""',
          '"ünï"',
          '"a\\u0062"',
          `"${'x'.repeat(512)}"`,
          `"${'x'.repeat(513)}"`,
        ]),
      () => pickOne(['-0', '1.5', '1e3', '2.0', 'true', 'null', '{"a":1}', '[1]']),
    ])();
  const date = (): string =>
    pickOne([
      () => String(1_700_000_000_000_000 + n(1000) * 1_000_003),
      () => pickOne(['1700000000000', '0', '-1', '19000', '8640000000000000001', '9223372036854775807']),
      () => pickOne(['1.5', '-0', '1e15', 'true', '{}']),
      () =>
        JSON.stringify(
          pickOne([
            '2020-01-01T00:00:00Z',
            '2020-01-01T00:00:00.123Z',
            '2019-06-01T12:00:00+02:00',
            '2021-02-30T00:00:00Z',
            'Tue Jan 22 15:14:44 +0000 2008',
            'not a date',
            '',
          ]),
        ),
      () => '"2020-01-01T00:00:00\\u005a"',
    ])();
  const text = (): string =>
    pickOne([
      () => JSON.stringify(pickOne(['plain', 'q"uote', 'ünï', '😀', '', 'tab\there', 'x'.repeat(600)])),
      () => '"\\ud800 lone"',
      () => pickOne(['null', '12', 'false', '[]']),
    ])();
  const valueOf = (column: string, key: string): string => {
    if (column === 'id') return random() < 0.7 ? key : id();
    if (column === 'user_id') return id();
    if (column === 'created_at') return date();
    return text();
  };
  const object = (members: readonly (readonly [string, string])[]): string =>
    `{${space()}${members.map(([k, v]) => `${JSON.stringify(k)}${space()}:${space()}${v}`).join(`${space()},${space()}`)}${space()}}`;
  const row = (key: string): string => {
    const members: [string, string][] = [];
    for (const c of columns) if (random() < 0.9) members.push([c, valueOf(c, key)]);
    if (random() < 0.3) members.push(['extra', pickOne(['{"a":[1,{"b":null}]}', '"x"', '3.25'])]);
    if (random() < 0.03) members.push([pickOne(columns), valueOf('text', key)]); // given twice
    if (random() < 0.03) members.push(['i\\u0064', '1']); // an escaped name ("id")
    if (random() < 0.03) members.push(['ün', '1']); // a name beyond ASCII
    return object(members.sort(() => random() - 0.5));
  };
  const envelope = (key: string): string => {
    // An op alone is no envelope: the decoder reads it as a flattened row.
    if (random() < 0.02)
      return object([['op', pickOne(['"d"', '"c"'])], ...(random() < 0.5 ? [['ts_ms', '1'] as const] : [])]);
    const members: [string, string][] = [];
    if (random() < 0.97)
      members.push([
        'op',
        random() < 0.95
          ? JSON.stringify(pickOne(['c', 'u', 'r', 'd', 'c', 'u', 'c', 'u', 't', 'x']))
          : pickOne(['"\\u0063"', '1', 'null']),
      ]);
    if (random() < 0.8) members.push(['before', random() < 0.5 ? 'null' : row(key)]);
    if (random() < 0.95) members.push(['after', random() < 0.1 ? pickOne(['null', '"x"']) : row(key)]);
    if (random() < 0.9)
      members.push([
        'source',
        random() < 0.1
          ? pickOne(['null', '"x"'])
          : object(
              [
                ['version', '"2.5.0.Final"'],
                [
                  'ts_ms',
                  random() < 0.8
                    ? String(TIME + n(1000))
                    : pickOne(['0', '-5', '1.7e12', '"1"', 'null', '{}', '99999999999999999999']),
                ],
                ['lsn', String(n(1e6))],
                ['sequence', '"[\\"1\\",\\"2\\"]"'],
                ['ts_ms', pickOne(['null', String(TIME + 7)])], // given twice (now and then)
              ].filter((_, k) => random() < (k === 4 ? 0.05 : 0.95)) as [string, string][],
            ),
      ]);
    if (random() < 0.5) members.push(['ts_ms', String(TIME)]);
    if (random() < 0.03) members.push([pickOne(['op', 'after', 'source']), 'null']); // given twice
    return object(members.sort(() => random() - 0.5));
  };
  let schema = schemas[0]!;
  /** A record: its key (the row's id as the converter writes keys, or something else) and its value. */
  return (): { key: Buffer | null; value: Buffer | null } => {
    const keyId = pickOne([...ids.slice(0, 6), '"u-42"']);
    const keyText = pickOne([
      () => `{"id":${keyId}}`,
      () => `{"schema":{"type":"struct","fields":[{"type":"int64","field":"id"}]},"payload":{"id":${keyId}}}`,
      () => keyId,
      () => pickOne(['{"other":1}', '{"id":1.5}', '""', '{"id":"ünï"}']),
    ])();
    const key = random() < 0.03 ? null : Buffer.from(keyText);
    if (random() < 0.05) return { key, value: random() < 0.5 ? null : Buffer.alloc(0) };
    const payload = envelope(keyId);
    // A connector's schema changes now and then (the decoder remembers it from its second record).
    if (random() < 0.05) schema = pickOne(schemas);
    const text = random() < 0.5 ? payload : `{"schema":${schema},"payload":${space()}${payload}${space()}}`;
    const value = random() < 0.1 ? brokenJson(text, n(BROKEN_JSON_KINDS), random) : Buffer.from(text);
    return { key, value };
  };
}

/** Pushes what `decode` gives into `into` as the ingest does (false: invalid). */
function pushDecoded(decoder: FormatDecoder, table: Table, r: FeedRecord, into: PackingChangeBatch): boolean {
  const d = decoder.decode(r);
  if (!d.ok) return false;
  const time = d.eventTime ?? Number(r.timestamp);
  if ('truncate' in d) into.push(table, '', TRUNCATE, r.topic, r.partition, r.offset, time);
  else into.push(table, d.key, d.row, r.topic, r.partition, r.offset, time);
  return true;
}

function expectSameBatches(a: PackingChangeBatch, b: PackingChangeBatch): void {
  const x = a.input([]);
  const y = b.input([]);
  expect('packed' in x && 'packed' in y).toBe(true);
  if (!('packed' in x) || !('packed' in y)) return;
  expect(Buffer.from(x.packed.bytes).equals(Buffer.from(y.packed.bytes))).toBe(true);
  expect(x.packed).toEqual(y.packed);
}

describe('DebeziumRowScan (debezium-json pack)', () => {
  it.each(['tweets', 'users'] as const)(
    'should pack what decode packs, with the same event time, or leave the record to decode: %s',
    (table) => {
      const random = prng(table === 'tweets' ? 53 : 59);
      const next = generator(table, random);
      const ctx = { table, mapping: MAPPINGS[table], envelopes: true };
      // One decoder packs (then decodes what it leaves), as the ingest does; the other only decodes. Both learn
      // the converter's schemas from the same records (those `pack` leaves: it never reads an unknown schema).
      const packing = debeziumJsonDecoder(ctx);
      const decoding = debeziumJsonDecoder(ctx);
      let packed = 0;
      let valid = 0;
      let offset = 0;
      for (let round = 0; round < 8; round++) {
        const viaPack = new PackingChangeBatch(ALL_FIELDS);
        const viaDecode = new PackingChangeBatch(ALL_FIELDS);
        for (let i = 0; i < 1_000; i++) {
          const { key, value } = next();
          const r: FeedRecord = {
            topic: TOPIC,
            partition: 3,
            offset: String(offset++),
            timestamp: String(TIME - 5),
            key,
            value,
            headers: {},
          };
          const d = decoding.decode(r);
          if (pushDecoded(decoding, table, r, viaDecode)) valid++;
          const own = packing.pack!(r, viaPack);
          if (own === undefined && d.ok && process.env['SHOW_LEFT'])
            console.log(
              'LEFT',
              JSON.stringify(key?.toString()),
              JSON.stringify(value?.toString().replace(/^.*"payload":/s, 'W:')),
            );
          if (own === undefined) {
            pushDecoded(packing, table, r, viaPack);
            continue;
          }
          packed++;
          const what = `${key?.toString()} ${value?.toString()}`;
          expect(d.ok, what).toBe(true);
          expect(own, what).toBe((d.ok && d.eventTime) || 0);
        }
        expectSameBatches(viaPack, viaDecode);
      }
      // It takes most of the valid records; the rest: truncates (a tenth of the records), escaped or non-ASCII
      // ids and names, `-0`, a byte-order mark, the first records of a converter schema.
      expect(packed).toBeGreaterThan(valid / 2);
    },
  );

  it.each(
    (['postgresql', 'mysql'] as const).flatMap((connector: Connector) =>
      (['users', 'tweets', 'follows', 'likes'] as const).flatMap((table) =>
        [true, false].map((schemas) => ({ connector, table, schemas })),
      ),
    ),
  )(
    'should pack the documented events: $connector $table, schemas.enable=$schemas',
    ({ connector, table, schemas }) => {
      // Without the converter's schema the numbers' units come from the mapping.
      const sources = deploySources(schemas ? undefined : withUnits(connector));
      const topic = sources.topics[table].topic;
      // One decoder packs (then decodes what it leaves), the other only decodes, as above.
      const decoderOf = () => createDecoders(sources, PG_TOPICS).get(topic)!;
      const packing = decoderOf();
      const decoding = decoderOf();
      const id = 9007199254740993n;
      // Postgres timestamps in µs, MySQL DATETIME in ms; a Postgres TIMESTAMPTZ as a string, a MySQL DATE in days.
      const at = connector === 'postgresql' ? 1_700_000_000_000_123 : 1_700_000_000_123;
      const joined = connector === 'postgresql' ? '2020-01-01T00:00:00Z' : 19_000;
      const row = {
        users: { id, username: 'ünï "q"', name: null, url: 'https://x', created_at: joined },
        tweets: { id, user_id: 5, text: 'ünï "q"', created_at: at },
        follows: { id, follower_id: 5, followee_id: 6, created_at: at },
        likes: { id, user_id: 5, tweet_id: 6, created_at: at },
      }[table];
      const o = { connector, schemas, tsMs: TIME };
      const messages = [
        event(table, 'r', null, row, o),
        event(table, 'c', null, row, o),
        event(table, 'u', row, row, o),
        event(table, 'd', { id }, null, o),
        tombstone(table, id, o),
      ];
      // The converter's schema is remembered from the second record that carries it: send them twice.
      const viaPack = new PackingChangeBatch(ALL_FIELDS);
      const viaDecode = new PackingChangeBatch(ALL_FIELDS);
      let packed = 0;
      let offset = 0;
      for (const m of [...messages, ...messages]) {
        const r: FeedRecord = {
          topic,
          partition: 0,
          offset: String(offset++),
          timestamp: String(TIME - 5),
          key: m.key === null ? null : Buffer.from(m.key),
          value: m.value === null ? null : Buffer.from(m.value),
          headers: {},
        };
        expect(pushDecoded(decoding, table, r, viaDecode)).toBe(true);
        if (packing.pack!(r, viaPack) !== undefined) packed++;
        else pushDecoded(packing, table, r, viaPack);
      }
      expectSameBatches(viaPack, viaDecode);
      // Without the schema every record; with it, all but the first two that carry the value's schema.
      expect(packed).toBe(schemas ? messages.length * 2 - 2 : messages.length * 2);
    },
  );
});
