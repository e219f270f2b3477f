/**
 * Subscriptions are served over WebSocket (graphql-transport-ws on `/graphql`, CONTRACT.md §3), not over
 * plain HTTP. Without this, graphql-js would `execute` a subscription like a query and fail deep inside
 * with a masked error; the client deserves a clear request error instead (HTTP 400). The one exception is
 * Apollo Router's callback protocol (`extensions.subscription`, when SUBSCRIPTION_CALLBACK_URLS allows it and
 * the edge has checked the URL: gateway/callback.ts): Apollo's subscription callback plugin serves those.
 */
import type { ApolloServerPlugin, BaseContext, GraphQLRequestListener } from '@apollo/server';
import { ApiErrorCode } from '../codes.js';
import { apiError } from '../errors.js';
import type { CallbackPolicy } from '../gateway/callback.js';

/** Apollo plugin refusing subscription operations on the HTTP endpoint. */
export function useNoHttpSubscriptions(
  callbacks: Pick<CallbackPolicy, 'enabled' | 'asksForCallback'>,
): ApolloServerPlugin<BaseContext> {
  const listener: GraphQLRequestListener<BaseContext> = {
    async didResolveOperation({ operation, request }) {
      if (operation?.operation === 'subscription') {
        if (callbacks.enabled && callbacks.asksForCallback(request.extensions)) return;
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
