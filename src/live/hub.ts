/**
 * The live hub: turns store commits into subscription events (DESIGN.md "live"). It keeps an index
 * userId → subscriptions watching it; each commit wakes only the subscriptions indexed under the users it
 * changed. No polling, and no per-commit scan of every subscription.
 *
 * Snapshot without a gap — why registering first and reading second is enough:
 * 1. `subscribeUsers` registers the subscription in the index and reads the snapshot in ONE synchronous
 *    block (no `await` between them), and `LmdbStore` calls commit listeners synchronously, in commit order,
 *    right after it bumps `sequence()`. JavaScript runs one block at a time, so every commit is either
 *    published entirely before the block (its effects are in the snapshot and `sequence()` counts it) or
 *    entirely after it (the subscription is already indexed and receives it). None is missed.
 * 2. One window remains: lmdb-js commits off the main thread, so a read may already see commit N while its
 *    listener has not run yet (`sequence()` still says N-1). The snapshot of a user changed by N then carries
 *    `version.sequence` N, and the later delta N is dropped as "not newer" by the subscription. That is the
 *    issue's rule "drop deltas whose sequence ≤ the snapshot's sequence", with the snapshot's sequence taken
 *    per user as max(view.version.sequence, sequence()).
 * 3. A user deleted by N inside that window reads as absent; its snapshot sequence is then taken from
 *    `store.removedAt` (the commit that removed its view, N), so the later DELETED of N is dropped as well.
 *    A store without `removedAt` leaves it at N-1: the client gets a SNAPSHOT with `user: null` followed by a
 *    DELETED, the same state twice, never a wrong or older one.
 * Per user, deltas then arrive in commit order because `publish` is called in commit order and the
 * subscription drops anything not newer than what it already holds.
 *
 * Resuming with `after` (issue 18) — why the client never misses the latest state, and gets no duplicate:
 * 4. Every event carries the commit its state comes from (`change.sequence`: the commit of an UPDATED or
 *    DELETED; for a SNAPSHOT the user's `version.sequence`, or `removedAt`, or 0 for a user never seen), sent as
 *    `extensions.asOf.sequence` and equal to `version.sequence` when there is a user. A subscription delivers in
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
 *    Hence: the latest state of every user is never missed; a state is sent twice only to a multi-user
 *    subscription, only for users of the commit it resumed after.
 * 6. Sequences count per store. An `after` above `sequence()` cannot come from this store (another replica, or a
 *    store restored from an older snapshot): it is ignored and the client gets SNAPSHOTs, which never lose
 *    anything. An `after` from another store that happens to be lower is not detectable: resuming is exact on
 *    the server (store) that produced the sequence.
 */
import type { LiveSource, LiveUserChange, SubscribeOptions } from './types.js';
import type { Metrics } from '../ops/metrics.js';
import type { CommitEvent, CommitListener, ViewReader } from '../store/types.js';
import type { UserInformation } from '../views/user-information.js';
import { UserSubscription, type SubscriptionStats } from './subscription.js';

/** What the hub needs of the store: synchronous reads plus the commit feed (`LmdbStore` has both). */
export interface LiveStore extends Pick<ViewReader, 'getUser' | 'sequence'> {
  /** Subscribe to commits; returns the unsubscribe. Called synchronously after each commit, in order. */
  onCommit(listener: CommitListener): () => void;
  /**
   * For a user without a view: the commit that last changed its state (the one that removed its view, for a
   * deleted user) as readers see it; undefined when the store never saw the user. Without it, resuming treats
   * every user without a view as changed (a DELETED is resent: never a lost deletion).
   */
  removedAt?(userId: string): bigint | undefined;
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
  /** Distinct users with at least one subscription (keys of the index). */
  readonly indexedUsers: number;
  /** (user, subscription) pairs in the index. */
  readonly indexEntries: number;
  /** Unread changes over all subscriptions. */
  readonly pending: number;
  /** Per open subscription, in opening order. */
  readonly perSubscription: readonly SubscriptionStats[];
}

/** The live layer as the runtime and the API see it. */
export interface LiveHub extends LiveSource {
  /**
   * Delivers one commit to the subscriptions indexed under its changed users. `createLiveHub` already listens
   * to `store.onCommit` with it; exposed for tests. Publishing a commit twice is harmless (not newer: dropped).
   */
  publish(event: CommitEvent): void;
  /** Counters; cheap enough for tests to poll. */
  stats(): LiveHubStats;
  /** Ends every subscription (each iterator completes) and stops listening to the store. Idempotent. */
  close(): void;
}

/**
 * Creates the hub and attaches it to the store's commit feed. It implements the API's `LiveSource` seam
 * (src/live/types.ts), so `createApiServer({ live: hub })` serves subscriptions from it.
 */
