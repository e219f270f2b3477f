/**
 * The store: one LMDB environment per instance (DATA_DIR/view), holding one or two generations of the
 * materialized state (generation.ts) plus a `meta` sub-database (write.ts lists its keys).
 *
 * A commit's row writes, every view's writes and the consumed offsets are ONE write transaction, so after
 * a crash at any point each generation is exactly some prefix of the feed and restart resumes from the
 * stored offsets. Batches that arrive while a commit is written are committed together (commit-queue.ts):
 * large commits while catching up, one batch per commit once caught up.
 *
 * Readers always see the active generation (reads.ts). A rebuild from the feed fills a shadow generation
 * while the active one keeps serving (and keeps being fed); `trySwap` makes the shadow active in one
 * transaction once it has caught up (generations.ts). A view whose version changed is rebuilt alone from the
 * stored rows (view-rebuild.ts).
 *
 * This file puts those parts together: opening and checking, reads, commits and their events, lifecycle.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import type { Database, RootDatabase } from 'lmdb';
import { DataDirError, StoreMissingError, StoreStoppingError } from '../errors.js';
import type { PartitionPosition } from '../feed/types.js';
import { commitPlan, type CommitPlan } from '../materializer/commit.js';
import { createRegistry, VIEWS, type Registry } from '../views/registry.js';
import { ROW_FIELDS, TABLES, type Table } from '../views/source.js';
import type { CrossingFields } from './packed-changes.js';
import type { ViewModule } from '../views/types.js';
import type { Counts, Profile, UserInformation } from '../views/user-information.js';
import type { TotalsValue } from '../views/totals.js';
import type { Ranking } from '../views/top-users.js';
import { CommitQueues, defaultMaxRecordsPerCommit } from './commit-queue.js';
import {
  dataFileOf,
  entryCount,
  environmentOptions,
  isLmdbDataFile,
  metaOf,
  openEnvironment,
  viewRebuildError,
} from './environment.js';
import { serveOpenGate, type OpenGate } from '../lmdb-open-gate.js';
import type { Generation } from './generation.js';
import { STORE_FORMAT, type GenerationInfo, type ViewBuild } from './generation.js';
import { Generations, type SwapResult } from './generations.js';
import { PublishedIndex, viewOutboxOf, type ViewOutbox } from './published.js';
import { StoreReads } from './reads.js';
import { StoreRequests, type StoreRole } from './requests.js';
import type { CommitEvent, CommitListener, ViewReader } from './types.js';
import {
  buildShadowViews,
  rebuildViewsFromRows,
  type ViewRebuildOptions,
  type ViewRebuildResult,
} from './view-rebuild.js';
import {
  committedActiveGeneration,
  genKey,
  GenerationHandles,
  mergeInputs,
  readGenerationInfo,
  USER_VIEWS_REMOVED_KEY,
  commitInTransaction,
  plainStoreInput,
  type CommitContext,
  type PackedStoreInput,
  type StoreInput,
  type WrittenCommit,
} from './write.js';
import {
  outboxEntries,
  outboxOf,
  outboxSize,
  outboxTopics,
  type Outbox,
  type OutboxEntry,
  type OutboxKey,
} from './outbox.js';
import { WriterThread, type BuiltViews } from './writer-thread.js';
import type { ThreadPriority } from './thread-priority.js';
import { KnownRows } from './row-key-filter.js';
import {
  commitOrBuffer,
  defaultRebuildChunkRecords,
  ShadowChunks,
  type RebuildChunkTiming,
} from './shadow-chunks.js';

export { dataFileOf, isLmdbDataFile } from './environment.js';
export type { SwapResult } from './generations.js';
export type { OutboxEntry, OutboxKey } from './outbox.js';
export type { StoreInput } from './write.js';
export type { RebuildRequest, StoreOwner, StoreRole } from './requests.js';

export { DEFAULT_MAX_RECORDS_PER_COMMIT } from './commit-queue.js';

export interface StoreOptions {
  readonly path: string;
  /** Initial map size in bytes; lmdb-js grows it when it fills. */
  readonly mapSize?: number;
  /**
   * false: open an existing store only (CLI tools: verify, snapshot, rebuild) and write nothing at open;
   * throws {@link StoreMissingError} when `path` holds no store. Default true.
   */
  readonly create?: boolean;
  /**
   * Open read-only (implies `create: false`), through the open gate of the process writing the store, if
   * one does (lmdb-open-gate.ts): CLI tools that read a running server's store (verify, snapshot, rebuild).
   * Opened otherwise next to a writing process, the store could make it lose a commit. Default false.
   */
  readonly readOnly?: boolean;
  /**
   * Called when a commit listener throws (the commit itself stands and other listeners still run), or when the
   * background reconciliation of a swap fails (it is tried again at the next start).
   */
  readonly onListenerError?: (error: unknown) => void;
  /**
   * Called when a rebuild's chunk (shadow-chunks.ts) that no batch waits for fails to be written: written on its
   * own after an idle pause (kept and tried again every second: a full disk may have room later), or at close
   * (the shadow then resumes from its last written chunk at the next start).
   */
  readonly onChunkWriteError?: (error: unknown) => void;
  /** Values per transaction of a swap's reconciliation pass (default `RECONCILE_CHUNK`, versions.ts); tests lower it. */
  readonly reconcileChunk?: number;
  /**
   * Commit on a worker thread (writer-thread.ts), so the event loop that serves reads never runs a commit.
   * Default false (CLI tools, unit tests); `matview serve` turns it on (WRITER_THREAD).
   */
  readonly writerThread?: boolean;
  /**
   * Nice steps the writer thread lowers its CPU priority by, below the process's (thread-priority.ts;
   * WRITER_THREAD_NICE). Default 0: unchanged.
   */
  readonly writerThreadNice?: number;
  /** Called with what the writer thread did to its CPU priority, each time one starts. */
  readonly onWriterPriority?: (priority: ThreadPriority) => void;
  /** The views to maintain (default: the registry's VIEWS). Other views need `writerThread: false`. */
  readonly views?: readonly ViewModule[];
  /** Records merged into one commit at most (default: {@link defaultMaxRecordsPerCommit}). */
  readonly maxRecordsPerCommit?: number;
  /**
   * Records per chunk of a rebuild's shadow generation at most (shadow-chunks.ts; default
   * {@link defaultRebuildChunkRecords}); 0 commits a shadow's batches like the active generation's.
   */
  readonly rebuildChunkRecords?: number;
  /** When a rebuild's chunk is written though not full (tests; shadow-chunks.ts' defaults otherwise). */
  readonly rebuildChunkTiming?: RebuildChunkTiming;
  /**
   * Entries a view rebuilt from the rows (`rebuildStaleViews`) buffers in memory between writes, and a
   * rebuild's shadow keeps of its views across its chunks (default `defaultViewRebuildBufferEntries()`,
   * view-rebuild.ts).
   */
  readonly viewRebuildBufferEntries?: number;
  /**
   * Entries of a rebuild's buffered views written by one transaction at most, when they are written after a
   * chunk (default VIEWS_WRITE_SLICE, shadow-chunks.ts; tests set fewer).
   */
  readonly viewWriteSlice?: number;
}

