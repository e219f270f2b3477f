/**
 * A ranking kept as a prefix (issue 17; not wired into TopUsers yet): instead of one index key per ranked
 * user, only the first M keys of the ranking are stored, with K <= M <= CAP unless every ranked user fits.
 * Readers ask for the first `limit <= K` keys, which the prefix always holds.
 *
 * Invariant (I): the stored keys are exactly the first M keys, in key order, of the full ranking (every ranked
 * user's key). A commit reads the stored keys into memory, applies its moves here and writes the difference:
 * - a user whose old key is stored loses it;
 * - a user's new key is stored when the prefix held every ranked user before this move (then it still does),
 *   or when the key sorts before the prefix's last key (every key before that is stored, by I);
 * - past CAP keys, the last is dropped.
 * Each step keeps I. A user that moves out of the prefix shrinks it; once it holds fewer than K keys while
 * other users are ranked, it is refilled from every ranked user's count (`refill`: the one full scan, at most
 * once per CAP - K users moving out).
 *
 * Most moves of a large ranking are one comparison with the last key: no index write at all, where the full
 * index deletes and writes a key per changed count.
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

export class RankPrefix {
  /** Stored keys, in key order. */
  private readonly keys: string[];

  /**
   * `stored`: the stored keys, in key order (what the index holds under this ranking); `ranked`: how many
   * users are ranked.
   */
  constructor(
    stored: readonly string[],
    private ranked: number,
    private readonly options: RankPrefixOptions,
  ) {
    this.keys = [...stored];
  }

  /** The stored keys, in key order. */
  get stored(): readonly string[] {
    return this.keys;
  }

  /** Users ranked after the moves applied so far. */
  get rankedUsers(): number {
    return this.ranked;
  }

  /** A user's count moved from `before` to `after` (null: not ranked). */
  move(userId: string, before: number | null, after: number | null): void {
    const { keys } = this;
    if (before !== null) {
      const at = this.find(this.options.keyOf(before, userId));
      if (at >= 0) keys.splice(at, 1);
      this.ranked--;
    }
    if (after === null) return;
    // Every ranked user but this one is stored: its key joins, wherever it sorts.
    const complete = keys.length === this.ranked;
    this.ranked++;
    const key = this.options.keyOf(after, userId);
    const at = this.insertionPoint(key);
    if (!complete && at >= keys.length) return;
    keys.splice(at, 0, key);
    if (keys.length > this.options.cap) keys.pop();
  }

  /** Whether the prefix must be refilled before it is read: fewer than K keys while more users are ranked. */
  needsRefill(): boolean {
    return this.keys.length < this.options.k && this.keys.length < this.ranked;
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
    this.keys.splice(0, this.keys.length, ...keys);
    this.ranked = ranked;
  }

  /** What to write: the keys of `stored` no longer held, and the keys held that `stored` lacks. */
  difference(stored: readonly string[]): { readonly removed: string[]; readonly added: string[] } {
    const now = new Set(this.keys);
    const before = new Set(stored);
    return {
      removed: stored.filter((key) => !now.has(key)),
      added: this.keys.filter((key) => !before.has(key)),
    };
  }

  /** Index of `key` in the stored keys, or -1. */
  private find(key: string): number {
    const at = this.insertionPoint(key);
    return at < this.keys.length && this.keys[at] === key ? at : -1;
  }

  /** Index of the first stored key at or after `key`. */
  private insertionPoint(key: string): number {
    const { keys } = this;
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareCodePoints(keys[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
