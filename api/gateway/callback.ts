/**
 * Apollo Router's HTTP callback protocol for subscriptions, subgraph side (Apollo docs "HTTP callback
 * protocol", `callback/1.0`): the router POSTs the subscription with
 * `extensions.subscription = { callbackUrl, subscriptionId, verifier, heartbeatIntervalMs }`; the subgraph
 * `check`s the callback URL before it answers `{"data":null}`, then POSTs `next` for every event, a `check`
 * every heartbeat interval, and `complete` at the end. Apollo Server's own plugin
 * (`@apollo/server/plugin/subscriptionCallback`) does all of that; this module is what it needs from us:
 *
 * - the callback URL comes from the request, so without a bound any client could make matview POST to any
 *   address it can reach (server-side request forgery, repeated every heartbeat). The protocol is off unless
 *   `SUBSCRIPTION_CALLBACK_URLS` lists URL prefixes, and a request whose callback URL is under none of them is
 *   refused before anything is sent (`check`); the fetcher checks again before every request;
 * - the fetcher never follows a redirect (a 3xx ends the subscription) and gives up on a request after
 *   {@link CALLBACK_TIMEOUT_MS}, so a router that stops answering cannot pile requests up;
 * - every `next` payload carries `extensions.asOf` like an event over WebSocket: the commit its state comes
 *   from (what a client resumes `after`), the feed's lag then. The plugin sends one payload at a time and pulls
 *   the next event only once the previous `next` was answered (its `for await` loop), so the payload being
 *   sent is always of the last event the subscription's source handed out: `recording` keeps that event's
 *   commit per subscription id, and the fetcher adds it to the body.
 */
import type { ApolloServerPluginSubscriptionCallbackOptions } from '@apollo/server/plugin/subscriptionCallback';
import type { LiveSource } from '../../src/live/types.js';
import { asOfEvent, type AsOfSource } from '../consistency/as-of.js';
import { ApiErrorCode } from '../codes.js';
import type { DocumentRefusal } from './documents.js';

/** Longest one callback request (`check`, `next`, `complete`) may take before it counts as failed. */
export const CALLBACK_TIMEOUT_MS = 5_000;

/** The `fetch` Apollo's subscription callback plugin takes. */
export type CallbackFetcher = NonNullable<ApolloServerPluginSubscriptionCallbackOptions['fetcher']>;

export interface CallbackPolicy {
  /** True when `SUBSCRIPTION_CALLBACK_URLS` is set. */
  readonly enabled: boolean;
  /** Undefined when the request asks for no callback or may have it; else why it is refused. */
  refusal(extensions: unknown): DocumentRefusal | undefined;
  /** True when a request asks for callbacks (`extensions.subscription`). */
  asksForCallback(extensions: unknown): boolean;
  /** What Apollo's plugin sends with: allowed URLs only, no redirects, a timeout, `asOf` on every `next`. */
  readonly fetcher: CallbackFetcher;
  /**
   * `live` as a callback subscription (`extensions.subscription.subscriptionId`) sees it: every event it hands
   * out is recorded as that subscription's current one (for `asOf` on its `next`), forgotten when it ends.
   * Requests without a subscription id get `live` itself.
   */
  recording(live: LiveSource | undefined, extensions: unknown): LiveSource | undefined;
}

interface Prefix {
  readonly origin: string;
  readonly path: string;
}

/** Hands out `source`'s events, recording each in `slot` first; `done` when the iteration ends, however. */
async function* recorded<E>(
  source: AsyncIterable<E>,
  slot: { event: unknown },
  done: () => void,
): AsyncGenerator<E, void, undefined> {
  try {
    for await (const event of source) {
      slot.event = event;
      yield event;
    }
  } finally {
    done();
  }
}

