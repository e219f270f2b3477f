/**
 * A generation held in memory: the commit body's state for the reference-model tests, the materializer
 * benchmark, `matview verify` (views recomputed from the rows) and the rebuild of one view from the rows.
 * Values are kept as they are (no encoding); indexes are B+ trees in Unicode code point order, the order
 * LMDB gives the same keys (UTF-8 bytes).
 */
import btree from 'sorted-btree';
import type { Registry } from '../views/registry.js';
import type { Row, Table } from '../views/source.js';
import type { IndexSpace, KvSpace, Spaces } from '../views/types.js';
import type { GenerationState, RowStore } from './commit.js';

// sorted-btree is CommonJS with `exports.default`: Node hands ESM its `module.exports`, while Vite's
// interop (the tests) hands over `exports.default` itself.
type BTreeClass = typeof btree.default;
const BTree: BTreeClass = ((btree as { default?: BTreeClass }).default ?? btree) as BTreeClass;

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
}

export class MemoryIndex implements IndexSpace {
  readonly tree = new BTree<string, true>(undefined, compareCodePoints);
  add(key: string): void {
    this.tree.set(key, true);
  }
  remove(key: string): void {
    this.tree.delete(key);
  }
  first(prefix: string, limit: number): string[] {
    const out: string[] = [];
    for (const key of this.tree.keys(prefix)) {
      if (out.length >= limit || !key.startsWith(prefix)) break;
      out.push(key);
    }
    return out;
  }
  all(): Iterable<string> {
    return this.tree.keys();
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
  const out = new Map<string, Spaces>();
  for (const view of registry.views) {
    const spaces: Record<string, KvSpace<unknown> | IndexSpace> = {};
    for (const [name, spec] of Object.entries(view.spaces))
      spaces[name] = spec.kind === 'kv' ? new MemoryKv<unknown>() : new MemoryIndex();
    out.set(view.name, spaces);
  }
  return out;
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
