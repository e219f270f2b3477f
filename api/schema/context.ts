/**
 * Per-operation GraphQL context. The user DataLoader lives here and nowhere else: a loader shared across
 * requests would serve one request's reads to another and grow without bound (envelop's dataloader
 * plugin builds loaders at context creation for the same reason).
 */
import DataLoader from 'dataloader';
import type { ViewReader } from '../../src/store/types.js';
import type { FeedMonitor } from '../feed-monitor.js';
import type { UserInformation } from '../../src/views/user-information.js';
import type { LiveSource } from '../../src/live/types.js';

/** What resolvers may use. Built by `createContextFactory` once per HTTP operation or subscription. */
export interface ApiContext {
  readonly reader: ViewReader;
  readonly feed: FeedMonitor;
  /** undefined: subscriptions answer SUBSCRIPTIONS_UNAVAILABLE. */
  readonly live: LiveSource | undefined;
  /** Batches every `load` of one tick into ONE `reader.getUsers` call; null for unknown ids. */
  readonly users: DataLoader<string, UserInformation | null>;
}

/** Dependencies the context is made of; fixed for the server's lifetime. */
export interface ContextDependencies {
  readonly reader: ViewReader;
  readonly feed: FeedMonitor;
  readonly live?: LiveSource | undefined;
}

/** Per-operation choices of a context. */
export interface ContextOptions {
  /** The LiveSource this operation subscribes through, made from the server's (a callback's recording one). */
  readonly live?: (live: LiveSource | undefined) => LiveSource | undefined;
}

/**
 * Returns the function that builds a fresh context. The batch function reads synchronously from the
 * memory map, so the promise it returns is already settled: batching costs one microtask, not I/O.
 */
export function createContextFactory(deps: ContextDependencies): (options?: ContextOptions) => ApiContext {
  const { reader, feed } = deps;
  const live = deps.live;
  const batch = (ids: readonly string[]): Promise<(UserInformation | null)[]> => {
    try {
      const found = reader.getUsers(ids);
      const out = new Array<UserInformation | null>(ids.length);
      for (let i = 0; i < ids.length; i++) out[i] = found[i] ?? null;
      return Promise.resolve(out);
    } catch (error) {
      // Rejecting (instead of throwing) hands every load the store's own error, not DataLoader's wrapper.
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  };
  // The loader is made on first use: subscriptions never load through it.
  return (options) => {
    let users: DataLoader<string, UserInformation | null> | undefined;
    return {
      reader,
      feed,
      live: options?.live === undefined ? live : options.live(live),
      get users() {
        return (users ??= new DataLoader(batch));
      },
    };
  };
}
