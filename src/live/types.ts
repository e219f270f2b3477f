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
}

/**
 * Source of subscription events, injected into `createApiServer({ live })`. Contract for implementers:
 * the first event per id is a SNAPSHOT of the current state; later events arrive in commit order per user
 * and may skip intermediate versions but never the latest; `return()` on the iterator releases the
 * subscription (graphql-js calls it when the client unsubscribes or disconnects).
 */
export interface LiveSource {
  subscribeUsers(ids: readonly string[]): AsyncIterable<LiveUserChange>;
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