/** What a batch's commit did (write.ts `WrittenCommit` without its events, which go to the commit listeners). */
export type BatchResult = Omit<WrittenCommit, 'events'>;

/** Where a batch goes: the active generation (resolved at commit time) or a given one (a shadow). */
export type BatchTarget = 'active' | Generation;

/** Why the active generation cannot serve the code's views and must be rebuilt from the feed. */
export type FullRebuildReason = 'source-fields';

export class LmdbStore implements ViewReader {
  readonly instanceId: string;
  readonly path: string;
  readonly registry: Registry;
  /** Set when the directory held a store of an older format, replaced at open by an empty one. */
  readonly upgradedFrom: number | undefined;
  readonly reads: StoreReads;
  private readonly env: RootDatabase;
  private readonly gate: OpenGate | undefined;
  private readonly meta: Database<string, string>;
  private readonly outbox: Outbox;
  private readonly viewOutbox: ViewOutbox;
  private readonly plan: CommitPlan;
  private readonly generations: Generations;
  private readonly requests: StoreRequests;
  private readonly listeners = new Set<CommitListener>();
  private readonly onListenerError: (error: unknown) => void;
  private readonly viewRebuildBufferEntries: number | undefined;
  private readonly onChunkWriteError: (error: unknown) => void;
  private seq: bigint;
  private published = 0n;
  private closed = false;
  /** The writer thread, when `writerThread` is on; else commits are grouped on this thread. */
  private readonly writer: WriterThread | undefined;
  private readonly queue: CommitQueues<WrittenCommit, StoreInput> | undefined;
  private readonly handles: GenerationHandles;
  /** A rebuild's chunks when commits run on this thread (the writer thread has its own). */
  private readonly chunks: ShadowChunks;
  /** A rebuild's shadow commits go through chunks (REBUILD_CHUNK_RECORDS > 0), wherever commits run. */
  private readonly chunked: boolean;
  /** `abortShadowBuild` was called since the last build on this thread began. */
  private shadowBuildAborted = false;
  private nextRequest = 0;

