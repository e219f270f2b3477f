/**
 * Response media type for GraphQL results (GraphQL-over-HTTP §"Accept" / Apollo `chooseContentType…`).
 * Apollo negotiates with the `negotiator` package; the fast path must answer with the very same type, so
 * it only serves Accept values whose outcome is known (listed below and checked against Apollo by
 * test/api/fast-path.test.ts); any other value goes through Apollo.
 */

/** `application/json` as Apollo writes it: the legacy type every GraphQL client accepts. */
export const APPLICATION_JSON = 'application/json; charset=utf-8';
/** The GraphQL-over-HTTP response type; clients opt in through Accept. */
export const GRAPHQL_RESPONSE_JSON = 'application/graphql-response+json; charset=utf-8';

const KNOWN = new Map<string, string>([
  ['*/*', APPLICATION_JSON],
  ['application/json', APPLICATION_JSON],
  ['application/json; charset=utf-8', APPLICATION_JSON],
  ['application/json, */*', APPLICATION_JSON],
  ['application/json, text/plain, */*', APPLICATION_JSON],
  ['application/json, application/graphql-response+json', APPLICATION_JSON],
  ['application/graphql-response+json', GRAPHQL_RESPONSE_JSON],
  ['application/graphql-response+json, application/json', GRAPHQL_RESPONSE_JSON],
  ['application/graphql-response+json,application/json', GRAPHQL_RESPONSE_JSON],
  ['application/graphql-response+json, application/json;q=0.9', GRAPHQL_RESPONSE_JSON],
  [
    'application/graphql-response+json;charset=utf-8, application/json;charset=utf-8;q=0.9',
    GRAPHQL_RESPONSE_JSON,
  ],
]);

/** The type Apollo would choose for a single result, or undefined when this table does not know. */
export function knownResultType(accept: string | undefined): string | undefined {
  // Apollo: no (or an empty) Accept header means application/json.
  if (accept === undefined || accept === '') return APPLICATION_JSON;
  return KNOWN.get(accept);
}

/** For errors we answer ourselves (413, batch too large, bad JSON): close enough to Apollo's choice. */
export function errorResultType(accept: string | undefined): string {
  const known = knownResultType(accept);
  if (known !== undefined) return known;
  return accept?.includes('application/graphql-response+json') === true
    ? GRAPHQL_RESPONSE_JSON
    : APPLICATION_JSON;
}
