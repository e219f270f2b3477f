/**
 * What a record's schema says about its row: which columns exist and which temporal type each has.
 * Two sources, one result:
 * - Kafka Connect's JSON converter with `schemas.enable=true` puts a Connect schema next to the payload:
 *   `{"type":"struct","fields":[{"field":"created_at","type":"int64","name":"io.debezium.time.MicroTimestamp"}…]}`;
 *   in an envelope the row's struct is the `after` (or `before`) field.
 * - Avro schemas from the registry, as Confluent's Avro converter writes them: a record whose fields carry
 *   the Connect type as `connect.name` and Avro's `logicalType`; optional columns are unions with "null";
 *   in an envelope `after` usually refers by name to the record `before` defined.
 */
import type { TableMapping } from './mapping.js';
import { unitOfType, type TimeUnit } from './temporal.js';

export interface RowSchema {
  /** Every column the schema declares, with the unit of its temporal type (undefined: not temporal). */
  readonly columns: ReadonlyMap<string, TimeUnit | undefined>;
}

type Node = Record<string, unknown>;
const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The row schema of a Connect (JSON converter) schema; `envelope`: take the `after`/`before` struct. */
export function connectRowSchema(schema: unknown, envelope: boolean): RowSchema | undefined {
  if (!isNode(schema) || !Array.isArray(schema['fields'])) return undefined;
  let struct: unknown = schema;
  if (envelope) {
    const fields = schema['fields'] as unknown[];
    struct =
      fields.find((x) => isNode(x) && x['field'] === 'after' && Array.isArray(x['fields'])) ??
      fields.find((x) => isNode(x) && x['field'] === 'before' && Array.isArray(x['fields']));
  }
  if (!isNode(struct) || !Array.isArray(struct['fields'])) return undefined;
  const columns = new Map<string, TimeUnit | undefined>();
  for (const field of struct['fields'] as unknown[]) {
    if (!isNode(field)) continue;
    const name = str(field['field']);
    if (name !== undefined) columns.set(name, unitOfType(str(field['name'])));
  }
  return { columns };
}

/** Avro named types seen so far, by simple and full name. */
type Names = Map<string, Node>;

function remember(names: Names, node: Node, namespace: string | undefined): string | undefined {
  const name = str(node['name']);
  if (name === undefined) return namespace;
  const ns = name.includes('.')
    ? name.slice(0, name.lastIndexOf('.'))
    : (str(node['namespace']) ?? namespace);
  const simple = name.includes('.') ? name.slice(name.lastIndexOf('.') + 1) : name;
  names.set(simple, node);
  if (ns !== undefined && ns !== '') names.set(`${ns}.${simple}`, node);
  return ns;
}

/**
 * Resolves an Avro type to its node: a union to its first non-null branch, a name to the type it names.
 * Registers every named type it passes (depth-first, in schema order, as Avro defines names).
 */
function resolve(type: unknown, names: Names, namespace: string | undefined): Node | undefined {
  if (typeof type === 'string') return names.get(type) ?? names.get(`${namespace ?? ''}.${type}`) ?? { type };
  if (Array.isArray(type)) {
    let chosen: Node | undefined;
    for (const branch of type) {
      const r = resolve(branch, names, namespace);
      if (chosen === undefined && r !== undefined && r['type'] !== 'null') chosen = r;
    }
    return chosen;
  }
  if (!isNode(type)) return undefined;
  const ns = remember(names, type, namespace);
  if (type['type'] === 'record' && Array.isArray(type['fields']))
    for (const field of type['fields'] as unknown[]) if (isNode(field)) resolve(field['type'], names, ns);
  return type;
}

function avroFields(record: Node): Node[] {
  return Array.isArray(record['fields']) ? (record['fields'] as unknown[]).filter(isNode) : [];
}

/** The row schema of an Avro schema (parsed JSON); `envelope`: take the `after`/`before` record. */
export function avroRowSchema(schema: unknown, envelope: boolean): RowSchema | undefined {
  const names: Names = new Map();
  const top = resolve(schema, names, undefined);
  if (top === undefined || top['type'] !== 'record') return undefined;
  let record: Node | undefined = top;
  if (envelope) {
    const fields = avroFields(top);
    const pick = (name: string) => {
      const field = fields.find((x) => x['name'] === name);
      const r = field === undefined ? undefined : resolve(field['type'], names, str(top['namespace']));
      return r?.['type'] === 'record' ? r : undefined;
    };
    record = pick('after') ?? pick('before');
  }
  if (record === undefined) return undefined;
  const columns = new Map<string, TimeUnit | undefined>();
  for (const field of avroFields(record)) {
    const name = str(field['name']);
    if (name === undefined) continue;
    const t = resolve(field['type'], names, undefined);
    columns.set(name, unitOfType(str(t?.['connect.name'])) ?? unitOfType(str(t?.['logicalType'])));
  }
  return { columns };
}

type MappedField = TableMapping['fields'][number];

/**
 * Per schema and mapping, the answer of `missingRequiredColumn` (null: none missing). Asked for every record
 * that carries a schema, and a schema is shared by the records that carry it (converter-wrapper.ts, the
 * registry's ids): 0.17 s of the event loop over the Debezium catch-up's 446k records, answered again each time.
 */
const missingOf = new WeakMap<RowSchema, Map<TableMapping, MappedField | null>>();

/** The first required contract field whose column the schema does not declare. */
export function missingRequiredColumn(mapping: TableMapping, schema: RowSchema): MappedField | undefined {
  let byMapping = missingOf.get(schema);
  if (byMapping === undefined) missingOf.set(schema, (byMapping = new Map()));
  let missing = byMapping.get(mapping);
  if (missing === undefined) {
    missing = mapping.fields.find((field) => field.required && !schema.columns.has(field.column)) ?? null;
    byMapping.set(mapping, missing);
  }
  return missing ?? undefined;
}

/** Columns mapped to optional contract fields that the schema does not declare (they read as null). */
export function missingOptionalColumns(mapping: TableMapping, schema: RowSchema): string[] {
  return mapping.fields.filter((f) => !f.required && !schema.columns.has(f.column)).map((f) => f.column);
}
