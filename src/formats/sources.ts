/**
 * The sources file (`SOURCES_FILE`): where each table's changelog comes from, in which format, and which
 * source column holds each contract field. Validated once at start (zod); a bad file stops the process
 * with one line naming the file, the JSON path and what is allowed.
 *
 * ```json
 * { "format": "debezium-json", "schemaRegistryUrl": "http://registry:8081",
 *   "topics": { "users": { "topic": "pg.public.users", "fields": { "userId": "id", "joinedDate": "created_at" } } } }
 * ```
 * - `format` at the top applies to every topic; a topic's own `format` overrides it. Default `json`.
 * - A table the file does not list reads its default topic (`users`, …) in the top-level format.
 * - `fields`: contract field → column name, or `{ "column": …, "unit": "micros" }` for a date-time
 *   stored as a number where no schema names its unit. Not allowed with `json` (matview's own names).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { TABLES, type Table } from '../views/source.js';
import { CONTRACT_FIELDS, tableMapping, type FieldSource, type TableMapping } from './mapping.js';
import { TIME_UNITS } from './temporal.js';
import { FORMATS, type Format } from './types.js';

export interface TopicSource {
  readonly table: Table;
  readonly topic: string;
  readonly format: Format;
  readonly mapping: TableMapping;
}

export interface Sources {
  /** The file it was read from (for messages). */
  readonly file: string;
  readonly topics: Readonly<Record<Table, TopicSource>>;
  /** Comma-separated registry URLs, when a topic reads Avro. */
  readonly schemaRegistryUrls: readonly string[];
}

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,200}$/;
const oneOf = (values: readonly string[]) => values.map((v) => `"${v}"`).join(', ');
const format = z.enum(FORMATS, { error: `must be one of ${oneOf(FORMATS)}` });
const column = z.string({ error: 'must be a column name' }).min(1, 'must be a non-empty column name');

/** A strict object whose unknown keys are reported with the keys that are allowed. */
const strict = <T extends z.ZodRawShape>(shape: T) =>
  z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `has unknown key ${oneOf(issue.keys)}; allowed: ${oneOf(Object.keys(shape))}`
        : issue.code === 'invalid_type'
          ? 'must be an object'
          : undefined,
  });

const fieldsOf = (table: Table) =>
  strict(
    Object.fromEntries(
      CONTRACT_FIELDS[table].map((f) => [
        f.name,
        (f.kind === 'date'
          ? z.union(
              [
                column,
                strict({
                  column,
                  unit: z.enum(TIME_UNITS, { error: `must be one of ${oneOf(TIME_UNITS)}` }).optional(),
                }),
              ],
              {
                error: 'must be a column name or { "column": …, "unit": … }',
              },
            )
          : column
        ).optional(),
      ]),
    ),
  );

const topicOf = (table: Table) =>
  strict({
    topic: z
      .string({ error: 'must be a Kafka topic name' })
      .regex(TOPIC_NAME, 'must be a Kafka topic name (letters, digits, ".", "_", "-"; 1-200 chars)'),
    format: format.optional(),
    fields: fieldsOf(table).optional(),
  });

const fileSchema = strict({
  format: format.optional(),
  schemaRegistryUrl: z
    .string({ error: 'must be a URL' })
    .refine(
      (s) => s.split(',').every((u) => /^https?:\/\/[^\s/]+/.test(u.trim())),
      'must be one or more comma-separated http:// or https:// URLs',
    )
    .optional(),
  topics: strict(
    Object.fromEntries(TABLES.map((t) => [t, topicOf(t).optional()])) as Record<
      Table,
      z.ZodOptional<ReturnType<typeof topicOf>>
    >,
  ),
});

const pathOf = (path: readonly PropertyKey[]): string =>
  `$${path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}`;

/** Validates the parsed content of a sources file. Throws one ConfigError naming the file, the JSON path and what is allowed. */
export function parseSources(file: string, content: unknown): Sources {
  const fail = (path: string, message: string): never => {
    throw new ConfigError(`Invalid configuration: SOURCES_FILE=${JSON.stringify(file)}: ${path} ${message}`);
  };
  const parsed = fileSchema.safeParse(content);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return fail(pathOf(issue.path), issue.message);
  }
  const top = parsed.data;
  const topics = {} as Record<Table, TopicSource>;
  const seen = new Map<string, Table>();
  for (const table of TABLES) {
    const t = top.topics[table];
    const fmt = t?.format ?? top.format ?? 'json';
    const topic = t?.topic ?? table;
    const other = seen.get(topic);
    if (other !== undefined)
      fail(
        `$.topics.${table}.topic`,
        `is "${topic}", the topic of ${other} too: each table needs its own topic`,
      );
    seen.set(topic, table);
    const fields = (t?.fields ?? {}) as Record<string, string | FieldSource | undefined>;
    if (fmt === 'json' && Object.keys(fields).length > 0)
      fail(
        `$.topics.${table}.fields`,
        `is not allowed with format "json" (matview's own field names); use "debezium-json" for rows with other column names`,
      );
    if ((fmt === 'avro' || fmt === 'debezium-avro') && top.schemaRegistryUrl === undefined)
      fail('$.schemaRegistryUrl', `is required: topic "${topic}" is read as "${fmt}"`);
    topics[table] = { table, topic, format: fmt, mapping: tableMapping(table, fields) };
  }
  return {
    file,
    topics,
    schemaRegistryUrls: (top.schemaRegistryUrl ?? '')
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u !== ''),
  };
}

/** Reads and validates a sources file. */
export function loadSources(file: string): Sources {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `Invalid configuration: SOURCES_FILE=${JSON.stringify(file)} cannot be read: ${(e as Error).message}`,
    );
  }
  let content: unknown;
  try {
    content = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(
      `Invalid configuration: SOURCES_FILE=${JSON.stringify(file)} is not JSON: ${(e as Error).message}`,
    );
  }
  return parseSources(file, content);
}
