/**
 * A ranking kept as a prefix (issue 17; TopUsers' rankings since its version 2): instead of one index key
 * per ranked user, only the first M keys of the ranking are stored, with K <= M <= CAP unless every ranked
 * user fits. Readers ask for the first `limit <= K` keys, which the prefix always holds.
 *
 * Invariant (I): the stored keys are exactly the first M keys, in key order, of the full ranking (every ranked
 * user's key). So a ranked user's key is stored exactly when it sorts at or before the last stored key: a
 * move needs no lookup to know. Each move keeps I:
 * - a user whose old key is stored loses it;
 * - a user's new key is stored when the prefix held every ranked user before this move (then it still does),
 *   or when the key sorts before the prefix's last key (every key before that is stored, by I);
 * - past CAP keys, the last is dropped.
 * A user that moves out of the prefix shrinks it; once it holds fewer than K keys while other users are
 * ranked, it is refilled from every ranked user's count (`refill`: the one full scan, at most once per
 * CAP - K users moving out).
 *
 * Most moves of a large ranking are one comparison with the last key: no index write at all, where the full
 * index deletes and writes a key per changed count. The keys live in a {@link PrefixStore} (a ranking's part
 * of the index, with its length kept beside it; a sorted array in the tests).
 */
import { compareCodePoints } from '../materializer/memory-state.js';

export interface RankPrefixOptions {
  /** Keys readers may ask for: the prefix never holds fewer while more users are ranked. */
  readonly k: number;
  /** Keys the prefix holds at most. */
  readonly cap: number;
  /** The key of a user with a count (sorting first = ranked first). */
  readonly keyOf: (count: number, userId: string) => string;
}

/** Where one ranking's prefix is stored: its keys, in key order (UTF-8 byte order). */
export interface PrefixStore {
  /** Keys stored. */
  readonly length: number;
  /** The last stored key, or undefined when none is. */
  last(): string | undefined;
  add(key: string): void;
  remove(key: string): void;
  /** Replaces every stored key with `keys` (in key order). */
  replace(keys: readonly string[]): void;
}

export class RankPrefix {
  /** The store's last key, as last read or kept up to date here (undefined: none stored). */
  private lastKey: string | undefined;
  /**
   * Whether `lastKey` was read: at the first move or refill, not when the prefix is made. A commit makes one
   * per ranking and most commits move only some rankings (a stream of new tweets moves one of four); the read
   * is a range lookup in LMDB (~10 µs).
   */
  private lastKnown = false;

  /** `ranked`: how many users are ranked, before any move. */
  constructor(
    private readonly store: PrefixStore,
    private ranked: number,
    private readonly options: RankPrefixOptions,
  ) {}

  /** Users ranked after the moves applied so far. */
  get rankedUsers(): number {
    return this.ranked;
  }

  /** A user's count moved from `before` to `after` (null: not ranked). */
  move(userId: string, before: number | null, after: number | null): void {
    const { store } = this;
    if (!this.lastKnown) {
      this.lastKey = store.last();
      this.lastKnown = true;
    }
    if (before !== null) {
      const key = this.options.keyOf(before, userId);
      // Stored exactly when it sorts at or before the last stored key (I).
      if (this.lastKey !== undefined && compareCodePoints(key, this.lastKey) <= 0) {
        store.remove(key);
        if (key === this.lastKey) this.lastKey = store.last();
      }
      this.ranked--;
    }
    if (after === null) return;
    // Every ranked user but this one is stored: its key joins, wherever it sorts.
    const complete = store.length === this.ranked;
    this.ranked++;
    const key = this.options.keyOf(after, userId);
    const last = this.lastKey === undefined ? 1 : compareCodePoints(key, this.lastKey);
    if (!complete && last > 0) return;
    store.add(key);
    if (last > 0) this.lastKey = key;
    if (store.length > this.options.cap) {
      store.remove(this.lastKey!);
      this.lastKey = store.last();
    }
  }

  /** Whether the prefix must be refilled before it is read: fewer than K keys while more users are ranked. */
  needsRefill(): boolean {
    return this.store.length < this.options.k && this.store.length < this.ranked;
  }

  /** Rebuilds the prefix from every ranked user's count (`all`: exactly the ranked users). */
  refill(all: Iterable<readonly [userId: string, count: number]>): void {
    const keys: string[] = [];
    let ranked = 0;
    for (const [userId, count] of all) {
      keys.push(this.options.keyOf(count, userId));
      ranked++;
    }
    keys.sort(compareCodePoints);
    keys.length = Math.min(keys.length, this.options.cap);
    this.store.replace(keys);
    this.lastKey = keys[keys.length - 1];
    this.lastKnown = true;
    this.ranked = ranked;
  }
}
