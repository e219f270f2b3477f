/**
 * `GET /users/:userId` — seed 002's User Information Service resource. The store keeps the JSON object
 * ready to send (`ViewReader.getUserJson`), so this is a lookup and a write: no parse, no stringify.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ViewReader } from '../src/store/types.js';
import { ApiErrorCode } from './codes.js';
import { APPLICATION_JSON } from './http/negotiate.js';
import { send, sendError } from './http/respond.js';

/** Path prefix of the resource; what follows is the (percent-encoded) userId. */
export const USERS_PREFIX = '/users/';

/** Handles `GET|HEAD /users/:userId`; `path` is the request path without the query string. */
export function createUserRoute(
  reader: ViewReader,
  latency?: { observe(seconds: number): void },
): (req: IncomingMessage, res: ServerResponse, path: string) => void {
  return (_req, res, path) => {
    if (latency === undefined) return handle(res, path);
    const started = performance.now();
    handle(res, path);
    latency.observe((performance.now() - started) / 1000);
  };

  function handle(res: ServerResponse, path: string): void {
    let userId = path.slice(USERS_PREFIX.length);
    if (userId.includes('%')) {
      try {
        userId = decodeURIComponent(userId);
      } catch {
        sendError(res, 400, ApiErrorCode.BadRequest, 'The userId in the path is not valid percent-encoding.');
        return;
      }
    }
    const json = reader.getUserJson(userId);
    if (json === undefined) {
      sendError(res, 404, ApiErrorCode.UserNotFound, `No user with userId ${JSON.stringify(userId)}.`);
      return;
    }
    send(res, 200, APPLICATION_JSON, json);
  }
}
