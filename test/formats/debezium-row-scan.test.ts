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
import type { FormatDecoder } from '../../src/formats/types.js';
import { TRUNCATE } from '../../src/materializer/change-batch.js';
import { ALL_FIELDS, PackingChangeBatch } from '../../src/store/packed-changes.js';
import type { Table } from '../../src/views/source.js';
import { event, tombstone, type Connector } from './fixtures/debezium.js';
import { debeziumRecords, MAPPINGS, TIME } from './fixtures/debezium-records.js';
import { deploySources, withUnits } from './helpers.js';

const TOPIC = 'pg.public.t';
const PG_TOPICS = { users: 'u', tweets: 't', follows: 'f', likes: 'l' };

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
      const next = debeziumRecords(table, random);
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
