/**
 * A map from string keys to integers, for a rebuild chunk's buffered rows (buffered-generation.ts): each
 * key of a table changed in the chunk, to its latest entry, up to a million keys per chunk, nearly every one
 * set once when its record applies. A JavaScript Map took ~0.9 µs per set there (8.4 s of the writer
 * thread's 76 s over the `rebuild` bench's 10M records, profiled): its hash table grows by copying every
 * entry into a new one, and each entry is three words in a table of its own. Here a key is hashed once, its
 * slot holds its number and hash (growing moves those two integers, with no string read), and the keys and
 * values sit in arrays by number: ~0.33 µs per set against ~0.64 µs for a Map of 1M keys (a scratch
 * benchmark, fresh keys). The rows of that replay (writer thread, rows only, scratch driver): profiled, the
 * commits' part of the writer thread 25.8 s against 34.3 s, the writer thread 64.3 s against 76.2 s; timed,
 * at 3M records over 300k users 18.0, 14.0, 14.1 and 14.2 s against 20.3, 20.6, 16.0 and 16.1 s (alternated
 * pairs), at 10M within the box's spread (59.6-77.8 s against 66.8-77.1 s, five runs each).
 *
 * Keys are compared by content. A deleted key keeps its number, its value set to `NONE`, and is skipped;
 * set again, it gets it back.
 */
import { mix } from './row-key-filter.js';

/** The value of a key deleted (or never set): what `get` answers undefined for. */
const NONE = -1;

/**
 * FNV-1a over the UTF-16 units, then murmur3's finalizer, so that keys alike in all but their end spread.
 * Exported for its test.
 */
export function hashOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return mix(h);
}

export class KeyIndex {
  /** Per slot: the key's number + 1 (0: free). */
  private slots = new Int32Array(1024);
  /** Per slot: the key's hash. */
  private hashes = new Int32Array(1024);
  private mask = 1023;
  private readonly keys: string[] = [];
  private values = new Int32Array(512);
  /** Keys whose value is not NONE. */
  private live = 0;

  get size(): number {
    return this.live;
  }

  /** The slot of `key`, or the free slot where it would go. */
  private slotOf(key: string, hash: number): number {
    const { slots, hashes, keys, mask } = this;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const n = slots[i]!;
      if (n === 0 || (hashes[i] === hash && keys[n - 1] === key)) return i;
    }
  }

  get(key: string): number | undefined {
    const n = this.slots[this.slotOf(key, hashOf(key))]!;
    if (n === 0) return undefined;
    const v = this.values[n - 1]!;
    return v === NONE ? undefined : v;
  }

  /** Sets `key` to `value` (a non-negative integer below 2^31). */
  set(key: string, value: number): void {
    const hash = hashOf(key);
    let slot = this.slotOf(key, hash);
    let n = this.slots[slot]!;
    if (n === 0) {
      // At most half full: probes stay short.
      if (2 * (this.keys.length + 1) > this.mask + 1) {
        this.grow();
        slot = this.slotOf(key, hash);
      }
      n = this.keys.push(key);
      this.slots[slot] = n;
      this.hashes[slot] = hash;
      if (n > this.values.length) {
        const grown = new Int32Array(2 * this.values.length);
        grown.set(this.values);
        this.values = grown;
      }
      this.values[n - 1] = NONE;
    }
    if (this.values[n - 1] === NONE) this.live++;
    this.values[n - 1] = value;
  }

  delete(key: string): void {
    const n = this.slots[this.slotOf(key, hashOf(key))]!;
    if (n === 0 || this.values[n - 1] === NONE) return;
    this.values[n - 1] = NONE;
    this.live--;
  }

  /** Each key set and not deleted since, with its value, in the order keys were first set. */
  *entries(): IterableIterator<[string, number]> {
    for (let n = 0; n < this.keys.length; n++) {
      const v = this.values[n]!;
      if (v !== NONE) yield [this.keys[n]!, v];
    }
  }

  /** The keys `entries` gives, in an array. */
  liveKeys(): string[] {
    const out: string[] = [];
    for (let n = 0; n < this.keys.length; n++) if (this.values[n] !== NONE) out.push(this.keys[n]!);
    return out;
  }

  private grow(): void {
    const { slots, hashes } = this;
    const size = 2 * (this.mask + 1);
    this.mask = size - 1;
    this.slots = new Int32Array(size);
    this.hashes = new Int32Array(size);
    for (let i = 0; i < slots.length; i++) {
      const n = slots[i]!;
      if (n === 0) continue;
      const hash = hashes[i]!;
      let j = hash & this.mask;
      while (this.slots[j] !== 0) j = (j + 1) & this.mask;
      this.slots[j] = n;
      this.hashes[j] = hash;
    }
  }
}
