/**
 * The keys a generation stores rows under, as a Bloom filter: `mayHold` is false only for a key that was
 * never added, so a row it rules out need not be looked up. Most records a rebuild or a fresh store's
 * catch-up replays create their row (every record of a compacted topic does, each key's first record of any
 * topic does), and looking up a row that is not stored costs LMDB a descent of its B-tree. Replaying 3M
 * records over 300k users into a shadow (the `rebuild` bench's workload, in process, profiled): those
 * lookups took 2.3 s of the 22 s the rows took, and with the filter the lookups left (rows stored by earlier
 * chunks) 0.5 s and the filter's checks 0.05 s.
 *
 * Blocked (Putze, Sanders, Singler 2007): the bits of one key are in one block of 512 bits, a cache line,
 * so a lookup reads one line per segment. It grows by segments, each twice the one before (a key is added to
 * the newest, looked for in all), from SEGMENT_KEYS keys, MAX_SEGMENTS of them at most; past the keys they
 * hold it holds everything (`mayHold` true: rows are looked up as without it), so its memory stays within
 * 2 bytes per key it can hold (56 MB by default). About 1 % false positives per segment at its capacity
 * (4 bits of 512 per key, 16 bits per key): a false positive only costs the lookup.
 *
 * Sound only while every key the rows hold went through `add`: it is made for rows that are empty, and every
 * key stored from then on is added (`KnownRows`, below, for one committing context: its commits through
 * `FilteredRows` in write.ts, its rebuild's chunks in shadow-chunks.ts); removals are not taken out.
 */
import type { GenerationState, RowStore } from '../materializer/commit.js';
import { TABLES, type Row, type Table } from '../views/source.js';

/**
 * Keys the first segment holds by default (8 MB of bits); each next one holds twice as many. Few segments, for
 * each is a cache miss of a lookup that finds nothing: 6M records over 600k users replayed into a shadow in
 * process (rows only, chunks of 250k), 43.1-44.3 s with segments from 4M keys on and 43.9-49.4 s from 512k,
 * against 52.1-53.0 s without a filter; 10M records over 1M users, 73.1 and 76.7 s against 90.0 and 79.4 s.
 */
export const SEGMENT_KEYS = 1 << 22;
/** Segments at most by default: past their keys (7 × SEGMENT_KEYS, 29M) the filter holds everything. */
export const MAX_SEGMENTS = 3;

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

/** murmur3's finalizer: every input bit moves every output bit (also key-index.ts'). */
export function mix(h: number): number {
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
  // Four bit positions in the block, 9 bits each: three from h2, one from h1's top bits (above any block
  // index: the constructor keeps segments to at most 2^23 blocks).
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
  private readonly segments: Segment[];
  private keys = 0;
  /** Keys past which it holds everything. */
  readonly maxKeys: number;

  constructor(firstSegmentKeys = SEGMENT_KEYS, maxSegments = MAX_SEGMENTS) {
    // A power of two keys, at least one block's; the last segment's block index below the bits of h1 that
    // `probe` takes for a bit position (its blocks at most 2^23).
    const lastKeys = firstSegmentKeys * 2 ** (maxSegments - 1);
    if (firstSegmentKeys < 32 || (firstSegmentKeys & (firstSegmentKeys - 1)) !== 0 || lastKeys > 2 ** 28)
      throw new Error(`no row key filter of ${maxSegments} segments from ${firstSegmentKeys} keys`);
    this.segments = [segment(firstSegmentKeys)];
    this.maxKeys = firstSegmentKeys * (2 ** maxSegments - 1);
  }

  /** Keys added (each add counts, a key added twice twice). */
  get added(): number {
    return this.keys;
  }

  /** Past `maxKeys`: it holds everything. */
  get saturated(): boolean {
    return this.keys > this.maxKeys;
  }

  add(table: Table, key: string): void {
    if (++this.keys > this.maxKeys) return;
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
    if (this.keys > this.maxKeys) return true;
    hash(table, key);
    for (let i = this.segments.length - 1; i >= 0; i--) if (probe(this.segments[i]!, false)) return true;
    return false;
  }
}

/** Generations a context remembers at most: the active one and a rebuild's shadow. */
const KEPT_GENERATIONS = 2;

/**
 * The row-key filters of the generations one committing context writes (the writer thread's, or the store's
 * with it off: every row a process writes goes through one of them, its commits and its rebuild's chunks).
 * A generation gets one when a commit or a chunk first finds its rows empty (a fresh store's, a new
 * shadow's), from which on every row put into it goes through the filter; one whose rows were not empty
 * when first seen here (a store opened over rows, a shadow resumed by a new process) has none, and its rows
 * are looked up. Only the two generations last written are remembered; one forgotten is seen again as new
 * (with no filter unless its rows are empty by then).
 */
export class KnownRows {
  /** Per generation, its filter or null (none); most recently used last. */
  private readonly seen = new Map<number, RowKeyFilter | null>();

  /** Generation `id`'s filter, if it has one; `rows`: its rows, asked whether they are empty when it is new. */
  of(id: number, rows: { empty(): boolean }): RowKeyFilter | undefined {
    let filter = this.seen.get(id);
    if (filter !== undefined) this.seen.delete(id);
    else filter = rows.empty() ? new RowKeyFilter() : null;
    this.seen.set(id, filter);
    for (const old of this.seen.keys()) {
      if (this.seen.size <= KEPT_GENERATIONS) break;
      this.seen.delete(old);
    }
    return filter ?? undefined;
  }
}

/**
 * `rows` behind `known` (KnownRows' filter of their generation): a row it rules out is not looked up, and
 * every row put goes through it. (A row is removed only where a commit found it.)
 */
export class FilteredRows implements RowStore {
  constructor(
    private readonly rows: RowStore,
    private readonly known: RowKeyFilter,
  ) {}
  row(table: Table, key: string): Row | undefined {
    return this.known.mayHold(table, key) ? this.rows.row(table, key) : undefined;
  }
  keys(table: Table): Iterable<string> {
    return this.rows.keys(table);
  }
  put(table: Table, key: string, row: Row, partition: number, offset: string, eventTime: number): void {
    this.known.add(table, key);
    this.rows.put(table, key, row, partition, offset, eventTime);
  }
  remove(table: Table, key: string): void {
    this.rows.remove(table, key);
  }
}

/** `generation` with its rows behind `known` (FilteredRows), for one commit. */
export function withKnownRows(generation: GenerationState, known: RowKeyFilter): GenerationState {
  return {
    rows: new FilteredRows(generation.rows, known),
    position: (topic, partition) => generation.position(topic, partition),
    setPosition: (topic, partition, next) => generation.setPosition(topic, partition, next),
    spaces: (view) => generation.spaces(view),
  };
}
