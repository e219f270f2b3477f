/**
 * Client-visible error codes: the `extensions.code` of GraphQL errors and the `error.code` of REST/HTTP
 * error bodies. Clients branch on these, so a code is never renamed or reused (graphql-ws `CloseCode`,
 * fastify `lib/errors.js`). Apollo's own codes keep Apollo's spelling so stock clients recognise them.
 * `api/README.md` "Error codes" lists the same table; `test/api/codes.test.ts` keeps the two in step.
 */
export enum ApiErrorCode {
  /** The document is not valid GraphQL syntax (Apollo `GRAPHQL_PARSE_FAILED`, GraphQL spec §2). HTTP 400. */
  GraphqlParseFailed = 'GRAPHQL_PARSE_FAILED',
  /** The document does not validate against the schema (GraphQL spec §5), e.g. an unknown field. HTTP 400. */
  GraphqlValidationFailed = 'GRAPHQL_VALIDATION_FAILED',
  /** A variable or argument value has the wrong type or is missing (Apollo `BAD_USER_INPUT`). HTTP 400. */
  BadUserInput = 'BAD_USER_INPUT',
  /** The HTTP request is not a well-formed GraphQL-over-HTTP request (bad JSON, no query, bad params). HTTP 400. */
  BadRequest = 'BAD_REQUEST',
  /** `operationName` names no operation of the document, or is missing with several operations. HTTP 400. */
  OperationResolutionFailure = 'OPERATION_RESOLUTION_FAILURE',
  /** Automatic persisted queries are off on this server (`APQ_CACHE_BYTES=0`): send the full query. */
  PersistedQueryNotSupported = 'PERSISTED_QUERY_NOT_SUPPORTED',
  /**
   * A persisted query id the server does not know: under APQ, send the query with its hash once (Apollo's
   * protocol, HTTP 200); with `PERSISTED_DOCUMENTS_FILE`, an id not in the manifest (HTTP 400).
   */
  PersistedQueryNotFound = 'PERSISTED_QUERY_NOT_FOUND',
  /** `PERSISTED_DOCUMENTS_FILE` is set and the operation's text is not one of its documents. HTTP 400. */
  PersistedQueryNotInList = 'PERSISTED_QUERY_NOT_IN_LIST',
  /**
   * A subscription over HTTP asked for callbacks (`extensions.subscription`, Apollo Router's callback protocol)
   * to a URL outside `SUBSCRIPTION_CALLBACK_URLS`, or the protocol is off. HTTP 400.
   */
  CallbackUrlNotAllowed = 'CALLBACK_URL_NOT_ALLOWED',
  /** The document has more lexical tokens than `MAX_TOKENS` (parsing stops there). HTTP 400. */
  TooManyTokens = 'TOO_MANY_TOKENS',
  /** Fields nest deeper than `MAX_QUERY_DEPTH` (introspection fields are not counted). HTTP 400. */
  QueryTooDeep = 'QUERY_TOO_DEEP',
  /** The operation uses more aliases than `MAX_ALIASES`, counting each fragment spread. HTTP 400. */
  TooManyAliases = 'TOO_MANY_ALIASES',
  /** An `ids` list (`users`, `usersChanged`) is longer than `MAX_IDS`. HTTP 400. */
  TooManyIds = 'TOO_MANY_IDS',
  /** `topUsers` / `topUsersChanged`: `limit` is not between 1 and 100 (or is null). HTTP 400. */
  LimitOutOfRange = 'LIMIT_OUT_OF_RANGE',
  /** The request body is larger than `MAX_BODY_BYTES`; it is refused unread. HTTP 413. */
  PayloadTooLarge = 'PAYLOAD_TOO_LARGE',
  /** A batched (array) body has more operations than `MAX_BATCH_OPERATIONS`, or batching is off (0). HTTP 400. */
  BatchTooLarge = 'BATCH_TOO_LARGE',
  /** A WebSocket `subscribe` while the connection already runs `WS_MAX_SUBSCRIPTIONS` operations; the socket stays open. */
  TooManySubscriptions = 'TOO_MANY_SUBSCRIPTIONS',
  /** Subscriptions need the WebSocket transport (not HTTP) and a live source on the server. HTTP 400. */
  SubscriptionsUnavailable = 'SUBSCRIPTIONS_UNAVAILABLE',
  /** Something failed that the client cannot fix; the details are only in the server log. HTTP 500. */
  InternalServerError = 'INTERNAL_SERVER_ERROR',
  /** `GET /users/:userId`: there is no users row for that id. HTTP 404. */
  UserNotFound = 'USER_NOT_FOUND',
  /** No route for this path. HTTP 404. */
  NotFound = 'NOT_FOUND',
  /** The path exists but not for this method; the `Allow` header lists the ones that do. HTTP 405. */
  MethodNotAllowed = 'METHOD_NOT_ALLOWED',
  /** `GET /health/ready`: the view has not caught up yet; `reason` says why. HTTP 503. */
  NotReady = 'NOT_READY',
  /** `GET /health/live`: the feed loop crashed or stalled. HTTP 503. */
  NotLive = 'NOT_LIVE',
  /**
   * `extensions.minOffsets` named records the view had not applied within `MIN_OFFSETS_TIMEOUT_MS`; nothing was
   * executed. Retry (the `Retry-After` header says when). HTTP 503.
   */
  NotYetApplied = 'NOT_YET_APPLIED',
}

const OWN_CODES: ReadonlySet<string> = new Set(Object.values(ApiErrorCode));

/** True for codes of this catalogue: the masking boundary lets errors carrying one through. */
export function isApiErrorCode(code: unknown): code is ApiErrorCode {
  return typeof code === 'string' && OWN_CODES.has(code);
}
