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
import { isVariablesRecord, type FastPath } from '../fast-path.js';
import type { Limits } from '../limits.js';
import type { ApiContext } from '../schema/context.js';
import { runApollo } from './apollo-handler.js';
import { collectBody, declaresTooLarge, drainRefused } from './body.js';
import { knownResultType } from './negotiate.js';
import type { RequestTimer } from './observe.js';
import { send, sendGraphQLError } from './respond.js';

/** Collaborators of the `/graphql` route, all built once per server. */
export interface GraphqlRouteOptions {
  readonly apollo: ApolloServer<ApiContext>;
  readonly createContext: () => ApiContext;
  /** undefined: every request goes through Apollo (tests compare both paths). */
  readonly fastPath: FastPath | undefined;
  readonly limits: Limits;
  readonly timer: RequestTimer;
  readonly logger: Logger;
  /** Read-your-writes: waits for `extensions.minOffsets`. */
  readonly minOffsets: MinOffsetsGate;
  /** `extensions.asOf` of the errors answered here. */
  readonly asOf: Pick<AsOfSource, 'current'>;
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

/** Extension keys the fast path serves with (anything else, e.g. APQ, goes to Apollo). */
const FAST_EXTENSIONS: ReadonlySet<string> = new Set(['minOffsets']);

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
  const { apollo, createContext, fastPath, limits, timer, logger, minOffsets, asOf } = options;
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
    );
  };

  const viaApollo = (
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    label: unknown,
    started: number,
  ) => {
    runApollo(apollo, createContext, req, res, body).then(
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
      const extensions = body.map((op: unknown) =>
        typeof op === 'object' && op !== null ? (op as Record<string, unknown>)['extensions'] : undefined,
      );
      afterOffsets(req, res, extensions, () => viaApollo(req, res, body, 'batch', started));
      return;
    }
    if (typeof body !== 'object' || body === null) {
      viaApollo(req, res, body, undefined, started);
      return;
    }
    const request = body as Record<string, unknown>;
    const extensions = request['extensions'];
    if (extensions === undefined || extensions === null) dispatch(req, res, request, contentType, started);
    else afterOffsets(req, res, [extensions], () => dispatch(req, res, request, contentType, started));
  };

  /** One operation whose offsets are applied: the fast path if it can, else Apollo. */
  const dispatch = (
    req: IncomingMessage,
    res: ServerResponse,
    request: Record<string, unknown>,
    contentType: string | undefined,
    started: number,
  ): void => {
    const { query, operationName, variables } = request;
    if (
      fastPath !== undefined &&
      typeof query === 'string' &&
      isPlainJson(contentType) &&
      isVariablesRecord(variables)
    ) {
      const resultType = knownResultType(req.headers.accept);
      if (resultType !== undefined && fastExtensions(request['extensions'])) {
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
      const extensions = getExtensions(req.url);
      if (extensions === undefined) viaApollo(req, res, undefined, undefined, started);
      else afterOffsets(req, res, [extensions], () => viaApollo(req, res, undefined, undefined, started));
    },
  };
}

/** The parsed `extensions` query parameter of a GET (GraphQL over HTTP §"GET"), if present and JSON. */
function getExtensions(url: string | undefined): unknown {
  const q = url?.indexOf('?') ?? -1;
  if (url === undefined || q === -1 || !url.includes('extensions=', q)) return undefined;
  const raw = new URLSearchParams(url.slice(q + 1)).get('extensions');
  if (raw === null) return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined; // Apollo answers the malformed parameter
  }
}
