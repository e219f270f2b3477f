/**
 * What a view is (DESIGN.md "views"): one module under src/views that declares its name, its version,
 * the source fields it reads, the storage it owns, and how one commit's row transitions move it. The
 * store, the live hub and the API are generic over the registered views (registry.ts); adding a view is
 * that module plus one line in the registry.
 *
 * A view's `apply` is pure apart from the storage handed to it: it reads and writes its own spaces
 * (inside the commit's transaction in LMDB, or Maps in tests and benchmarks), never anything else.
 * See source.ts for the terminology (record, row, transition, sequence).
 */
import type { FieldsByTable, Row, Table } from './source.js';

/**
 * One commit's net row transitions, in columns (no object per transition on the hot path): entry `i` is
 * the row `key[i]` of `table[i]` before the commit (`before[i]`, null when absent) and after it
 * (`after[i]`, null when deleted). Rows equal in every stored field are not transitions.
 */
export interface Transitions {
  readonly length: number;
  readonly table: readonly Table[];
  readonly key: readonly string[];
  readonly before: readonly (Row | null)[];
  readonly after: readonly (Row | null)[];
  /** Index, among the commit's records, of the record that last set the row. */
  readonly last: readonly number[];
}

/** Where the commit's records came from: what a view's version names. */
export interface RecordOrigins {
  topic(record: number): string;
  partition(record: number): number;
  /** Kafka offset, decimal. */
  offset(record: number): string;
  /** When the change happened at the source (Kafka timestamp, or the CDC source's commit time), ms. */
  eventTime(record: number): number;
}

/** The commit a view is moved by. */
export interface CommitInfo {
  /** The store commit sequence (uint64). */
  readonly sequence: bigint;
  /** Its decimal form, computed once per commit. */
  readonly sequenceText: string;
  /** ISO-8601 time the commit is applied. */
  readonly appliedAt: string;
  readonly records: RecordOrigins;
}

/** A key-value space of a view: string keys, values the view's own type (encoded by the store). */
export interface KvSpace<V> {
  get(key: string): V | undefined;
  put(key: string, value: V): void;
  remove(key: string): void;
  /** Every entry, in key order (verification and rebuilds only: never on the commit path). */
  entries(): Iterable<[string, V]>;
  /**
   * Every key, in no promised order, without decoding a value (a ranking's refill, which sorts what it
   * makes of them: a rare full scan, never on every commit).
   */
  keys(): Iterable<string>;
  /**
   * The stored bytes of the value of `key` handed to `read` (undefined when there is none), without
   * decoding it: for a view that needs a small part of a large value (the counts in UserInformation's stored
   * view). `read` must not keep the buffer (LMDB reuses it). Only on spaces that store encoded values (LMDB);
   * on the others, read with `get`.
   */
  readStored?<T>(key: string, read: (bytes: Buffer) => T): T | undefined;
  /**
   * True when a put or removal goes to the stored database at once (LMDB): a view that writes many keys in
   * one commit writes them in key order there, so that they fall page after page. Absent on spaces that keep
   * their writes in memory (the in-memory state; a rebuild's buffer, which writes them in key order itself).
   */
  readonly writesThrough?: boolean;
}

/** An ordered set of string keys (an index), compared by Unicode code point (UTF-8 byte order). */
export interface IndexSpace {
  add(key: string): void;
  remove(key: string): void;
  /** Keys starting with `prefix`, in order, at most `limit` of them. */
  first(prefix: string, limit: number): string[];
  /**
   * The last key starting with `prefix` (and sorting before `before`, when given), or undefined. Unless
   * `before` starts with `prefix`, the prefix's last character is below U+D800 ({@link prefixEnd}: how LMDB
   * finds where the prefix's keys end).
   */
  last(prefix: string, before?: string): string | undefined;
  /** Every key, in order (verification and rebuilds only). */
  all(): Iterable<string>;
}

/** Encodes a KV space's values for LMDB (the in-memory spaces keep values as they are). */
export interface ValueCodec<V> {
  encode(value: V): Buffer;
  decode(bytes: Buffer): V;
  /**
   * For a versioned space (`ViewModule.versioned`): what a view rebuild stores for `value` over the stored value
   * `old` (its bytes, possibly lmdb-js' reused read buffer, read at once): `value` encoded, carrying `old`'s
   * version when the view's `versioned` comparison finds the two the same, in one new buffer and without
   * decoding `old`. Optional: without it, a rebuild encodes each value to compare it, and decodes the old
   * value to keep its version (versions.ts).
   */
  encodeOver?(value: V, old: Buffer): Buffer;
}

export type SpaceSpec =
  { readonly kind: 'kv'; readonly codec: ValueCodec<unknown> } | { readonly kind: 'index' };

/** Reads of the current source rows (inside the commit: the rows as of before this commit's writes). */
export interface RowReader {
  row(table: Table, key: string): Row | undefined;
}

