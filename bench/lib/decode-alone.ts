/**
 * What the event loop spends per record between a fetched record and its packed form for the writer thread,
 * per format: the ingest's own steps (src/pipeline/ingest.ts) on records already in memory, no Kafka, no
 * store. The catch-up changelog's records (bench/lib/changelog.ts), as the `json` format reads them and as
 * Debezium's Postgres connector writes the same rows through Kafka Connect's JsonConverter, with its schemas
 * (`schemas.enable=true`, the converter's default) and without, and through Confluent's AvroConverter (a
 * schema registry stand-in in this process; each schema fetched once, before the passes). Packed with every
 * contract field (`ALL_FIELDS`): a store packs only the fields its views read, a little less.
 */
import { Buffer } from 'node:buffer';
import type { FeedRecord } from '../../src/feed/types.js';
import { jsonDecoder } from '../../src/formats/json.js';
import { createDecoders } from '../../src/formats/index.js';
import type { FormatDecoder } from '../../src/formats/types.js';
import { TRUNCATE } from '../../src/materializer/change-batch.js';
import { ALL_FIELDS, PackingChangeBatch } from '../../src/store/packed-changes.js';
import type { Table } from '../../src/views/source.js';
import { toAvro } from '../../test/formats/fixtures/avro.js';
import type { Sources } from '../../src/formats/sources.js';
import { deploySources, withUnits } from '../../test/formats/helpers.js';
import { startRegistry, type RegistryDouble } from '../../test/utils/schema-registry.js';
import { createSchemaRegistryClient } from '../../src/formats/registry-client.js';
import { changelog, Reference } from './changelog.js';
import { debeziumMessage } from './debezium.js';
import { round, type ScenarioContext } from './common.js';

const TOPICS: Record<Table, string> = {
  users: 'users',
  tweets: 'tweets',
  follows: 'follows',
  likes: 'likes',
};
const TIME = 1_700_000_000_000;
const ROUNDS = 7;

/** A feed record of `topic` (the offset and timestamp as the feed hands them over). */
const feedRecord = (topic: string, i: number, key: string | null, value: string | null): FeedRecord => ({
  topic,
  partition: 0,
  offset: String(i),
  timestamp: String(TIME),
  key: key === null ? null : Buffer.from(key),
  value: value === null ? null : Buffer.from(value),
  headers: {},
});

interface Workload {
  readonly label: string;
  readonly decoders: ReadonlyMap<string, FormatDecoder>;
  readonly records: readonly FeedRecord[];
  /** Records packed from their bytes where their format can (FormatDecoder `pack`), as the ingest does. */
  readonly pack: boolean;
}

