/**
 * Issue 15, end to end: Debezium topics on a real Kafka protocol endpoint (librdkafka's mock cluster),
 * read by `matview serve` through a SOURCES_FILE (deploy/debezium/sources.json, topics renamed per
 * test), to the exact views of the deploy/debezium story, in REST and GraphQL. Avro records go through
 * a schema registry served inside the test; what cannot be decoded reaches `<topic>.dlq` with its
 * reason and schema id.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordErrorCode } from '../../src/errors.js';
import { TABLES, type Table } from '../../src/views/source.js';
import { encode, toAvro, valueSchema } from '../formats/fixtures/avro.js';
import type { Message } from '../formats/fixtures/debezium.js';
import { BIG, expectedViews, story } from '../formats/fixtures/story.js';
import { SOURCES_PATH, withUnits, type SourcesJson } from '../formats/helpers.js';
import { consumeAll, produce, useKafka } from '../utils/kafka-mock.js';
import { startRegistry, type RegistryDouble } from '../utils/schema-registry.js';
import { eventually, freshTopics, graphql, startTestServer, type TestServer } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';

const kafka = useKafka();
let registry: RegistryDouble;
const servers: TestServer[] = [];
beforeAll(async () => {
  registry = await startRegistry();
});
afterAll(async () => {
  for (const s of servers) await s.close();
  await registry?.close();
});

/** deploy/debezium/sources.json with fresh topics (and `edit` applied), written to a temp file. */
function sourcesFile(edit: (json: SourcesJson) => void = () => undefined) {
  const json = JSON.parse(readFileSync(SOURCES_PATH, 'utf8')) as SourcesJson;
  const topics = freshTopics();
  for (const t of TABLES) json.topics[t]!.topic = topics[t];
  edit(json);
  const path = join(tempDir(), 'sources.json');
  writeFileSync(path, JSON.stringify(json));
  return { path, topics };
}

async function serve(path: string, topics: Record<Table, string>): Promise<TestServer> {
  const server = await startTestServer({ brokers: kafka.brokers, topics, env: { SOURCES_FILE: path } });
  servers.push(server);
  return server;
}

/** Produces each table's messages in order to partition 0 (a truncate has no key to keep it in order otherwise). */
async function produceStory(
  topics: Record<Table, string>,
  messages: Record<
    Table,
    readonly Message[] | readonly { key: string | Buffer | null; value: string | Buffer | null }[]
  >,
) {
  for (const t of TABLES)
    await produce(
      kafka.brokers,
      topics[t],
      messages[t].map((m) => ({ key: m.key, value: m.value, partition: 0 })),
    );
}

async function restViews(server: TestServer, ids: readonly string[]) {
  const out: Record<string, unknown> = {};
  for (const id of ids) out[id] = await (await fetch(`${server.url}/users/${id}`)).json();
  return out;
}

async function expectStoryEnd(server: TestServer, connector: 'postgresql' | 'mysql') {
  const expected = expectedViews(connector);
  const ids = Object.keys(expected);
  await eventually(
    async () => (isDeepStrictEqual(await restViews(server, ids), expected) ? true : undefined),
    30_000,
    'the story applied',
  ).catch(() => undefined); // the assertion below shows the difference
  expect(await restViews(server, ids)).toEqual(expected);
}

describe('Debezium topics through the whole pipeline', () => {
  it('should read the Postgres connector with the JSON converter (schemas on) to exact counts, 64-bit ids and source commit times', async () => {
    const { path, topics } = sourcesFile();
    const server = await serve(path, topics);
    const messages = story({ connector: 'postgresql', schemas: true, form: 'envelope', tsMs: 0 });
    await produceStory(topics, messages);
    await expectStoryEnd(server, 'postgresql');
    const r = await graphql<{ user: { userId: string; likeCount: number; version: { eventTime: string } } }>(
      server.url,
      `{ user(id: "${BIG}") { userId likeCount version { eventTime } } }`,
    );
    // The big user's last change was the truncate of likes (the story's last commit: 17 changes after T0).
    expect(r.data?.user).toEqual({
      userId: '1234567890123456789',
      likeCount: 0,
      version: { eventTime: expect.stringMatching(/^2023-11-14T22:1\d:\d\d\.000Z$/) as unknown as string },
    });
  }, 60_000);

  it('should read the MySQL connector without converter schemas (units from the mapping), flattened by ExtractNewRecordState', async () => {
    const { path, topics } = sourcesFile(withUnits('mysql'));
    const server = await serve(path, topics);
    await produceStory(topics, story({ connector: 'mysql', schemas: false, form: 'flattened', tsMs: 0 }));
    await expectStoryEnd(server, 'mysql');
  }, 60_000);

  it('should read debezium-avro through the schema registry and dead-letter an unknown schema id with its id', async () => {
    const { path, topics } = sourcesFile((json) => {
      json.format = 'debezium-avro';
      json.schemaRegistryUrl = registry.url;
    });
    const server = await serve(path, topics);
    const json = story({ connector: 'postgresql', schemas: false, form: 'envelope', tsMs: 0 });
    const messages = Object.fromEntries(
      TABLES.map((t) => [t, json[t].map((m) => toAvro(registry, t, m, true))]),
    ) as Record<Table, { key: Buffer | string | null; value: Buffer | null }[]>;
    const bad = encode(registry, 'x', valueSchema('postgresql', 'tweets'), {
      id: 9,
      user_id: 1,
      text: null,
      created_at: 0,
    });
    bad.writeUInt32BE(4_242, 1);
    messages.tweets.push({ key: '9', value: bad });
    await produceStory(topics, messages);
    await expectStoryEnd(server, 'postgresql');
    const [dlq] = await consumeAll(kafka.brokers, `${topics.tweets}.dlq`, 1, 30_000);
    expect({
      code: dlq?.headers['matview.error.code']?.toString(),
      schemaId: dlq?.headers['matview.schema.id']?.toString(),
      value: dlq?.value?.equals(bad),
    }).toEqual({ code: RecordErrorCode.SchemaUnknown, schemaId: '4242', value: true });
  }, 60_000);

  it('should wait out a registry outage, saying why in feedStatus, and dead-letter nothing for it', async () => {
    const { path, topics } = sourcesFile((json) => {
      json.format = 'debezium-avro';
      json.schemaRegistryUrl = registry.url;
    });
    const server = await serve(path, topics);
    const json = story({ connector: 'postgresql', schemas: false, form: 'envelope', tsMs: 0 });
    const messages = Object.fromEntries(
      TABLES.map((t) => [t, json[t].map((m) => toAvro(registry, t, m, false))]),
    ) as Record<Table, { key: Buffer | string | null; value: Buffer | null }[]>;
    registry.mode = 'down';
    try {
      await produceStory(topics, messages);
      const status = await eventually(
        async () => {
          const r = await graphql<{ feedStatus: { state: string; reason: string | null } }>(
            server.url,
            '{ feedStatus { state reason } }',
          );
          const s = r.data?.feedStatus;
          return s?.state === 'RETRYING' && s.reason?.includes('schema registry') === true ? s : undefined;
        },
        45_000,
        'feedStatus to report the registry',
      );
      expect(status.reason).toMatch(
        /SchemaRegistryError: schema registry http:\/\/127\.0\.0\.1:\d+ could not give schema \d+: HTTP 503/,
      );
    } finally {
      registry.mode = 'up';
    }
    await expectStoryEnd(server, 'postgresql');
    const invalid = await server.running.metrics.recordsInvalid.get();
    expect(invalid.values.reduce((n, v) => n + v.value, 0)).toBe(0);
  }, 120_000);
});
