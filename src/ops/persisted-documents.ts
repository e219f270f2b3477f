/**
 * `PERSISTED_DOCUMENTS_FILE`: the operations a deployment allows (issue 18, "allow only known operations for
 * partners"). Read once at start, with the configuration; the API refuses every other operation
 * (api/gateway/documents.ts). Two manifest formats, the ones clients generate:
 *
 * - Apollo's persisted query manifest (`@apollo/generate-persisted-query-manifest`, what Apollo Client's
 *   persisted queries link and GraphOS use):
 *   `{ "format": "apollo-persisted-query-manifest", "version": 1, "operations": [{ "id", "name", "type", "body" }] }`
 * - GraphQL Code Generator's client preset `persisted-documents.json` (also Relay's): `{ "<id>": "<document>" }`.
 *
 * Every document must parse as GraphQL, so a broken manifest stops the process at start rather than refusing
 * requests later: the API checks that when it builds its allow-list (api/gateway/documents.ts).
 */
import { readFileSync } from 'node:fs';

/** The allowed operations: documents by id, and the set of document texts. */
export interface PersistedDocuments {
  readonly file: string;
  readonly format: 'apollo-persisted-query-manifest' | 'persisted-documents';
  /** Document text by id. */
  readonly byId: ReadonlyMap<string, string>;
  /** Every document text, for requests that send the text itself. */
  readonly bodies: ReadonlySet<string>;
}

/** Reads and checks a manifest; throws an Error whose message says what is wrong (the caller names the variable). */
export function loadPersistedDocuments(file: string): PersistedDocuments {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new Error('is not JSON', { cause: e });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error(
      'must hold a JSON object (an Apollo persisted query manifest or a persisted-documents.json)',
    );
  const record = json as Record<string, unknown>;
  const entries: [string, unknown][] =
    record['format'] === 'apollo-persisted-query-manifest'
      ? apolloOperations(record)
      : Object.entries(record);
  const byId = new Map<string, string>();
  for (const [id, body] of entries) {
    if (id === '' || typeof body !== 'string')
      throw new Error(`entry ${JSON.stringify(id)} must map a non-empty id to a document string`);
    byId.set(id, body);
  }
  if (byId.size === 0) throw new Error('lists no operation');
  return {
    file,
    format:
      record['format'] === 'apollo-persisted-query-manifest'
        ? 'apollo-persisted-query-manifest'
        : 'persisted-documents',
    byId,
    bodies: new Set(byId.values()),
  };
}

function apolloOperations(manifest: Record<string, unknown>): [string, unknown][] {
  if (manifest['version'] !== 1)
    throw new Error(
      `is an Apollo manifest of version ${JSON.stringify(manifest['version'])}; only version 1 is known`,
    );
  const operations = manifest['operations'];
  if (!Array.isArray(operations)) throw new Error('is an Apollo manifest without an "operations" array');
  return operations.map((op: unknown) => {
    const o = (typeof op === 'object' && op !== null ? op : {}) as Record<string, unknown>;
    return [typeof o['id'] === 'string' ? o['id'] : '', o['body']];
  });
}