export function createCallbackPolicy(
  prefixes: readonly string[],
  asOf?: Pick<AsOfSource, 'current' | 'at'>,
): CallbackPolicy {
  /** Per subscription id: the event whose `next` is being sent. */
  const current = new Map<string, { event: unknown }>();
  const allowed: Prefix[] = prefixes.map((p) => {
    const url = new URL(p);
    // A prefix is a directory: `/callback` allows `/callback/<id>`, never `/callbackevil`.
    return { origin: url.origin, path: url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/` };
  });
  const isAllowed = (raw: unknown): boolean => {
    if (typeof raw !== 'string') return false;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return false;
    }
    if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') return false;
    // URL has already resolved dot segments, so `/callback/../admin` cannot pass as `/callback/`.
    return allowed.some((p) => url.origin === p.origin && url.pathname.startsWith(p.path));
  };
  const subscriptionOf = (extensions: unknown): Record<string, unknown> | undefined => {
    if (typeof extensions !== 'object' || extensions === null) return undefined;
    const sub = (extensions as Record<string, unknown>)['subscription'];
    return typeof sub === 'object' && sub !== null ? (sub as Record<string, unknown>) : undefined;
  };
  return {
    enabled: allowed.length > 0,
    asksForCallback: (extensions) => subscriptionOf(extensions) !== undefined,
    refusal(extensions) {
      const sub = subscriptionOf(extensions);
      if (sub === undefined) return undefined;
      const url = sub['callbackUrl'] ?? sub['callback_url'];
      if (allowed.length === 0)
        return {
          status: 400,
          code: ApiErrorCode.CallbackUrlNotAllowed,
          message:
            'Subscription callbacks are off on this server (SUBSCRIPTION_CALLBACK_URLS is not set); subscribe over WebSocket instead.',
        };
      if (isAllowed(url)) return undefined;
      return {
        status: 400,
        code: ApiErrorCode.CallbackUrlNotAllowed,
        message:
          'extensions.subscription.callbackUrl is not under any of the callback URLs this server allows.',
      };
    },
    fetcher: (url, init) => {
      if (!isAllowed(url)) return Promise.reject(new Error(`callback URL not allowed: ${url.slice(0, 200)}`));
      // The plugin sends JSON strings with plain header records: what `fetch` takes as is.
      const request = init as RequestInit | undefined;
      return fetch(url, {
        ...request,
        ...(asOf === undefined || typeof request?.body !== 'string' ? {} : { body: withAsOf(request.body) }),
        redirect: 'manual',
        signal: AbortSignal.timeout(CALLBACK_TIMEOUT_MS),
      });
    },
    recording(live, extensions) {
      const id = subscriptionOf(extensions)?.['subscriptionId'];
      if (live === undefined || asOf === undefined || typeof id !== 'string') return live;
      const wrap = <E>(source: AsyncIterable<E>): AsyncIterable<E> => {
        const slot: { event: unknown } = { event: undefined };
        current.set(id, slot);
        return recorded(source, slot, () => {
          if (current.get(id) === slot) current.delete(id);
        });
      };
      return {
        subscribeUsers: (ids, options) => wrap(live.subscribeUsers(ids, options)),
        subscribeTopUsers: (ranking, limit, fingerprint) =>
          wrap(live.subscribeTopUsers(ranking, limit, fingerprint)),
        subscribeTotals: (fingerprint) => wrap(live.subscribeTotals(fingerprint)),
      };
    },
  };

  /** A `next` message's body with `payload.extensions.asOf` (the other messages have no payload). */
  function withAsOf(body: string): string {
    if (asOf === undefined) return body;
    let message: { action?: unknown; id?: unknown; payload?: { extensions?: Record<string, unknown> } };
    try {
      message = JSON.parse(body) as typeof message;
    } catch {
      return body;
    }
    if (message.action !== 'next' || typeof message.id !== 'string' || message.payload === undefined)
      return body;
    message.payload.extensions = {
      ...message.payload.extensions,
      asOf: asOfEvent(asOf, current.get(message.id)?.event),
    };
    return JSON.stringify(message);
  }
}
