/**
 * The API server: GraphQL (fast path + Apollo), REST, health and metrics on one `http.Server`
 * (CONTRACT.md §3). The WebSocket transport attaches later to the same server and path `/graphql`
 * using `server`, `schema`, `createContext` and `validateOperation` from the returned object (see the
 * `ApiServer` docs); nothing here needs to change for it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GraphQLSchema } from 'graphql';
import type { Config } from '../src/ops/config.js';
import type { FeedMonitor } from './feed-monitor.js';
import type { Logger } from '../src/ops/logger.js';
import type { Metrics } from '../src/ops/metrics.js';
import type { ViewReader } from '../src/store/types.js';
import { createApollo } from './apollo.js';
import { createAsOfSource, type AsOfSource } from './consistency/as-of.js';
import { createMinOffsetsGate, type CommitSource, type MinOffsetsGate } from './consistency/min-offsets.js';
import { BoundedTextCache } from './gateway/apq-cache.js';
import { createCallbackPolicy } from './gateway/callback.js';
import { createDocumentGate, type DocumentGate } from './gateway/documents.js';
import { createFastPath } from './fast-path.js';
import { compileSubscriptionData } from './fast-path/compile.js';
import type { CompileEvents } from './shared-results.js';
import { createLiveRoute, createMetricsRoute, createReadyRoute } from './health.js';
import { createCors } from './http/cors.js';
import { createGraphqlRoute } from './http/graphql-route.js';
import { createRequestTimer } from './http/observe.js';
import { createRouter } from './http/router.js';
import { createOperationValidator, type ValidateOperation } from './limits.js';
import type { LiveSource } from '../src/live/types.js';
import { createPageRoute, DASHBOARD_PAGE, LIVE_PAGE } from './page/route.js';
import { useAsOf } from './plugins/use-as-of.js';
import { createUserRoute, USERS_PREFIX } from './rest.js';
import { buildApiSchema } from './schema/build.js';
import { createContextFactory, type ApiContext } from './schema/context.js';

/** The path of GraphQL over HTTP and, later, over WebSocket (graphql-transport-ws). */
export const GRAPHQL_PATH = '/graphql';

/** Everything the API needs from the rest of matview; the wiring (src/wiring/runtime.ts) builds these. */
export interface ApiServerOptions {
  readonly config: Config;
  readonly reader: ViewReader;
  readonly feed: FeedMonitor;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Source of subscription events; without it subscriptions answer SUBSCRIPTIONS_UNAVAILABLE. */
  readonly live?: LiveSource;
  /**
   * Store commits (`LmdbStore.onCommit`): they wake requests waiting for `extensions.minOffsets`. Without it such
   * a request is answered only if its offsets are applied when it arrives, else after MIN_OFFSETS_TIMEOUT_MS.
   */
  readonly commits?: CommitSource;
  /** false: every GraphQL request goes through Apollo (tests use it to compare both paths). */
  readonly fastPath?: boolean;
}

/** The running API and the hooks the WebSocket layer attaches with. */
export interface ApiServer {
  /** The one HTTP server. Attach graphql-ws with `new WebSocketServer({ server, path: GRAPHQL_PATH })`. */
  readonly server: Server;
  /** The executable subgraph schema (also what the WebSocket layer executes against). */
  readonly schema: GraphQLSchema;
  /** A fresh per-operation context (own DataLoader); call it once per subscription. */
  readonly createContext: () => ApiContext;
  /** The HTTP endpoint's validation (spec rules + limits + ids variables), for graphql-ws `onSubscribe`. */
  readonly validateOperation: ValidateOperation;
  /** `extensions.asOf` of responses (the WebSocket layer adds it to its results too). */
  readonly asOf: AsOfSource;
  /** Read-your-writes: the WebSocket layer waits for a `subscribe`'s `extensions.minOffsets` with it. */
  readonly minOffsets: MinOffsetsGate;
  /** The persisted-documents allow-list (and APQ lookups), which the WebSocket layer applies too. */
  readonly documents: DocumentGate;
  /** Subscription events written to JSON without graphql-js; undefined with `fastPath: false`. */
  readonly compileEvents: CompileEvents | undefined;
  /** Starts Apollo and listens on `config.port`/`config.host` (port 0: any free port). */
  listen(): Promise<{ port: number }>;
  /** Runs `hook` during `close()`, before the HTTP server closes (e.g. closing the WebSocket server). */
  onClose(hook: () => Promise<void>): void;
  /** Stops accepting, runs close hooks, lets in-flight requests finish (up to the shutdown timeout), stops Apollo. */
  close(): Promise<void>;
}