  constructor(options: StoreOptions) {
    this.path = options.path;
    this.onListenerError = options.onListenerError ?? ((e) => console.error('commit listener failed', e));
    this.viewRebuildBufferEntries = options.viewRebuildBufferEntries;
    this.onChunkWriteError =
      options.onChunkWriteError ?? ((e) => console.error('writing a rebuild chunk failed', e));
    const views = options.views ?? VIEWS;
    if (options.writerThread === true && views !== VIEWS)
      throw new Error('a store with other views than the registry VIEWS must run with writerThread: false');
    this.registry = createRegistry(views);
    this.plan = commitPlan(this.registry);
    const readOnly = options.readOnly ?? false;
    const create = !readOnly && (options.create ?? true);
    const dataFile = dataFileOf(options.path);
    const exists = existsSync(dataFile);
    if (!create && !exists) throw new StoreMissingError(options.path);
    // lmdb-js crashes the process (SIGSEGV) on a file that is not LMDB: refuse it with a readable error.
    if (exists && !isLmdbDataFile(dataFile))
      throw new DataDirError(options.path, 'data.mdb is not an LMDB file (damaged, or not a matview store)');
    mkdirSync(options.path, { recursive: true });
    this.env = openEnvironment(options.path, options.mapSize, readOnly ? 'read' : 'write');
    // A store that writes lets other processes open it safely (lmdb-open-gate.ts).
    this.gate = create
      ? serveOpenGate(options.path, {
          openOptions: environmentOptions(options.mapSize),
          onError: this.onListenerError,
        })
      : undefined;
    this.meta = metaOf(this.env);
    this.outbox = outboxOf(this.env);
    this.viewOutbox = viewOutboxOf(this.env);
    this.upgradedFrom = create ? this.initialize() : undefined;
    if (this.meta.get('instanceId') === undefined || this.activeInfo() === undefined) {
      void this.gate?.close();
      void this.env.close();
      throw new StoreMissingError(options.path);
    }
    this.instanceId = this.meta.get('instanceId') ?? '';
    this.seq = BigInt(this.meta.get('sequence') ?? '0');
    this.published = this.seq;
    this.handles = new GenerationHandles(this.env, this.meta, this.registry);
    const shadowId = this.meta.get('shadowGeneration');
    const retiringId = this.meta.get('retiringGeneration');
    this.generations = new Generations({
      env: this.env,
      meta: this.meta,
      registry: this.registry,
      active: this.handles.get(committedActiveGeneration(this.meta)),
      shadow: shadowId === undefined ? undefined : this.handles.get(Number(shadowId)),
      retiring: retiringId === undefined ? undefined : this.handles.get(Number(retiringId)),
      handles: this.handles,
      publish: (event) => this.publish(event),
      decode: (bytes, userId) => this.reads.decode(bytes, userId),
      ...(options.reconcileChunk === undefined ? {} : { reconcileChunk: options.reconcileChunk }),
      onReconcileError: this.onListenerError,
    });
    const kept = [this.generations.active, this.generations.shadow, this.generations.retiring].flatMap((g) =>
      g === undefined ? [] : [g.info.rowFields],
    );
    const packed = {} as Record<Table, readonly string[]>;
    for (const t of TABLES)
      packed[t] = ROW_FIELDS[t].filter(
        (f: string) =>
          this.registry.storedFields[t].includes(f) || kept.some((fields) => fields[t].includes(f)),
      );
    this.packedFields = packed;
    this.reads = new StoreReads(
      () => this.generations.active,
      () => this.generations.retiring,
    );
    this.requests = new StoreRequests(this.env, this.meta, options.path);
    const maxRecords =
      options.maxRecordsPerCommit ?? defaultMaxRecordsPerCommit(options.writerThread === true);
    const rebuildChunkRecords =
      options.rebuildChunkRecords ?? defaultRebuildChunkRecords(options.writerThread === true);
    const timing = options.rebuildChunkTiming ?? {};
    this.chunked = rebuildChunkRecords > 0;
    this.writer =
      options.writerThread === true
        ? new WriterThread(
            {
              path: options.path,
              mapSize: options.mapSize,
              maxRecordsPerCommit: maxRecords,
              rebuildChunkRecords,
              rebuildChunkTiming: timing,
              ...(options.viewRebuildBufferEntries === undefined
                ? {}
                : { viewBufferEntries: options.viewRebuildBufferEntries }),
              ...(options.viewWriteSlice === undefined ? {} : { viewWriteSlice: options.viewWriteSlice }),
              niceIncrement: options.writerThreadNice ?? 0,
            },
            () => this.env.resetReadTxn(),
            this.onChunkWriteError,
            this.packedFields,
            options.onWriterPriority,
          )
        : undefined;
    const context: CommitContext = {
      env: this.env,
      meta: this.meta,
      outboxes: { deadLetters: this.outbox, views: this.viewOutbox },
      handles: this.handles,
      plan: this.plan,
      knownRows: new KnownRows(),
    };
    this.chunks = new ShadowChunks({
      ...context,
      maxRecords: this.writer === undefined ? rebuildChunkRecords : 0,
      ...timing,
      ...(options.viewRebuildBufferEntries === undefined
        ? {}
        : { viewBufferEntries: options.viewRebuildBufferEntries }),
      ...(options.viewWriteSlice === undefined ? {} : { viewWriteSlice: options.viewWriteSlice }),
      onWriteError: this.onChunkWriteError,
    });
    const queue: CommitQueues<WrittenCommit, StoreInput> | undefined =
      this.writer === undefined
        ? new CommitQueues<WrittenCommit, StoreInput>(
            (input, target, ids): Promise<WrittenCommit> =>
              commitOrBuffer(
                this.chunks,
                input,
                target,
                ids.length,
                (t): number => queue!.waitingFor(t),
                () => commitInTransaction(context, input, target, ids.length),
              ),
            maxRecords,
            mergeInputs,
          )
        : undefined;
    this.queue = queue;
  }

