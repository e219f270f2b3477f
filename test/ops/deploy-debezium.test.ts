/**
 * Issue 15: the change-data-capture shape of docker-compose.yml cannot run here (no Docker), so this
 * keeps it valid and consistent: the compose file wires Postgres (logical replication), Kafka Connect with
 * the Debezium Postgres connector and matview with a SOURCES_FILE; and deploy/debezium's connector config,
 * mapping and SQL agree with each other (topics, converters, columns). The format tests read the same
 * sources.json, so what is deployed is what is tested.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadSources } from '../../src/formats/sources.js';
import { TABLES } from '../../src/views/source.js';

interface Service {
  image?: string;
  build?: unknown;
  profiles?: string[];
  command?: string[];
  environment?: Record<string, unknown>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
}

const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as { services: Record<string, Service> };
const connector = JSON.parse(readFileSync('deploy/debezium/connector.json', 'utf8')) as Record<
  string,
  string
>;
const sources = loadSources('deploy/debezium/sources.json');
const seed = readFileSync('deploy/debezium/seed.sql', 'utf8');

/** Column names of each CREATE TABLE in seed.sql. */
function columnsOfSeed(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const m of seed.matchAll(/CREATE TABLE (\w+) \(([\s\S]*?)\n\);/g)) {
    const cols = m[2]!
      .split('\n')
      .map((l) => /^\s*(\w+)\s+\w/.exec(l)?.[1])
      .filter((c): c is string => c !== undefined);
    out.set(m[1]!, new Set(cols));
  }
  return out;
}

describe('docker-compose: the Debezium profile', () => {
  const { postgres, connect, connector: register, 'matview-cdc': matview } = compose.services;

  it('should run Postgres with logical replication and the seed script', () => {
    expect(postgres?.profiles).toEqual(['debezium']);
    expect(postgres?.command).toEqual(expect.arrayContaining(['wal_level=logical']));
    expect(postgres?.volumes).toContain('./deploy/debezium/seed.sql:/docker-entrypoint-initdb.d/seed.sql:ro');
    expect(postgres?.volumes).toContain('./deploy/debezium/changes.sql:/sql/changes.sql:ro');
  });

  it('should run Kafka Connect with Debezium against the broker, and register deploy/debezium/connector.json', () => {
    expect(connect?.image).toMatch(/^quay\.io\/debezium\/connect:/);
    expect(connect?.environment?.['BOOTSTRAP_SERVERS']).toBe('kafka:9092');
    expect(register?.volumes).toContain('./deploy/debezium/connector.json:/connector.json:ro');
    expect(register?.command).toEqual(
      expect.arrayContaining([
        'PUT',
        '@/connector.json',
        'http://connect:8083/connectors/matview-postgres/config',
      ]),
    );
  });

  it('should point matview at the broker through deploy/debezium/sources.json, after the connector exists', () => {
    expect(matview?.command).toEqual(['serve']);
    expect(matview?.environment).toMatchObject({
      KAFKA_BROKERS: 'kafka:9092',
      SOURCES_FILE: '/etc/matview/sources.json',
    });
    expect(matview?.volumes).toContain('./deploy/debezium/sources.json:/etc/matview/sources.json:ro');
    expect(matview?.depends_on?.['connector']).toEqual({ condition: 'service_completed_successfully' });
  });
});

describe('deploy/debezium: connector, mapping and SQL agree', () => {
  it('should capture the four tables into the topics the sources file reads', () => {
    expect(connector['connector.class']).toBe('io.debezium.connector.postgresql.PostgresConnector');
    const tables = connector['table.include.list']!.split(',');
    expect(TABLES.map((t) => sources.topics[t].topic)).toEqual(
      tables.map((t) => `${connector['topic.prefix']}.${t}`),
    );
    expect(connector['database.hostname']).toBe('postgres');
    expect(compose.services['postgres']?.environment).toMatchObject({
      POSTGRES_USER: connector['database.user'],
      POSTGRES_PASSWORD: connector['database.password'],
      POSTGRES_DB: connector['database.dbname'],
    });
  });

  it('should use the converter and operations matview reads: JSON (the debezium-json format), truncates included', () => {
    expect(TABLES.map((t) => sources.topics[t].format)).toEqual(TABLES.map(() => 'debezium-json'));
    expect(connector['value.converter']).toBe('org.apache.kafka.connect.json.JsonConverter');
    expect(connector['key.converter']).toBe('org.apache.kafka.connect.json.JsonConverter');
    // Debezium 2.x skips truncates by default ("skipped.operations": "t").
    expect(connector['skipped.operations']).toBe('none');
    expect(connector['plugin.name']).toBe('pgoutput');
  });

  it('should map every contract field to a column seed.sql creates', () => {
    const columns = columnsOfSeed();
    const missing = TABLES.flatMap((t) =>
      sources.topics[t].mapping.fields
        .filter((f) => !columns.get(t)?.has(f.column))
        .map((f) => `${t}.${f.column} (${f.name})`),
    );
    expect({ tables: [...columns.keys()], missing }).toEqual({ tables: [...TABLES], missing: [] });
  });
});
