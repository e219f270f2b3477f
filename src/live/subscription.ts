/**
 * One live subscription: a conflating mailbox of "latest state per watched user" plus the async iterator
 * graphql-js pulls from. It holds at most one pending change per user (a Map, not a queue), so a reader that
 * falls behind costs memory proportional to the users it watches, never to the rate of change
 * (CONTRACT.md §3: "a client that reads slower than changes arrive gets the latest state, not a growing
 * queue"). Pure: no store, no socket; the hub feeds it.
 */
import type { LiveUserChange } from './types.js';
import type { UserInformation } from '../views/user-information.js';

/** Callbacks into the hub: counting skipped versions and unregistering on close. */
export interface SubscriptionHooks {
  /** A pending (not yet read) change was replaced by a newer one: one version skipped. */
  onConflated(): void;
  /** Called exactly once, when the subscription ends for any reason. */
  onClose(subscription: UserSubscription): void;
  /**
   * A read is waiting and a change just arrived for it. Return true to hand it over now; false when the
   * hub will call {@link UserSubscription.flush} later (it spreads a big fan-out over event-loop turns).
   * Absent: always now.
   */
  admit?(subscription: UserSubscription): boolean;
}

/** Counters of one subscription, for the hub's `stats()` and the slow-consumer tests. */
export interface SubscriptionStats {
  /** Distinct users watched. */
  readonly users: number;
  /** Changes waiting to be read right now. */
  readonly pending: number;
  /** The largest `pending` ever was: never more than `users` (the conflation bound). */
  readonly peakPending: number;
  /** Versions skipped because a newer state replaced them before they were read. */
  readonly conflated: number;
  /** Events handed to the reader so far. */
  readonly delivered: number;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * The subscription's state machine. Written by hand rather than as an `async function*`: a generator
 * suspended in `await` cannot be `return()`ed until it reaches its next `yield`, so an unsubscribe while
 * waiting for a change would hang and leak the index entry. Here
 * `return()` settles every waiting `next()` at once. See graphql-ws #653 ("Unsubscribe deadlocks AsyncGenerator")
 * and tc39/proposal-async-iteration #126.
 */
export class UserSubscription implements AsyncIterableIterator<LiveUserChange> {
  /** Distinct watched ids, in the order the client gave them. */
  readonly userIds: readonly string[];
  /**
   * Latest unread change per user. Map order is the order of those changes' commits: a conflated change moves to
   * the back. So events leave in commit order across users too, and a client that received the event of commit
   * S holds every watched user's state as of S: what resuming with `after` relies on (src/live/hub.ts).
   */
  private readonly pending = new Map<string, LiveUserChange>();
  /** Per user, the commit sequence of the newest state queued or delivered: anything at or below is stale. */
  private readonly newest = new Map<string, bigint>();
  private readonly waiters: ((result: IteratorResult<LiveUserChange, undefined>) => void)[] = [];
  private readonly hooks: SubscriptionHooks;
  private closed = false;
  private peak = 0;
  private conflatedCount = 0;
  private deliveredCount = 0;

  constructor(userIds: readonly string[], hooks: SubscriptionHooks) {
    this.userIds = [...new Set(userIds)];
    this.hooks = hooks;
  }

  /** True once returned, thrown or closed by the hub. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Queues the first event of a user: its state as read now (null: no users row). `sequence` is the commit
   * sequence that state reflects; commits at or below it are already in the snapshot and will be dropped.
   * `from` is the commit the state comes from (the user's last change), which the event carries.
   */
  snapshot(userId: string, user: UserInformation | null, sequence: bigint, from: bigint = sequence): void {
    if (this.closed) return;
    this.newest.set(userId, sequence);
    this.enqueue(userId, { userId, kind: 'SNAPSHOT', user, sequence: from });
  }

