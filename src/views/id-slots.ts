/**
 * Integers for ids (a replay's users: UserInformationReplay in user-information.ts), looked up millions of
 * times at random over a million ids. A JavaScript Map of a million strings costs ~0.9 µs a lookup of a
 * fresh string on the bench box (its buckets, its entries and the stored key each another cache miss): 15 s
 * of a version bump's rebuild of 9.1M rows. Ids that are integers written the canonical way (decimal digits,
 * no leading zero: the ids of tables keyed by a number, what Debezium writes for them) go by their value into
 * an open-addressed table of [value, integer] pairs, one probe in one array: ~0.27 µs with the digits read
 * (a scratch benchmark: 6M lookups over 1M ids), and that rebuild's lookups 4.1 s against 15.7 s (profiled,
 * the bench's workload: user ids "0" to "999999"). Every other id goes to a Map. The canonical form is one
 * string per value, so the two never hold one id twice, and an id is looked up where it was added.
 */

/** Digits at most: below 2^53, every such integer is exact in a double. */
const MAX_DIGITS = 15;
const EMPTY = -1;

/** The value of `id` when it is a non-negative integer written canonically (see above), else -1. */
export function canonicalInteger(id: string): number {
  const n = id.length;
  if (n === 0 || n > MAX_DIGITS || (n > 1 && id.charCodeAt(0) === 48)) return -1;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const d = id.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/** A slot of the table for `v` (below 2^53), of `mask + 1`. */
function home(v: number, mask: number): number {
  const h = Math.imul((v >>> 0) ^ Math.imul(Math.floor(v / 4294967296), 0x85ebca6b), 0x9e3779b1);
  return (h ^ (h >>> 15)) & mask;
}

export class IdSlots {
  private readonly others = new Map<string, number>();
  /** Pairs [value, integer]; a value of EMPTY: a free pair. */
  private table = new Float64Array(2 * 1024).fill(EMPTY);
  private mask = 1023;
  private integers = 0;

  /** The integer added for `id`, or undefined. */
  get(id: string): number | undefined {
    const v = canonicalInteger(id);
    if (v < 0) return this.others.get(id);
    const t = this.table;
    for (let i = home(v, this.mask); ; i = (i + 1) & this.mask) {
      const at = t[2 * i]!;
      if (at === v) return t[2 * i + 1]!;
      if (at === EMPTY) return undefined;
    }
  }

  /** Adds `id` (not added before) with `integer`. */
  add(id: string, integer: number): void {
    const v = canonicalInteger(id);
    if (v < 0) {
      this.others.set(id, integer);
      return;
    }
    // At most half full: probes stay short.
    if (2 * (this.integers + 1) > this.mask + 1) this.grow();
    this.integers++;
    this.place(v, integer);
  }

  private place(v: number, integer: number): void {
    const t = this.table;
    let i = home(v, this.mask);
    while (t[2 * i] !== EMPTY) i = (i + 1) & this.mask;
    t[2 * i] = v;
    t[2 * i + 1] = integer;
  }

  private grow(): void {
    const old = this.table;
    this.mask = 2 * (this.mask + 1) - 1;
    this.table = new Float64Array(2 * (this.mask + 1)).fill(EMPTY);
    for (let i = 0; i < old.length; i += 2) if (old[i] !== EMPTY) this.place(old[i]!, old[i + 1]!);
  }
}
