/**
 * A generation held in memory: the commit body's state for the reference-model tests, the materializer
 * benchmark, `matview verify` (views recomputed from the rows) and the rebuild of one view from the rows.
 * Values are kept as they are (no encoding); indexes are sorted blocks of keys in Unicode code point order,
 * the order LMDB gives the same keys (UTF-8 bytes).
 */
import type { Registry } from '../views/registry.js';
import type { Row, Table } from '../views/source.js';
import type { IndexSpace, KvSpace, Spaces, ViewModule } from '../views/types.js';
import type { GenerationState, RowStore } from './commit.js';

/** String order by Unicode code point (= UTF-8 byte order), unlike `<` (UTF-16 code units). */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (D800–DFFF) encode code points above FFFF: move them above E000–FFFF.
    if (x >= 0xd800) x += x <= 0xdfff ? 0x2000 : -0x800;
    if (y >= 0xd800) y += y <= 0xdfff ? 0x2000 : -0x800;
    return x - y;
  }
  return a.length - b.length;
}

export class MemoryKv<V> implements KvSpace<V> {
  readonly map = new Map<string, V>();
  get(key: string): V | undefined {
    return this.map.get(key);
  }
  put(key: string, value: V): void {
    this.map.set(key, value);
  }
  remove(key: string): void {
    this.map.delete(key);
  }
  entries(): Iterable<[string, V]> {
    return [...this.map.entries()].sort(([a], [b]) => compareCodePoints(a, b));
  }
  keys(): Iterable<string> {
    return this.map.keys();
  }
}

/** Keys per block of a {@link MemoryIndex} at most, by default; a full block splits in two halves. */
const BLOCK_MAX = 64;
/** Numbers per key that hold its first 3 × HEADS UTF-16 units (three units per number, base 2^16 + 1). */
const HEADS = 5;
const BASE = 0x10001;

/**
 * The first 3 × HEADS units of `key` as HEADS numbers into `out` from `at`, so that comparing those numbers
 * in order compares the keys' first 3 × HEADS units by code point: units at or above D800 are moved as in
 * {@link compareCodePoints}, and a key that ends counts 0 (before any unit, as a prefix sorts first).
 */
function writeHeads(key: string, out: Float64Array, at: number): void {
  let u = 0;
  for (let h = 0; h < HEADS; h++) {
    let v = 0;
    for (let j = 0; j < 3; j++, u++) {
      let c = 0;
      if (u < key.length) {
        c = key.charCodeAt(u);
        if (c >= 0xd800) c += c <= 0xdfff ? 0x2000 : -0x800;
        c += 1;
      }
      v = v * BASE + c;
    }
    out[at + h] = v;
  }
}

/**
 * Sorted keys and their heads (HEADS numbers per key, room for one key more than the block holds), and a copy
 * of the last key's heads: the search over the blocks reads that small array, allocated with the block, not
 * the block's large one (a cache miss fewer per step, on ~10k blocks).
 */
interface Block {
  keys: string[];
  heads: Float64Array;
  last: Float64Array;
}

/** Copies the heads of `block`'s last key to `block.last`. */
function keepLast(block: Block): void {
  const at = (block.keys.length - 1) * HEADS;
  for (let h = 0; h < HEADS; h++) block.last[h] = block.heads[at + h]!;
}

/**
 * An ordered set of strings in Unicode code point order, as sorted blocks of at most `blockMax` keys: an add
 * or remove is a binary search over the blocks' last keys, one inside the block and a short splice. Each key
 * is compared through its first units packed into numbers held next to each other in the block (the keys
 * themselves are scattered over the heap: comparing cold strings was what an index operation cost); the
 * strings are compared only when those units are equal.
 *
 * The TopUsers ranking moves two keys per changed count in every commit (`<ranking><count><userId>`, whose
 * first 15 units hold the ranking, the count and userIds of up to 6 units). On 4 × 100k such keys a move
 * (remove + add, both keys built) costs ~1.5 µs here against ~2.5–3.5 µs in the B+ tree this replaces
 * (the sorted-btree package with a string comparator, whose delete goes through a generic range edit). What is left is
 * mostly memory latency (the blocks, the key strings on an exact match or a tie), not work that this shape
 * could cut further.
 */
export class MemoryIndex implements IndexSpace {
  /** Non-empty, in order. */
  private readonly blocks: Block[] = [];
  /** A block left with fewer keys merges into a neighbour (when both fit in one). */
  private readonly blockMin: number;
  /** The heads of the key being looked up. */
  private readonly probe = new Float64Array(HEADS);