  private activeInfo(): GenerationInfo | undefined {
    return readGenerationInfo(this.meta, committedActiveGeneration(this.meta));
  }

  /**
   * First open of a store: records the instance id and generation 1. A store of an older format (no
   * `format` in its generation info) cannot be read by this code: its databases are dropped and it starts
   * empty, so the feed is read again from the earliest offsets (returns the old format).
   */
  private initialize(): number | undefined {
    let upgradedFrom: number | undefined;
    const info = this.activeInfo();
    if (info !== undefined && info.format === STORE_FORMAT) return undefined;
    const legacy = info !== undefined || this.meta.get('activeGeneration') !== undefined;
    if (legacy) {
      upgradedFrom = 1;
      for (const name of [...this.env.getKeys()])
        if (typeof name === 'string' && name !== 'meta') void this.env.openDB({ name }).drop();
    }
    this.env.transactionSync(() => {
      if (this.meta.get('instanceId') === undefined) this.meta.putSync('instanceId', randomUUID());
      const id = Number(this.meta.get('nextGeneration') ?? '1');
      const first = Generations.newInfo(id, this.registry, 'active', legacy ? 'store-format' : 'initial');
      for (const key of [
        'shadowGeneration',
        'retiringGeneration',
        'viewVersion',
        ...(legacy ? ['sequence'] : []),
      ])
        this.meta.removeSync(key);
      if (legacy) for (let g = 0; g < id; g++) this.meta.removeSync(genKey(g));
      this.meta.putSync(genKey(id), JSON.stringify(first));
      this.meta.putSync('activeGeneration', String(id));
      this.meta.putSync('nextGeneration', String(id + 1));
      // A new (or emptied) store: no view was ever removed from it.
      this.meta.putSync(USER_VIEWS_REMOVED_KEY, this.meta.get('sequence') ?? '0');
    });
    return upgradedFrom;
  }

  // ---- reads (ViewReader): always the active generation ----

  getUser(userId: string): UserInformation | undefined {
    return this.reads.getUser(userId);
  }

  getUserJson(userId: string): Buffer | undefined {
    return this.reads.getUserJson(userId);
  }

  getUserJsonVersioned(userId: string): { readonly json: Buffer; readonly sequence: string } | undefined {
    return this.reads.getUserJsonVersioned(userId);
  }

  getUsers(userIds: readonly string[]): (UserInformation | undefined)[] {
    return this.reads.getUsers(userIds);
  }

  getUsersUnversioned(userIds: readonly string[]): ((Profile & Counts) | undefined)[] {
    return this.reads.getUsersUnversioned(userIds);
  }

  getViewBytes(userId: string): Buffer | undefined {
    return this.reads.getViewBytes(userId);
  }

  /** Up to `limit` userIds with a view after `after` (exclusive), in key order (the active generation). */
  userIdsPage(after: string | undefined, limit: number): string[] {
    return this.reads.userIdsPage(after, limit);
  }

  topUserIds(ranking: Ranking, limit: number): string[] {
    return this.reads.topUserIds(ranking, limit);
  }

  totals(): TotalsValue | undefined {
    return this.reads.totals();
  }

  /** Stored next offset of every partition of a generation (default: the active one). */
  positions(generation: Generation = this.generations.active): PartitionPosition[] {
    return [...generation.positions()];
  }

