/**
 * Rebuilding views from the stored rows, without reading the feed again: what a bumped (or new) view
 * version gets. Only those views, and the views that depend on them, are rebuilt; every other view, the
 * rows and the offsets are left exactly as they are.
 *
 * 1. Each view to rebuild gets a new build (new databases) beside the one serving; views upstream of it
 *    that are not rebuilt get a scratch build, dropped afterwards (they only feed the rebuild).
 * 2. The stored rows are replayed as inserts, table by table in REPLAY_ORDER (the users rows last), in pages
 *    applied in memory through the views' own `apply` as commits (`replayPages`: each sees exactly the rows
 *    replayed before it), or through a view's `replay` where it has one (the same result by its
 *    reference-model test, faster), and written in key order once the buffer is full (in slices of at most
 *    WRITE_SLICE entries).
 * 3. One transaction switches the generation's info to the new builds and takes the commit sequence the
 *    rebuilt values carry; the old builds are dropped afterwards. Readers see the old build until that
 *    commit and the new one from it.
 *
 * A value rebuilt this way names, as its `version.source`, a current row that moved it in the replay (rows
 * keep the offset and time of the newest record that set them), and the switch commit as its sequence;
 * unless it is equal to the value it replaces, whose version it then keeps (versions.ts).
 *
 * Runs while nothing else commits (at start, before the feed); a crash in between leaves the old builds
 * serving and unreferenced new databases that the next start drops. A rebuild's shadow, which nobody reads,
 * has its views built the same way beside live commits (`buildShadowViews`, on the writer thread): only its
 * own batches must not commit meanwhile.
 */
import { getHeapStatistics } from 'node:v8';
import type { Database, RootDatabase } from 'lmdb';
import type { Registry } from '../views/registry.js';
import { USER_INFORMATION } from '../views/user-information.js';
import { TABLES, type Row, type Table } from '../views/source.js';
import type {
  CommitInfo,
  IndexSpace,
  KvSpace,
  RecordOrigins,
  RowReader,
  RowReplay,
  Spaces,
  Transitions,
  ViewModule,
} from '../views/types.js';
import {
  withViewsPending,
  type Generation,
  type GenerationInfo,
  type LmdbRows,
  type ViewBuild,
} from './generation.js';
import type { RowColumns } from './row-codec.js';
import { keepingUnchangedVersions } from './versions.js';
import { BufferedViews, writeSlice } from './buffered-generation.js';
import { genKey, readGenerationInfo, USER_VIEWS_REMOVED_KEY } from './write.js';
import type { ShadowChunks } from './shadow-chunks.js';
import { atomicTransaction } from '../lmdb-transaction.js';
import { applyViews } from '../materializer/commit.js';
import { StoreWriteError } from '../errors.js';

export interface ViewRebuildOptions {
  readonly env: RootDatabase;
  readonly meta: Database<string, string>;
  readonly registry: Registry;
  /** The generation whose views are rebuilt (the active one). */
  readonly generation: Generation;
  /** Views whose version changed (or that are new); their dependents are rebuilt too. */
  readonly views: readonly string[];
  /** The topic each table is read from (a rebuilt value's `version.source.topic`). */
  readonly topicOf: (table: Table) => string;
  /** Rows read and applied as one commit (default: a quarter of `bufferEntries`, 10k to 1M). */
  readonly chunkRows?: number;
  /**
   * Entries (values and index keys of every view's spaces) buffered in memory before they are written, in
   * key order (default `defaultViewRebuildBufferEntries()`). The new builds start empty, so
   * the first write appends; each later one merges into what is written.
   */
  readonly bufferEntries?: number;
  /** Entries written by one transaction at most (default WRITE_SLICE). */
  readonly writeSlice?: number;
  /**
   * Checked before each page: true stops the rebuild there with a StoreWriteError (a stop; nothing is
   * switched, and the builds written so far are left to `collectGarbage`).
   */
  readonly stopped?: () => boolean;
  /**
   * Awaited after each page, after a turn of the event loop (a shadow's build on the writer thread lets the
   * live commit that arrived meanwhile finish first: `buildShadowViews`).
   */
  readonly betweenPages?: () => Promise<void>;
  /** Progress, after each chunk. */
  readonly onProgress?: (rows: number) => void;
  /**
   * The generation is a rebuild's shadow (its views are rebuilt because a crash left them behind its rows):
   * nobody reads it, so no value keeps an old version (the swap's reconciliation sets them: versions.ts), the
   * values carry the next sequence and the switch takes it without a commit event, as a shadow's chunks do;
   * it clears the generation's `viewsPending`.
   */
  readonly shadow?: boolean;
}

