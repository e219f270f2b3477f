/**
 * The keys a rebuild's shadow stores rows under, as a Bloom filter: `mayHold` is false only for a key that was
 * never added, so a row it rules out need not be looked up. Most records a rebuild replays create their row
 * (every record of a compacted topic does, each key's first record of any topic does), and looking up a row
 * that is not stored costs LMDB a descent of its B-tree. Replaying 3M records over 300k users into a shadow
 * (the `rebuild` bench's workload, in process, profiled): those lookups took 2.3 s of the 22 s the rows took,
 * and with the filter the lookups left (rows stored by earlier chunks) 0.5 s and the filter's checks 0.05 s.
 *
 * Blocked (Putze, Sanders, Singler 2007): the bits of one key are in one block of 512 bits, a cache line,
 * so a lookup reads one line per segment. It grows by segments, each twice the one before (a key is added to
 * the newest, looked for in all), from SEGMENT_KEYS keys to at most MAX_KEYS; past that it holds everything
 * (`mayHold` true: rows are looked up as without it), so its memory stays within MAX_KEYS × 2 bytes (63 MB).
 * About 1 % false positives per segment at its capacity (4 bits of 512 per key, 16 bits per key): a false
 * positive only costs the lookup.
 *
 * Sound only while every key the rows hold went through `add`: the caller creates it over rows that are
 * empty and adds each key it stores (shadow-chunks.ts); removals are not taken out.
 */
import { TABLES, type Table } from '../views/source.js';

/** Keys the first segment holds (1 MB of bits); each next one holds twice as many. */
export const SEGMENT_KEYS = 1 << 19;
/** Keys past which the filter holds everything: six segments, 63 MB of bits. */
export const MAX_KEYS = SEGMENT_KEYS * 63;

/** 32-bit words per block (512 bits). */
const BLOCK_WORDS = 16;
const BITS_PER_KEY = 16;

const TABLE_SEED: Readonly<Record<Table, number>> = Object.fromEntries(
  TABLES.map((t, i) => [t, Math.imul(i + 1, 0x9e3779b1)]),
) as Record<Table, number>;

interface Segment {
  readonly words: Uint32Array;
  /** Blocks - 1 (a power of two minus one). */
  readonly mask: number;
  readonly capacity: number;
  added: number;
}

function segment(keys: number): Segment {
  const blocks = (keys * BITS_PER_KEY) / 512;
  return { words: new Uint32Array(blocks * BLOCK_WORDS), mask: blocks - 1, capacity: keys, added: 0 };
}

/** murmur3's finalizer: every input bit moves every output bit. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

// The two hashes of the key last hashed (set by `hash`): a lookup and an add read them at once.
let h1 = 0;
let h2 = 0;

function hash(table: Table, key: string): void {
  let a = TABLE_SEED[table] ^ 0x811c9dc5;
  let b = TABLE_SEED[table] + key.length;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b + c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  h1 = mix(a);
  h2 = mix(b ^ h1);
}

/** Whether the key last hashed has its four bits set in `s` (`set`: sets them first). */
function probe(s: Segment, set: boolean): boolean {
  const base = (h1 & s.mask) * BLOCK_WORDS;
  // Four bit positions in the block: 9 bits each, three from h2, one from h1's top bits (above any block index).
  const p0 = h2 & 511;
  const p1 = (h2 >>> 9) & 511;
  const p2 = (h2 >>> 18) & 511;
  const p3 = (h1 >>> 23) & 511;
  const w = s.words;
  if (set) {
    w[base + (p0 >>> 5)]! |= 1 << (p0 & 31);
    w[base + (p1 >>> 5)]! |= 1 << (p1 & 31);
    w[base + (p2 >>> 5)]! |= 1 << (p2 & 31);
    w[base + (p3 >>> 5)]! |= 1 << (p3 & 31);
    return true;
  }
  return (
    (w[base + (p0 >>> 5)]! & (1 << (p0 & 31))) !== 0 &&
    (w[base + (p1 >>> 5)]! & (1 << (p1 & 31))) !== 0 &&
    (w[base + (p2 >>> 5)]! & (1 << (p2 & 31))) !== 0 &&
    (w[base + (p3 >>> 5)]! & (1 << (p3 & 31))) !== 0
  );
}

export class RowKeyFilter {
  private readonly segments: Segment[] = [segment(SEGMENT_KEYS)];
  private keys = 0;

  /** Keys added (each add counts, a key added twice twice). */
  get added(): number {
    return this.keys;
  }

  /** Past MAX_KEYS: it holds everything. */
  get saturated(): boolean {
    return this.keys > MAX_KEYS;
  }

  add(table: Table, key: string): void {
    if (++this.keys > MAX_KEYS) return;
    let s = this.segments[this.segments.length - 1]!;
    if (s.added === s.capacity) {
      s = segment(s.capacity * 2);
      this.segments.push(s);
    }
    s.added++;
    hash(table, key);
    probe(s, true);
  }

  /** False only when `key` of `table` was never added. */
  mayHold(table: Table, key: string): boolean {
    if (this.keys > MAX_KEYS) return true;
    hash(table, key);
    for (let i = this.segments.length - 1; i >= 0; i--) if (probe(this.segments[i]!, false)) return true;
    return false;
  }
}
