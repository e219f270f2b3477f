/** Shared by the format tests: records from fixtures, the deploy/debezium mapping, and the story run through the materializer. */
import { readFileSync } from 'node:fs';
import type { FeedRecord } from '../../src/feed/types.js';
import type { FormatDecoder } from '../../src/formats/types.js';
import { parseSources, type Sources } from '../../src/formats/sources.js';
import { ChangeBatch, TRUNCATE } from '../../src/materializer/change-batch.js';
import { commitBatch, commitPlan } from '../../src/materializer/commit.js';
import { MemoryState } from '../../src/materializer/memory-state.js';
import { createRegistry } from '../../src/views/registry.js';
import { TABLES, type Table } from '../../src/views/source.js';
import type { UserInformation } from '../../src/views/user-information.js';

const registry = createRegistry();
const plan = commitPlan(registry);

export const SOURCES_PATH = 'deploy/debezium/sources.json';

/** The sources file of deploy/debezium, parsed; `edit` may change its JSON first (topics, units, format). */
export function deploySources(edit: (json: SourcesJson) => void = () => undefined): Sources {
  const json = JSON.parse(readFileSync(SOURCES_PATH, 'utf8')) as SourcesJson;
  edit(json);
  return parseSources(SOURCES_PATH, json);
}

export interface SourcesJson {
  format?: string;
  schemaRegistryUrl?: string;
  topics: Record<string, { topic: string; format?: string; fields?: Record<string, unknown> }>;
}

/** Units for a record without schema: Postgres timestamps in µs, MySQL DATETIME in ms and DATE in days. */
export function withUnits(connector: 'postgresql' | 'mysql') {
  return (json: SourcesJson): void => {
    const unit = connector === 'postgresql' ? 'micros' : 'millis';
    for (const t of ['tweets', 'follows', 'likes'])
      json.topics[t]!.fields!['createdAt'] = { column: 'created_at', unit };
    if (connector === 'mysql')
      json.topics['users']!.fields!['joinedDate'] = { column: 'created_at', unit: 'days' };
  };
}

let offset = 0;
/** A feed record as the Kafka source hands it over. */
export function record(
  topic: string,
  key: string | Buffer | null,
  value: string | Buffer | null,
  partition = 0,
): FeedRecord {
  return {
    topic,
    partition,
    offset: String(offset++),
    timestamp: '1700000000000',
    key: key === null ? null : Buffer.isBuffer(key) ? key : Buffer.from(key),
    value: value === null ? null : Buffer.isBuffer(value) ? value : Buffer.from(value),
    headers: {},
  };
}

/** Decodes per table in order, materializes into a MemoryState (one batch per table), returns it. */
export async function materializeAll(
  decoders: ReadonlyMap<string, FormatDecoder>,
  sources: Sources,
  messages: Record<Table, readonly { key: string | Buffer | null; value: string | Buffer | null }[]>,
): Promise<MemoryState> {
  const state = new MemoryState(registry);
  let sequence = 0n;
  for (const table of TABLES) {
    const topic = sources.topics[table].topic;
    const decoder = decoders.get(topic)!;
    const records = messages[table].map((m) => record(topic, m.key, m.value));
    await decoder.prepare?.(records);
    const batch = new ChangeBatch();
    for (const r of records) {
      const d = decoder.decode(r);
      if (!d.ok) throw new Error(`${topic}@${r.offset}: ${d.code} ${d.message}`);
      const eventTime = d.eventTime ?? Number(r.timestamp);
      if ('truncate' in d) batch.push(table, '', TRUNCATE, topic, r.partition, r.offset, eventTime);
      else batch.push(table, d.key, d.row, topic, r.partition, r.offset, eventTime);
    }
    commitBatch(state, plan, { changes: batch.columns(), positions: [] }, ++sequence, 0);
  }
  return state;
}

/** The REST form of every view (seed 002's fields, no version). */
export function restViews(state: MemoryState): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [id, v] of state.kv<UserInformation>('user-information', 'views')) {
    const { version: _v, ...rest } = v;
    out[id] = rest;
  }
  return out;
}

/** How many ways `brokenJson` has. */
export const BROKEN_JSON_KINDS = 6;

/**
 * `text` broken the way a bad producer or a cut read breaks JSON, for the byte-level readers' property tests:
 * `kind` 0 cut at a random byte, 1 a byte that is not UTF-8 there, 2 a structural byte (or a backslash, a line
 * feed) in place of one, 3 junk after it, 4 a byte-order mark before it, 5 a lone UTF-8 lead byte inserted.
 */
export function brokenJson(text: string, kind: number, random: () => number): Buffer {
  const b = Buffer.from(text);
  const at = Math.floor(random() * b.length);
  switch (kind) {
    case 0:
      return b.subarray(0, at);
    case 1:
      b[at] = 0xff;
      return b;
    case 2:
      b[at] = [0x22, 0x7b, 0x7d, 0x2c, 0x5b, 0x5d, 0x20, 0x30, 0x5c, 0x0a][Math.floor(random() * 10)]!;
      return b;
    case 3:
      return Buffer.concat([b, Buffer.from([' ', '\n', 'x', '}', ',{}'][Math.floor(random() * 5)]!)]);
    case 4:
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b]);
    default:
      return Buffer.concat([b.subarray(0, at), Buffer.from([0xc3]), b.subarray(at)]);
  }
}