export interface ViewRebuildResult {
  /** The views rebuilt (the ones asked for and their dependents), in apply order. */
  readonly rebuilt: readonly string[];
  /** The switch commit's sequence. */
  readonly sequence: bigint;
  /** The rows replayed. */
  readonly rows: number;
  /** The builds replaced: the caller compares them with the new ones for subscribers, then drops them. */
  readonly replaced: ReadonlyMap<string, ViewBuild | undefined>;
}

/**
 * Rows applied as one commit by default: a quarter of `bufferEntries`, within these bounds. A commit builds
 * each user it touches once, so bigger pages build fewer views and move fewer rank keys per row (200k users,
 * 1.8M rows, everything buffered: 20k rows per page 65 s, 200k 56 s, 1M 37 s, with the users rows replayed
 * first; replayed last, page size matters little: SHADOW_BUILD_PAGE_ROWS); a page's rows are held in memory
 * while it applies.
 */
const MIN_CHUNK_ROWS = 10_000;
const MAX_CHUNK_ROWS = 1_000_000;

/** Entries written by one transaction of a view rebuild at most (BuildBuffer.write). */
const WRITE_SLICE = 250_000;

/**
 * Bytes of heap a buffered entry takes, about: a view object with its version (~400), its counts, a rank key
 * in the index's blocks (~70). Measured: 1.93M entries (200k users: views, counts, four rank keys each) held
 * 368 MB after a full GC, with the last page of rows; a rebuild's views across its chunks, 5.45M entries
 * (1M users), 1,012 MB (186 bytes each).
 */
const BUFFERED_ENTRY_BYTES = 200;

/**
 * `bufferEntries` by default: what a third of this process' heap limit holds (7.2M entries with V8's 4.3 GB
 * limit here: about 2.4M users' views and counts, now that the rankings keep prefixes of at most 1,000 keys),
 * so a server started with a smaller heap (`--max-old-space-size`, a container's memory) buffers less instead
 * of running out of memory. A third rather than a quarter (5.4M) so that 1M users' views fit in one write
 * (measured with every user's rank keys buffered too): a rebuild of 3M records over 1M users that wrote them
 * twice took 202 s, once 137 s.
 */
export function defaultViewRebuildBufferEntries(): number {
  return Math.max(10_000, Math.floor(getHeapStatistics().heap_size_limit / 3 / BUFFERED_ENTRY_BYTES));
}

/** The views to rebuild (asked + dependents) and the upstream views that only feed them, in apply order. */
export function rebuildPlan(
  registry: Registry,
  asked: readonly string[],
): { rebuild: ViewModule[]; feed: ViewModule[] } {
  const rebuild = new Set(asked);
  for (const v of registry.views) if (v.dependsOn.some((d) => rebuild.has(d))) rebuild.add(v.name);
  const needed = new Set(rebuild);
  for (const v of [...registry.views].reverse())
    if (needed.has(v.name)) for (const d of v.dependsOn) needed.add(d);
  return {
    rebuild: registry.views.filter((v) => rebuild.has(v.name)),
    feed: registry.views.filter((v) => needed.has(v.name) && !rebuild.has(v.name)),
  };
}

