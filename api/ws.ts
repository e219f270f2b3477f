/**
 * GraphQL over WebSocket: the graphql-transport-ws protocol (graphql-ws v6 `useServer`) on the API's HTTP
 * server and path (`/graphql`, CONTRACT.md §3). Events come from the injected `LiveSource` through the
 * schema's subscription resolvers; this adapter only adds what is about sockets:
 *
 * - limits: `connection_init` timeout (4408), operations per connection, `maxPayload`, keep-alive pings, and
 *   every subscribe document validated exactly like an HTTP request (`validateOperation`: spec rules, depth,
 *   aliases, tokens, `ids` length), as DESIGN.md asks ("apply the same rules to subscriptions");
 * - optional bearer-token auth in `connection_init` (4403);
 * - backpressure: a subscription stops pulling events while the socket's buffer is full (api/ws/backpressure.ts);
 * - the same error masking as HTTP (`createFormatError`).
 *
 * Protocol violations (garbage frames 4400, subscribe before ack 4401, duplicate id 4409, second init 4429)
 * are graphql-ws's own checks; the codes are listed in api/ws/close-codes.ts.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  GraphQLError,
  execute,
  parse,
  type DocumentNode,
  type ExecutionArgs,
  type FormattedExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
} from 'graphql';
import type { ConnectionInitMessage, SubscribePayload } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import { createCors } from './http/cors.js';
import { createTokenCheck } from './ws/auth.js';
import { gateAsyncIterator, socketFlowControl } from './ws/backpressure.js';
import { LiveCloseCode } from './ws/close-codes.js';
import type { Config } from '../src/ops/config.js';
import type { Logger } from '../src/ops/logger.js';
import { ApiErrorCode } from './codes.js';
import { asOfEvent, type AsOfSource } from './consistency/as-of.js';
import type { MinOffsetsGate } from './consistency/min-offsets.js';
import type { DocumentGate } from './gateway/documents.js';
import { apiError } from './errors.js';
import { DOCUMENT_CACHE_ENTRIES, MAX_CACHED_QUERY_LENGTH } from './fast-path.js';
import { ClockCache } from './fast-path/clock-cache.js';
import type { ValidateOperation } from './limits.js';
import { createFormatError } from './plugins/use-masked-errors.js';
import { createSharedSubscribe, withExtensions, type CompileEvents } from './shared-results.js';
import { createFrameSerializer, type FrameSerializer } from './ws-frames.js';

/**
 * `extensions.code` of the error a `subscribe` gets when its connection already runs `WS_MAX_SUBSCRIPTIONS`
 * operations. The socket stays open; the client may complete another operation and retry.
 */
export const TOO_MANY_SUBSCRIPTIONS = ApiErrorCode.TooManySubscriptions;

/** Close reason for a refused token: says what to send, never which tokens exist (max 123 bytes, RFC 6455). */
const FORBIDDEN_REASON = 'Forbidden: connection_init needs connectionParams.authorization "Bearer <token>"';

/** How long `close()` lets clients answer the 1001 close frame before cutting their sockets. */
const CLOSE_GRACE_MS = 1_000;

/**
 * Close reason for a peer that missed a ping (RFC 6455 §5.5.2): it is gone, or reads so slowly that a ping
 * waited behind a whole keep-alive interval of data. Says how to come back without losing a change.
 */
const KEEP_ALIVE_REASON =
  'No pong in time (too slow or gone). Resubscribe with after: the last event version.sequence, to resume.';

/** What the adapter needs of the API server (`createApiServer`'s result has all of it). */
export interface WebSocketApi {
  readonly server: Server;
  readonly schema: GraphQLSchema;
  readonly createContext: () => object;
  readonly validateOperation: ValidateOperation;
  /** `extensions.asOf` on every result (api/consistency/as-of.ts); without it, none. */
  readonly asOf?: Pick<AsOfSource, 'current' | 'at'>;
  /** Read-your-writes for `subscribe` messages carrying `extensions.minOffsets`; without it they are ignored. */
  readonly minOffsets?: MinOffsetsGate;
  /** The persisted-documents allow-list, as over HTTP (gateway/documents.ts); without it any document runs. */
  readonly documents?: Pick<DocumentGate, 'resolveSubscribe'>;
  /** Writes subscription events' JSON without graphql-js (the fast path's compiler); without it, executed. */
  readonly compileEvents?: CompileEvents | undefined;
}