  /** Next offset to read for a partition, or undefined when nothing of it was applied yet. */
  position(
    topic: string,
    partition: number,
    generation: Generation = this.generations.active,
  ): string | undefined {
    return generation.position(topic, partition);
  }

  sequence(): bigint {
    return this.seq;
  }

  /**
   * The sequence of the commit this thread's reads see right now (it may be ahead of `sequence()`: the read
   * snapshot is renewed before a commit's promise settles, and another process may commit). Read in the same
   * synchronous stretch as the views it describes (one meta read, ~0.2 µs).
   */
  readSequence(): bigint {
    return BigInt(this.meta.get('sequence') ?? '0');
  }

  /**
   * The last commit that may have removed a user's view (src/store/write.ts); a user without a view has been
   * without it since then at the latest. A store from before this was recorded answers `sequence()`.
   */
  userViewsRemovedAt(): bigint {
    const stored = this.meta.get(USER_VIEWS_REMOVED_KEY);
    return stored === undefined ? this.seq : BigInt(stored);
  }

  /** The generation readers see. */
  activeGeneration(): Generation {
    return this.generations.active;
  }

  /** The active generation's id as committed right now (another process may have swapped since this one opened). */
  storedActiveGeneration(): number {
    this.env.resetReadTxn();
    return committedActiveGeneration(this.meta);
  }

  /** The generation being rebuilt, if any. */
  shadowGeneration(): Generation | undefined {
    return this.generations.shadow;
  }

  /** The version each view of the active generation serves. */
  viewVersions(): Record<string, number> {
    return Object.fromEntries(
      Object.entries(this.generations.active.info.views).map(([k, v]) => [k, v.version]),
    );
  }

  /** Why the active generation must be rebuilt from the feed, if it must (its rows lack fields a view reads). */
  fullRebuildReason(): FullRebuildReason | undefined {
    const held = this.generations.active.info.rowFields;
    for (const [table, fields] of Object.entries(this.registry.storedFields) as [Table, readonly string[]][])
      if (fields.some((f) => !held[table].includes(f))) return 'source-fields';
    return undefined;
  }

  /** Registered views the active generation holds at another version (or not at all): rebuilt from the rows. */
  staleViews(): string[] {
    const held = this.generations.active.info.views;
    const stale = this.registry.views.filter((v) => held[v.name]?.version !== v.version).map((v) => v.name);
    const dropped = Object.keys(held).some((name) => this.registry.byName(name) === undefined);
    // A view no longer registered is dropped by the same switch that rebuilds nothing else.
    return stale.length === 0 && dropped ? [] : stale;
  }

  /**
   * About how many entries the largest view of the active generation holds: its largest key-value view
   * space (the users' views in the shipped registry) over the views it holds at their registered version
   * (their spaces are open already), and at least its `users` rows. A view held at another version is not
   * opened here (a rebuild for fields the stored rows lack comes with one); the shipped views are per user,
   * which its users' rows stand for. The rows are counted (by LMDB, ~30 ms per million) only when the views
   * hold fewer than `enough`. A rebuild weighs it against its commits' size to choose how to replay
   * (src/wiring/rebuild.ts, `rowsFirstPays`).
   */
  largestView(enough = Number.POSITIVE_INFINITY): number {
    const active = this.generations.active;
    let most = 0;
    for (const view of this.registry.views) {
      if (active.info.views[view.name]?.version !== view.version) continue;
      for (const [space, spec] of Object.entries(view.spaces)) {
        if (spec.kind !== 'kv') continue;
        most = Math.max(most, entryCount(active.db(view.name, space)));
      }
    }
    return most >= enough ? most : Math.max(most, active.rows.count('users'));
  }

  /** Bytes of the environment in use (pages up to the last used one), for `matview_lmdb_size_bytes`. */
  sizeBytes(): number {
    const stats = this.env.getStats() as { pageSize?: number; lastPageNumber?: number };
    return ((stats.lastPageNumber ?? 0) + 1) * (stats.pageSize ?? 4096);
  }

  // ---- the dead-letter outbox (outbox.ts) ----

  /**
   * Topics with dead-letter messages waiting. The writer thread's commits are readable here once its reply
   * arrived (the read snapshot is renewed then), which is before `onApplied` wakes the drainer.
   */
  outboxTopics(): string[] {
    return outboxTopics(this.outbox);
  }

  /** The oldest `limit` messages waiting for `topic`, with their keys (for `removeFromOutbox`). */
  outboxEntries(topic: string, limit: number): { key: OutboxKey; entry: OutboxEntry }[] {
    return outboxEntries(this.outbox, topic, limit);
  }

