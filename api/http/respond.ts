/**
 * Writing responses with as little per-request work as Node allows: one `writeHead` with a flat header
 * array (no header object to normalise) and an explicit Content-Length (no chunked encoding).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiErrorCode } from '../codes.js';
import { APPLICATION_JSON, errorResultType } from './negotiate.js';

/** Sends `body` (already serialized) with the given status and media type. */
export function send(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string | Buffer,
  extraHeaders: readonly string[] = [],
): void {
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  res.writeHead(status, ['content-type', contentType, 'content-length', String(length), ...extraHeaders]);
  res.end(body);
}

/** The REST/health error body: `{"error":{"code":…,"message":…}}` (CONTRACT.md §3, seed 002's 404). */
export function sendError(
  res: ServerResponse,
  status: number,
  code: ApiErrorCode,
  message: string,
  extraHeaders: readonly string[] = [],
): void {
  send(res, status, APPLICATION_JSON, JSON.stringify({ error: { code, message } }), extraHeaders);
}

/**
 * A GraphQL request error we answer before Apollo sees the request (body too large, batch too large,
 * invalid JSON, offsets not applied): the GraphQL response shape `{"errors":[…]}`, so GraphQL clients read it
 * as usual, with the response `extensions` (`asOf`) when given.
 */
export function sendGraphQLError(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  code: ApiErrorCode,
  message: string,
  extraHeaders: readonly string[] = [],
  extensions?: object,
): void {
  const result = {
    errors: [{ message, extensions: { code } }],
    ...(extensions === undefined ? {} : { extensions }),
  };
  const body = `${JSON.stringify(result)}\n`;
  send(res, status, errorResultType(req.headers.accept), body, extraHeaders);
}
