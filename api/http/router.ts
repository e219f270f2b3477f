/**
 * Routing for the one port (CONTRACT.md §3): exact paths plus the `/users/:userId` prefix, checked with
 * plain string comparisons (no URL object per request). Known paths with another method get 405 and an
 * `Allow` header (RFC 9110 §15.5.6); unknown paths get a JSON 404. A handler that throws is answered with
 * a masked 500 and logged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../src/ops/logger.js';
import { ApiErrorCode } from '../codes.js';
import { sendError } from './respond.js';

/** A route handler; `path` is the request path without the query string. */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse, path: string) => void;

/** One path: handlers by method. */
export type Route = Readonly<Partial<Record<'GET' | 'HEAD' | 'POST' | 'OPTIONS', RouteHandler>>>;

/** The routes of the one port: exact paths and one prefix route (`/users/:userId`). */
export interface RouteTable {
  /** Exact paths. */
  readonly exact: Readonly<Record<string, Route>>;
  /** Paths starting with `prefix` and holding exactly one more, non-empty segment. */
  readonly prefixed: { readonly prefix: string; readonly route: Route };
}

/** Builds the request listener for `http.createServer`. */
export function createRouter(
  table: RouteTable,
  logger: Logger,
): (req: IncomingMessage, res: ServerResponse) => void {
  const exact = new Map(Object.entries(table.exact));
  const { prefix } = table.prefixed;
  const allowOf = new Map<Route, string>();
  for (const route of [...exact.values(), table.prefixed.route])
    allowOf.set(route, Object.keys(route).join(', '));

  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    let route = exact.get(path);
    if (
      route === undefined &&
      path.startsWith(prefix) &&
      path.length > prefix.length &&
      !path.includes('/', prefix.length)
    ) {
      route = table.prefixed.route;
    }
    if (route === undefined) {
      sendError(res, 404, ApiErrorCode.NotFound, `No route for ${req.method ?? 'GET'} ${path}.`);
      return;
    }
    const handler = route[req.method as keyof Route];
    if (handler === undefined) {
      const allow = allowOf.get(route) ?? '';
      sendError(
        res,
        405,
        ApiErrorCode.MethodNotAllowed,
        `${req.method ?? ''} is not allowed here; use ${allow}.`,
        ['allow', allow],
      );
      return;
    }
    try {
      handler(req, res, path);
    } catch (error) {
      logger.error({ err: error, path }, 'request handler failed');
      if (!res.headersSent) sendError(res, 500, ApiErrorCode.InternalServerError, 'Unexpected error.');
      else res.destroy();
    }
  };
}
