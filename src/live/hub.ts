/**
 * The live hub: turns store commits into subscription events (DESIGN.md "live"). It keeps an index
 * (view, key) → subscriptions watching it; each commit wakes only the subscriptions indexed under the keys
 * it changed, view by view. No polling, and no per-commit scan of every subscription.
 *
 * Two kinds of subscription:
 * - user subscriptions (`userChanged`, `usersChanged`): a conflating mailbox per watched user, fed with the
 *   new view the commit carries (subscription.ts);
 * - state subscriptions (`topUsersChanged`, `totalsChanged`): woken by a commit that changed a key they
 *   depend on, they read the current value when their reader is ready and send it if it differs from the
 *   last one sent (state-subscription.ts).
 *
 * Snapshot without a gap — why registering first and reading second is enough:
 * 1. A subscription is registered in the index and reads its first state in ONE synchronous block (no
 *    `await` between them), and `LmdbStore` calls commit listeners synchronously, in commit order, right
 *    after it bumps `sequence()`. JavaScript runs one block at a time, so every commit is either published
 *    entirely before the block (its effects are in the snapshot and `sequence()` counts it) or entirely
 *    after it (the subscription is already indexed and receives it). None is missed.
 * 2. One window remains: a commit may be readable before its listener ran (`sequence()` still says N-1 while
 *    the memory map shows N). A user's snapshot then carries `version.sequence` N, and the later delta N is
 *    dropped as "not newer" by the subscription: the snapshot's sequence is taken per user as
 *    max(view.version.sequence, sequence()). A state subscription reads again when N's event wakes it and
 *    sends nothing when the value is the one it already sent.
 * 3. A user deleted by N inside that window reads as absent with sequence N-1, so the client gets a
 *    SNAPSHOT with `user: null` followed by a DELETED: the same state twice, never a wrong or older one.
 * Per user, deltas then arrive in commit order because `publish` is called in commit order and the
 * subscription drops anything not newer than what it already holds.
 *
 * State reads are shared: the subscriptions reading one state (a ranking and limit, the totals) while
 * `sequence()` says S get the same value object, read once. A value read while `sequence()` is S holds
 * every commit up to S, and possibly S+1 inside the window of point 2; its dependencies are read with it,
 * so a later commit that changes it wakes its readers, and they read again under the new sequence. Sharing
 * the object is what lets the API execute each subscriber document once per value (api/shared-results.ts).
 *
 * Resuming with `after` — why the client never misses the latest state:
 * 4. Every event carries the commit its state comes from (`change.sequence`: the commit of an UPDATED or
 *    DELETED; for a SNAPSHOT the user's `version.sequence`, or for a user without a users row the last commit
 *    that took any user's view away, `userViewsRemovedAt()`: the store keeps no per-user trace of a view that
 *    went away, but it records, in the same transaction, every commit, swap and view rebuild that may remove
 *    one, so the user has been without a view since then at the latest), sent as `extensions.asOf.sequence`
 *    and equal to `version.sequence` when there is a user. A subscription delivers in
 *    that order: snapshots are queued sorted by it, deltas come in commit order, and a conflated change moves to
 *    the back of the mailbox (src/live/subscription.ts). So a client whose last event came from commit S has
 *    received every state older than S, and perhaps only some of the states of S itself: one commit changes
 *    several users, and the socket may drop between their events.
 * 5. The resuming subscription registers and reads in one synchronous block, exactly as in 1., and decides per
 *    user from that one read, with c = the commit its current state comes from: c > S → its state is queued as
 *    the first event (UPDATED, or DELETED without a users row); c < S → the client holds that very state (4.),
 *    nothing is queued; c = S → queued when the subscription watches several users (4.: the client may lack
 *    it), not when it watches one (the client's last event was that user's). Either way `newest` is the read's
 *    sequence, so every later commit is delivered (1.) and none already in the read is delivered again (2.).
 *    Hence: the latest state of every user is never missed. A state is sent twice only to a multi-user
 *    subscription for users of the commit it resumed after, and for a user without a users row when some
 *    user's view was taken away since `after` (its c is that commit: a DELETED sent again rather than a
 *    deletion lost). A store written before removals were recorded answers `sequence()` for c.
 * 6. Sequences count per store. An `after` above `sequence()` cannot come from this store (another replica, or a
 *    store restored from an older snapshot): it is ignored and the client gets SNAPSHOTs, which never lose
 *    anything. An `after` from another store that happens to be lower is not detectable: resuming is exact on
 *    the server (store) that produced the sequence.
 */
