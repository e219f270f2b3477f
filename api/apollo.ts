/**
 * The Apollo Server instance behind everything the fast path does not answer. Configured for a
 * production read service: parse limits (`maxTokens`), our validation rules, masked errors, no stack
 * traces or introspection unless configured, batching as configured, APQ with a bounded cache (off in
 * allow-list mode, where the edge resolves ids: gateway/documents.ts), Apollo Router's subscription callbacks
 * when allowed (gateway/callback.ts), no signal handlers (the serve runtime owns shutdown), and no
 * per-request extras (plugins/use-lean-apollo.ts).
 */
import { ApolloServer, type ApolloServerPlugin, type BaseContext } from '@apollo/server';
import { ApolloServerPluginSubscriptionCallback } from '@apollo/server/plugin/subscriptionCallback';
import type { GraphQLSchema } from 'graphql';
import type { Config } from '../src/ops/config.js';
import type { Logger } from '../src/ops/logger.js';
import { limitRules } from './limits.js';
import { useIdsVariableLimit } from './plugins/use-limits.js';
import { useLeanApollo } from './plugins/use-lean-apollo.js';
import { createFormatError } from './plugins/use-masked-errors.js';
import { useNoHttpSubscriptions } from './plugins/use-no-http-subscriptions.js';
import type { ApiContext } from './schema/context.js';
import type { TextCache } from './gateway/apq-cache.js';
import type { CallbackPolicy } from './gateway/callback.js';

/** The gateway features Apollo takes part in. */
export interface ApolloGateway {
  /** The APQ cache, or undefined: APQ off (`APQ_CACHE_BYTES=0`, or allow-list mode). */
  readonly apq: TextCache | undefined;
  readonly callbacks: CallbackPolicy;
}

/** Builds (but does not start) the Apollo Server for `schema`; `plugins` come after the built-in ones. */
export function createApollo(
  schema: GraphQLSchema,
  config: Config,
  logger: Logger,
  gateway: ApolloGateway,
  plugins: readonly ApolloServerPlugin<BaseContext>[] = [],
): ApolloServer<ApiContext> {
  const { limits, development } = config;
  return new ApolloServer<ApiContext>({
    schema,
    logger,
    nodeEnv: development ? 'development' : 'production',
    introspection: config.introspection,
    includeStacktraceInErrorResponses: development,
    formatError: createFormatError({ logger, development, maxTokens: limits.maxTokens }),
    parseOptions: { maxTokens: limits.maxTokens },
    validationRules: limitRules(limits),
    allowBatchedHttpRequests: limits.maxBatchOperations > 0,
    // Keyed by client-chosen hashes, so bounded (gateway/apq-cache.ts); ttl null: only size evicts.
    persistedQueries: gateway.apq === undefined ? false : { cache: gateway.apq, ttl: null },
    stopOnTerminationSignals: false,
    plugins: [
      ...useLeanApollo(development),
      useIdsVariableLimit(limits.maxIds),
      useNoHttpSubscriptions(gateway.callbacks),
      ...(gateway.callbacks.enabled
        ? [
            ApolloServerPluginSubscriptionCallback({
              fetcher: gateway.callbacks.fetcher,
              logger: logger.child({ component: 'subscription-callback' }),
            }),
          ]
        : []),
      ...plugins,
    ],
  });
}
