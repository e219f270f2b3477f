/**
 * A generation: one complete copy of the materialized state in its own named sub-databases of the
 * store's LMDB environment: the source rows, the offsets they reflect, and every registered view's spaces.
 *
 * Two generations exist at most: the active one (what readers see) and, during a rebuild from the feed, a
 * shadow one being filled. Database names carry the generation id and, for a view's space, the view's
 * build: `g<id>/rows`, `g<id>/offsets`, `g<id>/<view>#<build>/<space>`. A view rebuilt from the rows (its
 * version bumped) is filled under a new build while the old one serves, and the generation's info switches
 * builds in one transaction. Ids and builds are never reused.
 */
import type { Database, RootDatabase } from 'lmdb';
import type { GenerationState, RowStore } from '../materializer/commit.js';
import { compareCodePoints } from '../materializer/memory-state.js';
import type { Registry } from '../views/registry.js';
import { TABLES, type Row, type Table } from '../views/source.js';
import {
  prefixEnd,
  type IndexSpace,
  type KvSpace,
  type SpaceSpec,
  type Spaces,
  type ValueCodec,
  type ViewModule,
} from '../views/types.js';
import { entryCount } from './environment.js';
import {
  decodeRow,
  decodeStoredRow,
  encodeRowTransient,
  PageDecoder,
  RowColumns,
  type StoredRow,
} from './row-codec.js';
import { stringKeyed } from './string-keys.js';
import { readFast } from './fast-read.js';

/** The store layout these names and encodings belong to (meta `generation:<id>`.format). */
export const STORE_FORMAT = 2;

/** What the store's meta records about a generation (`generation:<id>`, JSON). */
export interface GenerationInfo {
  readonly id: number;
  readonly format: typeof STORE_FORMAT;
  /** `retiring`: the generation a swap replaced, kept until the swap is reconciled (generations.ts). */
  readonly state: 'active' | 'building' | 'retiring';
  /** ISO-8601 time the generation was created. */
  readonly createdAt: string;
  /** Why it was created: `initial`, `requested`, `offset-out-of-range`, `source-fields`… */
  readonly reason: string;
  /** Sequence of the commit that swapped it in (absent for a store's first generation). */
  readonly activatedSequence?: string;
  /** ISO-8601 time of that commit. */
  readonly activatedAt?: string;
  /** Per table, the fields its stored rows keep (the registry's `storedFields` when it was created). */
  readonly rowFields: Readonly<Record<Table, readonly string[]>>;
  /** Per view, the version its spaces hold and the build (the database names) holding it. */
  readonly views: Readonly<Record<string, ViewBuild>>;
  /**
   * Set once every versioned value written before the swap has its final version (the replaced generation's
   * when the swap did not change the value, the swap's when it did): from then on values read as stored.
   */
  readonly reconciled?: boolean;
  /**
   * A shadow whose stored rows and positions are ahead of its stored views: a rebuild from the changelogs
   * begins with it set and stores rows only until its views are built from its rows, and after that its
   * chunks write the rows and keep the views in memory until the shadow is swapped in (shadow-chunks.ts).
   * Left set by a crash (or a rebuild that stopped without writing them), the views are built from the
   * stored rows once the resumed rebuild reaches its targets (or when it resumes, for other callers).
   */
  readonly viewsPending?: boolean;
  /**
   * A shadow asked for with `matview rebuild --drain` (or one such request while it was built): its server
   * reports not ready until it is swapped in, a restart that resumes it included. Not kept by the swap.
   */
  readonly drain?: boolean;
}

/** `info` with its `viewsPending` mark set or cleared. */
export function withViewsPending(info: GenerationInfo, pending: boolean): GenerationInfo {
  const { viewsPending: _, ...rest } = info;
  return pending ? { ...rest, viewsPending: true } : rest;
}

/** Which build of a view a generation serves; a view rebuilt from the rows gets a new build number. */
export interface ViewBuild {
  readonly version: number;
  readonly build: number;
}

export const rowsDbName = (id: number): string => `g${id}/rows`;
export const offsetsDbName = (id: number): string => `g${id}/offsets`;
export const spaceDbName = (id: number, view: string, build: number, space: string): string =>
  `g${id}/${view}#${build}/${space}`;

/** The view and build a space database belongs to (`g<id>/<view>#<build>/<space>`), if it is one. */
export function viewBuildOfDb(name: string): { generation: number; view: string; build: number } | undefined {
  const m = /^g(\d+)\/([a-z][a-z0-9-]*)#(\d+)\//.exec(name);
  return m === null ? undefined : { generation: Number(m[1]), view: m[2]!, build: Number(m[3]) };
}