export async function rebuildViewsFromRows(options: ViewRebuildOptions): Promise<ViewRebuildResult> {
  const { env, meta, registry, generation } = options;
  const plan = rebuildPlan(registry, options.views);
  const bufferEntries = options.bufferEntries ?? defaultViewRebuildBufferEntries();
  const chunkRows =
    options.chunkRows ?? Math.min(MAX_CHUNK_ROWS, Math.max(MIN_CHUNK_ROWS, Math.floor(bufferEntries / 4)));
  const info = generation.info;
  const builds = new Map<string, number>();
  const spaces = new Map<string, Spaces>();
  for (const v of [...plan.feed, ...plan.rebuild]) {
    const build = nextBuild(env, generation.id, v.name);
    builds.set(v.name, build);
    const opened: Record<string, KvSpace<unknown> | IndexSpace> = { ...generation.openSpaces(v, build) };
    // A rebuilt value equal to the one it replaces keeps that one's version (versions.ts): nothing else
    // commits meanwhile, so the old build is what readers see.
    const old = plan.rebuild.includes(v) && options.shadow !== true ? info.views[v.name] : undefined;
    if (old !== undefined)
      for (const space of Object.keys(v.versioned ?? {}))
        opened[space] = keepingUnchangedVersions(
          v,
          space,
          generation.buildDb(v.name, old.build, space),
          opened[space] as KvSpace<unknown>,
        );
    spaces.set(v.name, opened);
  }
  const sequence = BigInt(meta.get('sequence') ?? '0') + 1n;
  const appliedAt = new Date().toISOString();
  // Each view through its own replay path where it has one (RowReplay: the new builds start empty and
  // nothing else writes them), else through `apply`.
  const replays = new Map<string, RowReplay>();
  const order = registry.views
    .filter((v) => spaces.has(v.name))
    .map((v): ViewModule => {
      const replay = v.replay?.();
      if (replay === undefined) return v;
      replays.set(v.name, replay);
      return { ...v, apply: (input, of) => replay.apply(input, of) };
    });

  const buffer = new BuildBuffer(env, spaces, Math.min(options.writeSlice ?? WRITE_SLICE, bufferEntries));
  let replayed = 0;
  for (const { page, rows } of replayPages(generation.rows, chunkRows)) {
    if (options.stopped?.() === true)
      throw new StoreWriteError('stopped before the views were built: the next start builds them again');
    const commit: CommitInfo = {
      sequence,
      sequenceText: sequence.toString(),
      appliedAt,
      records: originsOfRows(page, options.topicOf),
    };
    applyRows(order, (v) => buffer.spaces(v), rows, page, commit);
    replayed += page.length;
    if (buffer.entries >= bufferEntries) await buffer.write();
    options.onProgress?.(replayed);
    // A turn of this thread's event loop between pages: the replay is otherwise one synchronous run (at 1M
    // users, tens of seconds); what shares the thread (live commits, reads) waits for pages, not the whole.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await options.betweenPages?.();
  }
  for (const [view, replay] of replays) replay.finish(buffer.spaces(view));
  await buffer.write();

  const replaced = new Map<string, ViewBuild | undefined>();
  const views: Record<string, ViewBuild> = { ...info.views };
  for (const v of plan.rebuild) {
    replaced.set(v.name, info.views[v.name]);
    views[v.name] = { version: v.version, build: builds.get(v.name)! };
  }
  // Views no longer registered: dropped from the generation with the switch.
  for (const name of Object.keys(views)) if (registry.byName(name) === undefined) delete views[name];
  const next: GenerationInfo =
    options.shadow === true ? { ...withViewsPending(info, false), views } : { ...info, views };
  await atomicTransaction(env, () => {
    // A shadow abandoned meanwhile stays gone.
    if (options.shadow === true && meta.get(genKey(info.id)) === undefined) return;
    meta.put(genKey(info.id), JSON.stringify(next));
    if (options.shadow === true) {
      // Taken unless a live commit took it meanwhile (the sequence never steps back), as a shadow's chunk
      // takes the next one: the swap's is then above every sequence its values carry, which is how the
      // swap tells them from values written after it (versions.ts).
      if (BigInt(meta.get('sequence') ?? '0') < sequence) meta.put('sequence', sequence.toString());
      return;
    }
    meta.put('sequence', sequence.toString());
    // A rebuilt UserInformation may lack users the old build had.
    if (plan.rebuild.some((v) => v.name === USER_INFORMATION))
      meta.put(USER_VIEWS_REMOVED_KEY, sequence.toString());
  });
  generation.info = next;
  for (const v of plan.feed) await generation.dropBuild(v, builds.get(v.name)!);
  return { rebuilt: plan.rebuild.map((v) => v.name), sequence, rows: replayed, replaced };
}

/**
 * Rows per page of a shadow's views built from its rows (`buildShadowViews`), which runs beside live commits
 * on the writer thread: a page applies in one synchronous run (a users page builds a view per row, ~20 µs a
 * user), and a live commit that arrives meanwhile waits for it (then goes through before the next page:
 * `betweenPages`). 1M users, 2M rows, no live commits: pages of 20k rows 38.6 and 48.1 s, of 50k 41.2-42.7
 * s, of 1M 43.6 s. 300k users, 930k rows, a live commit every 10 ms (a scratch driver, one run each, write
 * slices of 50k unless said): pages of 20k without waiting for the live commits 12.4 s, live commits p50
 * 237 ms, max 1.4 s; waiting for them, 20k 14.8 s, 151 ms, 0.77 s; 10k 16.0 s, 86 ms, 0.75 s; 5k 18.4 s,
 * 57 ms, 0.73 s; 10k with slices of 10k 17.0 s, 73 ms, 0.52 s.
 */
