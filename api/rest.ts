/**
 * `GET /users/:userId` — seed 002's User Information Service resource. The store keeps the JSON object
 * ready to send (`ViewReader.getUserJsonVersioned`), so this is a lookup and a write: no parse, no stringify.
 *
 * Conditional requests (RFC 9110 §8.8.3, §13.1.2): the `ETag` is the view's `version.sequence`, which changes
 * with every commit that changes the user, prefixed by a random tag of this server process. Sequences are
 * counted per store (every replica has its own), and a store restored from an older snapshot counts again from
 * that snapshot's sequence, reusing numbers for other content; so a tag is only ever compared with tags of the
 * same process: another replica or a restarted one answers 200 with its own tag, never a wrong 304.
 * `If-None-Match` with the current tag (or `*`) answers 304 without a body. `Cache-Control: no-cache` lets
 * browsers and CDNs keep the body but revalidate it on every use.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ViewReader } from '../src/store/types.js';
import { ApiErrorCode } from './codes.js';
import { rawHeader } from './http/raw-header.js';
import { APPLICATION_JSON } from './http/negotiate.js';
import { send, sendError } from './http/respond.js';

/** Path prefix of the resource; what follows is the (percent-encoded) userId. */
export const USERS_PREFIX = '/users/';

/** Handles `GET|HEAD /users/:userId`; `path` is the request path without the query string. */
export function createUserRoute(
  reader: ViewReader,
  latency?: { observe(seconds: number): void },
): (req: IncomingMessage, res: ServerResponse, path: string) => void {
  // 48 random bits per process: tags of two processes never match.
  const epoch = randomBytes(6).toString('base64url');
  return (req, res, path) => {
    if (latency === undefined) return handle(req, res, path);
    const started = performance.now();
    handle(req, res, path);
    latency.observe((performance.now() - started) / 1000);
  };

  function handle(req: IncomingMessage, res: ServerResponse, path: string): void {
    let userId = path.slice(USERS_PREFIX.length);
    if (userId.includes('%')) {
      try {
        userId = decodeURIComponent(userId);
      } catch {
        sendError(res, 400, ApiErrorCode.BadRequest, 'The userId in the path is not valid percent-encoding.');
        return;
      }
    }
    const found = reader.getUserJsonVersioned(userId);
    if (found === undefined) {
      sendError(res, 404, ApiErrorCode.UserNotFound, `No user with userId ${JSON.stringify(userId)}.`);
      return;
    }
    const etag = `"${epoch}.${found.sequence}"`;
    const ifNoneMatch = rawHeader(req, 'if-none-match');
    if (ifNoneMatch !== undefined && matchesAny(ifNoneMatch, etag)) {
      res.writeHead(304, ['etag', etag, 'cache-control', 'no-cache']);
      res.end();
      return;
    }
    send(res, 200, APPLICATION_JSON, found.json, ['etag', etag, 'cache-control', 'no-cache']);
  }
}

/** RFC 9110 §13.1.2: `*`, or any listed tag equal under weak comparison (a `W/` prefix is ignored). */
export function matchesAny(ifNoneMatch: string, etag: string): boolean {
  if (ifNoneMatch.trim() === '*') return true;
  for (const part of ifNoneMatch.split(',')) {
    const tag = part.trim();
    if ((tag.startsWith('W/') ? tag.slice(2) : tag) === etag) return true;
  }
  return false;
}