export function createLiveHub(options: LiveHubOptions): LiveHub {
  const { store, metrics } = options;
  const index = new Map<string, Set<UserSubscription>>();
  const open = new Set<UserSubscription>();
  let closed = false;

  // Fan-out in slices: `budget` hand-overs are left in this turn; the rest wait in `ready`, in the order
  // they became ready, and a `setImmediate` (after the I/O of this loop iteration) hands over the next slice.
  // A subscription waiting in `ready` keeps conflating: it gets its users' latest state when its turn comes.
  const slice = Math.max(1, options.deliverySlice ?? DELIVERY_SLICE);
  let budget = slice;
  let turnScheduled = false;
  const ready: UserSubscription[] = [];
  const queued = new Set<UserSubscription>();
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
  const admit = (subscription: UserSubscription): boolean => {
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

  const unregister = (subscription: UserSubscription): void => {
    if (!open.delete(subscription)) return;
    metrics?.subscriptionsActive.dec();
    for (const userId of subscription.userIds) {
      const watchers = index.get(userId);
      if (watchers === undefined) continue;
      watchers.delete(subscription);
      if (watchers.size === 0) index.delete(userId);
    }
  };
  const hooks = { onConflated: () => metrics?.conflatedEvents.inc(), onClose: unregister, admit };

  /** Creates, indexes and snapshots (or resumes) one subscription: all synchronous (see the module comment). */
  const start = (ids: readonly string[], options: SubscribeOptions | undefined): UserSubscription => {
    const subscription = new UserSubscription(ids, hooks);
    if (closed) {
      subscription.close();
      return subscription;
    }
    open.add(subscription);
    metrics?.subscriptionsActive.inc();
    for (const userId of subscription.userIds) {
      let watchers = index.get(userId);
      if (watchers === undefined) index.set(userId, (watchers = new Set()));
      watchers.add(subscription);
    }
    const committed = store.sequence();
    // 6.: an `after` this store has not reached is another store's: SNAPSHOTs then.
    const after = options?.after !== undefined && options.after <= committed ? options.after : undefined;
    const reads = subscription.userIds.map((userId) => {
      const user = store.getUser(userId) ?? null;
      // The commit the state comes from: 0 for a user the store never saw; without `removedAt`, a user
      // without a view counts as changed by the last commit (resent on a resume: never a lost deletion).
      const changed =
        user !== null
          ? BigInt(user.version.sequence)
          : store.removedAt === undefined
            ? committed
            : (store.removedAt(userId) ?? 0n);
      return { userId, user, changed, seen: changed > committed ? changed : committed };
    });
    // 4.: queued in the order of the commits the states come from (the sort is stable).
    if (reads.length > 1) reads.sort((a, b) => (a.changed < b.changed ? -1 : a.changed > b.changed ? 1 : 0));
    // 5.: with several users, those of the very commit of `after` are sent again (the drop may have come
    // between two of them); with one, the client's last event is that user's.
    const ties = reads.length > 1;
    for (const { userId, user, changed, seen } of reads) {
      if (after === undefined) subscription.snapshot(userId, user, seen, changed);
      else if (changed > after || (ties && changed === after))
        subscription.resume(userId, user, seen, changed);
      else subscription.watchFrom(userId, seen);
    }
    return subscription;
  };

  const publish = (event: CommitEvent): void => {
    // One change object per changed user, shared by every watcher: the API executes a subscription's
    // selection once per (change, document) and sends those bytes to all of them (api/shared-results.ts).
    const deliver = (userId: string, user: UserInformation | null, watchers: Set<UserSubscription>): void => {
      const change: LiveUserChange = {
        userId,
        kind: user === null ? 'DELETED' : 'UPDATED',
        user,
        sequence: event.sequence,
      };
      for (const s of watchers) s.offer(change, event.sequence);
    };
    // Walk the smaller side: a big batch against few watched users, or many watchers against a small commit.
    if (event.changes.size <= index.size) {
      for (const [userId, user] of event.changes) {
        const watchers = index.get(userId);
        if (watchers !== undefined) deliver(userId, user, watchers);
      }
    } else {
      for (const [userId, watchers] of index) {
        const user = event.changes.get(userId);
        if (user !== undefined || event.changes.has(userId)) deliver(userId, user ?? null, watchers);
      }
    }
  };

  const unsubscribeStore = store.onCommit(publish);

  return {
    subscribeUsers(ids: readonly string[], options?: SubscribeOptions): AsyncIterable<LiveUserChange> {
      // Each iteration is its own subscription, started when graphql-js asks for the iterator (it does so
      // immediately after the resolver returns), so a never-iterated iterable holds nothing.
      return { [Symbol.asyncIterator]: () => start(ids, options) };
    },
    publish,
    stats() {
      let indexEntries = 0;
      for (const watchers of index.values()) indexEntries += watchers.size;
      const perSubscription = [...open].map((s) => s.stats());
      const pending = perSubscription.reduce((n, s) => n + s.pending, 0);
      return { subscriptions: open.size, indexedUsers: index.size, indexEntries, pending, perSubscription };
    },
    close() {
      if (closed) return;
      closed = true;
      unsubscribeStore();
      ready.length = 0;
      queued.clear();
      for (const subscription of [...open]) subscription.close();
    },
  };
}
