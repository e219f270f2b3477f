/**
 * `extensions.asOf` on every response Apollo sends (api/consistency/as-of.ts): the store commit and the feed's
 * lag, taken when the request starts, before anything is read. Errors included: a client can tell how fresh a
 * server was even when its request failed. The fast path writes the same extension itself.
 */
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import type { AsOfSource } from '../consistency/as-of.js';

/** Apollo plugin adding `extensions.asOf` to every single and incremental response. */
export function useAsOf(source: Pick<AsOfSource, 'current'>): ApolloServerPlugin<BaseContext> {
  return {
    async requestDidStart() {
      const asOf = source.current();
      return {
        async willSendResponse({ response }) {
          const result =
            response.body.kind === 'single' ? response.body.singleResult : response.body.initialResult;
          result.extensions = { ...result.extensions, asOf };
        },
      };
    },
  };
}
