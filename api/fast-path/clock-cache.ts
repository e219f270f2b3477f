/**
 * A bounded cache with approximate LRU eviction (the CLOCK / second-chance algorithm), on top of `Map`'s
 * insertion order. A hit only sets a flag — unlike a strict LRU, it does not delete and re-insert the
 * entry, which on the hot path cost more than the lookup itself. Eviction walks from the oldest entry:
 * a flagged entry loses its flag and moves to the back, the first unflagged one goes.
 */
interface Slot<V> {
  readonly value: V;
  used: boolean;
}

/** Bounded key → value cache with CLOCK eviction (see the module note). */
export class ClockCache<K, V> {
  readonly #slots = new Map<K, Slot<V>>();

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.#slots.size;
  }

  get(key: K): V | undefined {
    const slot = this.#slots.get(key);
    if (slot === undefined) return undefined;
    slot.used = true;
    return slot.value;
  }

  set(key: K, value: V): void {
    // Evict first, so the newcomer is not the first unflagged entry the walk meets.
    if (!this.#slots.delete(key) && this.#slots.size >= this.capacity) this.#evictOne();
    this.#slots.set(key, { value, used: false });
  }

  #evictOne(): void {
    // Terminates: every flagged entry is unflagged when moved, so the walk meets an unflagged one.
    for (const [key, slot] of this.#slots) {
      this.#slots.delete(key);
      if (!slot.used) return;
      slot.used = false;
      this.#slots.set(key, slot);
    }
  }
}
