/**
 * The catch-up changelog (changelog.ts) as Debezium's Postgres connector writes the same rows through Kafka
 * Connect's JsonConverter (test/formats/fixtures/debezium.ts: the connector docs' envelope, source block and
 * schemas): ids as numbers (a changelog key `t123` is the tweets row with id 123), timestamps in µs, the
 * users' `created_at` a zoned timestamp string; a tombstone stays a tombstone. Read with deploy/debezium's
 * sources file, it materializes into the same views as the `json` changelog, so the same reference checks it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Table } from '../../src/views/source.js';
import { event, tombstone, type EventOptions } from '../../test/formats/fixtures/debezium.js';
import type { ChangelogRecord, Topics } from './records.js';

const TIME = 1_700_000_000_000;

/** The changelog record's row (its `json` value, parsed) as the Postgres connector's columns (deploy/debezium/seed.sql). */
export function sourceRow(table: Table, id: number, json: Record<string, string | null>, i: number) {
  const createdAt = (TIME + i) * 1000; // timestamp: µs (io.debezium.time.MicroTimestamp)
  switch (table) {
    case 'users':
      return {
        id,
        username: json['username']!,
        name: json['name']!,
        description: json['description']!,
        location: json['location']!,
        url: json['webPageUrl']!,
        profile_image_url: json['profileImageUrl']!,
        background_image_url: json['backgroundImageUrl']!,
        created_at: json['joinedDate']!,
      };
    case 'tweets':
      return { id, user_id: Number(json['userId']), text: json['text']!, created_at: createdAt };
    case 'follows':
      return {
        id,
        follower_id: Number(json['followerId']),
        followee_id: Number(json['followeeId']),
        created_at: createdAt,
      };
    case 'likes':
      return { id, user_id: Number(json['userId']), tweet_id: 1, created_at: createdAt };
  }
}

/** The id a changelog key stands for. */
export const idOfKey = (key: string): number => Number(key.replace(/^[tfl]/, ''));

/** Record `i` of the changelog (of `table`) as the connector writes it, with the converter's schemas or not. */
export function debeziumMessage(
  table: Table,
  r: ChangelogRecord,
  i: number,
  schemas: boolean,
): { key: string; value: string | null } {
  const id = idOfKey(r.key);
  const o: EventOptions = { connector: 'postgresql', schemas, tsMs: TIME + i };
  const m =
    r.value === null
      ? tombstone(table, id, o)
      : event(table, 'c', null, sourceRow(table, id, JSON.parse(r.value) as Record<string, string>, i), o);
  return { key: m.key!, value: m.value };
}

/** The changelog's records as Debezium writes them, on the same topics. */
export function* asDebezium(
  records: Iterable<ChangelogRecord>,
  topics: Topics,
  schemas: boolean,
): Generator<ChangelogRecord> {
  const tableOf = new Map(Object.entries(topics).map(([t, topic]) => [topic, t as Table]));
  let i = 0;
  for (const r of records) {
    yield { topic: r.topic, ...debeziumMessage(tableOf.get(r.topic)!, r, i++, schemas) };
  }
}

/** Writes deploy/debezium's sources file with `topics` to `path` (what `SOURCES_FILE` names). */
export function writeDebeziumSources(path: string, topics: Topics): string {
  const json = JSON.parse(readFileSync('deploy/debezium/sources.json', 'utf8')) as {
    topics: Record<string, { topic: string }>;
  };
  for (const [table, topic] of Object.entries(topics)) json.topics[table]!.topic = topic;
  writeFileSync(path, JSON.stringify(json, null, 2));
  return path;
}