import type { Metrics } from '../ops/metrics.js';
import type { CommitEvent, CommitListener, ViewReader } from '../store/types.js';
import { MAX_TOP_LIMIT, TOP_USERS, type Ranking } from '../views/top-users.js';
import { TOTALS, TOTALS_KEY, type TotalsValue } from '../views/totals.js';
import { USER_INFORMATION, type UserInformation } from '../views/user-information.js';
import {
  StateSubscription,
  dependency,
  type Dependency,
  type StateHooks,
  type StateRead,
} from './state-subscription.js';
import { UserSubscription, type SubscriptionStats } from './subscription.js';
import type { LiveSource, LiveUserChange, SubscribeOptions } from './types.js';

/** What the hub needs of the store: synchronous reads plus the commit feed (`LmdbStore` has both). */
export interface LiveStore extends Pick<
  ViewReader,
  'getUser' | 'getUsers' | 'sequence' | 'topUserIds' | 'totals'
> {
  /**
   * The last commit that may have taken a user's view away (a users row deleted, a swap): a user without a view
   * has been without it since then at the latest.
   */
  userViewsRemovedAt(): bigint;
  /** Subscribe to commits; returns the unsubscribe. Called synchronously after each commit, in order. */
  onCommit(listener: CommitListener): () => void;
}

/** Options of {@link createLiveHub}. */
export interface LiveHubOptions {
  readonly store: LiveStore;
  /** The two live metrics; omitted in pure unit tests. */
  readonly metrics?: Pick<Metrics, 'subscriptionsActive' | 'conflatedEvents'>;
  /**
   * Waiting reads handed a change per event-loop turn at most (default {@link DELIVERY_SLICE}). Each
   * hand-over runs the subscription's selection and writes a frame (tens of µs), all before the event loop
   * reads the next request; a commit that wakes 10,000 watchers is therefore delivered in slices, with
   * HTTP requests and socket reads served in between, instead of in one pause of a few hundred ms.
   */
  readonly deliverySlice?: number;
}

/** About 5 ms of subscription work on a slow 2-core box: the longest pause a fan-out adds to a read. */
export const DELIVERY_SLICE = 256;

/** Index and mailbox sizes, for tests (index cleanup, memory bound) and diagnostics. */
export interface LiveHubStats {
  /** Open subscriptions. */
  readonly subscriptions: number;
  /** Distinct users with at least one user subscription. */
  readonly indexedUsers: number;
  /** (key, subscription) pairs in the index, over every view. */
  readonly indexEntries: number;
  /** Unread changes over all user subscriptions. */
  readonly pending: number;
  /** Per open user subscription, in opening order. */
  readonly perSubscription: readonly SubscriptionStats[];
}

/** The live layer as the runtime and the API see it. */
export interface LiveHub extends LiveSource {
  /**
   * Delivers one commit to the subscriptions indexed under its changed keys. `createLiveHub` already listens
   * to `store.onCommit` with it; exposed for tests. Publishing a commit twice is harmless (not newer: dropped).
   */
  publish(event: CommitEvent): void;
  /** Counters; cheap enough for tests to poll. */
  stats(): LiveHubStats;
  /** Ends every subscription (each iterator completes) and stops listening to the store. Idempotent. */
  close(): void;
}

type Subscription = UserSubscription | StateSubscription<unknown>;

/**
 * Creates the hub and attaches it to the store's commit feed. It implements the API's `LiveSource` seam
 * (src/live/types.ts), so `createApiServer({ live: hub })` serves subscriptions from it.
 */
