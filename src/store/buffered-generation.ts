/**
 * A rebuild's shadow generation, buffered: commits into it apply to memory on top of the generation's
 * stored state, and many of them are written together, in key order, by one LMDB transaction (`writeTo`).
 *
 * Why: a commit writes every page it touches once, copying it (LMDB is copy-on-write), so on a store much
 * larger than one commit's keys each record costs several page copies: replaying 2M records over 1M users
 * wrote ~25 KB per record. A chunk of a million records touches most pages once instead of once per commit.
 * Nothing reads a shadow while it is built, so nothing is missed while its commits wait in memory.
 *
 * What holds:
 * - The state a commit sees is exactly the stored state with every earlier buffered commit applied (each
 *   space, the rows and the positions read through the buffer first), so the commit body
 *   (src/materializer/commit.ts) computes what it would have computed committing one by one.
 * - `writeTo` writes the net effect of the buffered commits in one transaction: the rows, every view's
 *   spaces and the positions together (a rebuild's chunk writes rows and positions alone, `writeRowsTo`,
 *   and passes its views' buffer on to the next chunk: shadow-chunks.ts). A crash before it leaves the
 *   generation at the previous write, a prefix, and the rebuild resumes from the positions stored with it.
 *   Nothing else of the shadow's needs them sooner: the swap compares the stored positions with the live
 *   end, so it waits for the write.
 * - Views' values are kept as the view put them (objects, not encoded): a view must not mutate a value it
 *   read (the in-memory state of the reference-model tests holds values the same way). Rows are kept in their
 *   stored form (row-codec.ts), so a row read back holds the fields the store keeps, as one read from LMDB.
 */
import { uncachedEncoding } from '../views/codec.js';
import { TABLES, type Row, type Table } from '../views/source.js';
import type { IndexSpace, KvSpace, Spaces } from '../views/types.js';
import { MemoryIndex, compareCodePoints } from '../materializer/memory-state.js';
import type { GenerationState, RowStore } from '../materializer/commit.js';
import { TRUNCATE, type ChangeColumns } from '../materializer/change-batch.js';
import { sameRow, type RowEquality } from '../materializer/resolve.js';
import { InvariantError } from '../errors.js';
import { decodeRow, decodeStoredRow, storedRowBound, writeStoredRow, type StoredRow } from './row-codec.js';
import type { RowKeyFilter } from './row-key-filter.js';
import { KeyIndex } from './key-index.js';

/** A KV value removed by a buffered commit. */
const GONE = Symbol('gone');

/** Runs every step of `steps`. */
function drain(steps: Iterator<void>): void {
  let step = steps.next();
  while (step.done !== true) step = steps.next();
}

/** The keys of `pending` in key order (UTF-8 byte order, which LMDB keeps). */
function sortedKeys(pending: ReadonlyMap<string, unknown>): string[] {
  return [...pending.keys()].sort(compareCodePoints);
}

/**
 * The keys of `pending` in the order they are written: UTF-16 order, which is LMDB's but for keys with
 * characters past U+FFFF, where only the locality of the writes depends on it. The built-in comparison: a
 * chunk's 250k row keys sorted and looked up in 110-150 ms against 170-220 with `compareCodePoints`.
 */
function writeOrder(pending: ReadonlyMap<string, unknown>): string[] {
  return [...pending.keys()].sort();
}

/** Whether the keys of `pending`, in the order they were put, are in `writeOrder`'s. */
function inWriteOrder(pending: ReadonlyMap<string, unknown>): boolean {
  let previous: string | undefined;
  for (const k of pending.keys()) {
    if (previous !== undefined && !(previous < k)) return false;
    previous = k;
  }
  return true;
}

