/**
 * The commit event of a generation swap: every user whose visible view differs between the old and the
 * new generation. "Visible" is what a reader is served: the profile and the counts (the stored REST JSON),
 * not the version, which a rebuild always recomputes. A swap that recomputes the same counts therefore
 * pushes nothing for that user (issue 18, "no empty pushes").
 *
 * Built lazily over the two generations' `views` databases instead of as a Map, because a swap can change
 * every user of the store: the live hub only asks about the users someone watches (`has`/`get`, walking its
 * own index when `size` is larger), so the cost is per watched user, not per user.
 *
 * Valid only while both generations exist: the store publishes it synchronously right after the swap
 * commits and drops the old generation once the swap is reconciled, so listeners must not keep it.
 */
import { restJsonOf } from '../views/codec.js';
import type { UserInformation } from '../views/user-information.js';
import type { Generation } from './generation.js';

export class GenerationDiff implements ReadonlyMap<string, UserInformation | null> {
  /** `decode` reads a view of `after` as readers see it (LmdbStore applies the swap's version floor). */
  constructor(
    private readonly before: Generation,
    private readonly after: Generation,
    private readonly decode: (bytes: Buffer, userId: string) => UserInformation,
  ) {}

  /**
   * An upper bound of the changed users (users with a view in either generation), not the exact count:
   * counting exactly would read every view. Consumers use it only to pick which side to walk.
   */
  get size(): number {
    return this.before.views.getCount() + this.after.views.getCount();
  }

  has(userId: string): boolean {
    const a = this.before.views.getBinary(userId);
    const b = this.after.views.getBinary(userId);
    if (a === undefined || b === undefined) return a !== b;
    // The REST JSON is the whole view but its version, written by one encoder (views/codec.ts): equal bytes
    // are equal profiles and counts.
    return !restJsonOf(a).equals(restJsonOf(b));
  }

  /** The new view, null when the user has no view any more, undefined when nothing changed. */
  get(userId: string): UserInformation | null | undefined {
    if (!this.has(userId)) return undefined;
    const bytes = this.after.views.getBinary(userId);
    return bytes === undefined ? null : this.decode(bytes, userId);
  }

  forEach(
    callback: (
      value: UserInformation | null,
      key: string,
      map: ReadonlyMap<string, UserInformation | null>,
    ) => void,
  ): void {
    for (const [k, v] of this.entries()) callback(v, k, this);
  }

  *entries(): MapIterator<[string, UserInformation | null]> {
    for (const userId of this.keys()) {
      const bytes = this.after.views.getBinary(userId);
      yield [userId, bytes === undefined ? null : this.decode(bytes, userId)];
    }
  }

  *keys(): MapIterator<string> {
    const seen = new Set<string>();
    for (const db of [this.after.views, this.before.views]) {
      for (const userId of db.getKeys()) {
        if (seen.has(userId)) continue;
        seen.add(userId);
        if (this.has(userId)) yield userId;
      }
    }
  }

  *values(): MapIterator<UserInformation | null> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): MapIterator<[string, UserInformation | null]> {
    return this.entries();
  }
}