export function createLiveHub(options: LiveHubOptions): LiveHub {
  const { store, metrics } = options;
  /** view → key → subscriptions. */
  const index = new Map<string, Map<string, Set<Subscription>>>();
  const open = new Set<Subscription>();
  let closed = false;

  // Fan-out in slices: `budget` hand-overs are left in this turn; the rest wait in `ready`, in the order
  // they became ready, and a `setImmediate` (after the I/O of this loop iteration) hands over the next slice.
  // A subscription waiting in `ready` keeps conflating: it gets the latest state when its turn comes.
  const slice = Math.max(1, options.deliverySlice ?? DELIVERY_SLICE);
  let budget = slice;
  let turnScheduled = false;
  const ready: Subscription[] = [];
  const queued = new Set<Subscription>();
  const nextTurn = (): void => {
    turnScheduled = false;
    budget = slice;
    let n = 0;
    for (; n < ready.length && budget > 0; n++) {
      const subscription = ready[n]!;
      queued.delete(subscription);
      budget--;
      subscription.flush();
    }
    ready.splice(0, n);
    if (ready.length > 0 || budget < slice) scheduleTurn();
  };
  const scheduleTurn = (): void => {
    if (turnScheduled) return;
    turnScheduled = true;
    setImmediate(nextTurn);
  };
  const admit = (subscription: Subscription): boolean => {
    if (budget > 0 && ready.length === 0) {
      budget--;
      scheduleTurn(); // gives the budget back next turn
      return true;
    }
    if (!queued.has(subscription)) {
      queued.add(subscription);
      ready.push(subscription);
    }
    scheduleTurn();
    return false;
  };

  const add = (view: string, key: string, s: Subscription): void => {
    let byKey = index.get(view);
    if (byKey === undefined) index.set(view, (byKey = new Map()));
    let watchers = byKey.get(key);
    if (watchers === undefined) byKey.set(key, (watchers = new Set()));
    watchers.add(s);
  };
  const remove = (view: string, key: string, s: Subscription): void => {
    const byKey = index.get(view);
    const watchers = byKey?.get(key);
    if (byKey === undefined || watchers === undefined) return;
    watchers.delete(s);
    if (watchers.size === 0) byKey.delete(key);
  };
  const split = (d: Dependency): [string, string] => {
    const at = d.indexOf('\u0000');
    return [d.slice(0, at), d.slice(at + 1)];
  };

  const unregister = (subscription: Subscription): void => {
    if (!open.delete(subscription)) return;
    metrics?.subscriptionsActive.dec();
    if (subscription instanceof UserSubscription) {
      for (const userId of subscription.userIds) remove(USER_INFORMATION, userId, subscription);
    } else {
      for (const d of subscription.dependencies) remove(...split(d), subscription);
    }
  };
  const onConflated = () => metrics?.conflatedEvents.inc();
  const userHooks = { onConflated, onClose: unregister, admit };
  const stateHooks: StateHooks = {
    onConflated,
    onClose: unregister,
    admit,
    reindex(subscription, before) {
      if (!open.has(subscription)) return;
      for (const d of before) remove(...split(d), subscription);
      for (const d of subscription.dependencies) add(...split(d), subscription);
    },
  };

  /** Creates, indexes and snapshots (or resumes) one user subscription: all synchronous (see the module comment). */
  const startUsers = (ids: readonly string[], options: SubscribeOptions | undefined): UserSubscription => {
    const subscription = new UserSubscription(ids, userHooks);
    if (closed) {
      subscription.close();
      return subscription;
    }
    open.add(subscription);
    metrics?.subscriptionsActive.inc();
    for (const userId of subscription.userIds) add(USER_INFORMATION, userId, subscription);
    const committed = store.sequence();
    // 6.: an `after` this store has not reached is another store's: SNAPSHOTs then.
    const after = options?.after !== undefined && options.after <= committed ? options.after : undefined;
    // A user without a view is so since the last commit that took any view away (4.), read in this same block.
    const absentSince = store.userViewsRemovedAt();
    const states = subscription.userIds.map((userId) => {
      const user = store.getUser(userId) ?? null;
      // The commit the state comes from (4.).
      const changed = user !== null ? BigInt(user.version.sequence) : absentSince;
      return { userId, user, changed, seen: changed > committed ? changed : committed };
    });
    // 4.: queued in the order of the commits the states come from (the sort is stable).
    if (states.length > 1)
      states.sort((a, b) => (a.changed < b.changed ? -1 : a.changed > b.changed ? 1 : 0));
    // 5.: with several users, those of the very commit of `after` are sent again (the drop may have come
    // between two of them); with one, the client's last event is that user's.
    const ties = states.length > 1;
    for (const { userId, user, changed, seen } of states) {
      if (after === undefined) subscription.snapshot(userId, user, seen, changed);
      else if (changed > after || (ties && changed === after))
        subscription.resume(userId, user, seen, changed);
      else subscription.watchFrom(userId, seen);
    }
    return subscription;
  };

  /** The latest read of each state, with the `sequence()` it was read under (see the module comment). */
  const reads = new Map<string, { sequence: bigint; read: StateRead<unknown> }>();
  const sharedRead =
    <T>(key: string, read: () => StateRead<T>) =>
    (): StateRead<T> => {
      const sequence = store.sequence();
      const held = reads.get(key);
      if (held !== undefined && held.sequence === sequence) return held.read as StateRead<T>;
      const fresh = read();
      reads.set(key, { sequence, read: fresh });
      return fresh;
    };

  /** Creates, indexes and reads one state subscription: all synchronous (see the module comment). */
  const startState = <T>(
    read: () => { value: T; dependencies: readonly Dependency[] },
    fingerprint: (value: T) => string,
  ): StateSubscription<T> => {
    const subscription = new StateSubscription<T>(read, fingerprint, stateHooks);
    if (closed) {
      subscription.close();
      return subscription;
    }
    open.add(subscription as StateSubscription<unknown>);
    metrics?.subscriptionsActive.inc();
    subscription.start();
    return subscription;
  };

  const publish = (event: CommitEvent): void => {
    for (const [view, changes] of event.views) {
      const byKey = index.get(view);
      if (byKey === undefined || byKey.size === 0) continue;
      // One change object per changed user, shared by every watcher: the API executes a subscription's
      // selection once per (change, document) and sends those bytes to all of them (api/shared-results.ts).
      const deliver = (key: string, value: unknown, watchers: Set<Subscription>): void => {
        let change: LiveUserChange | undefined;
        for (const s of watchers) {
          if (s instanceof UserSubscription) {
            const user = value as UserInformation | null;
            change ??= {
              userId: key,
              kind: user === null ? 'DELETED' : 'UPDATED',
              user,
              sequence: event.sequence,
            };
            s.offer(change, event.sequence);
          } else s.wake(event.sequence);
        }
      };
      // Walk the smaller side: a big commit against few watched keys, or many watchers against a small commit.
      // Values are read for watched keys only: a writer-thread commit's views are decoded when asked for
      // (src/store/packed-views.ts).
      if (changes.size <= byKey.size) {
        for (const key of changes.keys()) {
          const watchers = byKey.get(key);
          if (watchers !== undefined) deliver(key, changes.get(key) ?? null, watchers);
        }
      } else {
        for (const [key, watchers] of [...byKey]) {
          const value = changes.get(key);
          if (value !== undefined || changes.has(key)) deliver(key, value ?? null, watchers);
        }
      }
    }
  };

  const unsubscribeStore = store.onCommit(publish);

  return {
    subscribeUsers(ids: readonly string[], options?: SubscribeOptions): AsyncIterable<LiveUserChange> {
      // Each iteration is its own subscription, started when graphql-js asks for the iterator (it does so
      // immediately after the resolver returns), so a never-iterated iterable holds nothing.
      return { [Symbol.asyncIterator]: () => startUsers(ids, options) };
    },
    subscribeTopUsers(ranking: Ranking, limit: number, fingerprint) {
      const n = Math.min(limit, MAX_TOP_LIMIT);
      const read = sharedRead(`${TOP_USERS}\u0000${ranking}\u0000${n}`, () => {
        const ids = store.topUserIds(ranking, n);
        const users = store.getUsers(ids).filter((u): u is UserInformation => u !== undefined);
        return {
          value: users as readonly UserInformation[],
          dependencies: [
            dependency(TOP_USERS, ranking),
            ...ids.map((id) => dependency(USER_INFORMATION, id)),
          ],
        };
      });
      return { [Symbol.asyncIterator]: () => startState(read, fingerprint) };
    },
    subscribeTotals(fingerprint) {
      const read = sharedRead(TOTALS, () => ({
        value: store.totals() ?? null,
        dependencies: [dependency(TOTALS, TOTALS_KEY)],
      }));
      return {
        [Symbol.asyncIterator]: () => startState<TotalsValue | null>(read, fingerprint),
      };
    },
    publish,
    stats() {
      let indexEntries = 0;
      for (const byKey of index.values())
        for (const watchers of byKey.values()) indexEntries += watchers.size;
      const users = [...open].filter((s): s is UserSubscription => s instanceof UserSubscription);
      const perSubscription = users.map((s) => s.stats());
      const pending = perSubscription.reduce((n, s) => n + s.pending, 0);
      return {
        subscriptions: open.size,
        indexedUsers: [...(index.get(USER_INFORMATION)?.values() ?? [])].filter((w) =>
          [...w].some((s) => s instanceof UserSubscription),
        ).length,
        indexEntries,
        pending,
        perSubscription,
      };
    },
    close() {
      if (closed) return;
      closed = true;
      unsubscribeStore();
      reads.clear();
      ready.length = 0;
      queued.clear();
      for (const subscription of [...open]) subscription.close();
    },
  };
}