class BufferedKv implements KvSpace<unknown> {
  readonly pending = new Map<string, unknown>();
  /** `baseEmpty`: the stored space holds nothing, so a removal only drops what is buffered. */
  constructor(
    private readonly base: KvSpace<unknown>,
    private baseEmpty = false,
  ) {}
  /** Keys buffered (put or removed). */
  get size(): number {
    return this.pending.size;
  }
  /** Some of it was written to the stored space: removals are remembered from now on. */
  baseWritten(): void {
    this.baseEmpty = false;
  }
  get(key: string): unknown {
    const v = this.pending.get(key);
    if (v !== undefined) return v === GONE ? undefined : v;
    return this.base.get(key);
  }
  put(key: string, value: unknown): void {
    this.pending.set(key, value);
  }
  remove(key: string): void {
    if (this.baseEmpty) this.pending.delete(key);
    else this.pending.set(key, GONE);
  }
  *entries(): Iterable<[string, unknown]> {
    const merged = new Map<string, unknown>();
    for (const [k, v] of this.base.entries()) merged.set(k, v);
    for (const [k, v] of this.pending) {
      if (v === GONE) merged.delete(k);
      else merged.set(k, v);
    }
    for (const k of sortedKeys(merged)) yield [k, merged.get(k)];
  }
  /** The stored keys not buffered, then the buffered ones not removed. */
  *keys(): Iterable<string> {
    const { pending } = this;
    for (const k of this.base.keys()) if (!pending.has(k)) yield k;
    for (const [k, v] of pending) if (v !== GONE) yield k;
  }
  write(): void {
    drain(this.writes());
  }
  /**
   * `write`, one key per step. Keys put in write order already (a rebuild's views and counts, put as the
   * users rows are replayed in key order) go in the order they were put, read along the Map's entries: the
   * sorted keys' lookups, each a cache miss in a Map of a million, were 2.7 s of a rebuild's views built
   * from 9.1M rows over 1M users (profiled on the writer thread), and a pass in that order ~15-60 ms against
   * 230-300 ms per 1M keys (a scratch benchmark).
   */
  *writes(): Generator<void, void, void> {
    const { pending } = this;
    if (inWriteOrder(pending))
      for (const [k, v] of pending) {
        this.writeOne(k, v);
        yield;
      }
    else
      for (const k of writeOrder(pending)) {
        this.writeOne(k, pending.get(k));
        yield;
      }
  }
  /** Writes one buffered key (`GONE`: its removal) to the stored space. */
  private writeOne(key: string, value: unknown): void {
    if (value === GONE) this.base.remove(key);
    else this.base.put(key, value);
  }
}

export class BufferedIndex implements IndexSpace {
  /** Keys added by buffered commits, in order. */
  private readonly added = new MemoryIndex();
  /** Keys removed by buffered commits (from the stored index, where they may or may not be). */
  private readonly removed = new Set<string>();
  /** `baseEmpty`: the stored index holds nothing, so a removal only drops what is buffered. */
  constructor(
    private readonly base: IndexSpace,
    private baseEmpty = false,
  ) {}
  /** Keys buffered (added or removed). */
  get size(): number {
    return this.added.size + this.removed.size;
  }
  /** Some of it was written to the stored index: removals are remembered from now on. */
  baseWritten(): void {
    this.baseEmpty = false;
  }
  add(key: string): void {
    this.removed.delete(key);
    this.added.add(key);
  }
  remove(key: string): void {
    this.added.remove(key);
    if (!this.baseEmpty) this.removed.add(key);
  }
  first(prefix: string, limit: number): string[] {
    const added = this.added.first(prefix, limit);
    // The first stored keys not removed: ask for more while removals hide some (few near the top of a
    // ranking, which is what the commit path reads).
    let ask = limit + 16;
    let keys = this.base.first(prefix, ask);
    let stored = keys.filter((k) => !this.removed.has(k));
    while (stored.length < limit && keys.length === ask) {
      ask *= 2;
      keys = this.base.first(prefix, ask);
      stored = keys.filter((k) => !this.removed.has(k));
    }
    const out: string[] = [];
    let a = 0;
    let s = 0;
    while (out.length < limit && (a < added.length || s < stored.length)) {
      const x = added[a];
      const y = stored[s];
      const c = x === undefined ? 1 : y === undefined ? -1 : compareCodePoints(x, y);
      out.push(c <= 0 ? x! : y!);
      if (c <= 0) a++;
      if (c >= 0) s++;
    }
    return out;
  }
  last(prefix: string, before?: string): string | undefined {
    let stored = this.base.last(prefix, before);
    while (stored !== undefined && this.removed.has(stored)) stored = this.base.last(prefix, stored);
    const added = this.added.last(prefix, before);
    if (stored === undefined) return added;
    if (added === undefined) return stored;
    return compareCodePoints(added, stored) > 0 ? added : stored;
  }
  *all(): Iterable<string> {
    const keys = new Set<string>();
    for (const k of this.base.all()) if (!this.removed.has(k)) keys.add(k);
    for (const k of this.added.all()) keys.add(k);
    yield* [...keys].sort(compareCodePoints);
  }
  write(): void {
    drain(this.writes());
  }
  /** `write`, one key per step. */
  *writes(): Generator<void, void, void> {
    for (const k of [...this.removed].sort(compareCodePoints)) {
      this.base.remove(k);
      yield;
    }
    for (const k of this.added.all()) {
      this.base.add(k);
      yield;
    }
  }
}

