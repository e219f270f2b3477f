/**
 * A commit event's user views that are not a Map: computed on demand, because a commit can change every
 * user of the store and the live hub only asks about the users someone watches (`has`/`get`, or walking
 * its own index when `size` is larger). A subclass says which users changed and how one is read; iteration
 * and `forEach` follow from `entries`. Two kinds: a swap's diff (generation-diff.ts) and a writer-thread
 * commit's packed views (packed-views.ts).
 */
import type { UserInformation } from '../views/user-information.js';

export abstract class LazyUserViews implements ReadonlyMap<string, UserInformation | null> {
  abstract readonly size: number;
  abstract has(userId: string): boolean;
  /** The new view, null when the user has no view any more, undefined when it did not change. */
  abstract get(userId: string): UserInformation | null | undefined;
  abstract entries(): MapIterator<[string, UserInformation | null]>;
  abstract keys(): MapIterator<string>;

  forEach(
    callback: (
      value: UserInformation | null,
      key: string,
      map: ReadonlyMap<string, UserInformation | null>,
    ) => void,
    thisArg?: unknown,
  ): void {
    for (const [k, v] of this.entries()) callback.call(thisArg, v, k, this);
  }

  *values(): MapIterator<UserInformation | null> {
    for (const [, v] of this.entries()) yield v;
    return undefined;
  }

  [Symbol.iterator](): MapIterator<[string, UserInformation | null]> {
    return this.entries();
  }
}
