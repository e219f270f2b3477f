/**
 * Subscriptions are served over WebSocket (graphql-transport-ws on `/graphql`, CONTRACT.md §3), not over
 * plain HTTP. Without this, graphql-js would `execute` a subscription like a query and fail deep inside
 * with a masked error; the client deserves a clear request error instead (HTTP 400).
 */
import type { ApolloServerPlugin, BaseContext, GraphQLRequestListener } from '@apollo/server';
import { ApiErrorCode } from '../codes.js';
import { apiError } from '../errors.js';

/** Apollo plugin refusing subscription operations on the HTTP endpoint. */
export function useNoHttpSubscriptions(): ApolloServerPlugin<BaseContext> {
  const listener: GraphQLRequestListener<BaseContext> = {
    async didResolveOperation({ operation }) {
      if (operation?.operation === 'subscription') {
        throw apiError(
          ApiErrorCode.SubscriptionsUnavailable,
          'Subscriptions are served over WebSocket (graphql-transport-ws) at /graphql, not over HTTP.',
          { status: 400 },
        );
      }
    },
  };
  return { requestDidStart: async () => listener };
}
