/**
 * `/graphql` over HTTP (GraphQL-over-HTTP draft, Apollo Server 5 behaviour). POST bodies are read here
 * with the byte cap (413 before anything is buffered past it), batched arrays are checked against
 * MAX_BATCH_OPERATIONS, `extensions.minOffsets` is waited for (read-your-writes, consistency/min-offsets.ts),
 * then the fast path answers what it can and Apollo answers the rest. GET goes to Apollo (queries only,
 * CSRF prevention per Apollo defaults), after the same wait when its `extensions` parameter asks for one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApolloServer } from '@apollo/server';
import type { Logger } from '../../src/ops/logger.js';
import { ApiErrorCode } from '../codes.js';
import type { AsOfSource } from '../consistency/as-of.js';
import { mergeRequired, type MinOffsetsGate, type RequiredOffsets } from '../consistency/min-offsets.js';
import type { CallbackPolicy } from '../gateway/callback.js';
import {
  isRefusal,
  persistedQueryHash,
  type DocumentGate,
  type DocumentRefusal,
  type ResolvedRequest,
} from '../gateway/documents.js';
import { isVariablesRecord, type FastPath } from '../fast-path.js';
import type { Limits } from '../limits.js';
import type { ApiContext, ContextOptions } from '../schema/context.js';
import { runApollo } from './apollo-handler.js';
import { collectBody, declaresTooLarge, drainRefused } from './body.js';
import { knownResultType } from './negotiate.js';
import type { RequestTimer } from './observe.js';
import { send, sendGraphQLError } from './respond.js';

/** Collaborators of the `/graphql` route, all built once per server. */
export interface GraphqlRouteOptions {
  readonly apollo: ApolloServer<ApiContext>;
  readonly createContext: (options?: ContextOptions) => ApiContext;
  /** undefined: every request goes through Apollo (tests compare both paths). */
  readonly fastPath: FastPath | undefined;
  readonly limits: Limits;
  readonly timer: RequestTimer;
  readonly logger: Logger;
  /** Read-your-writes: waits for `extensions.minOffsets`. */
  readonly minOffsets: MinOffsetsGate;
  /** `extensions.asOf` of the errors answered here. */
  readonly asOf: Pick<AsOfSource, 'current'>;
  /** Which document a request runs: persisted-documents allow-list, APQ lookups for the fast path. */
  readonly documents: DocumentGate;
  /** Apollo Router's subscription callbacks: which callback URLs are allowed. */
  readonly callbacks: CallbackPolicy;
}

/** Handlers per method; the router maps GET and POST `/graphql` to them. */
export interface GraphqlRoute {
  post(req: IncomingMessage, res: ServerResponse): void;
  get(req: IncomingMessage, res: ServerResponse): void;
}

/** The fast path serves only the content types Apollo treats as plain JSON bodies. */
function isPlainJson(contentType: string | undefined): boolean {
  return contentType === 'application/json' || contentType === 'application/json; charset=utf-8';
}

/** Media type essence check for parsing (any parameters allowed), as body-parser does. */
function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const semicolon = contentType.indexOf(';');
  return (
    (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase() ===
    'application/json'
  );
}

/**
 * Extension keys the fast path serves with (anything else goes to Apollo). `persistedQuery` only on a hash-only
 * request: one that also sends the text is an APQ registration, which Apollo verifies and stores.
 */
const FAST_EXTENSIONS: ReadonlySet<string> = new Set(['minOffsets', 'persistedQuery']);

function fastExtensions(extensions: unknown): boolean {
  if (extensions === undefined || extensions === null) return true;
  if (typeof extensions !== 'object') return false;
  for (const k in extensions) if (!FAST_EXTENSIONS.has(k)) return false;
  return true;
}

/** Seconds a client told NOT_YET_APPLIED should wait before retrying (`Retry-After`). */
const RETRY_AFTER_SECONDS = '1';