  /**
   * Resuming: the user changed since the client's `after`, so its first event is its current state, as a change
   * (UPDATED, or DELETED without a users row), never a SNAPSHOT. Arguments as for {@link snapshot}.
   */
  resume(userId: string, user: UserInformation | null, sequence: bigint, from: bigint): void {
    if (this.closed) return;
    this.newest.set(userId, sequence);
    this.enqueue(userId, { userId, kind: user === null ? 'DELETED' : 'UPDATED', user, sequence: from });
  }

  /**
   * Resuming: the user did not change since the client's `after`, so the client holds its current state; nothing
   * is queued, and only commits after `sequence` (the state read now) will be.
   */
  watchFrom(userId: string, sequence: bigint): void {
    if (this.closed) return;
    this.newest.set(userId, sequence);
  }

  /**
   * A commit changed a watched user (`change.kind` is UPDATED or DELETED; the hub shares one change object
   * among all watchers). Dropped when the state already queued or delivered is as new (the snapshot raced
   * with this commit); otherwise it replaces any unread change of that user. An unread SNAPSHOT stays a
   * SNAPSHOT, with the newer state: the first event is always the current state.
   */
  offer(change: LiveUserChange, sequence: bigint): void {
    if (this.closed) return;
    const { userId } = change;
    const newest = this.newest.get(userId);
    if (newest !== undefined && sequence <= newest) return;
    this.newest.set(userId, sequence);
    const queued = this.pending.get(userId);
    if (queued !== undefined) {
      this.conflatedCount++;
      this.hooks.onConflated();
      this.pending.delete(userId); // to the back: the pending order stays the commit order
    }
    this.enqueue(
      userId,
      queued?.kind === 'SNAPSHOT' ? { userId, kind: 'SNAPSHOT', user: change.user, sequence } : change,
    );
  }

  /** Counters for tests and diagnostics. */
  stats(): SubscriptionStats {
    return {
      users: this.userIds.length,
      pending: this.pending.size,
      peakPending: this.peak,
      conflated: this.conflatedCount,
      delivered: this.deliveredCount,
    };
  }

  next(): Promise<IteratorResult<LiveUserChange, undefined>> {
    if (this.closed || this.userIds.length === 0) {
      // Nothing to watch (`usersChanged(ids: [])`): complete at once rather than idle forever.
      this.close();
      return Promise.resolve(DONE);
    }
    // A read already waiting (its change may be queued for a later turn by the hub) goes first.
    const change = this.waiters.length === 0 ? this.take() : undefined;
    if (change !== undefined) return Promise.resolve({ value: change, done: false });
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Hands pending changes to the reads waiting for them (the hub calls it for a deferred hand-over). */
  flush(): void {
    while (this.waiters.length > 0 && this.pending.size > 0) {
      const resolve = this.waiters.shift()!;
      resolve({ value: this.take()!, done: false });
    }
  }

  /** Unsubscribe (client `complete`, disconnect, or graphql-js cleanup): frees everything at once. */
  return(): Promise<IteratorReturnResult<undefined>> {
    this.close();
    return Promise.resolve(DONE);
  }

  /** graphql-js calls `throw` only to abort; treated like `return`. */
  throw(): Promise<IteratorReturnResult<undefined>> {
    this.close();
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Ends the subscription: drops pending changes, settles waiting reads, unregisters (once). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending.clear();
    this.newest.clear();
    for (const resolve of this.waiters.splice(0)) resolve(DONE);
    this.hooks.onClose(this);
  }

  private enqueue(userId: string, change: LiveUserChange): void {
    this.pending.set(userId, change);
    if (this.pending.size > this.peak) this.peak = this.pending.size;
    if (this.waiters.length === 0) return;
    if (this.hooks.admit === undefined || this.hooks.admit(this)) this.flush();
  }

  private take(): LiveUserChange | undefined {
    for (const [userId, change] of this.pending) {
      this.pending.delete(userId);
      this.deliveredCount++;
      return change;
    }
    return undefined;
  }
}