  /** Removes messages that were sent (acknowledged by the broker). */
  async removeFromOutbox(keys: readonly OutboxKey[]): Promise<void> {
    await this.requests.commit('remove sent dead letters from the outbox', () => {
      for (const key of keys) void this.outbox.remove(key);
    });
  }

  /** Messages waiting, over every topic. */
  outboxSize(): number {
    return outboxSize(this.outbox);
  }

  // ---- writes ----

  /**
   * Whether commits cross to the writer thread, where a changelog input goes packed: the ingest then packs
   * each record as it decodes it (packed-changes.ts `PackingChangeBatch`). A packed input is accepted either
   * way (unpacked when commits run on this thread).
   */
  get packsChanges(): boolean {
    return this.writer !== undefined;
  }

  /**
   * Per table, the fields of a changelog row that cross to the writer thread packed (packed-changes.ts): those
   * a registered view reads, and those a generation open at start keeps (the active one may come from code
   * whose views read more, and keeps storing them; every generation made later keeps what the views read).
   * A commit reads nothing else of a row.
   */
  readonly packedFields: CrossingFields;

  /**
   * Commits a batch into `target` (default: whichever generation is active when the transaction runs),
   * possibly together with batches submitted at the same time. Commit listeners are notified (in commit
   * order, once per commit) only when the target was the active generation. Resolves once durable.
   */
  async applyBatch(
    input: StoreInput | PackedStoreInput,
    target: BatchTarget = 'active',
  ): Promise<BatchResult> {
    const into = target === 'active' ? 'active' : target.id;
    let written: WrittenCommit;
    if (this.writer !== undefined) {
      written = await this.writer.apply(input, into);
    } else {
      written = await this.queue!.submit({
        input: plainStoreInput(input),
        target: into,
        id: this.nextRequest++,
      });
    }
    if (written.sequence > this.seq) this.seq = written.sequence;
    if (written.visible && written.sequence > this.published) {
      this.published = written.sequence;
      this.publish({ sequence: written.sequence, views: written.events });
    }
    const { events: _published, ...result } = written;
    return result;
  }

  /**
   * Stops taking commits (the first step of a stop, before the feed is stopped): the commit in progress
   * finishes, the batches waiting behind it and every later one are refused with StoreStoppingError. They
   * are read again at the next start. Without it a stop while catching up waits for two full commits.
   */
  stopCommitting(): void {
    if (this.writer !== undefined) this.writer.refuseWaiting();
    else this.queue!.refuseWaiting(() => new StoreStoppingError());
  }