/** A view's spaces, each buffered over the stored one. */
export type BufferedSpaces = Record<string, BufferedKv | BufferedIndex>;

/**
 * Buffers over each of `stored`'s spaces: reads see the stored space with the buffered changes on top.
 * `storedEmpty`: the stored spaces hold nothing yet (a new build), so removals need not be remembered.
 */
export function bufferedSpaces(stored: Spaces, storedEmpty = false): BufferedSpaces {
  const out: BufferedSpaces = {};
  for (const [name, space] of Object.entries(stored))
    out[name] = 'put' in space ? new BufferedKv(space, storedEmpty) : new BufferedIndex(space, storedEmpty);
  return out;
}

/** Bytes of one slab of a buffer's rows (a row that needs more gets a slab of its own). */
const SLAB_BYTES = 4 << 20;

/** Per entry of a buffer's rows, in `BufferedRows.entries`: */
const SLAB = 0; // which slab holds its stored form
const START = 1; // where it starts there
const LENGTH = 2; // its bytes; REMOVED: the row is removed
const COMMIT = 3; // the `applyRecords` call that made it (0: none), and
const FIRST = 4; // where that call noted what the buffer held for the key before it (its `starts`)
const STRIDE = 5;
const REMOVED = -1;

/**
 * The rows of a buffered generation. Each row is kept in its stored form (row-codec.ts, with its origin), in
 * slabs of bytes, and each key maps to the index of its latest entry: a rebuild's chunk holds up to hundreds
 * of thousands of rows, and a row object, its strings and an entry object each, held until the chunk is
 * written, were promoted by the collector and dropped chunk after chunk. Writing copies the bytes as they are.
 * The rows of the `rebuild` bench's replay (10M records over 1M users, writer thread, rows only, scratch
 * driver, alternated): in chunks of 250k records 79.8, 70.6 and 86.6 s against 81.4, 76.4 and 85.8 s, ~2 s
 * less time in the kernel; in chunks of 1M 65.7, 64.1 and 65.7 s (peak RSS 2.6-2.8 GB) against 79.1 and
 * 81.9 s (3.4-3.5 GB).
 */
class BufferedRows implements RowStore {
  /** Per table, each buffered key's latest entry (put or removed). */
  private readonly pending: Record<Table, KeyIndex> = {
    users: new KeyIndex(),
    tweets: new KeyIndex(),
    follows: new KeyIndex(),
    likes: new KeyIndex(),
  };
  private entries = new Int32Array(STRIDE * 1024);
  private count = 0;
  private readonly slabs: Buffer[] = [];
  /** Bytes used of the last slab. */
  private used = 0;
  /** Calls of `applyRecords` so far. */
  private commits = 0;
  /**
   * `fields`: the stored fields of each table (the generation's `rowFields`), which the stored form keeps.
   * `known`: every key the stored rows hold went through it, and nothing else writes them while this buffers
   * (a rebuild's shadow: shadow-chunks.ts); each key this buffer puts goes through it too. A row it rules out
   * is not looked up: most rows a replay meets are new, and a lookup of each is ~0.8 µs.
   */
  constructor(
    private readonly base: RowStore,
    private readonly fields: Readonly<Record<Table, readonly string[]>>,
    private readonly known?: RowKeyFilter,
  ) {}