/** Options of {@link attachLiveWebSocket}. */
export interface LiveWebSocketOptions {
  readonly api: WebSocketApi;
  readonly config: Pick<Config, 'live' | 'limits' | 'development' | 'corsOrigins'>;
  readonly logger: Logger;
  /** Default `/graphql`, the HTTP endpoint's path. */
  readonly path?: string;
}

/** Counters of the WebSocket endpoint, for tests and diagnostics. */
export interface LiveWebSocketStats {
  /** Open WebSocket connections. */
  readonly connections: number;
  /** Times a subscription stopped pulling events because its socket's buffer was over WS_BACKPRESSURE_BYTES. */
  readonly backpressureWaits: number;
}

/** The attached WebSocket endpoint. */
export interface LiveWebSocket {
  stats(): LiveWebSocketStats;
  /** Stops accepting upgrades, closes every socket with 1001 (cut after a short grace). Idempotent. */
  close(): Promise<void>;
}

type InitPayload = NonNullable<ConnectionInitMessage['payload']>;

/** Attaches graphql-ws to the API's HTTP server. Call `close()` before the HTTP server closes. */
export function attachLiveWebSocket(options: LiveWebSocketOptions): LiveWebSocket {
  const { api, config } = options;
  const path = options.path ?? '/graphql';
  const logger = options.logger.child({ component: 'ws' });
  const live = config.live;
  const formatError = createFormatError({
    logger,
    development: config.development,
    maxTokens: config.limits.maxTokens,
  });
  const format = (errors: readonly GraphQLError[]): GraphQLFormattedError[] =>
    errors.map((e) => formatError(e.toJSON(), e));
  const checkToken = createTokenCheck(live.authTokens);
  let backpressureWaits = 0;
  const onWait = (): void => {
    backpressureWaits++;
  };

  // `noServer`: we route upgrades ourselves, so only `/graphql` is ever handed to ws (others get a 404).
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: live.maxPayloadBytes,
    perMessageDeflate: false,
  });

  // Every client of a dashboard sends the same subscription text: parse it once (validation is then
  // memoized per document by validateOperation) and let all of them share one DocumentNode, which is what
  // lets `subscribe` execute each event once per document instead of once per subscription.
  const documents = new ClockCache<string, DocumentNode>(DOCUMENT_CACHE_ENTRIES);
  const frames = createFrameSerializer();
  const parseCached = (query: string): DocumentNode => {
    let document = documents.get(query);
    if (document === undefined) {
      document = parse(query, { maxTokens: config.limits.maxTokens });
      if (query.length <= MAX_CACHED_QUERY_LENGTH) documents.set(query, document);
    }
    return document;
  };

  const { asOf, minOffsets } = api;
  /** A `subscribe`'s `extensions.minOffsets`: waited for; errors when malformed or not applied in time. */
  const awaitOffsets = async (payload: SubscribePayload): Promise<readonly GraphQLError[]> => {
    const required = minOffsets?.parse(payload.extensions);
    if (minOffsets === undefined || required === undefined) return [];
    if ('error' in required) return [apiError(ApiErrorCode.BadRequest, required.error)];
    if (await minOffsets.wait(required)) return [];
    return [
      apiError(
        ApiErrorCode.NotYetApplied,
        `Not started: after ${minOffsets.timeoutMs} ms, ${minOffsets.describeBehind(required)}. Retry later.`,
      ),
    ];
  };

  const disposable = useServer<InitPayload>(
    {
      schema: api.schema,
      // Each event's result carries the commit it comes from (the change's own, src/live/hub.ts).
      subscribe: createSharedSubscribe(
        asOf === undefined ? undefined : (event) => ({ asOf: asOfEvent(asOf, event) }),
        api.compileEvents,
      ),
      // Queries and mutations over the socket: the store position taken before executing, as over HTTP.
      execute:
        asOf === undefined
          ? execute
          : (args) => {
              const extensions = { asOf: asOf.current() };
              const result = execute(args);
              return result instanceof Promise
                ? result.then((r) => withExtensions(r, extensions))
                : withExtensions(result, extensions);
            },
      // From the validated config, not graphql-ws's own NODE_ENV check: internal error close reasons carry
      // the error message only in development (CONTRACT.md §4).
      isProd: !config.development,
      connectionInitWaitTimeout: live.initTimeoutMs,
      onConnect: (ctx) => {
        if (checkToken === undefined || checkToken(ctx.connectionParams)) return true;
        // graphql-ws would close with a bare "Forbidden"; close first with a reason that says what to send.
        ctx.extra.socket.close(LiveCloseCode.Forbidden, FORBIDDEN_REASON);
        return false;
      },
      onSubscribe: async (ctx, _id, payload): Promise<ExecutionArgs | readonly GraphQLError[]> => {
        // graphql-ws registers the operation before calling us, so the count includes this one.
        const running = Object.keys(ctx.subscriptions).length;
        if (running > live.maxSubscriptionsPerConnection) {
          const message = `Too many operations on this connection: at most ${live.maxSubscriptionsPerConnection} may run at once; complete one first.`;
          return [new GraphQLError(message, { extensions: { code: TOO_MANY_SUBSCRIPTIONS } })];
        }
        // The allow-list applies here as over HTTP: a listed text, or an id of one (an empty query with
        // extensions.persistedQuery), else PERSISTED_QUERY_NOT_FOUND / PERSISTED_QUERY_NOT_IN_LIST.
        const text = api.documents === undefined ? payload.query : api.documents.resolveSubscribe(payload);
        if (text instanceof GraphQLError) return [text];
        let document: DocumentNode;
        try {
          document = parseCached(text);
        } catch (error) {
          if (error instanceof GraphQLError) return [withCode(error, ApiErrorCode.GraphqlParseFailed)];
          throw error;
        }
        const variables = payload.variables ?? null;
        const errors = api.validateOperation(document, variables);
        if (errors.length > 0) return errors.map((e) => withCode(e, ApiErrorCode.GraphqlValidationFailed));
        const offsetErrors = payload.extensions === undefined ? [] : await awaitOffsets(payload);
        if (offsetErrors.length > 0) return offsetErrors;
        return {
          schema: api.schema,
          document,
          operationName: payload.operationName ?? null,
          variableValues: variables,
          contextValue: api.createContext(),
        };
      },
      onOperation: (ctx, _id, _payload, _args, result) => {
        if (!isAsyncIterable(result)) return undefined;
        const flow = socketFlowControl(ctx.extra.socket, ctx.extra.request.socket, live.backpressureBytes);
        return gateAsyncIterator(result[Symbol.asyncIterator](), flow, onWait);
      },
      onNext: (ctx, _id, _payload, _args, result): FormattedExecutionResult | undefined => {
        if (result.errors === undefined) return frames.payloadFor(ctx.extra.socket, result);
        return { ...result, errors: format(result.errors) } as FormattedExecutionResult;
      },
      onError: (_ctx, _id, _payload, errors) => format(errors),
    },
    wss,
    // Pings are ours (below): graphql-ws would terminate a silent peer without a word.
    0,
  );

  const cors = createCors(config.corsOrigins);
  const refuse = (socket: Duplex, status: string): void => {
    socket.once('error', () => socket.destroy());
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    if ((q === -1 ? url : url.slice(0, q)) !== path) {
      refuse(socket, '404 Not Found');
      return;
    }
    // Browsers do not apply CORS to WebSocket: a page of any site could open one with its visitor's network
    // position (cross-site WebSocket hijacking). A browser's handshake always carries Origin, so the
    // CORS_ORIGINS list is enforced here (the server's own pages always pass); clients that are not browsers
    // send no Origin and are not affected.
    if (!cors.allowsSocket(req.headers.origin, req.headers.host)) {
      refuse(socket, '403 Forbidden');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      coalesceWrites(ws, socket, frames);
      keepAlive(ws, live.keepAliveMs);
      wss.emit('connection', ws, req);
      // graphql-ws `useServer` just added a socket 'error' listener that console.errors "Internal error" and
      // closes with 4500. Errors `ws` raises for a client's bad frames (code WS_ERR_*: too big, bad UTF-8,
      // unmasked…) are not ours: ws already closes with the right status (1009, 1007, 1002), so log them quietly.
      ws.removeAllListeners('error');
      ws.on('error', (err: Error & { code?: string }) => {
        if (err.code?.startsWith('WS_ERR_') === true) {
          logger.debug({ code: err.code, message: err.message }, 'WebSocket client protocol error');
          return;
        }
        logger.error({ err }, 'WebSocket error');
        ws.close(LiveCloseCode.InternalServerError, 'Internal server error');
      });
    });
  };
  api.server.on('upgrade', onUpgrade);

  let closing: Promise<void> | undefined;
  return {
    stats: () => ({ connections: wss.clients.size, backpressureWaits }),
    close: () =>
      (closing ??= (async () => {
        api.server.off('upgrade', onUpgrade);
        const clients = [...wss.clients];
        const closed = Promise.all(
          clients.map(
            (c) =>
              new Promise<void>((resolve) =>
                c.readyState === c.CLOSED ? resolve() : c.once('close', () => resolve()),
              ),
          ),
        );
        await disposable.dispose(); // 1001 Going away to every client
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
        await Promise.race([closed, grace]);
        clearTimeout(timer);
        for (const c of clients) if (c.readyState !== c.CLOSED) c.terminate();
      })()),
  };
}

