/**
 * The per-request half of the limits for Apollo: `ids` lists passed as variables (the literal half runs
 * with the validation rules, cached with the document). Rejects the request before execution with
 * TOO_MANY_IDS / HTTP 400, as GraphQL-over-HTTP expects for a request error.
 */
import type { ApolloServerPlugin, BaseContext, GraphQLRequestListener } from '@apollo/server';
import { checkIdsVariables } from '../limits.js';

/** Apollo plugin enforcing `maxIds` on variables. */
export function useIdsVariableLimit(maxIds: number): ApolloServerPlugin<BaseContext> {
  // One listener object for every request: nothing allocated per request but the check itself.
  const listener: GraphQLRequestListener<BaseContext> = {
    async didResolveOperation({ document, request }) {
      const error = checkIdsVariables(document, request.variables, maxIds);
      if (error !== undefined) throw error;
    },
  };
  return { requestDidStart: async () => listener };
}