/** What `apply` gets besides its own spaces. */
export interface ApplyInput {
  readonly transitions: Transitions;
  readonly commit: CommitInfo;
  /** Rows before this commit (the transitions say what the commit changes). */
  readonly rows: RowReader;
  /** What a view listed in `dependsOn` passed downstream in this same commit (undefined: it did not change). */
  upstream(view: string): unknown;
  /**
   * The spaces of a view listed in `dependsOn` as this commit left them (it applied first), to read only:
   * a view derived from another reads what that one already stores instead of keeping a copy (TopUsers'
   * refill reads UserInformation's views, which hold the counts). Throws for any other view.
   */
  upstreamSpaces(view: string): Spaces;
}

/** What one commit did to a view. */
export interface Applied {
  /**
   * What subscribers and view topics see: key → new value (null: the key's value is gone). Only keys whose
   * value actually changed; a commit that leaves the view as it was returns no event at all.
   */
  readonly event?: ReadonlyMap<string, unknown>;
  /** What dependent views receive through `upstream` (structured-cloneable is not required). */
  readonly downstream?: unknown;
}

export interface ViewModule {
  /** Stable name: storage names and subscriptions use it. Lowercase with dashes. */
  readonly name: string;
  /** Bump when the view's definition or stored form changes: that view alone is rebuilt from the rows. */
  readonly version: number;
  /** Source fields read from each table's rows (the store keeps the union over the registry). */
  readonly reads: FieldsByTable;
  /** Views whose `downstream` this one consumes; they are applied first in every commit. */
  readonly dependsOn: readonly string[];
  /** The spaces it owns, by name. */
  readonly spaces: Readonly<Record<string, SpaceSpec>>;
  /** Moves the view by one commit. Throws only on a broken invariant (a bug): the commit is rolled back. */
  apply(input: ApplyInput, spaces: Spaces): Applied;
  /**
   * A replay of the stored rows (a view rebuilt from them: store/view-rebuild.ts) through a faster path than
   * `apply`, made for one replay. Optional: without it, the replay calls `apply` for each page.
   */
  replay?(): RowReplay;
  /**
   * What subscribers see when a rebuilt generation replaces the active one: the keys whose value differs
   * between `before` and `after`, with the new value. Without it the store compares every entry of the
   * view's KV spaces (fine for small views).
   */
  swapEvent?(before: Spaces, after: Spaces): ReadonlyMap<string, unknown> | undefined;
  /**
   * The KV spaces whose values carry the `version` readers are served (`{ version: ViewVersion, … }`), each
   * with how to tell two stored values apart ignoring that version (bytes as the space's codec wrote them).
   * A generation swap or a view rebuild that recomputes a value equal to the one it replaces keeps the old
   * value, version included: an unchanged value neither advances its `version.sequence` nor is pushed
   * (store/versions.ts).
   */
  readonly versioned?: Readonly<Record<string, (a: Buffer, b: Buffer) => boolean>>;
  /**
   * `matview verify`: what differs between a stored value (`actual`, undefined when missing) and the value
   * recomputed from the rows (`expected`, undefined when there should be none), one readable line each;
   * empty when they agree. Versions are not compared (a recomputed value has no history). Without it,
   * values are compared as JSON without their `version`.
   */
  differences?(space: string, expected: unknown, actual: unknown): string[];
  /**
   * `matview verify`, for a view whose stored spaces may rightly differ from recomputed ones (a ranking kept
   * as a prefix of history-dependent length): checks the stored spaces against the recomputed ones itself,
   * `note`s what is wrong with each key, and returns how many keys it checked. `upstream` gives the
   * recomputed spaces of a view listed in `dependsOn` (whose stored spaces that view's own check compares).
   * Without it, every space is compared key by key.
   */
  compareSpaces?(
    expected: Spaces,
    stored: Spaces,
    note: (key: string, problems: readonly string[]) => void,
    upstream: (view: string) => Spaces,
  ): number;
}

/**
 * A view moved through one replay of the stored rows as inserts, page after page (store/view-rebuild.ts's
 * `replayPages`: every stored row once, each page a commit that reads exactly the rows of the pages before
 * it), into spaces that start empty and that nothing else writes meanwhile. `apply` returns for each page
 * what the view's own `apply` returns for it, and after `finish` the spaces hold exactly what `apply` would
 * have left in them; in between they may lack what the replay keeps in memory, but only what no dependent
 * view reads through `upstreamSpaces` (the view says which). A view's reference-model test holds the two
 * paths equal.
 */
export interface RowReplay {
  apply(input: ApplyInput, spaces: Spaces): Applied;
  /** After the last page: writes what the replay kept in memory. */
  finish(spaces: Spaces): void;
}

/** A view's spaces as `apply` sees them (typed by the view itself). */
export type Spaces = Readonly<Record<string, KvSpace<unknown> | IndexSpace>>;

/**
 * The least string after every string that starts with `prefix`, in code point order: its last character
 * incremented. For a last character below U+D800 only (a rank key's ranking digit), where code point order and
 * UTF-16 order agree on it and its successor.
 */
export function prefixEnd(prefix: string): string {
  const last = prefix.charCodeAt(prefix.length - 1);
  if (!(last < 0xd7ff)) throw new RangeError(`no prefix end for ${JSON.stringify(prefix)}`);
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}
