/**
 * A node:http integration for Apollo Server 5 (Apollo docs "Building integrations"): turn the request
 * into an `HTTPGraphQLRequest`, call `executeHTTPGraphQLRequest`, write the `HTTPGraphQLResponse` back.
 * The body arrives already read and parsed (api/http/graphql-route.ts owns reading and limits).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeaderMap, type ApolloServer, type HTTPGraphQLResponse } from '@apollo/server';
import type { ApiContext } from '../schema/context.js';

/**
 * Runs one request (POST body, or undefined for GET) through Apollo and writes the answer. `search` replaces the
 * URL's query string (a GET whose parameters the edge rewrote).
 */
export async function runApollo(
  apollo: ApolloServer<ApiContext>,
  createContext: () => ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  body: unknown,
  search?: string,
  asOf?: () => object,
): Promise<void> {
  const url = req.url ?? '';
  const query = url.indexOf('?');
  const response = await apollo.executeHTTPGraphQLRequest({
    httpGraphQLRequest: {
      method: (req.method ?? 'GET').toUpperCase(),
      headers: toHeaderMap(req),
      search: search ?? (query === -1 ? '' : url.slice(query)),
      body,
    },
    context: () => Promise.resolve(createContext()),
  });
  await writeResponse(res, asOf === undefined ? response : withAsOf(response, asOf));
}

/**
 * Apollo answers some malformed requests (CSRF prevention, a bad GET parameter, an unusable content type)
 * before any plugin runs, so `useAsOf` never sees them: those error bodies get `extensions.asOf` here.
 */
function withAsOf(response: HTTPGraphQLResponse, asOf: () => object): HTTPGraphQLResponse {
  const { body } = response;
  if ((response.status ?? 200) < 400 || body.kind !== 'complete' || !body.string.startsWith('{"errors"'))
    return response;
  let result: { extensions?: Record<string, unknown> };
  try {
    result = JSON.parse(body.string) as { extensions?: Record<string, unknown> };
  } catch {
    return response;
  }
  if (result.extensions?.['asOf'] !== undefined) return response;
  result.extensions = { ...result.extensions, asOf: asOf() };
  return { ...response, body: { kind: 'complete', string: `${JSON.stringify(result)}\n` } };
}

function toHeaderMap(req: IncomingMessage): HeaderMap {
  const headers = new HeaderMap();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return headers;
}

async function writeResponse(res: ServerResponse, response: HTTPGraphQLResponse): Promise<void> {
  const flat: string[] = [];
  for (const [name, value] of response.headers) flat.push(name, value);
  if (response.body.kind === 'complete') {
    const body = response.body.string;
    flat.push('content-length', String(Buffer.byteLength(body)));
    res.writeHead(response.status ?? 200, flat);
    res.end(body);
    return;
  }
  // Incremental delivery (multipart): stream the parts as Apollo produces them.
  res.writeHead(response.status ?? 200, flat);
  for await (const chunk of response.body.asyncIterator) res.write(chunk);
  res.end();
}