export const SHADOW_BUILD_PAGE_ROWS = 10_000;

/**
 * Entries per write transaction of a shadow's views built from its rows (beside live commits, which wait for
 * a slice): see SHADOW_BUILD_PAGE_ROWS for what it cost and saved.
 */
export const SHADOW_BUILD_WRITE_SLICE = 10_000;

/**
 * Every view of a rebuild's shadow built from its stored rows, when they are behind them (`viewsPending`),
 * after the chunk waiting is written and before any later batch of a shadow applies (`chunks`, those of the
 * thread that commits: LmdbStore.buildShadowViews), in pages of SHADOW_BUILD_PAGE_ROWS; undefined when they
 * were not behind.
 */
export function buildShadowViews(
  chunks: Pick<ShadowChunks, 'buildViews'>,
  options: Omit<ViewRebuildOptions, 'views' | 'shadow' | 'generation'> & {
    /** The shadow (looked up once its chunk is written). */
    readonly generation: () => Generation;
  },
): Promise<ViewRebuildResult | undefined> {
  return chunks.buildViews(async () => {
    options.env.resetReadTxn();
    const generation = options.generation();
    if (readGenerationInfo(options.meta, generation.id)?.viewsPending !== true) return undefined;
    return rebuildViewsFromRows({
      chunkRows: SHADOW_BUILD_PAGE_ROWS,
      writeSlice: SHADOW_BUILD_WRITE_SLICE,
      ...options,
      generation,
      views: options.registry.views.map((v) => v.name),
      shadow: true,
    });
  });
}

/**
 * The new builds' spaces, buffered: the replay applies to memory (reads see the build's written entries with
 * the buffered changes on top), and `write` stores what is buffered, each space in key order. Nothing reads a new build before the switch, so nothing misses what waits here; a crash leaves
 * unreferenced builds, as before.
 */
class BuildBuffer {
  private buffer: BufferedViews;
  /** Nothing written yet: the new builds are empty, so the first buffer need not remember removals. */
  private written = false;
  constructor(
    private readonly env: RootDatabase,
    private readonly stored: ReadonlyMap<string, Spaces>,
    /** Entries per write transaction at most. */
    private readonly slice: number,
  ) {
    this.buffer = this.empty();
  }
  private empty(): BufferedViews {
    return new BufferedViews({ spaces: (view) => this.stored.get(view)! }, !this.written);
  }
  spaces(view: string): Spaces {
    return this.buffer.spaces(view);
  }
  /** Entries buffered, over every view's spaces. */
  get entries(): number {
    return this.buffer.entries;
  }
  /**
   * Writes what is buffered in transactions of at most `slice` entries (WRITE_SLICE, and at most a buffer's
   * worth).
   * Nothing reads the new builds before the switch, and a crash leaves them unreferenced (dropped at the
   * next start), so the write need not be one transaction: short ones let other commits in between (the
   * writer thread's live commits while a resumed shadow's views are rebuilt), and LMDB writes a slice's
   * pages faster than one transaction of millions of entries (3M puts in key order: 3.8 s in slices of
   * 250k, 5.8 s in one).
   *
   * Each slice is an lmdb-js `batch`: this thread encodes its entries and queues them, and lmdb-js' own
   * thread puts them into LMDB and commits, while this one encodes the next slice (a transaction callback
   * would run the puts here, and leave this thread idle while each slice commits). Two slices are queued at
   * most, so a slow disk holds back the encoding rather than filling memory. A slice that fails to commit
   * fails the write once the slices before it are written (what was queued after it may still be written:
   * unreferenced builds, as after a crash); one whose encoding throws is committed as far as it got, which
   * is the same. 300k users' views, counts and rank keys (904k entries in slices of 10k, a shadow's, in
   * process): 2.2-3.2 s against 3.3-4.5 s (three alternated runs each), the thread idle 0.05 s of it against
   * 1.1 s. 1M users' (3.0M entries, on the writer thread): 21.2 and 23.4 s against 39.5 and 36.3 s; there
   * lmdb-js' thread is the slower one, and this one waits for it (idle ~14 s of the write, profiled).
   */
  async write(): Promise<void> {
    if (this.entries === 0) return;
    const steps = this.buffer.writes();
    let previous: Promise<unknown> | undefined;
    for (let done = false; !done;) {
      const slice = this.env.batch(() => {
        done = writeSlice(steps, this.slice);
      });
      // Awaited below, after the slice before it: handled from now on, so that a failure is not reported as
      // unhandled meanwhile.
      slice.catch(() => undefined);
      if (previous !== undefined) await previous;
      previous = slice;
    }
    await previous;
    this.written = true;
    this.buffer = this.empty();
  }
}