/**
 * The connection's `send`, wrapped for fan-out:
 * - sends made in one turn of the event loop leave in one `writev`. A commit wakes every subscription of a
 *   connection within the same turn, and `ws` otherwise writes each frame with its own system call. The
 *   socket is corked at the first send of a turn and uncorked once the turn's callbacks have run
 *   (`setImmediate`); `ws`'s own cork/uncork around each frame nests inside;
 * - a `next` frame carrying a token gets its result's JSON (api/ws-frames.ts).
 */
function coalesceWrites(ws: WebSocket, raw: Duplex, frames: FrameSerializer): void {
  const send = ws.send;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    raw.uncork();
  };
  ws.send = function (this: WebSocket, data: unknown, ...rest: unknown[]): void {
    if (!corked && !raw.destroyed) {
      corked = true;
      raw.cork();
      setImmediate(uncork);
    }
    (send as (...args: unknown[]) => void).call(this, frames.expand(this, data), ...rest);
  } as WebSocket['send'];
}

/**
 * graphql-ws' keep-alive, plus a word for the peer: every `intervalMs` a ping; a peer that has not answered by
 * the next one is closed with {@link LiveCloseCode.KeepAliveTimeout} and a reason saying how to resume (a slow
 * reader may still get it), then cut if it does not answer the close either.
 */
function keepAlive(ws: WebSocket, intervalMs: number): void {
  if (intervalMs <= 0) return;
  let answered = true;
  ws.on('pong', () => {
    answered = true;
  });
  const timer = setInterval(() => {
    if (ws.readyState !== ws.OPEN) return;
    if (!answered) {
      clearInterval(timer);
      ws.close(LiveCloseCode.KeepAliveTimeout, KEEP_ALIVE_REASON);
      setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
      return;
    }
    answered = false;
    ws.ping();
  }, intervalMs);
  timer.unref();
  ws.once('close', () => clearInterval(timer));
}

/** The error with `code` in its extensions unless it already has one (Apollo labels HTTP errors the same way). */
function withCode(error: GraphQLError, code: ApiErrorCode): GraphQLError {
  if (error.extensions['code'] !== undefined) return error;
  return new GraphQLError(error.message, {
    ...(error.nodes === undefined ? {} : { nodes: error.nodes }),
    ...(error.source === undefined ? {} : { source: error.source }),
    ...(error.positions === undefined ? {} : { positions: error.positions }),
    ...(error.path === undefined ? {} : { path: error.path }),
    extensions: { ...error.extensions, code },
  });
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