/** The generation a database name belongs to, or undefined for names that are not a generation's. */
export function generationOfDb(name: string): number | undefined {
  const m = /^g(\d+)\//.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/** A key-value space of a view in LMDB: string keys, values through the view's codec. */
class LmdbKv implements KvSpace<unknown> {
  readonly writesThrough = true;
  constructor(
    readonly db: Database<Buffer, string>,
    private readonly codec: ValueCodec<unknown>,
  ) {}
  get(key: string): unknown {
    const bytes = readFast(this.db, key);
    return bytes === undefined ? undefined : this.codec.decode(bytes);
  }
  put(key: string, value: unknown): void {
    void this.db.put(key, this.codec.encode(value));
  }
  remove(key: string): void {
    void this.db.remove(key);
  }
  *entries(): Iterable<[string, unknown]> {
    for (const { key, value } of this.db.getRange()) yield [key, this.codec.decode(value)];
  }
  keys(): Iterable<string> {
    return this.db.getKeys();
  }
  readStored<T>(key: string, read: (bytes: Buffer) => T): T | undefined {
    const bytes = readFast(this.db, key);
    return bytes === undefined ? undefined : read(bytes);
  }
}

/** How to store bytes already encoded into `space`, when it is an LMDB space (undefined otherwise). */
export function encodedPut(space: KvSpace<unknown>): ((key: string, bytes: Buffer) => void) | undefined {
  return space instanceof LmdbKv ? (key, bytes) => void space.db.put(key, bytes) : undefined;
}

const EMPTY = Buffer.alloc(0);

/** An ordered set of keys in LMDB (UTF-8 byte order = Unicode code point order). */
class LmdbIndex implements IndexSpace {
  constructor(readonly db: Database<Buffer, string>) {}
  add(key: string): void {
    void this.db.put(key, EMPTY);
  }
  remove(key: string): void {
    void this.db.remove(key);
  }
  first(prefix: string, limit: number): string[] {
    const out: string[] = [];
    for (const key of this.db.getKeys({ start: prefix, limit })) {
      if (!key.startsWith(prefix)) break;
      out.push(key);
    }
    return out;
  }
  last(prefix: string, before?: string): string | undefined {
    if (before !== undefined && compareCodePoints(before, prefix) <= 0) return undefined;
    const end = before !== undefined && before.startsWith(prefix) ? before : prefixEnd(prefix);
    // Backwards from `end`: a key equal to it (the range may include its start) is skipped.
    for (const key of this.db.getKeys({ start: end, reverse: true, limit: 2 })) {
      if (compareCodePoints(key, end) >= 0) continue;
      return key.startsWith(prefix) ? key : undefined;
    }
    return undefined;
  }
  all(): Iterable<string> {
    return this.db.getKeys();
  }
}

const rowKey = (table: Table, key: string): string => `${table}\u0000${key}`;
const offsetKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/**
 * Where the rows of `table` are in the store's key order: every `<table>\0<key>`, whose \0 ordered-binary
 * writes as the bytes 4, 0 in a key shorter than 64 units and as the byte 0 in a longer one (string-keys.ts),
 * so a table's long keys sort before its short ones and a range from `<table>\0` would miss them. From
 * `<table>` 0 up to `<table>` 4 1, exclusive: both forms, nothing else (no table's name starts another's).
 */
function tableRange(table: Table): { start: Buffer; end: Buffer } {
  const name = Buffer.from(table, 'utf8');
  return { start: Buffer.concat([name, Buffer.of(0)]), end: Buffer.concat([name, Buffer.of(4, 1)]) };
}
const TABLE_RANGES: Readonly<Record<Table, { start: Buffer; end: Buffer }>> = Object.freeze({
  users: tableRange('users'),
  tweets: tableRange('tweets'),
  follows: tableRange('follows'),
  likes: tableRange('likes'),
});
/**
 * lmdb-js range options over the rows of `table`, from its first row or from row `after` (which the range
 * then holds first, when stored). The bounds are raw bytes, which our key encoder writes as they are
 * (string-keys.ts); lmdb-js' typings say string.
 */
function tableRows(table: Table, after?: string): { start: string; end: string } {
  const { start, end } = TABLE_RANGES[table];
  return {
    start: after === undefined ? (start as unknown as string) : rowKey(table, after),
    end: end as unknown as string,
  };
}
/** The key of a row, from its stored key `<table>\0<key>`. */
const keyOfRow = (table: Table, stored: string): string => stored.slice(table.length + 1);

/** The source rows of a generation. */
export class LmdbRows implements RowStore {
  private readonly decoder = new PageDecoder();
  /** The same database, read through `decoder` (`page`). */
  private readonly paged: Database<null, string>;
  constructor(
    readonly db: Database<Buffer, string>,
    /** The fields its rows keep, per table (the generation's `rowFields`): what `putStored` bytes hold. */
    readonly fields: Readonly<Record<Table, readonly string[]>>,
    /**
     * Opens the same database again with `decoder` as its encoder. Now, not at the first page: lmdb-js renews
     * the thread's read snapshot when it opens a database (see Generation's constructor).
     */
    openPaged: (decoder: PageDecoder) => Database<null, string>,
  ) {
    this.paged = openPaged(this.decoder);
  }
  row(table: Table, key: string): Row | undefined {
    const bytes = readFast(this.db, rowKey(table, key));
    return bytes === undefined ? undefined : decodeRow(table, this.fields[table], bytes);
  }
  *keys(table: Table): Iterable<string> {
    for (const key of this.db.getKeys(tableRows(table))) yield keyOfRow(table, key);
  }
  put(table: Table, key: string, row: Row, partition: number, offset: string, eventTime: number): void {
    // Written at once (in the commit's transaction), so the encoded bytes may live in a reused buffer.
    this.putStored(table, key, encodeRowTransient(this.fields[table], row, partition, offset, eventTime));
  }
  putStored(table: Table, key: string, bytes: Buffer): void {
    this.db.putSync(rowKey(table, key), bytes);
  }
  remove(table: Table, key: string): void {
    void this.db.remove(rowKey(table, key));
  }
  /** Every stored row of a table, with its origin, in the store's key order. */
  *all(table: Table): Iterable<[string, StoredRow]> {
    for (const { key, value } of this.db.getRange(tableRows(table)))
      yield [keyOfRow(table, key), decodeStoredRow(table, this.fields[table], value)];
  }
  /**
   * Whether stored row `key` of `table` is at or before `boundary` in the store's key order (LMDB's, through
   * the key encoding: no JavaScript comparison of the strings is that order for every key). False when there
   * is no such row.
   */
  storedThrough(table: Table, key: string, boundary: string): boolean {
    if (key === boundary) return this.db.doesExist(rowKey(table, key));
    // A range from `key` up to the boundary (exclusive) starts with `key` itself when it is stored before it.
    for (const found of this.db.getKeys({
      start: rowKey(table, key),
      end: rowKey(table, boundary),
      limit: 1,
    }))
      return found === rowKey(table, key);
    return false;
  }
  /**
   * Up to `limit` stored rows of a table after key `after` (exclusive; undefined: from the first), in the
   * store's key order, read completely before returning, so the caller may write between pages.
   */
  page(table: Table, after: string | undefined, limit: number): RowColumns {
    const out = new RowColumns(table, this.fields[table]);
    this.decoder.into = out;
    try {
      // Each value goes into `out` as it is read (PageDecoder), then its key. A rebuild's views built from
      // 9.1M rows over 1M users (writer thread, profiled): its pages read in 6.35 s against 9.73 s with a
      // Buffer per row; timed whole, 38.1-48.1 s against 42.0-58.2 s (four alternated runs each).
      for (const { key } of this.paged.getRange({
        ...tableRows(table, after),
        exclusiveStart: after !== undefined,
        limit,
      }))
        out.keys.push(keyOfRow(table, key));
    } finally {
      this.decoder.into = undefined;
    }
    return out;
  }

  /** Whether no row of any table is stored (LMDB's entry count). */
  empty(): boolean {
    return entryCount(this.db) === 0;
  }

  /** Stored rows of a table, counted by LMDB. */
  count(table: Table): number {
    return this.db.getKeysCount(tableRows(table));
  }
}

/** Open handles onto one generation's sub-databases. */
export class Generation implements GenerationState {
  readonly rows: LmdbRows;
  readonly offsets: Database<string, string>;
  private current!: GenerationInfo;
  private floorSequence: bigint | undefined;
  private readonly views = new Map<string, { build: number; spaces: Spaces }>();

  constructor(
    private readonly env: RootDatabase,
    info: GenerationInfo,
    private readonly registry: Registry,
  ) {
    this.info = info;
    this.rows = new LmdbRows(
      env.openDB<Buffer, string>(stringKeyed({ name: rowsDbName(info.id), encoding: 'binary' })),
      info.rowFields,
      (encoder) => env.openDB<null, string>(stringKeyed({ name: rowsDbName(info.id), encoder })),
    );
    this.offsets = env.openDB<string, string>(
      stringKeyed({ name: offsetsDbName(info.id), encoding: 'string' }),
    );
    // Every space now, not at first use: lmdb-js renews a thread's read snapshot when it opens a database,
    // which in the middle of a multi-read request (or `matview verify`) would mix two snapshots.
    for (const view of Object.keys(info.views)) if (registry.byName(view) !== undefined) this.spaces(view);
  }

  /** Replaced (not mutated) when the generation becomes active or a view is rebuilt. */
  get info(): GenerationInfo {
    return this.current;
  }

  set info(info: GenerationInfo) {
    this.current = info;
    this.floorSequence = info.activatedSequence === undefined ? undefined : BigInt(info.activatedSequence);
  }

  get id(): number {
    return this.info.id;
  }

  /**
   * The swap commit's sequence, while the swap is not reconciled: a value written before it that the swap
   * changed reads as changed by it (reads.ts), so a user's `version.sequence` never steps back across a swap
   * even when the shadow applied a record before the old generation did; one the swap did not change reads as
   * it did before. Undefined for a first generation and once reconciled.
   */
  get floor(): bigint | undefined {
    return this.info.reconciled === true ? undefined : this.floorSequence;
  }

  // ---- GenerationState (the commit body's view of it) ----

  position(topic: string, partition: number): string | undefined {
    return this.offsets.get(offsetKey(topic, partition));
  }

  setPosition(topic: string, partition: number, next: string): void {
    void this.offsets.put(offsetKey(topic, partition), next);
  }

  /** The spaces of a view at the build the generation serves. */
  spaces(view: string): Spaces {
    const held = this.info.views[view];
    if (held === undefined) throw new Error(`generation ${this.id} holds no view "${view}"`);
    const open = this.views.get(view);
    if (open !== undefined && open.build === held.build) return open.spaces;
    const spaces = this.openSpaces(this.module(view), held.build);
    this.views.set(view, { build: held.build, spaces });
    return spaces;
  }

  private module(view: string): ViewModule {
    const module = this.registry.byName(view);
    if (module === undefined) throw new Error(`view "${view}" is not registered`);
    return module;
  }

  /** The LMDB database behind one space of a view (readers that serve stored bytes as they are). */
  db(view: string, space: string): Database<Buffer, string> {
    const s = this.spaces(view)[space];
    if (s === undefined) throw new Error(`view "${view}" has no space "${space}"`);
    return (s as LmdbKv | LmdbIndex).db;
  }

  /** The LMDB database of one space of one build of `view` (served or not). */
  buildDb(view: string, build: number, space: string): Database<Buffer, string> {
    return this.env.openDB<Buffer, string>(
      stringKeyed({ name: spaceDbName(this.id, view, build, space), encoding: 'binary' }),
    );
  }

  /** Opens (creating) the spaces of one build of `view` (a rebuild fills a new build beside the old). */
  openSpaces(view: ViewModule, build: number): Spaces {
    const out: Record<string, KvSpace<unknown> | IndexSpace> = {};
    for (const [name, spec] of Object.entries(view.spaces) as [string, SpaceSpec][]) {
      const db = this.env.openDB<Buffer, string>(
        stringKeyed({ name: spaceDbName(this.id, view.name, build, name), encoding: 'binary' }),
      );
      out[name] = spec.kind === 'kv' ? new LmdbKv(db, spec.codec) : new LmdbIndex(db);
    }
    return out;
  }

  /** Every stored next offset. */
  *positions(): Iterable<{ topic: string; partition: number; next: string }> {
    for (const { key, value } of this.offsets.getRange()) {
      const [topic = '', partition = '0'] = key.split('\u0000');
      yield { topic, partition: Number(partition), next: value };
    }
  }

  /** Deletes the sub-databases of one build of a view (after a view rebuild switched away from it). */
  async dropBuild(view: ViewModule, build: number): Promise<void> {
    const spaces = this.openSpaces(view, build);
    await Promise.all(Object.values(spaces).map((s) => (s as LmdbKv | LmdbIndex).db.drop()));
  }

  /** Deletes every sub-database of the generation (asynchronously, in lmdb-js' write queue). */
  async drop(): Promise<void> {
    await dropGenerationDbs(this.env, this.id);
  }
}

/** Drops every database whose name belongs to generation `id` (the generation's own, and any left behind). */
export async function dropGenerationDbs(env: RootDatabase, id: number): Promise<void> {
  const names: string[] = [];
  for (const name of env.getKeys())
    if (typeof name === 'string' && generationOfDb(name) === id) names.push(name);
  await Promise.all(names.map((name) => env.openDB({ name }).drop()));
}

/** The info of a new generation built with `registry`. */
export function newGenerationInfo(
  id: number,
  registry: Registry,
  state: GenerationInfo['state'],
  reason: string,
): GenerationInfo {
  const views: Record<string, ViewBuild> = {};
  for (const v of registry.views) views[v.name] = { version: v.version, build: 1 };
  const rowFields = {} as Record<Table, readonly string[]>;
  for (const t of TABLES) rowFields[t] = registry.storedFields[t];
  return { id, format: STORE_FORMAT, state, createdAt: new Date().toISOString(), reason, rowFields, views };
}