/** Builds the API server; nothing listens until `listen()`. */
export function createApiServer(options: ApiServerOptions): ApiServer {
  const { config, reader, feed, metrics } = options;
  const logger = options.logger.child({ component: 'api' });
  const schema = buildApiSchema();
  const createContext = createContextFactory({ reader, feed, live: options.live });
  const validateOperation = createOperationValidator(schema, config);
  const asOf = createAsOfSource(reader, feed);
  const { persistedDocuments, apqCacheBytes, callbackUrlPrefixes } = config.gateway;
  // In allow-list mode the edge resolves ids from the manifest and Apollo sees only listed texts: no APQ.
  const apq =
    persistedDocuments === undefined && apqCacheBytes > 0 ? new BoundedTextCache(apqCacheBytes) : undefined;
  const documents = createDocumentGate({ persisted: persistedDocuments, apq });
  const callbacks = createCallbackPolicy(callbackUrlPrefixes, asOf);
  const minOffsets = createMinOffsetsGate({
    reader,
    commits: options.commits,
    topics: Object.values(config.topics),
    timeoutMs: config.minOffsetsTimeoutMs,
  });
  const apollo = createApollo(schema, config, logger, { apq, callbacks }, [useAsOf(asOf)]);
  const fastPath =
    options.fastPath === false
      ? undefined
      : createFastPath({
          schema,
          reader,
          feed,
          validate: validateOperation,
          maxTokens: config.limits.maxTokens,
          maxIds: config.limits.maxIds,
          asOf,
        });
  const graphql = createGraphqlRoute({
    apollo,
    createContext,
    fastPath,
    limits: config.limits,
    timer: createRequestTimer(metrics.graphqlSeconds),
    logger,
    minOffsets,
    asOf,
    documents,
    callbacks,
  });
  const user = createUserRoute(reader, metrics.restSeconds);
  const live = createLiveRoute(feed);
  const ready = createReadyRoute(feed);
  const prometheus = createMetricsRoute(metrics, logger);
  const page = createPageRoute(LIVE_PAGE);
  const dashboard = createPageRoute(DASHBOARD_PAGE);
  // CORS_ORIGINS covers what a frontend on another origin reads: GraphQL, REST and health. Not the pages
  // (same-origin by nature) nor /metrics (for Prometheus, never for a browser).
  const cors = createCors(config.corsOrigins);
  const router = createRouter(
    {
      exact: {
        '/': { GET: page, HEAD: page },
        '/dashboard': { GET: dashboard, HEAD: dashboard },
        [GRAPHQL_PATH]: cors.route({ GET: graphql.get, POST: graphql.post }),
        '/health/live': cors.route({ GET: live, HEAD: live }),
        '/health/ready': cors.route({ GET: ready, HEAD: ready }),
        '/metrics': { GET: prometheus, HEAD: prometheus },
      },
      prefixed: { prefix: USERS_PREFIX, route: cors.route({ GET: user, HEAD: user }) },
    },
    logger,
  );
  // Node's defaults let one client hold a socket for minutes (headersTimeout 60 s, requestTimeout 300 s,
  // no connection cap): bound them so slow or idle clients cannot starve good ones (SECURITY.md).
  const server = createServer(
    {
      headersTimeout: config.limits.headersTimeoutMs,
      requestTimeout: config.limits.requestTimeoutMs,
      keepAliveTimeout: config.limits.keepAliveTimeoutMs,
    },
    router,
  );
  if (config.limits.maxConnections > 0) server.maxConnections = config.limits.maxConnections;
  const closeHooks: (() => Promise<void>)[] = [];
  let started: Promise<void> | undefined;

  return {
    server,
    schema,
    createContext,
    validateOperation,
    asOf,
    minOffsets,
    documents,
    compileEvents:
      options.fastPath === false
        ? undefined
        : (document, operationName) => compileSubscriptionData(schema, document, operationName),
    async listen() {
      started ??= apollo.start();
      await started;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const { port } = server.address() as AddressInfo;
      logger.info({ port, host: config.host }, 'API listening');
      return { port };
    },
    onClose(hook) {
      closeHooks.push(hook);
    },
    async close() {
      const closed = server.listening
        ? new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())))
        : Promise.resolve();
      for (const hook of closeHooks) await hook();
      // In-flight requests may finish within the shutdown budget; then every connection is cut.
      const cut = setTimeout(() => server.closeAllConnections(), config.shutdownTimeoutMs);
      cut.unref();
      try {
        await closed;
      } finally {
        clearTimeout(cut);
      }
      if (started !== undefined) await apollo.stop();
    },
  };
}