  /** A new entry: `row` in its stored form with its origin (null: removed). */
  private entry(
    table: Table,
    row: Row | null,
    partition: number,
    offset: string,
    eventTime: number,
    commit: number,
    first: number,
  ): number {
    let slab = -1;
    let start = 0;
    let length = REMOVED;
    if (row !== null) {
      const fields = this.fields[table];
      const bound = storedRowBound(fields, row, offset);
      let last = this.slabs[this.slabs.length - 1];
      if (last === undefined || this.used + bound > last.length) {
        last = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, bound));
        this.slabs.push(last);
        this.used = 0;
      }
      slab = this.slabs.length - 1;
      start = this.used;
      this.used = writeStoredRow(last, start, fields, row, partition, offset, eventTime);
      length = this.used - start;
    }
    if ((this.count + 1) * STRIDE > this.entries.length) {
      const grown = new Int32Array(this.entries.length * 2);
      grown.set(this.entries);
      this.entries = grown;
    }
    const at = this.count * STRIDE;
    const e = this.entries;
    e[at + SLAB] = slab;
    e[at + START] = start;
    e[at + LENGTH] = length;
    e[at + COMMIT] = commit;
    e[at + FIRST] = first;
    return this.count++;
  }

  /** Entry `id`'s stored form (undefined: removed). */
  private bytes(id: number): Buffer | undefined {
    const at = id * STRIDE;
    const e = this.entries;
    const length = e[at + LENGTH]!;
    if (length === REMOVED) return undefined;
    const start = e[at + START]!;
    return this.slabs[e[at + SLAB]!]!.subarray(start, start + length);
  }

  /** Entry `id`'s row (null: removed). */
  private rowOf(table: Table, id: number): Row | null {
    const bytes = this.bytes(id);
    return bytes === undefined ? null : decodeRow(table, this.fields[table], bytes);
  }

  row(table: Table, key: string): Row | undefined {
    const id = this.pending[table].get(key);
    if (id !== undefined) return this.rowOf(table, id) ?? undefined;
    return this.known?.mayHold(table, key) === false ? undefined : this.base.row(table, key);
  }
  keys(table: Table): Iterable<string> {
    const keys = new Set(this.known?.added === 0 ? [] : this.base.keys(table));
    for (const [k, id] of this.pending[table].entries()) {
      if (this.entries[id * STRIDE + LENGTH] === REMOVED) keys.delete(k);
      else keys.add(k);
    }
    return keys;
  }
  put(table: Table, key: string, row: Row, partition: number, offset: string, eventTime: number): void {
    this.known?.add(table, key);
    this.pending[table].set(key, this.entry(table, row, partition, offset, eventTime, 0, 0));
  }
  remove(table: Table, key: string): void {
    this.pending[table].set(key, this.entry(table, null, 0, '', 0, 0, 0));
  }

  /** Each buffered key of `table` with its row and origin as stored (null: removed), in no order. */
  *held(table: Table): Iterable<[string, StoredRow | null]> {
    for (const [key, id] of this.pending[table].entries()) {
      const bytes = this.bytes(id);
      yield [key, bytes === undefined ? null : decodeStoredRow(table, this.fields[table], bytes)];
    }
  }

  /**
   * RowStore `applyRecords`: at most one read of the key index and one write per record (no read for a key
   * the filter rules out), where resolving (a slot per key in a Map of the commit's own, the slots sorted,
   * each row read, the transitions kept) and then `put` or `remove` per transition made two of each, a sort
   * and the arrays in between. The rows of the `rebuild` bench's replay (10M records over 1M users, on the writer
   * thread, rows only): 76.8, 93.6 and 82.2 s against 98.5, 101.8, 93.5 and 86.5 s (alternated); profiled
   * at 3M records, the commits' part of the writer thread 6.8 s against 10.2 s.
   *
   * Each record applies to what the buffer holds, as resolving applies it to its slot: one equal to the
   * current row (or a removal of none) is a noop; any other replaces the key's entry, with its own origin,
   * so the last one's origin stays, as `last` gives it. What the key held before the commit (the entry, or
   * none) is noted at its first change in `starts`; a record that brings the row back to what it was then is
   * no transition, and the key's entry before the commit is put back, its origin with it.
   */
  applyRecords(
    changes: ChangeColumns,
    accepted: readonly number[],
    equal: Readonly<Record<Table, RowEquality>>,
  ): number {
    const commit = ++this.commits;
    /** Per key changed in this commit: its entry before the commit (-1: none), and its row then. */
    const starts: number[] = [];
    const startRows: (Row | null)[] = [];
    let noops = 0;
    for (let n = 0; n < accepted.length; n++) {
      const i = accepted[n]!;
      const table = changes.table[i]!;
      const key = changes.key[i]!;
      const value = changes.row[i] as Row | null | typeof TRUNCATE;
      if (value === TRUNCATE) throw new InvariantError('applyRecords takes no truncate');
      const same = equal[table];
      const pending = this.pending[table];
      // A key the filter rules out is neither stored nor buffered (every key put here goes through it, and a
      // key is removed only where it was found): most keys of a replay, which are new, cost no index read.
      const ruledOut = this.known?.mayHold(table, key) === false;
      const id = ruledOut ? undefined : pending.get(key);
      const touched = id !== undefined && this.entries[id * STRIDE + COMMIT] === commit;
      const current =
        id !== undefined ? this.rowOf(table, id) : ruledOut ? null : (this.base.row(table, key) ?? null);
      if (sameRow(same, value, current)) {
        noops++;
        continue;
      }
      const first = touched ? this.entries[id * STRIDE + FIRST]! : starts.length;
      if (!touched) {
        starts.push(id ?? -1);
        startRows.push(current);
      } else if (sameRow(same, value, startRows[first] as Row | null)) {
        // Back to the row before the commit: no transition, and the entry before it back (or none).
        const start = starts[first]!;
        if (start === -1) pending.delete(key);
        else pending.set(key, start);
        continue;
      }
      if (value !== null) this.known?.add(table, key);
      pending.set(
        key,
        this.entry(
          table,
          value,
          changes.partition[i]!,
          changes.offset[i]!,
          changes.eventTime[i]!,
          commit,
          first,
        ),
      );
    }
    return noops;
  }

  write(): void {
    const base = this.base;
    // Tables in the order their stored keys sort (`<table>\0<key>`).
    for (const table of [...TABLES].sort()) {
      const pending = this.pending[table];
      // In UTF-16 order, as `writeOrder`.
      for (const k of pending.liveKeys().sort()) {
        const bytes = this.bytes(pending.get(k)!);
        if (bytes === undefined) base.remove(table, k);
        else if (base.putStored !== undefined) base.putStored(table, k, bytes);
        else {
          const { row, origin } = decodeStoredRow(table, this.fields[table], bytes);
          base.put(table, k, row, origin.partition, origin.offset, origin.eventTime);
        }
      }
    }
  }
}