function workloads(
  count: number,
  registry: RegistryDouble,
  sources: Sources,
  tables: ReadonlyMap<string, Table>,
): Workload[] {
  const json: FeedRecord[] = [];
  const withSchemas: FeedRecord[] = [];
  const without: FeedRecord[] = [];
  const avro: FeedRecord[] = [];
  const pgTopics = Object.fromEntries(
    Object.keys(TOPICS).map((t) => [t, sources.topics[t as Table].topic]),
  ) as Record<Table, string>;
  let i = 0;
  for (const r of changelog(TOPICS, count, Math.ceil(count / 20), 3, new Reference(Math.ceil(count / 20)))) {
    const table = tables.get(r.topic)!;
    json.push(feedRecord(r.topic, i, r.key, r.value));
    for (const schemas of [true, false]) {
      const m = debeziumMessage(table, r, i, schemas);
      (schemas ? withSchemas : without).push(feedRecord(pgTopics[table], i, m.key, m.value));
      if (!schemas) {
        const a = toAvro(registry, table, m, true);
        avro.push({ ...feedRecord(pgTopics[table], i, null, null), key: a.key as Buffer, value: a.value });
      }
    }
    i++;
  }
  const jsonDecoders = new Map(Object.entries(TOPICS).map(([t, topic]) => [topic, jsonDecoder(t as Table)]));
  const debezium = createDecoders(sources, pgTopics);
  // Without the converter's schema the timestamps' unit comes from the sources file.
  const schemaless = createDecoders(deploySources(withUnits('postgresql')), pgTopics);
  const avroSources = deploySources((json) => {
    json.format = 'debezium-avro';
    json.schemaRegistryUrl = registry.url;
  });
  const client = createSchemaRegistryClient({ urls: [registry.url] });
  const debeziumAvro = createDecoders(avroSources, pgTopics, {
    registry: { lookup: (id) => client.lookup(id) },
  });
  return [
    { label: 'json, plain records read from their bytes', decoders: jsonDecoders, records: json, pack: true },
    { label: 'json, through the decoder', decoders: jsonDecoders, records: json, pack: false },
    {
      label: 'debezium-json, with the converter schemas, read from their bytes',
      decoders: debezium,
      records: withSchemas,
      pack: true,
    },
    {
      label: 'debezium-json, with the converter schemas, through the decoder',
      decoders: debezium,
      records: withSchemas,
      pack: false,
    },
    {
      label: 'debezium-json, without schemas, read from their bytes',
      decoders: schemaless,
      records: without,
      pack: true,
    },
    { label: 'debezium-avro, Avro keys and values', decoders: debeziumAvro, records: avro, pack: false },
  ];
}

/**
 * One pass over `w`'s records: each topic's `prepare` (the registry's schemas, fetched by the first pass), then
 * each record packed from its bytes or decoded and packed. Returns the records packed.
 */
async function pass(w: Workload, tables: ReadonlyMap<string, Table>): Promise<number> {
  for (const [topic, decoder] of w.decoders)
    await decoder.prepare?.(w.records.filter((r) => r.topic === topic));
  const changes = new PackingChangeBatch(ALL_FIELDS);
  for (const record of w.records) {
    const table = tables.get(record.topic)!;
    const decoder = w.decoders.get(record.topic)!;
    if (w.pack && decoder.pack?.(record, changes) !== undefined) continue;
    const d = decoder.decode(record);
    if (!d.ok) throw new Error(`${w.label}: record ${record.offset} refused: ${d.message}`);
    if ('truncate' in d) changes.push(table, '', TRUNCATE, record.topic, 0, record.offset, TIME);
    else changes.push(table, d.key, d.row, record.topic, 0, record.offset, d.eventTime ?? TIME);
  }
  return changes.length;
}

export async function decodeAlone(ctx: ScenarioContext, count: number): Promise<void> {
  const registry = await startRegistry();
  ctx.defer(() => registry.close());
  const tables = new Map<string, Table>();
  const sources = deploySources();
  for (const t of Object.keys(TOPICS) as Table[]) {
    tables.set(TOPICS[t], t);
    tables.set(sources.topics[t].topic, t);
  }
  for (const w of workloads(count, registry, sources, tables)) {
    const bytes = w.records.reduce((n, r) => n + (r.key?.length ?? 0) + (r.value?.length ?? 0), 0);
    let best = Infinity;
    for (let round = 0; round < ROUNDS; round++) {
      const t0 = performance.now();
      const packed = await pass(w, tables);
      best = Math.min(best, performance.now() - t0);
      if (packed !== w.records.length) throw new Error(`${w.label}: ${packed} of ${w.records.length} packed`);
    }
    ctx.row(`decode alone: ${w.label}`, {
      records: w.records.length,
      'bytes/record': round(bytes / w.records.length, 0),
      'µs/record': round((best * 1000) / w.records.length, 2),
      'records/s': round((w.records.length / best) * 1000, 0),
    });
  }
  ctx.note(
    `ingest, decode alone: the event loop's work per record from its bytes to its packed form (decode or scan, then pack for the writer thread), on ${count} records of the catch-up changelog in memory, best of ${ROUNDS} passes; Debezium as the Postgres connector writes the same rows (envelope, ids as numbers, timestamps in µs)`,
  );
}