  /** `blockMax`: keys per block at most (tests lower it to split and merge blocks with few keys). */
  constructor(private readonly blockMax = BLOCK_MAX) {
    this.blockMin = Math.max(1, blockMax >>> 3);
  }

  /** Compares key `i` of `block` with the probe (`key`, whose heads are in `probe`). */
  private compareAt(block: Block, i: number, key: string): number {
    return this.compareHeads(block.heads, i * HEADS, block, i, key);
  }

  /** Compares the last key of `block` with the probe, reading its heads from `block.last`. */
  private compareLast(block: Block, key: string): number {
    return this.compareHeads(block.last, 0, block, block.keys.length - 1, key);
  }

  /** Compares key `i` of `block`, whose heads are `heads` from `at`, with the probe. */
  private compareHeads(heads: Float64Array, at: number, block: Block, i: number, key: string): number {
    const probe = this.probe;
    for (let h = 0; h < HEADS; h++) {
      const d = heads[at + h]! - probe[h]!;
      if (d !== 0) return d;
    }
    // Equal heads: a probe shorter than the units they hold ends where the key does, so it is the key.
    if (key.length < 3 * HEADS) return 0;
    const k = block.keys[i]!;
    return k === key ? 0 : compareCodePoints(k, key);
  }

  /** The first block whose last key is at or after the probe (blocks.length: after every key). */
  private blockOf(key: string): number {
    const blocks = this.blocks;
    let lo = 0;
    let hi = blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareLast(blocks[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index in `block` of the first key at or after the probe. */
  private indexIn(block: Block, key: string): number {
    let lo = 0;
    let hi = block.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareAt(block, mid, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** A block of `keys`; `heads`: theirs, already computed (a split copies them rather than reading every key). */
  private newBlock(keys: string[], heads?: Float64Array): Block {
    const own = new Float64Array((this.blockMax + 1) * HEADS);
    if (heads !== undefined) own.set(heads);
    else for (let i = 0; i < keys.length; i++) writeHeads(keys[i]!, own, i * HEADS);
    const block = { keys, heads: own, last: new Float64Array(HEADS) };
    keepLast(block);
    return block;
  }

  add(key: string): void {
    const { blocks } = this;
    if (blocks.length === 0) {
      blocks.push(this.newBlock([key]));
      return;
    }
    writeHeads(key, this.probe, 0);
    // After every key: append to the last block.
    const b = Math.min(this.blockOf(key), blocks.length - 1);
    const block = blocks[b]!;
    const n = block.keys.length;
    const i = this.indexIn(block, key);
    if (i < n && this.compareAt(block, i, key) === 0) return;
    block.keys.splice(i, 0, key);
    block.heads.copyWithin((i + 1) * HEADS, i * HEADS, n * HEADS);
    block.heads.set(this.probe, i * HEADS);
    if (n + 1 > this.blockMax) {
      const half = (n + 1) >>> 1;
      const moved = block.heads.subarray(half * HEADS, (n + 1) * HEADS);
      blocks.splice(b + 1, 0, this.newBlock(block.keys.splice(half), moved));
      keepLast(block);
    } else if (i === n) keepLast(block);
  }

  remove(key: string): void {
    const { blocks } = this;
    writeHeads(key, this.probe, 0);
    const b = this.blockOf(key);
    const block = blocks[b];
    if (block === undefined) return;
    const n = block.keys.length;
    const i = this.indexIn(block, key);
    if (i === n || this.compareAt(block, i, key) !== 0) return;
    block.keys.splice(i, 1);
    block.heads.copyWithin(i * HEADS, (i + 1) * HEADS, n * HEADS);
    if (n === 1) {
      blocks.splice(b, 1);
      return;
    }
    if (i === n - 1) keepLast(block);
    if (n - 1 >= this.blockMin) return;
    // Merge into a neighbour, so that removals cannot leave many nearly empty blocks behind.
    const right = blocks[b + 1];
    if (right !== undefined && n - 1 + right.keys.length <= this.blockMax) {
      this.merge(b);
      return;
    }
    const left = blocks[b - 1];
    if (left !== undefined && left.keys.length + n - 1 <= this.blockMax) this.merge(b - 1);
  }

  /** Moves block `b + 1`'s keys to the end of block `b`. */
  private merge(b: number): void {
    const into = this.blocks[b]!;
    const from = this.blocks[b + 1]!;
    into.heads.set(from.heads.subarray(0, from.keys.length * HEADS), into.keys.length * HEADS);
    for (const key of from.keys) into.keys.push(key);
    keepLast(into);
    this.blocks.splice(b + 1, 1);
  }

  first(prefix: string, limit: number): string[] {
    const out: string[] = [];
    const { blocks } = this;
    writeHeads(prefix, this.probe, 0);
    let b = this.blockOf(prefix);
    if (b === blocks.length) return out;
    let i = this.indexIn(blocks[b]!, prefix);
    for (; b < blocks.length; b++, i = 0) {
      const { keys } = blocks[b]!;
      for (; i < keys.length; i++) {
        const key = keys[i]!;
        if (out.length >= limit || !key.startsWith(prefix)) return out;
        out.push(key);
      }
    }
    return out;
  }

  last(prefix: string, before?: string): string | undefined {
    // Keys before the prefix, then the prefix's keys before `before`: the answer is the last key of that run
    // (the rest of the index sorts after it), if it starts with the prefix.
    const inRun = (key: string): boolean =>
      key.startsWith(prefix)
        ? before === undefined || compareCodePoints(key, before) < 0
        : compareCodePoints(key, prefix) < 0;
    const { blocks } = this;
    let lo = 0;
    let hi = blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const { keys } = blocks[mid]!;
      if (inRun(keys[keys.length - 1]!)) lo = mid + 1;
      else hi = mid;
    }
    // Blocks before `lo` lie in the run; in block `lo`, find its first key outside it.
    const block = blocks[lo];
    let i = 0;
    if (block !== undefined) {
      let end = block.keys.length;
      while (i < end) {
        const mid = (i + end) >>> 1;
        if (inRun(block.keys[mid]!)) i = mid + 1;
        else end = mid;
      }
    }
    const key = i > 0 ? block!.keys[i - 1] : lo > 0 ? blocks[lo - 1]!.keys.at(-1) : undefined;
    return key?.startsWith(prefix) ? key : undefined;
  }

  all(): Iterable<string> {
    return this.blocks.flatMap((block) => block.keys);
  }

  /** Keys held (tests). */
  get size(): number {
    let n = 0;
    for (const block of this.blocks) n += block.keys.length;
    return n;
  }
}

/** The rows in memory, without their origins (nothing reads them back from memory: views rebuilt from rows read LMDB). */
export class MemoryRows implements RowStore {
  readonly tables: Record<Table, Map<string, Row>> = {
    users: new Map(),
    tweets: new Map(),
    follows: new Map(),
    likes: new Map(),
  };
  row(table: Table, key: string): Row | undefined {
    return this.tables[table].get(key);
  }
  keys(table: Table): Iterable<string> {
    return [...this.tables[table].keys()];
  }
  put(table: Table, key: string, row: Row): void {
    this.tables[table].set(key, row);
  }
  remove(table: Table, key: string): void {
    this.tables[table].delete(key);
  }
}

/** Empty spaces for every view of `registry`. */
export function memorySpaces(registry: Registry): Map<string, Spaces> {
  return new Map(registry.views.map((view) => [view.name, emptySpaces(view)]));
}

/** Empty spaces of `view`, in memory. */
export function emptySpaces(view: ViewModule): Spaces {
  const spaces: Record<string, KvSpace<unknown> | IndexSpace> = {};
  for (const [name, spec] of Object.entries(view.spaces))
    spaces[name] = spec.kind === 'kv' ? new MemoryKv<unknown>() : new MemoryIndex();
  return spaces;
}

export class MemoryState implements GenerationState {
  readonly rows = new MemoryRows();
  readonly positions = new Map<string, string>();
  readonly views: Map<string, Spaces>;

  constructor(registry: Registry) {
    this.views = memorySpaces(registry);
  }

  position(topic: string, partition: number): string | undefined {
    return this.positions.get(`${topic}\u0000${partition}`);
  }
  setPosition(topic: string, partition: number, next: string): void {
    this.positions.set(`${topic}\u0000${partition}`, next);
  }
  spaces(view: string): Spaces {
    const s = this.views.get(view);
    if (s === undefined) throw new Error(`no view "${view}" in this state`);
    return s;
  }
  /** A KV space's map (tests). */
  kv<V>(view: string, space: string): Map<string, V> {
    return (this.spaces(view)[space] as MemoryKv<V>).map;
  }
}