/**
 * Every view's spaces of one generation, buffered over the stored ones. A rebuild's chunks carry this from
 * one chunk to the next (shadow-chunks.ts): a chunk writes its rows and positions, and the views wait in
 * memory until the buffer is full or the shadow is about to be swapped in.
 */
export class BufferedViews {
  private readonly buffers = new Map<string, BufferedSpaces>();
  /**
   * `storedEmpty`: the stored spaces hold nothing (a new shadow's builds), so removals need not be
   * remembered. `builds`: which builds of the views the buffer sits on (the generation's `info.views`, as
   * the caller names them): a buffer over builds that were replaced since is of no use.
   */
  constructor(
    private readonly stored: Pick<GenerationState, 'spaces'>,
    private storedEmpty = false,
    readonly builds = '',
  ) {}
  /**
   * Part of it was written to the stored spaces (a sliced write that failed halfway), which are not empty
   * any more: removals are remembered from now on, so that writing it again removes what a later commit
   * removed. Reads stay right meanwhile (the stored entries written equal the buffered ones).
   */
  storedWritten(): void {
    this.storedEmpty = false;
    for (const spaces of this.buffers.values())
      for (const space of Object.values(spaces)) space.baseWritten();
  }
  spaces(view: string): BufferedSpaces {
    let spaces = this.buffers.get(view);
    if (spaces === undefined) {
      spaces = bufferedSpaces(this.stored.spaces(view), this.storedEmpty);
      this.buffers.set(view, spaces);
    }
    return spaces;
  }
  /** Entries buffered (values and index keys put or removed), over every view's spaces. */
  get entries(): number {
    let n = 0;
    for (const spaces of this.buffers.values()) for (const space of Object.values(spaces)) n += space.size;
    return n;
  }
  /** Writes every space in key order (inside the caller's write transaction). Spent afterwards: use a new one. */
  writeTo(): void {
    uncachedEncoding(() => drain(this.writes()));
  }