/** Builds the `/graphql` handlers: body cap, batch cap, minOffsets, fast path, then Apollo. */
export function createGraphqlRoute(options: GraphqlRouteOptions): GraphqlRoute {
  const { apollo, createContext, fastPath, limits, timer, logger, minOffsets, asOf, documents, callbacks } =
    options;

  /** The callback check, then the document a request runs (gateway/): a refusal, or what to run. */
  const admit = (request: Record<string, unknown>): ResolvedRequest | DocumentRefusal =>
    callbacks.refusal(request['extensions']) ?? documents.resolve(request);
  const refuse = (req: IncomingMessage, res: ServerResponse, refusal: DocumentRefusal): void =>
    sendGraphQLError(req, res, refusal.status, refusal.code, refusal.message, [], { asOf: asOf.current() });
  const { maxBodyBytes, maxBatchOperations } = limits;

  /**
   * Runs `proceed` once the offsets the request names are applied: at once when it names none (the common
   * case: no promise, no allocation), after the wait otherwise; answers 400 or 503 itself instead.
   */
  const afterOffsets = (
    req: IncomingMessage,
    res: ServerResponse,
    extensions: readonly unknown[],
    proceed: () => void,
  ): void => {
    const all: RequiredOffsets[] = [];
    for (const e of extensions) {
      const parsed = minOffsets.parse(e);
      if (parsed === undefined) continue;
      if ('error' in parsed) {
        sendGraphQLError(req, res, 400, ApiErrorCode.BadRequest, parsed.error, [], { asOf: asOf.current() });
        return;
      }
      all.push(parsed);
    }
    if (all.length === 0) return proceed();
    const required = all.length === 1 ? (all[0] as RequiredOffsets) : mergeRequired(all);
    if (minOffsets.applied(required)) return proceed();
    minOffsets
      .wait(required)
      .then((applied) => {
        if (res.destroyed) return;
        if (applied) return proceed();
        sendGraphQLError(
          req,
          res,
          503,
          ApiErrorCode.NotYetApplied,
          `Not answered: after ${minOffsets.timeoutMs} ms, ${minOffsets.describeBehind(required)}. Retry later.`,
          ['retry-after', RETRY_AFTER_SECONDS],
          { asOf: asOf.current() },
        );
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, 'GraphQL request failed after waiting for minOffsets');
        if (!res.headersSent)
          sendGraphQLError(req, res, 500, ApiErrorCode.InternalServerError, 'Unexpected error.');
        else res.destroy();
      });
  };

  const refuseTooLarge = (req: IncomingMessage, res: ServerResponse): void => {
    sendGraphQLError(
      req,
      res,
      413,
      ApiErrorCode.PayloadTooLarge,
      `Request body is larger than ${maxBodyBytes} bytes.`,
      [],
      { asOf: asOf.current() },
    );
  };

  const viaApollo = (
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    label: unknown,
    started: number,
    search?: string,
  ) => {
    // A subscription with Apollo Router's callbacks: its events' commits go on its `next` payloads (`asOf`).
    const extensions = (body as { extensions?: unknown } | null | undefined)?.extensions;
    const context =
      callbacks.enabled && callbacks.asksForCallback(extensions)
        ? () => createContext({ live: (live) => callbacks.recording(live, extensions) })
        : createContext;
    runApollo(apollo, context, req, res, body, search, asOf.current).then(
      () => timer.observe(label, started),
      (error: unknown) => {
        logger.error({ err: error }, 'GraphQL request failed outside Apollo error handling');
        if (!res.headersSent)
          sendGraphQLError(req, res, 500, ApiErrorCode.InternalServerError, 'Unexpected error.');
        else res.destroy();
      },
    );
  };

  const onBody = (req: IncomingMessage, res: ServerResponse, raw: Buffer, started: number): void => {
    const contentType = req.headers['content-type'];
    if (!isJson(contentType)) {
      // Apollo answers: CSRF prevention for simple content types, else 400 "invalid Content-Type".
      viaApollo(req, res, raw.toString(), undefined, started);
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString());
    } catch {
      sendGraphQLError(req, res, 400, ApiErrorCode.BadRequest, 'Request body is not valid JSON.', [], {
        asOf: asOf.current(),
      });
      return;
    }
    if (Array.isArray(body)) {
      if (body.length > maxBatchOperations) {
        const message =
          maxBatchOperations === 0
            ? 'Batched operations are not enabled on this server.'
            : `Batch has ${body.length} operations; the maximum is ${maxBatchOperations}.`;
        sendGraphQLError(req, res, 400, ApiErrorCode.BatchTooLarge, message, [], { asOf: asOf.current() });
        return;
      }
      const batch: unknown[] = [];
      for (const op of body as unknown[]) {
        if (typeof op !== 'object' || op === null) {
          batch.push(op);
          continue;
        }
        const admitted = admit(op as Record<string, unknown>);
        if (isRefusal(admitted)) return refuse(req, res, admitted);
        batch.push(admitted.request);
      }
      const extensions = batch.map((op) =>
        typeof op === 'object' && op !== null ? (op as Record<string, unknown>)['extensions'] : undefined,
      );
      afterOffsets(req, res, extensions, () => viaApollo(req, res, batch, 'batch', started));
      return;
    }
    if (typeof body !== 'object' || body === null) {
      viaApollo(req, res, body, undefined, started);
      return;
    }
    const admitted = admit(body as Record<string, unknown>);
    if (isRefusal(admitted)) return refuse(req, res, admitted);
    const extensions = admitted.request['extensions'];
    if (extensions === undefined || extensions === null) dispatch(req, res, admitted, contentType, started);
    else afterOffsets(req, res, [extensions], () => dispatch(req, res, admitted, contentType, started));
  };

  /** One operation whose offsets are applied: the fast path if it can, else Apollo. */
  const dispatch = (
    req: IncomingMessage,
    res: ServerResponse,
    { request, query }: ResolvedRequest,
    contentType: string | undefined,
    started: number,
  ): void => {
    const { operationName, variables } = request;
    if (
      fastPath !== undefined &&
      query !== undefined &&
      isPlainJson(contentType) &&
      isVariablesRecord(variables)
    ) {
      const resultType = knownResultType(req.headers.accept);
      const extensions = request['extensions'];
      const registering =
        typeof request['query'] === 'string' && persistedQueryHash(extensions) !== undefined;
      if (resultType !== undefined && !registering && fastExtensions(extensions)) {
        const plan = fastPath.planFor(query, operationName);
        let out: string | undefined;
        if (plan !== undefined) {
          try {
            out = plan.run(variables ?? undefined);
          } catch (error) {
            // A store read failed: Apollo runs it again and masks the error the usual way.
            logger.warn({ err: error }, 'fast path failed; retrying through Apollo');
          }
        }
        if (out !== undefined) {
          send(res, 200, resultType, out);
          timer.observe(operationName ?? plan?.operationName, started);
          return;
        }
      }
    }
    viaApollo(req, res, request, operationName, started);
  };

  return {
    post(req, res) {
      const started = performance.now();
      if (declaresTooLarge(req, maxBodyBytes)) {
        drainRefused(req);
        refuseTooLarge(req, res);
        return;
      }
      collectBody(
        req,
        maxBodyBytes,
        (raw) => onBody(req, res, raw, started),
        () => refuseTooLarge(req, res),
      );
    },
    get(req, res) {
      const started = performance.now();
      const url = req.url ?? '';
      const q = url.indexOf('?');
      if (q === -1) return viaApollo(req, res, undefined, undefined, started);
      const params = new URLSearchParams(url.slice(q + 1));
      const extensions = parseJsonParam(params.get('extensions'));
      // GET carries the request in its parameters: the same callback check and document resolution.
      const asRequest: Record<string, unknown> = {
        ...(params.has('query') ? { query: params.get('query') } : {}),
        ...(params.has('documentId') ? { documentId: params.get('documentId') } : {}),
        ...(extensions === undefined ? {} : { extensions }),
      };
      const admitted = admit(asRequest);
      if (isRefusal(admitted)) return refuse(req, res, admitted);
      const search = admitted.request === asRequest ? undefined : searchOf(params, admitted.request);
      const run = () => viaApollo(req, res, undefined, undefined, started, search);
      if (extensions === undefined) run();
      else afterOffsets(req, res, [admitted.request['extensions']], run);
    },
  };
}

/** A GET parameter holding JSON (`extensions`), parsed; undefined when absent or not JSON (Apollo answers). */
function parseJsonParam(raw: string | null): unknown {
  if (raw === null) return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}

/** The GET parameters for Apollo after the document resolution rewrote the request (allow-list mode). */
function searchOf(params: URLSearchParams, request: Record<string, unknown>): string {
  const out = new URLSearchParams(params);
  out.delete('documentId');
  out.delete('extensions');
  if (typeof request['query'] === 'string') out.set('query', request['query']);
  if (request['extensions'] !== undefined) out.set('extensions', JSON.stringify(request['extensions']));
  return `?${out.toString()}`;
}
