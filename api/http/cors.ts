/**
 * Cross-origin resource sharing (Fetch standard §3.2 "CORS protocol") for `/graphql`, `/users/:id` and the
 * health routes, configured by `CORS_ORIGINS`. The default `*` is what Apollo Server's standalone server does
 * (the `cors` package with its defaults): any origin may read, without credentials. A list allows exactly
 * those origins; `none` sends no CORS headers at all (same-origin pages only).
 *
 * - A request carrying `Origin` from an allowed origin gets `Access-Control-Allow-Origin` (`*`, or the origin
 *   itself when a list is configured) and `Access-Control-Expose-Headers: ETag` (so a page can revalidate the
 *   REST resource). Any other origin gets no CORS header, so the browser withholds the response.
 * - A preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered 204 with the route's methods, the
 *   request headers the browser asked about (reflected, as the `cors` package does: Apollo Client sends
 *   `apollo-require-preflight`, `x-apollo-operation-name` and whatever the app adds) and a max age.
 * - With a list, every response of these routes carries `Vary: Origin`, so a shared cache never hands one
 *   origin's answer to another.
 * Credentials (cookies) are never allowed: matview authenticates nothing by cookie.
 *
 * Headers are added with `setHeader` before the route writes its own with `writeHead(status, array)`; Node
 * merges the two. Requests without `Origin` (servers, curl, the bench) are untouched under `*`.
 */
import type { ServerResponse } from 'node:http';
import { rawHeader } from './raw-header.js';
import type { Route, RouteHandler } from './router.js';

/** `CORS_ORIGINS`: `*` (any origin), or the exact origins allowed (empty: none). */
export type CorsOrigins = '*' | readonly string[];

/** How long a browser may cache a preflight answer (Chromium caps it at 7200 s). */
export const PREFLIGHT_MAX_AGE_SECONDS = 7200;

/** CORS for the routes of one server. */
export interface Cors {
  /** `route` with CORS headers on every method and an `OPTIONS` handler answering preflights. */
  route(route: Route): Route;
  /**
   * Whether a WebSocket handshake may proceed: no `Origin` (not a browser), an allowed origin, or the server's
   * own (`Origin` naming the `Host` the request was sent to: the live page at `/`).
   */
  allowsSocket(origin: string | undefined, host: string | undefined): boolean;
}

export function createCors(origins: CorsOrigins): Cors {
  const any = origins === '*';
  const listed: ReadonlySet<string> = new Set(any ? [] : origins);
  const allowOrigin = (origin: string | undefined): string | undefined => {
    if (origin === undefined) return undefined;
    if (any) return '*';
    return listed.has(origin) ? origin : undefined;
  };

  /** Headers for an actual (non-preflight) response. */
  const decorate = (res: ServerResponse, origin: string | undefined): void => {
    if (!any) res.setHeader('vary', 'Origin');
    const allowed = allowOrigin(origin);
    if (allowed === undefined) return;
    res.setHeader('access-control-allow-origin', allowed);
    res.setHeader('access-control-expose-headers', 'ETag');
  };

  return {
    allowsSocket: (origin, host) =>
      origin === undefined ||
      allowOrigin(origin) !== undefined ||
      (host !== undefined && origin.slice(origin.indexOf('//') + 2) === host),
    route(route) {
      const methods = Object.keys(route).join(', ');
      const wrapped: { -readonly [M in keyof Route]: RouteHandler } = {};
      for (const [method, handler] of Object.entries(route) as [keyof Route, RouteHandler][]) {
        wrapped[method] = (req, res, path) => {
          // Nothing at all in the common no-Origin case under `*` (not even building `req.headers`).
          const origin = rawHeader(req, 'origin');
          if (!any || origin !== undefined) decorate(res, origin);
          handler(req, res, path);
        };
      }
      wrapped.OPTIONS = (req, res) => {
        const headers: string[] = ['allow', `${methods}, OPTIONS`, 'content-length', '0'];
        const allowed = allowOrigin(req.headers.origin);
        const preflight = req.headers['access-control-request-method'] !== undefined;
        if (!any) headers.push('vary', 'Origin, Access-Control-Request-Headers');
        if (preflight && allowed !== undefined) {
          headers.push(
            'access-control-allow-origin',
            allowed,
            'access-control-allow-methods',
            methods,
            'access-control-max-age',
            String(PREFLIGHT_MAX_AGE_SECONDS),
          );
          const asked = req.headers['access-control-request-headers'];
          if (asked !== undefined && asked !== '') headers.push('access-control-allow-headers', asked);
          if (any) headers.push('vary', 'Access-Control-Request-Headers');
        }
        res.writeHead(204, headers);
        res.end();
      };
      return wrapped;
    },
  };
}