  private publish(event: CommitEvent): void {
    if (event.sequence > this.seq) this.seq = event.sequence;
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (e) {
        this.onListenerError(e);
      }
    }
  }

  /**
   * Rebuilds the views whose version changed (`staleViews()`) from the stored rows, alone, then tells
   * subscribers what changed. Call before the feed starts: nothing else may commit meanwhile.
   */
  async rebuildStaleViews(
    topicOf: (table: Table) => string,
    onProgress?: (rows: number) => void,
  ): Promise<ViewRebuildResult | undefined> {
    const stale = this.staleViews();
    const held = this.generations.active.info.views;
    const dropped = Object.keys(held).filter((name) => this.registry.byName(name) === undefined);
    if (stale.length === 0 && dropped.length === 0) return undefined;
    const active = this.generations.active;
    const before = new Map(Object.entries(active.info.views));
    const result = await this.rebuildViews({
      generation: active,
      views: stale,
      topicOf,
      ...(onProgress === undefined ? {} : { onProgress }),
    });
    this.seq = result.sequence;
    this.published = result.sequence;
    // Listeners run synchronously, while the old builds the event reads still exist (types.ts, CommitEvent).
    this.publish({
      sequence: result.sequence,
      views: this.generations.buildEvents(active, before, result.rebuilt),
    });
    await this.generations.dropBuilds(active, before, [...result.rebuilt, ...dropped]);
    return result;
  }

  /** `rebuildViewsFromRows` on this store, its failures as matview errors. */
  private async rebuildViews(
    options: Pick<ViewRebuildOptions, 'generation' | 'views' | 'topicOf' | 'onProgress'>,
  ): Promise<ViewRebuildResult> {
    try {
      return await rebuildViewsFromRows({
        env: this.env,
        meta: this.meta,
        registry: this.registry,
        ...options,
        ...(this.viewRebuildBufferEntries === undefined
          ? {}
          : { bufferEntries: this.viewRebuildBufferEntries }),
      });
    } catch (e) {
      throw await viewRebuildError(e);
    }
  }

  // ---- generations (rebuilds from the feed) ----

  /**
   * Starts (or resumes) a shadow generation built with the code's views (generations.ts). A resumed shadow
   * whose stored views were left behind its stored rows (`viewsPending`: the process ended between its
   * chunks, shadow-chunks.ts) gets every view rebuilt from those rows first (`viewsRebuiltFrom`: the rows
   * replayed); `topicOf` names each table's topic, which the rebuilt values' versions carry.
   *
   * `rowsFirst` (a rebuild from the changelogs of a large view, when its commits go through chunks: the
   * controller decides, src/wiring/rebuild.ts): the shadow's feed stores rows and positions only, and its
   * views are built from those rows once (`buildShadowViews`, before the swap), instead of moving every
   * touched user's views and rank keys commit after commit. A new shadow starts so (`viewsPending`); a
   * resumed one whose views are behind its rows stays so, its views not rebuilt here.
   * `rowsOnly` says which: the swap refuses the shadow until `buildShadowViews`. `resume`: the shadow is
   * resumed whatever `reason` (generations.ts). `drain` (`matview rebuild --drain`) marks the shadow so
   * (GenerationInfo.drain); the result's `drain` says whether it is, asked now or when it began.
   */
  async beginShadow(
    reason: string,
    topicOf?: (table: Table) => string,
    options: { readonly rowsFirst?: boolean; readonly resume?: boolean; readonly drain?: boolean } = {},
  ): Promise<{
    generation: Generation;
    resumed: boolean;
    rowsOnly: boolean;
    drain: boolean;
    viewsRebuiltFrom?: number;
  }> {
    const rowsFirst = options.rowsFirst === true && this.chunked;
    const begun = await this.generations.beginShadow(reason, () => this.requests.clearLegacyRequestIn(), {
      rowsFirst,
      ...(options.resume === undefined ? {} : { resume: options.resume }),
      ...(options.drain === undefined ? {} : { drain: options.drain }),
    });
    // After the shadow's commit: a crash between the two leaves the request, and the next start resumes
    // this shadow for it.
    await this.requests.clearRebuildRequest();
    const { generation } = begun;
    const stored = readGenerationInfo(this.meta, generation.id) ?? generation.info;
    const drain = stored.drain === true;
    const pending = stored.viewsPending === true;
    if (!pending || rowsFirst) return { ...begun, rowsOnly: pending, drain };
    const rows = await this.buildShadowViews(generation, topicOf);
    return { ...begun, rowsOnly: false, drain, ...(rows === undefined ? {} : { viewsRebuiltFrom: rows }) };
  }

  /**
   * Marks the shadow generation `drain` (GenerationInfo) for a `matview rebuild --drain` that the rebuild
   * under way serves; false when there is none.
   */
  drainShadow(): Promise<boolean> {
    return this.generations.drainShadow();
  }

  /**
   * Builds every view of the shadow `generation` from its stored rows when they are behind them
   * (`viewsPending`: a `rowsFirst` shadow, or one whose process ended between its chunks), into new builds
   * switched in one transaction that clears the mark (a crash meanwhile leaves it, and the next call does it
   * again); the rows replayed, or undefined when its views were not behind. The rebuild's chunk waiting is
   * written first, and the build runs where the commits run (on the writer thread, so this thread keeps
   * serving). Nothing may commit into the shadow meanwhile: its feed is stopped (src/wiring/rebuild.ts).
   */
  async buildShadowViews(
    generation: Generation,
    topicOf?: (table: Table) => string,
  ): Promise<number | undefined> {
    this.env.resetReadTxn();
    // Not behind as stored: a chunk waiting holds its views too (rows only keeps the mark set from the start).
    if (readGenerationInfo(this.meta, generation.id)?.viewsPending !== true) {
      await this.writeChunk();
      return undefined;
    }
    if (topicOf === undefined)
      throw new Error(
        `shadow generation ${generation.id} needs its views rebuilt from its rows: beginShadow needs topicOf`,
      );
    const built = await this.buildOnCommitThread(generation, topicOf);
    this.env.resetReadTxn();
    generation.info = readGenerationInfo(this.meta, generation.id) ?? generation.info;
    if (built === undefined) return undefined;
    const replaced = new Map<string, ViewBuild>();
    for (const [name, build] of built.replaced) if (build !== undefined) replaced.set(name, build);
    await this.generations.dropBuilds(generation, replaced, built.rebuilt);
    return built.rows;
  }

  /**
   * Stops a `buildShadowViews` in progress at its next page (a stop): it rejects, nothing is switched, and the
   * shadow's views stay behind its rows, built again when its rebuild next reaches its targets.
   */
  abortShadowBuild(): void {
    this.shadowBuildAborted = true;
    this.writer?.abortShadowBuild();
  }

  /** `buildShadowViews`' build, on the writer thread or, without one, here. */
  private async buildOnCommitThread(
    generation: Generation,
    topicOf: (table: Table) => string,
  ): Promise<BuiltViews | undefined> {
    if (this.writer !== undefined) {
      const topics: Partial<Record<Table, string>> = {};
      for (const table of TABLES) {
        try {
          topics[table] = topicOf(table);
        } catch {
          // No topic for it: a row of it found by the build fails it there, with that message.
        }
      }
      return this.writer.buildShadowViews(generation.id, topics);
    }
    this.shadowBuildAborted = false;
    const result = await buildShadowViews(this.chunks, {
      env: this.env,
      meta: this.meta,
      registry: this.registry,
      generation: () => generation,
      stopped: () => this.shadowBuildAborted,
      topicOf,
      ...(this.viewRebuildBufferEntries === undefined
        ? {}
        : { bufferEntries: this.viewRebuildBufferEntries }),
    }).catch(async (e: unknown) => {
      throw await viewRebuildError(e);
    });
    return result === undefined ? undefined : { ...result, replaced: [...result.replaced] };
  }

  /** Drops the shadow generation (a rebuild that is no longer wanted). */
  abandonShadow(): Promise<void> {
    return this.generations.abandonShadow();
  }

  /**
   * Makes `shadow` active once its stored positions reached `required` (generations.ts). A rebuild's chunk
   * waiting is written first (shadow-chunks.ts), so the positions compared are where the shadow stands.
   */
  async trySwap(shadow: Generation, required: readonly PartitionPosition[]): Promise<SwapResult> {
    await this.writeChunk();
    return this.generations.trySwap(shadow, required);
  }

  /** Writes the rebuild's chunk waiting, if any, wherever commits run. */
  private writeChunk(): Promise<void> {
    return this.writer !== undefined ? this.writer.writeChunk() : this.chunks.write();
  }

  /** Resolves once the last swap is reconciled: every value has its final version (versions.ts). */
  reconciled(): Promise<void> {
    return this.generations.reconciled();
  }

  /** Drops databases of generations and view builds nothing refers to (left by a crash). */
  collectGarbage(): Promise<number[]> {
    return this.generations.collectGarbage();
  }

  // ---- operator requests and ownership (requests.ts) ----

  requestRebuild(reason: string, drain = false): ReturnType<StoreRequests['requestRebuild']> {
    return this.requests.requestRebuild(reason, drain);
  }
  clearRebuildRequest(): Promise<void> {
    return this.requests.clearRebuildRequest();
  }
  rebuildRequest(): ReturnType<StoreRequests['rebuildRequest']> {
    return this.requests.rebuildRequest();
  }
  claimOwner(): Promise<void> {
    return this.requests.claimOwner();
  }
  role(): StoreRole | undefined {
    return this.requests.role();
  }
  recordRole(role: StoreRole): Promise<void> {
    return this.requests.recordRole(role);
  }
  releaseOwner(): Promise<void> {
    return this.requests.releaseOwner();
  }
  liveOwner(): ReturnType<StoreRequests['liveOwner']> {
    return this.requests.liveOwner();
  }
  resetIdentity(): Promise<string> {
    return this.requests.resetIdentity();
  }
  backup(dir: string): Promise<void> {
    return this.requests.backup(dir);
  }

  // ---- the view topic out ----

  /** What this store knows the view topic `topic` holds (published.ts), opened on first use. */
  publishedIndex(topic: string): Promise<{ index: PublishedIndex; fresh: boolean }> {
    return PublishedIndex.open(this.env, this.meta, topic);
  }

  /**
   * Stops publishing a view topic (an instance started without VIEW_TOPIC_OUT): commits no longer write the
   * view outbox. Returns the topic it published to, if it did.
   */
  stopPublishing(): Promise<string | undefined> {
    return PublishedIndex.stop(this.env, this.meta);
  }

  // ---- lifecycle ----

  /** Listen to commits: called synchronously after each visible commit, in commit order. Returns an unsubscribe. */
  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.generations.close(); // a swap's reconciliation stops after its current chunk; the next start finishes it
    // A rebuild's chunk waiting is written (a failure leaves the shadow at its last written chunk, where the
    // next start resumes it); the writer thread writes its own when it closes.
    await this.chunks.write().catch(this.onChunkWriteError);
    await this.writer?.close();
    await this.gate?.close();
    await this.env.close();
  }
}

export function openStore(options: StoreOptions): LmdbStore {
  return new LmdbStore(options);
}