  /**
   * `writeTo`, one entry per step, for a caller that spreads the write over several transactions (each
   * through {@link writeSlice}). Does not change the buffer: a write that failed halfway can start again.
   */
  *writes(): Generator<void, void, void> {
    for (const spaces of this.buffers.values()) for (const s of Object.values(spaces)) yield* s.writes();
  }
}

/**
 * Takes up to `entries` steps of `steps` (`BufferedViews.writes`) inside the caller's write transaction, as
 * `writeTo` does; whether the write is done.
 */
export function writeSlice(steps: Generator<void, void, void>, entries: number): boolean {
  let done = false;
  uncachedEncoding(() => {
    for (let i = 0; i < entries && !done; i++) done = steps.next().done === true;
  });
  return done;
}

export class BufferedGeneration implements GenerationState {
  readonly rows: BufferedRows;
  private readonly positions = new Map<string, { topic: string; partition: number; next: string }>();
  /**
   * `id`: the generation's (the chunk's writer checks, when it writes, that it is still a shadow). `views`:
   * the views' buffer, when it outlives this one (a rebuild's chunks share one); by default its own.
   * `knownRows`: a filter every key of the stored generation's rows went through, when nothing else writes
   * them while this buffers (the rows it puts go through it too): rows it rules out are not looked up.
   * `rowFields`: the fields its rows keep (the generation's `rowFields`).
   */
  constructor(
    private readonly stored: GenerationState,
    readonly id: number,
    rowFields: Readonly<Record<Table, readonly string[]>>,
    readonly views: BufferedViews = new BufferedViews(stored),
    knownRows?: RowKeyFilter,
  ) {
    this.rows = new BufferedRows(stored.rows, rowFields, knownRows);
  }

  position(topic: string, partition: number): string | undefined {
    return this.positions.get(`${topic}\u0000${partition}`)?.next ?? this.stored.position(topic, partition);
  }
  setPosition(topic: string, partition: number, next: string): void {
    this.positions.set(`${topic}\u0000${partition}`, { topic, partition, next });
  }
  spaces(view: string): Spaces {
    return this.views.spaces(view);
  }

  /**
   * Writes everything buffered into the stored generation, each space in key order (inside the caller's
   * write transaction). The buffer is spent afterwards: use a new one.
   */
  writeTo(): void {
    this.writeRowsTo();
    this.views.writeTo();
  }

  /** Writes the rows and the positions only: the views stay in `views`, not written (a rebuild's chunk). */
  writeRowsTo(): void {
    this.rows.write();
    for (const p of this.positions.values()) this.stored.setPosition(p.topic, p.partition, p.next);
  }
}
