/**
 * `/graphql` over HTTP (GraphQL-over-HTTP draft, Apollo Server 5 behaviour). POST bodies are read here
 * with the byte cap (413 before anything is buffered past it), batched arrays are checked against
 * MAX_BATCH_OPERATIONS, then the fast path answers what it can and Apollo answers the rest. GET goes
 * straight to Apollo (queries only, CSRF prevention per Apollo defaults).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApolloServer } from '@apollo/server';
import type { Logger } from '../../src/ops/logger.js';
import { ApiErrorCode } from '../codes.js';
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

/** Builds the `/graphql` handlers: body cap, batch cap, fast path, then Apollo. */
export function createGraphqlRoute(options: GraphqlRouteOptions): GraphqlRoute {
  const { apollo, createContext, fastPath, limits, timer, logger } = options;
  const { maxBodyBytes, maxBatchOperations } = limits;

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
      sendGraphQLError(req, res, 400, ApiErrorCode.BadRequest, 'Request body is not valid JSON.');
      return;
    }
    if (Array.isArray(body)) {
      if (body.length > maxBatchOperations) {
        const message =
          maxBatchOperations === 0
            ? 'Batched operations are not enabled on this server.'
            : `Batch has ${body.length} operations; the maximum is ${maxBatchOperations}.`;
        sendGraphQLError(req, res, 400, ApiErrorCode.BatchTooLarge, message);
        return;
      }
      viaApollo(req, res, body, 'batch', started);
      return;
    }
    if (typeof body !== 'object' || body === null) {
      viaApollo(req, res, body, undefined, started);
      return;
    }
    const request = body as Record<string, unknown>;
    const { query, operationName, variables } = request;
    if (
      fastPath !== undefined &&
      typeof query === 'string' &&
      isPlainJson(contentType) &&
      isVariablesRecord(variables)
    ) {
      const resultType = knownResultType(req.headers.accept);
      const extensions = request['extensions'];
      if (resultType !== undefined && (extensions === undefined || extensions === null)) {
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
    viaApollo(req, res, body, operationName, started);
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
      viaApollo(req, res, undefined, undefined, started);
    },
  };
}