/**
 * The order the stored rows are replayed in: the users rows last. A users row is what makes a user visible
 * (its view, its rank keys): replayed after the rows that count for it, each user's view is built once, with
 * its final counts, and its rank keys added once, instead of being built again and its rank keys moved by
 * the pages of every later table (users first, 930k rows over 300k users took 37 s). Any order gives the same
 * views: each is a function of the current rows, and every page is a commit that reads exactly the rows
 * replayed before it (`replayPages`).
 */
export const REPLAY_ORDER: readonly Table[] = [...TABLES.filter((t) => t !== 'users'), 'users'];

/** The stored rows a replay has inserted so far: the tables replayed whole, and the pages of the current one. */
class ReplayedRows implements RowReader {
  private readonly done = new Set<Table>();
  private current: Table | undefined;
  /** The last key of the current table's pages applied; undefined before its first page. */
  private through: string | undefined;
  constructor(private readonly stored: LmdbRows) {}
  row(table: Table, key: string): Row | undefined {
    if (this.done.has(table)) return this.stored.row(table, key);
    if (table !== this.current || this.through === undefined) return undefined;
    return this.stored.storedThrough(table, key, this.through) ? this.stored.row(table, key) : undefined;
  }
  /** The page of the current table ending at `last` is applied. */
  applied(table: Table, last: string): void {
    if (table !== this.current) {
      if (this.current !== undefined) this.done.add(this.current);
      this.current = table;
    }
    this.through = last;
  }
}

/**
 * The stored rows of a generation as pages of at most `pageRows` inserts, in REPLAY_ORDER, each with the rows
 * replayed before it (what a commit applying that page reads as its rows before the commit). A page is read
 * completely before it is handed over: no cursor stays open across the caller's writes.
 */
export function* replayPages(
  stored: LmdbRows,
  pageRows: number,
): Generator<{ page: RowColumns; rows: RowReader }, void, void> {
  const rows = new ReplayedRows(stored);
  for (const table of REPLAY_ORDER) {
    let after: string | undefined;
    for (;;) {
      const page = stored.page(table, after, pageRows);
      if (page.length === 0) break;
      after = page.keys[page.length - 1]!;
      yield { page, rows };
      rows.applied(table, after);
    }
  }
}

/** The origins of replayed rows: each row's newest record, read from the topic its table comes from. */
export function originsOfRows(page: RowColumns, topicOf: (table: Table) => string): RecordOrigins {
  const topic = topicOf(page.table);
  return {
    topic: () => topic,
    partition: (i) => page.partition[i]!,
    offset: (i) => page.offset[i]!,
    eventTime: (i) => page.eventTime[i]!,
  };
}

/** Applies stored rows of one table, as inserts, to `views` (in apply order) in one commit. */
export function applyRows(
  views: readonly ViewModule[],
  spacesOf: (view: string) => Spaces,
  rows: RowReader,
  page: RowColumns,
  commit: CommitInfo,
): void {
  const n = page.length;
  const tx: Transitions = {
    length: n,
    table: new Array<Table>(n).fill(page.table),
    key: page.keys,
    before: new Array<null>(n).fill(null),
    after: page.rows,
    last: Array.from({ length: n }, (_, i) => i),
  };
  applyViews(views, spacesOf, { transitions: tx, commit, rows });
}

/** A build number above every existing one of this view in this generation. */
function nextBuild(env: RootDatabase, generation: number, view: string): number {
  let max = 0;
  const prefix = `g${generation}/${view}#`;
  for (const name of env.getKeys()) {
    if (typeof name !== 'string' || !name.startsWith(prefix)) continue;
    const build = Number(name.slice(prefix.length).split('/')[0]);
    if (build > max) max = build;
  }
  return max + 1;
}
