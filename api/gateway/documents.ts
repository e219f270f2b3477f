/**
 * Which document a GraphQL request runs, decided at the edge, before the fast path and Apollo (issue 18,
 * gateways and partners):
 *
 * - Allow-list mode (`PERSISTED_DOCUMENTS_FILE`, src/ops/persisted-documents.ts): a request names a document by
 *   id (`documentId`, as GraphQL Code Generator's and the GraphQL-over-HTTP persisted documents proposal send,
 *   with or without a `sha256:` prefix; or `extensions.persistedQuery.sha256Hash`, as Apollo Client's persisted
 *   queries link sends) or sends the text of one of the listed documents. Anything else is refused:
 *   PERSISTED_QUERY_NOT_FOUND for an unknown id, PERSISTED_QUERY_NOT_IN_LIST for any other text. The request
 *   then goes on as if it had sent the listed text (APQ registration is off in this mode), over HTTP
 *   (POST, GET, batches) and WebSocket alike.
 * - APQ mode (default): a hash-only request whose text the APQ cache holds is handed to the fast path with that
 *   text; Apollo answers everything else of the protocol (registration, PERSISTED_QUERY_NOT_FOUND) from the same
 *   cache (api/gateway/apq-cache.ts).
 */
import { GraphQLError, parse } from 'graphql';
import { ConfigError } from '../../src/errors.js';
import type { PersistedDocuments } from '../../src/ops/persisted-documents.js';
import { ApiErrorCode } from '../codes.js';
import { apqKey, type BoundedTextCache } from './apq-cache.js';

/** A refusal, answered by the caller in its transport's shape. */
export interface DocumentRefusal {
  readonly status: number;
  readonly code: ApiErrorCode;
  readonly message: string;
}

/** A request body (or a GET's parameters as one) with the document it runs. */
export interface ResolvedRequest {
  /** What Apollo gets: the request itself, or a copy that carries the listed text instead of an id. */
  readonly request: Record<string, unknown>;
  /** The document text the request runs, when known here (the fast path's key); else Apollo decides. */
  readonly query: string | undefined;
}

export interface DocumentGate {
  /** True in allow-list mode. */
  readonly allowList: boolean;
  /** Resolves one operation of a POST body (or of a GET, its parameters parsed). */
  resolve(request: Record<string, unknown>): ResolvedRequest | DocumentRefusal;
  /** A WebSocket `subscribe`: the text to run, or the error to answer with. */
  resolveSubscribe(payload: {
    readonly query: string;
    readonly extensions?: Record<string, unknown> | null | undefined;
  }): string | GraphQLError;
}

export function isRefusal(value: ResolvedRequest | DocumentRefusal): value is DocumentRefusal {
  return 'code' in value;
}

/** The persisted query hash of a request (`extensions.persistedQuery.sha256Hash`), if it carries one. */
export function persistedQueryHash(extensions: unknown): string | undefined {
  if (typeof extensions !== 'object' || extensions === null) return undefined;
  const pq = (extensions as Record<string, unknown>)['persistedQuery'];
  if (typeof pq !== 'object' || pq === null) return undefined;
  const hash = (pq as Record<string, unknown>)['sha256Hash'];
  return typeof hash === 'string' ? hash : undefined;
}

/** Every document of the allow-list must parse: a broken manifest stops the server at start (ConfigError). */
function checkDocuments(persisted: PersistedDocuments): void {
  for (const [id, body] of persisted.byId) {
    try {
      parse(body, { noLocation: true });
    } catch (e) {
      throw new ConfigError(
        `Invalid configuration: PERSISTED_DOCUMENTS_FILE=${JSON.stringify(persisted.file)} document ${JSON.stringify(id)} is not valid GraphQL: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
}

export function createDocumentGate(options: {
  readonly persisted: PersistedDocuments | undefined;
  readonly apq: BoundedTextCache | undefined;
}): DocumentGate {
  const { persisted, apq } = options;
  if (persisted !== undefined) checkDocuments(persisted);
  if (persisted === undefined) {
    return {
      allowList: false,
      resolve(request) {
        const query = request['query'];
        if (typeof query === 'string') return { request, query };
        const hash = apq === undefined ? undefined : persistedQueryHash(request['extensions']);
        return { request, query: hash === undefined ? undefined : apq?.peek(apqKey(hash)) };
      },
      resolveSubscribe: (payload) => payload.query,
    };
  }

  const byId = (id: string): string | undefined =>
    persisted.byId.get(id) ?? (id.startsWith('sha256:') ? persisted.byId.get(id.slice(7)) : undefined);
  const notFound = (id: string): DocumentRefusal => ({
    status: 400,
    code: ApiErrorCode.PersistedQueryNotFound,
    message: `No persisted document with id ${JSON.stringify(id.slice(0, 80))}: this server runs only the operations of its persisted documents.`,
  });
  const notInList: DocumentRefusal = {
    status: 400,
    code: ApiErrorCode.PersistedQueryNotInList,
    message:
      'This operation is not in the persisted documents of this server; send the id of a listed one (documentId or extensions.persistedQuery.sha256Hash) or its exact text.',
  };
  /** The request without what named the document: Apollo gets plain text (its APQ is off here). */
  const withText = (request: Record<string, unknown>, query: string): Record<string, unknown> => {
    const { documentId: _id, extensions, ...rest } = request;
    const out: Record<string, unknown> = { ...rest, query };
    if (typeof extensions === 'object' && extensions !== null) {
      const { persistedQuery: _pq, ...others } = extensions as Record<string, unknown>;
      if (Object.keys(others).length > 0) out['extensions'] = others;
    }
    return out;
  };

  return {
    allowList: true,
    resolve(request) {
      const documentId = request['documentId'];
      const query = request['query'];
      const id =
        typeof documentId === 'string'
          ? documentId
          : typeof query === 'string' && query !== ''
            ? undefined
            : persistedQueryHash(request['extensions']);
      if (id !== undefined) {
        const text = byId(id);
        return text === undefined ? notFound(id) : { request: withText(request, text), query: text };
      }
      if (typeof query !== 'string') return { request, query: undefined }; // Apollo: "no query"
      if (!persisted.bodies.has(query)) return notInList;
      return {
        request: persistedQueryHash(request['extensions']) === undefined ? request : withText(request, query),
        query,
      };
    },
    resolveSubscribe(payload) {
      const hash = payload.query === '' ? persistedQueryHash(payload.extensions) : undefined;
      const refusal =
        hash !== undefined
          ? byId(hash) === undefined
            ? notFound(hash)
            : undefined
          : persisted.bodies.has(payload.query)
            ? undefined
            : notInList;
      if (refusal !== undefined)
        return new GraphQLError(refusal.message, { extensions: { code: refusal.code } });
      return hash === undefined ? payload.query : (byId(hash) as string);
    },
  };
}
