/**
 * The Apollo Server instance behind everything the fast path does not answer. Configured for a
 * production read service: parse limits (`maxTokens`), our validation rules, masked errors, no stack
 * traces or introspection unless configured, batching as configured, no APQ, no signal handlers (the
 * serve runtime owns shutdown), and no per-request extras (plugins/use-lean-apollo.ts).
 */
import { ApolloServer, type ApolloServerPlugin, type BaseContext } from '@apollo/server';
import type { GraphQLSchema } from 'graphql';
import type { Config } from '../src/ops/config.js';
import type { Logger } from '../src/ops/logger.js';
import { limitRules } from './limits.js';
import { useIdsVariableLimit } from './plugins/use-limits.js';
import { useLeanApollo } from './plugins/use-lean-apollo.js';
import { createFormatError } from './plugins/use-masked-errors.js';
import { useNoHttpSubscriptions } from './plugins/use-no-http-subscriptions.js';
import type { ApiContext } from './schema/context.js';

/** Builds (but does not start) the Apollo Server for `schema`; `plugins` come after the built-in ones. */
export function createApollo(
  schema: GraphQLSchema,
  config: Config,
  logger: Logger,
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
    // Automatic persisted queries would add a second cache keyed by client-chosen hashes; not needed.
    persistedQueries: false,
    stopOnTerminationSignals: false,
    plugins: [
      ...useLeanApollo(development),
      useIdsVariableLimit(limits.maxIds),
      useNoHttpSubscriptions(),
      ...plugins,
    ],
  });
}
