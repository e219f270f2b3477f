/**
 * One decoder per source topic, from the sources file (or, without one, the `json` format on the
 * TOPIC_* topics). Topics read as Avro share one schema cache, so each schema id is fetched once.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { TABLES, type Table } from '../views/source.js';
import { AvroSchemas, type AvroSchemasOptions } from './avro.js';
import { avroDecoder, type AvroDecoderOptions } from './avro-decoder.js';
import { debeziumJsonDecoder } from './debezium-json.js';
import { jsonDecoder } from './json.js';
import {
  createSchemaRegistryClient,
  type SchemaRegistryOptions,
  type SchemaSource,
} from './registry-client.js';
import type { Sources } from './sources.js';
import type { DecoderSpec, FormatDecoder } from './types.js';

export type { Decoded, DecoderSpec, Format, FormatDecoder } from './types.js';

/** Registry credentials and TLS (SCHEMA_REGISTRY_* variables); the URLs are in the sources file. */
export interface RegistrySettings {
  readonly userInfo: string | undefined;
  readonly caFile: string | undefined;
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  readonly rejectUnauthorized: boolean;
  readonly timeoutMs: number;
}

export interface DecoderDeps extends AvroDecoderOptions, Pick<AvroSchemasOptions, 'onRetry'> {
  /** Where Avro schemas come from (the registry client; tests pass their own). Required when a topic reads Avro. */
  readonly registry?: SchemaSource;
}

/** Topic → decoder: the sources file's topics, or (without one) the `json` format on `topics`. */
export function createDecoders(
  sources: Sources | undefined,
  topics: Readonly<Record<Table, string>>,
  deps: DecoderDeps = {},
): Map<string, FormatDecoder> {
  const decoders = new Map<string, FormatDecoder>();
  if (sources === undefined) {
    for (const table of TABLES) decoders.set(topics[table], jsonDecoder(table));
    return decoders;
  }
  let schemas: AvroSchemas | undefined;
  for (const table of TABLES) {
    const s = sources.topics[table];
    const ctx = { table, mapping: s.mapping, envelopes: s.format.startsWith('debezium') };
    switch (s.format) {
      case 'json':
        decoders.set(s.topic, jsonDecoder(table));
        break;
      case 'debezium-json':
        decoders.set(s.topic, debeziumJsonDecoder(ctx));
        break;
      case 'avro':
      case 'debezium-avro': {
        if (deps.registry === undefined)
          throw new ConfigError(
            `topic "${s.topic}" is read as ${s.format} but no schema registry is configured`,
          );
        schemas ??= new AvroSchemas(
          deps.registry,
          deps.onRetry === undefined ? {} : { onRetry: deps.onRetry },
        );
        decoders.set(s.topic, avroDecoder(ctx, schemas, deps));
        break;
      }
    }
  }
  return decoders;
}

/** The decoder `spec` describes (FormatDecoder `thread`), made in another thread. */
export function decoderOf(spec: DecoderSpec): FormatDecoder {
  return spec.format === 'json' ? jsonDecoder(spec.table) : debeziumJsonDecoder(spec.context);
}

/** True when a topic of the sources file reads Avro (so a registry client is needed). */
export const needsRegistry = (sources: Sources | undefined): boolean =>
  sources !== undefined && TABLES.some((t) => sources.topics[t].format.endsWith('avro'));

const readPem = (variable: string, file: string | undefined): Buffer | undefined => {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (e) {
    throw new ConfigError(
      `Invalid configuration: ${variable}=${JSON.stringify(file)} cannot be read: ${(e as Error).message}`,
    );
  }
};

/** The registry client for the sources file's URLs and the SCHEMA_REGISTRY_* settings (reads the PEM files now). */
export function registryClient(urls: readonly string[], settings: RegistrySettings): SchemaSource {
  const options: SchemaRegistryOptions = {
    urls,
    rejectUnauthorized: settings.rejectUnauthorized,
    timeoutMs: settings.timeoutMs,
    ...(settings.userInfo === undefined ? {} : { userInfo: settings.userInfo }),
  };
  const ca = readPem('SCHEMA_REGISTRY_CA_FILE', settings.caFile);
  const cert = readPem('SCHEMA_REGISTRY_CERT_FILE', settings.certFile);
  const key = readPem('SCHEMA_REGISTRY_KEY_FILE', settings.keyFile);
  return createSchemaRegistryClient({
    ...options,
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
  });
}
