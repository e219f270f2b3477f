/**
 * The seam between the GraphQL subscriptions and the live layer (src/live). The API only needs "give me
 * the changes of these users, first the current state"; how commits are fanned out and how slow readers
 * are conflated is the live layer's business (CONTRACT.md §3 "Subscription promises").
 */
import type { Ranking } from '../views/top-users.js';
import type { TotalsValue } from '../views/totals.js';
import type { UserInformation } from '../views/user-information.js';

/** What a subscription event says happened to a user (GraphQL enum `ChangeKind`). */
export type ChangeKindValue = 'SNAPSHOT' | 'UPDATED' | 'DELETED';

/** One event of `userChanged` / `usersChanged`. `user` is null when the users row does not exist. */
export interface LiveUserChange {
  readonly userId: string;
  readonly kind: ChangeKindValue;
  readonly user: UserInformation | null;
  /**
   * The store commit this state is from: the commit of an UPDATED / DELETED, the commit a SNAPSHOT was read at.
   * Sent as `extensions.asOf.sequence`; a DELETED has no `version`, so this is what a client resumes after.
   * Absent from sources that do not know it (the API then uses the store's current sequence).
   */
  readonly sequence?: bigint;
}

/** Options of one subscription. */
export interface SubscribeOptions {
  /**
   * Resume (issue 18): the `version.sequence` (or `extensions.asOf.sequence`) of the last event the client
   * received. A user changed since then gets its current state as the first event (UPDATED, or DELETED when it
   * has no users row); a user not changed since gets nothing until its next change. Never a SNAPSHOT.
   */
  readonly after?: bigint;
}

/**
 * Source of subscription events, injected into `createApiServer({ live })`. Contract for implementers:
 * the first event per id is a SNAPSHOT of the current state (with `after`: see {@link SubscribeOptions});
 * later events arrive in commit order per user and may skip intermediate versions but never the latest;
 * `return()` on the iterator releases the subscription (graphql-js calls it when the client unsubscribes or
 * disconnects).
 */
export interface LiveSource {
  subscribeUsers(ids: readonly string[], options?: SubscribeOptions): AsyncIterable<LiveUserChange>;
  /**
   * The first `limit` users of a ranking: the current list first, then the list again whenever its
   * members, their order, or what `fingerprint` prints of them changed (the API prints the fields the
   * client selected, so a change nobody selected sends nothing). State-based: a slow reader gets the
   * latest list.
   */
  subscribeTopUsers(
    ranking: Ranking,
    limit: number,
    fingerprint: (users: readonly UserInformation[]) => string,
  ): AsyncIterable<readonly UserInformation[]>;
  /** The totals first (null before the first row), then whenever what `fingerprint` prints of them changed. */
  subscribeTotals(fingerprint: (totals: TotalsValue | null) => string): AsyncIterable<TotalsValue | null>;
}
