/**
 * The store: one LMDB environment per instance (DATA_DIR), holding one or two generations of the
 * materialized state (see generation.ts) plus a `meta` sub-database.
 *
 * A batch's row writes, view writes and consumed offsets commit in ONE write transaction, so after
 * a crash at any point each generation is exactly some prefix of the feed and restart resumes from the
 * stored offsets. LMDB's copy-on-write B-tree with two meta pages makes a killed process (even
 * mid-commit) reopen at the last committed transaction; we keep lmdb-js's default durable commits
 * (no `noSync`, no `writeMap`), so a commit has reached the OS before its promise resolves.
 *
 * Readers always see the active generation: reads are synchronous `get`s from the memory map through a
 * pointer to the active generation's handles. A rebuild fills a shadow generation while the active one
 * keeps serving (and keeps being fed); `trySwap` makes the shadow active in one transaction once it has
 * caught up, so no reader ever sees a half-built view.
 *
 * A swap keeps the replaced generation (`retiring`) until a background pass has given every view written before
 * the swap its final version: the replaced one's when the swap did not change the user's view, the swap's own
 * when it did (issue 18, "no empty pushes": a rebuild that recomputes the same counts must not advance any
 * `version.sequence`). Until the pass is done, reads compare with the retiring generation on the fly.
 *
 * Meta keys: `instanceId`, `sequence` (commit counter shared by all generations, so it only grows across
 * swaps), `activeGeneration`, `shadowGeneration`, `retiringGeneration`, `nextGeneration`, `generation:<id>` (GenerationInfo),
 * `viewVersion` (the active generation's, kept for stores written before generations), `rebuildRequested`
 * (set by `matview rebuild`), `owner` (the serving process).
 */
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { DataDirError, StoreMissingError, StoreWriteError, isMatviewError } from '../errors.js';
import type { PartitionPosition } from '../feed/types.js';
import { materialize, rowKey, type Change, type StateReader } from '../materializer/materialize.js';
import { decodeUnversioned, decodeView, encodeView, restJsonOf } from '../views/codec.js';
import type {
  Counts,
  Profile,
  StoredRow,
  Table,
  UserInformation,
  UserState,
  ViewVersion,
} from '../views/user-information.js';
import { GenerationDiff } from './generation-diff.js';
import { Generation, generationOfDb, type GenerationInfo } from './generation.js';
import type { CommitEvent, CommitListener, ViewReader } from './types.js';
import { WriterThread } from './writer-thread.js';

export interface StoreOptions {
  readonly path: string;
  /** Initial map size in bytes; lmdb-js grows it when it fills. */
  readonly mapSize?: number;
  /**
   * Version of the code's view definition. A new store's first generation is built with it; an existing
   * store whose active generation has another version keeps serving it and reports `needsRebuild()`.
   */
  readonly viewVersion: number;
  /**
   * false: open an existing store only (CLI tools: verify, snapshot, rebuild) and write nothing at open;
   * throws {@link StoreMissingError} when `path` holds no store. Default true.
   */
  readonly create?: boolean;
  /**
   * Called when a commit listener throws (the commit itself stands and other listeners still run), or when the
   * background reconciliation of a swap fails (it is tried again at the next start).
   */
  readonly onListenerError?: (error: unknown) => void;
  /** Users per transaction of a swap's reconciliation pass (default {@link RECONCILE_CHUNK}); tests lower it. */
  readonly reconcileChunk?: number;
  /**
   * Materialize and commit `applyBatch` on a worker thread (src/store/writer-thread.ts), so the event loop
   * that serves reads never runs a batch. Default false (CLI tools, unit tests); `matview serve` turns it on
   * (WRITER_THREAD).
   */
  readonly writerThread?: boolean;
}

export interface BatchInput {
  /** Valid changes to materialize, in order. */
  readonly changes: readonly Change[];
  /** New next offset of each partition the batch covered (valid, invalid and skipped records alike). */
  readonly positions: readonly PartitionPosition[];
}

export interface BatchResult {
  readonly sequence: bigint;
  readonly appliedAt: number;
  /** Users whose visible view changed. */
  readonly changed: number;
  readonly noops: number;
  /** Generation the batch was written to. */
  readonly generation: number;
  /** True when that generation was the active one (readers and subscribers see the batch). */
  readonly visible: boolean;
}

/** Where a batch goes: the active generation (resolved at commit time) or a given one (a shadow). */
export type BatchTarget = 'active' | Generation;

export interface SwapResult {
  readonly swapped: boolean;
  /** Partitions where the shadow is still behind the required offsets (empty when swapped). */
  readonly behind: readonly { topic: string; partition: number; next: string; required: string }[];
  /** Sequence of the swap commit (when swapped). */
  readonly sequence?: bigint;
  readonly from?: GenerationInfo;
  readonly to?: GenerationInfo;
}

/** The process serving a store (`meta.owner`), so CLI tools can tell whether a server is running. */
export interface StoreOwner {
  readonly pid: number;
  readonly hostname: string;
  readonly startedAt: string;
}

export interface RebuildRequest {
  readonly requestedAt: string;
  readonly reason: string;
}

/** Users per write transaction of a swap's reconciliation: a few ms of this thread between event-loop turns. */
export const RECONCILE_CHUNK = 500;
/** How a stored version JSON starts (see `sequenceOf`). */
const SEQUENCE_PREFIX = '{"sequence":"';
const SEQUENCE_PREFIX_BYTES = Buffer.from(SEQUENCE_PREFIX, 'latin1');
const offsetKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;
const genKey = (id: number): string => `generation:${id}`;
/** lmdb-js only opens this many named databases per environment: 2 generations × 4 + meta, with room to spare. */
const MAX_DBS = 64;

/** Path of an environment's data file (lmdb-js opens an extension-less path as a directory). */
export const dataFileOf = (path: string): string => join(path, 'data.mdb');

/** LMDB's meta-page magic (`MDB_MAGIC`), little-endian, after the page header of the first page. */
const LMDB_MAGIC = 0xbeefc0de;

/**
 * True when `file` starts with an LMDB meta page. The page header is 16 bytes in LMDB 0.9 and 24 in the
 * LMDB 1.0 that lmdb-js embeds; an empty file is one LMDB would initialize.
 */
export function isLmdbDataFile(file: string): boolean {
  const head = Buffer.alloc(32);
  const fd = openSync(file, 'r');
  try {
    const n = readSync(fd, head, 0, head.length, 0);
    if (n === 0) return true;
    return (
      n === head.length && (head.readUInt32LE(16) === LMDB_MAGIC || head.readUInt32LE(24) === LMDB_MAGIC)
    );
  } finally {
    closeSync(fd);
  }
}

export class LmdbStore implements ViewReader {
  readonly instanceId: string;
  readonly path: string;
  private readonly env: RootDatabase;
  private readonly meta: Database<string, string>;
  private active: Generation;
  private shadowGen: Generation | undefined;
  /** The generation the last swap replaced, until that swap is reconciled. */
  private retiring: Generation | undefined;
  /** The reconciliation pass under way, if any. */
  private reconciling: Promise<void> | undefined;
  private readonly reconcileChunk: number;
  private readonly listeners = new Set<CommitListener>();
  private readonly onListenerError: (error: unknown) => void;
  private readonly codeViewVersion: number;
  private seq: bigint;
  private closed = false;
  /** The writer thread, when `writerThread` is on. */
  private readonly writer: WriterThread | undefined;

  constructor(options: StoreOptions) {
    this.path = options.path;
    this.codeViewVersion = options.viewVersion;
    this.reconcileChunk = Math.max(1, options.reconcileChunk ?? RECONCILE_CHUNK);
    this.onListenerError = options.onListenerError ?? ((e) => console.error('commit listener failed', e));
    const create = options.create ?? true;
    const dataFile = dataFileOf(options.path);
    const exists = existsSync(dataFile);
    if (!create && !exists) throw new StoreMissingError(options.path);
    // lmdb-js crashes the process (SIGSEGV) on a file that is not LMDB: refuse it with a readable error.
    if (exists && !isLmdbDataFile(dataFile))
      throw new DataDirError(options.path, 'data.mdb is not an LMDB file (damaged, or not a matview store)');
    mkdirSync(options.path, { recursive: true });
    this.env = openEnvironment(options.path, options.mapSize);
    this.meta = metaOf(this.env);
    if (create) this.initialize(options.viewVersion);
    else if (this.meta.get('instanceId') === undefined) {
      void this.env.close();
      throw new StoreMissingError(options.path);
    }
    this.instanceId = this.meta.get('instanceId') ?? '';
    this.seq = BigInt(this.meta.get('sequence') ?? '0');
    this.active = new Generation(
      this.env,
      this.generationInfo(Number(this.meta.get('activeGeneration') ?? '0')),
    );
    const shadowId = this.meta.get('shadowGeneration');
    this.shadowGen =
      shadowId === undefined ? undefined : new Generation(this.env, this.generationInfo(Number(shadowId)));
    const retiringId = this.meta.get('retiringGeneration');
    this.retiring =
      retiringId === undefined
        ? undefined
        : new Generation(this.env, this.generationInfo(Number(retiringId)));
    this.writer =
      options.writerThread === true
        ? new WriterThread({ path: options.path, mapSize: options.mapSize }, () => this.env.resetReadTxn())
        : undefined;
  }

  /** First open of a store (or of one written before generations existed): record generation 0. */
  private initialize(viewVersion: number): void {
    this.env.transactionSync(() => {
      if (this.meta.get('instanceId') === undefined) this.meta.putSync('instanceId', randomUUID());
      if (this.meta.get('activeGeneration') === undefined) {
        // A store from before generations has `viewVersion` and the unsuffixed dbs: that is generation 0.
        const legacy = this.meta.get('viewVersion');
        const info: GenerationInfo = {
          id: 0,
          viewVersion: legacy === undefined ? viewVersion : Number(legacy),
          state: 'active',
          createdAt: new Date().toISOString(),
          reason: 'initial',
        };
        this.meta.putSync(genKey(0), JSON.stringify(info));
        this.meta.putSync('activeGeneration', '0');
        this.meta.putSync('nextGeneration', '1');
        this.meta.putSync('viewVersion', String(info.viewVersion));
      }
    });
  }

  private generationInfo(id: number): GenerationInfo {
    return readGenerationInfo(this.meta, id);
  }

  // ---- reads (ViewReader): always the active generation ----

  getUser(userId: string): UserInformation | undefined {
    const bytes = this.active.views.getBinaryFast(userId);
    return bytes === undefined ? undefined : this.decode(bytes, userId);
  }

  /**
   * Decodes a view of the active generation as readers see it. A view written before the generation was swapped
   * in, while the swap is not reconciled yet: when the replaced (retiring) generation held the same profile and
   * counts, it reads as it did there, version included (the swap changed nothing for this user); otherwise it
   * reports the swap commit as its version (that commit is what made it visible, and it keeps every user's
   * `version.sequence` increasing across a swap: the sequence subscriptions order events by).
   */
  private decode(bytes: Buffer, userId: string): UserInformation {
    const view = decodeView(bytes);
    const floor = this.active.floor;
    if (floor === undefined || BigInt(view.version.sequence) >= floor) return view;
    // Copied before the next read: a fast read's buffer is reused by the following one.
    const old = this.unchangedBySwap(Buffer.from(restJsonOf(bytes)), userId);
    if (old !== undefined) return decodeView(old);
    return { ...view, version: this.floorVersion(view.version, floor) };
  }

  /** The retiring generation's view of `userId` when its REST JSON equals `restJson`, else undefined. */
  private unchangedBySwap(restJson: Buffer, userId: string): Buffer | undefined {
    const old = this.retiring?.views.getBinary(userId);
    return old !== undefined && restJsonOf(old).equals(restJson) ? old : undefined;
  }

  /** `version` as made visible by the swap at `floor`. */
  private floorVersion(version: ViewVersion, floor: bigint): ViewVersion {
    return {
      ...version,
      sequence: floor.toString(),
      appliedAt: this.active.info.activatedAt ?? version.appliedAt,
    };
  }

  getUserJson(userId: string): Buffer | undefined {
    const bytes = this.active.views.getBinary(userId);
    return bytes === undefined ? undefined : restJsonOf(bytes);
  }

  getUserJsonVersioned(userId: string): { readonly json: Buffer; readonly sequence: string } | undefined {
    const bytes = this.active.views.getBinary(userId);
    if (bytes === undefined) return undefined;
    return { json: restJsonOf(bytes), sequence: this.sequenceOf(bytes, userId) };
  }

  /**
   * The `version.sequence` a stored view reads as (floor included), taken from the version JSON's first key
   * (`encodeView` writes `JSON.stringify(version)`, whose first key is `sequence`) without parsing the rest;
   * anything else is decoded in full.
   */
  private sequenceOf(bytes: Buffer, userId: string): string {
    const at = 4 + bytes.readUInt32LE(0) + SEQUENCE_PREFIX.length;
    const end = bytes.indexOf(0x22 /* " */, at);
    const floor = this.active.floor;
    // A uint64 is at most 20 digits; what `encodeView` writes is digits between the quotes.
    if (
      end === -1 ||
      end - at > 20 ||
      bytes.compare(
        SEQUENCE_PREFIX_BYTES,
        0,
        SEQUENCE_PREFIX_BYTES.length,
        at - SEQUENCE_PREFIX.length,
        at,
      ) !== 0
    )
      return this.decode(bytes, userId).version.sequence;
    const stored = bytes.toString('latin1', at, end);
    if (floor !== undefined && BigInt(stored) < floor) return this.decode(bytes, userId).version.sequence;
    return stored;
  }

  /**
   * For a user without a view (no users row): the sequence of the last commit that changed its state, typically
   * the one that removed its view, as readers see sequences (the swap floor applies); undefined when the user
   * has a view or the store never saw it. The live hub resumes subscriptions with it (src/live/hub.ts).
   */
  removedAt(userId: string): bigint | undefined {
    if (this.active.views.doesExist(userId)) return undefined;
    const floor = this.active.floor;
    const state = this.active.users.get(userId);
    if (state === undefined)
      // Unknown here but known to the generation the swap replaced: the swap removed it.
      return floor !== undefined && this.retiring?.users.doesExist(userId) === true ? floor : undefined;
    const stored = BigInt(state.version.sequence);
    if (floor === undefined || stored >= floor) return stored;
    // Without a view on both sides of the swap: unchanged by it, as it read there.
    const retiring = this.retiring;
    const old =
      retiring === undefined || retiring.views.doesExist(userId) ? undefined : retiring.users.get(userId);
    if (old === undefined) return floor;
    const oldStored = BigInt(old.version.sequence);
    return retiring?.floor !== undefined && oldStored < retiring.floor ? retiring.floor : oldStored;
  }

  getUsers(userIds: readonly string[]): (UserInformation | undefined)[] {
    return userIds.map((id) => this.getUser(id));
  }

  getUsersUnversioned(userIds: readonly string[]): ((Profile & Counts) | undefined)[] {
    const views = this.active.views;
    return userIds.map((id) => {
      const bytes = views.getBinaryFast(id);
      return bytes === undefined ? undefined : decodeUnversioned(bytes);
    });
  }

  /** Stored view bytes (rest JSON + version), for callers that serialize themselves. */
  getViewBytes(userId: string): Buffer | undefined {
    return this.active.views.getBinary(userId);
  }

  /** Stored next offset of every partition of a generation (default: the active one). */
  positions(generation: Generation = this.active): PartitionPosition[] {
    const out: PartitionPosition[] = [];
    for (const { key, value } of generation.offsets.getRange()) {
      const [topic = '', partition = '0'] = key.split('\u0000');
      out.push({ topic, partition: Number(partition), next: value });
    }
    return out;
  }

  /** Next offset to read for a partition, or undefined when nothing of it was applied yet. */
  position(topic: string, partition: number, generation: Generation = this.active): string | undefined {
    return generation.offsets.get(offsetKey(topic, partition));
  }

  sequence(): bigint {
    return this.seq;
  }

  /** The generation readers see. */
  activeGeneration(): Generation {
    return this.active;
  }

  /** The active generation's id as committed right now (another process may have swapped since this one opened). */
  storedActiveGeneration(): number {
    return Number(this.meta.get('activeGeneration') ?? '0');
  }

  /** The generation being rebuilt, if any. */
  shadowGeneration(): Generation | undefined {
    return this.shadowGen;
  }

  /** Version of the view definition being served (the active generation's). */
  get viewVersion(): number {
    return this.active.viewVersion;
  }

  /** True when the active generation was built with another view version than the code's. */
  needsRebuild(): boolean {
    return this.active.viewVersion !== this.codeViewVersion;
  }

  /**
   * Forgets the stored position of a partition, so the next start reads it again from the earliest
   * offset. Safe at any time: rows remember their origin, so re-read records are no-ops.
   */
  async forgetPosition(topic: string, partition: number): Promise<void> {
    await this.active.offsets.remove(offsetKey(topic, partition));
  }

  /** Raw state of a generation (default: active), for verification tools and tests. */
  stateReader(generation: Generation = this.active): StateReader {
    return stateReaderOf(generation);
  }

  /** Every user state, for verification (`matview verify`) and tests. */
  *allUserStates(generation: Generation = this.active): Generator<[string, UserState]> {
    for (const { key, value } of generation.users.getRange()) yield [key, value];
  }

  /** Every stored view, decoded. */
  *allViews(generation: Generation = this.active): Generator<[string, UserInformation]> {
    for (const { key, value } of generation.views.getRange()) yield [key, decodeView(value)];
  }

  /** Every stored row of a table, for verification. */
  *allRows(table: Table, generation: Generation = this.active): Generator<[string, StoredRow]> {
    const prefix = rowKey(table, '');
    for (const { key, value } of generation.rows.getRange({ start: prefix })) {
      if (!key.startsWith(prefix)) break;
      yield [key.slice(prefix.length), value];
    }
  }

  /** Bytes of the environment in use (pages up to the last used one), for `matview_lmdb_size_bytes`. */
  sizeBytes(): number {
    const stats = this.env.getStats() as { pageSize?: number; lastPageNumber?: number };
    return ((stats.lastPageNumber ?? 0) + 1) * (stats.pageSize ?? 4096);
  }

  // ---- writes ----

  /**
   * Runs one write transaction; a failed commit becomes a StoreWriteError naming the real cause (and
   * lmdb-js' `commitError` promise is consumed, so it cannot surface as an unhandled rejection).
   */
  private async commit<T>(what: string, action: () => T): Promise<T> {
    try {
      return await this.env.transaction(action);
    } catch (e) {
      if (isMatviewError(e)) throw e;
      throw new StoreWriteError(`LMDB write failed (${what}): ${await commitFailure(e)}`, { cause: e });
    }
  }

  /**
   * Materializes a batch into `target` (default: whichever generation is active when the transaction
   * runs) and commits rows, user states, views, offsets and the new sequence in one write transaction.
   * Commit listeners are notified (in commit order) only when the target was the active generation.
   * Offsets only move forward: a batch that is behind the stored position (a consumer that kept running
   * across a swap) cannot move it back, and its records are no-ops by their row origins.
   */
  async applyBatch(input: BatchInput, target: BatchTarget = 'active'): Promise<BatchResult> {
    const appliedAt = Date.now();
    let result: WrittenBatch | undefined;
    if (this.writer !== undefined) {
      // On the writer thread: the same transaction, resolving 'active' from the committed meta where its
      // commits serialize with this thread's (a swap). Its commit is readable here once the reply arrives.
      result = await this.writer.apply(input, target === 'active' ? 'active' : target.id, appliedAt);
    } else {
      try {
        // Batches applied concurrently (one per partition) are queued by lmdb-js into the same write
        // transaction and run one after the other, so each reads the sequence its predecessor wrote, and
        // their promises resolve in that order, which is the order `publish` below runs in. A child
        // transaction each: one that throws is rolled back alone instead of leaving half its writes in
        // the shared commit.
        await this.env.childTransaction(() => {
          // Inside the transaction: the active generation and the sequence are read where commits serialize.
          const generation = target === 'active' ? this.active : target;
          result = writeBatch(this.meta, generation, input, appliedAt, generation === this.active);
        });
      } catch (e) {
        if (isMatviewError(e)) throw e;
        throw new StoreWriteError(await batchFailure(e), { cause: e });
      }
    }
    if (result === undefined) throw new StoreWriteError('LMDB transaction did not run');
    const { event } = result;
    if (event.sequence > this.seq) this.seq = event.sequence;
    if (result.visible) this.publish(event);
    return {
      sequence: event.sequence,
      appliedAt,
      changed: result.changed,
      noops: result.noops,
      generation: result.generation,
      visible: result.visible,
    };
  }

  private publish(event: CommitEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (e) {
        this.onListenerError(e);
      }
    }
  }

  /**
   * Starts (or resumes) a shadow generation for `viewVersion`. An existing shadow of the same version is
   * resumed where it stands; one of another version is dropped first. Clears a pending rebuild request in
   * the same transaction, so a request is served by exactly one rebuild.
   */
  async beginShadow(
    viewVersion: number,
    reason: string,
  ): Promise<{ generation: Generation; resumed: boolean }> {
    // One generation retires at a time: a rebuild right after a swap waits for its reconciliation.
    await this.reconciling;
    const existing = this.shadowGen;
    if (existing !== undefined && existing.viewVersion === viewVersion && reason !== 'offset-out-of-range') {
      if (this.rebuildRequest() !== undefined)
        await this.commit('clear the rebuild request', () => void this.meta.remove('rebuildRequested'));
      return { generation: existing, resumed: true };
    }
    if (existing !== undefined) await this.abandonShadow();
    let info: GenerationInfo | undefined;
    await this.commit('begin a shadow generation', () => {
      const id = Number(this.meta.get('nextGeneration') ?? '1');
      info = { id, viewVersion, state: 'building', createdAt: new Date().toISOString(), reason };
      this.meta.put('nextGeneration', String(id + 1));
      this.meta.put(genKey(id), JSON.stringify(info));
      this.meta.put('shadowGeneration', String(id));
      this.meta.remove('rebuildRequested');
    });
    if (info === undefined) throw new StoreWriteError('LMDB transaction did not run');
    const generation = new Generation(this.env, info);
    this.shadowGen = generation;
    return { generation, resumed: false };
  }

  /** Drops the shadow generation (a rebuild that is no longer wanted). */
  async abandonShadow(): Promise<void> {
    const shadow = this.shadowGen;
    if (shadow === undefined) return;
    this.shadowGen = undefined;
    await this.commit('abandon the shadow generation', () => {
      this.meta.remove('shadowGeneration');
      this.meta.remove(genKey(shadow.id));
    });
    await shadow.drop();
  }

  /**
   * Makes `shadow` the active generation, in one write transaction, if for every partition in `required`
   * its stored position has reached `next` (typically the live end offsets). Readers switch generations
   * between two transactions: before the swap they read the complete old view, after it the complete new
   * one. Subscribers get one commit event naming every user whose view differs. The old generation is
   * dropped afterwards.
   */
  async trySwap(shadow: Generation, required: readonly PartitionPosition[]): Promise<SwapResult> {
    if (this.shadowGen !== shadow) return { swapped: false, behind: [] };
    const before = this.active;
    const shadowInfo = shadow.info;
    let outcome: SwapResult | undefined;
    await this.env
      .transaction(() => {
        const behind: SwapResult['behind'][number][] = [];
        for (const r of required) {
          if (r.next === '0') continue;
          const at = shadow.offsets.get(offsetKey(r.topic, r.partition)) ?? '0';
          if (BigInt(at) < BigInt(r.next))
            behind.push({ topic: r.topic, partition: r.partition, next: at, required: r.next });
        }
        if (behind.length > 0) {
          outcome = { swapped: false, behind };
          return;
        }
        const sequence = BigInt(this.meta.get('sequence') ?? '0') + 1n;
        const to: GenerationInfo = {
          ...shadow.info,
          state: 'active',
          activatedSequence: sequence.toString(),
          activatedAt: new Date().toISOString(),
        };
        this.meta.put(genKey(shadow.id), JSON.stringify(to));
        this.meta.put('activeGeneration', String(shadow.id));
        this.meta.put('viewVersion', String(shadow.viewVersion));
        this.meta.remove('shadowGeneration');
        // Kept until reconciled: reads compare with it, and a restart resumes the pass (see `reconcile`).
        this.meta.put(genKey(before.id), JSON.stringify({ ...before.info, state: 'retiring' }));
        this.meta.put('retiringGeneration', String(before.id));
        this.meta.put('sequence', sequence.toString());
        // Switch readers here, not after the commit resolves: a live batch queued behind this transaction
        // may run in the same LMDB commit and must land in the new generation. Readers between this line
        // and the commit read the last committed snapshot, in which the shadow is already complete.
        this.active = shadow;
        this.shadowGen = undefined;
        this.retiring = before;
        shadow.info = to;
        outcome = { swapped: true, behind: [], sequence, from: before.info, to };
      })
      .catch(async (e: unknown) => {
        if (this.active === shadow) {
          this.active = before;
          this.shadowGen = shadow;
          this.retiring = undefined;
          shadow.info = shadowInfo;
        }
        throw new StoreWriteError(
          `LMDB write failed, the generation swap did not happen: ${await commitFailure(e)}`,
          { cause: e },
        );
      });
    if (outcome === undefined) throw new StoreWriteError('LMDB transaction did not run');
    if (!outcome.swapped || outcome.sequence === undefined) return outcome;
    if (outcome.sequence > this.seq) this.seq = outcome.sequence;
    this.publish({
      sequence: outcome.sequence,
      changes: new GenerationDiff(before, this.active, (bytes, userId) => this.decode(bytes, userId)),
    });
    // In the background: the live feed, held for the swap, goes on meanwhile.
    this.startReconcile();
    return outcome;
  }

  /** Resolves once the last swap is reconciled (at once when there is nothing to do). For tests and close. */
  async reconciled(): Promise<void> {
    await this.reconciling;
  }

  private startReconcile(): void {
    if (this.reconciling !== undefined || this.retiring === undefined) return;
    this.reconciling = this.reconcile()
      .catch((e: unknown) => this.onListenerError(e))
      .finally(() => {
        this.reconciling = undefined;
      });
  }

  /**
   * The swap's reconciliation pass: every user state and view of the active generation written before the swap
   * gets its final version, in transactions of `reconcileChunk` users with the event loop free in between:
   * - a view the swap did not change (same REST JSON in the retiring generation) gets the retiring one's bytes,
   *   version included, so its `version.sequence` does not move; its user state gets that version too;
   * - a view the swap changed gets the swap's sequence (what reads reported until now);
   * - a user without a view: the retiring generation's version when it had none either, else the swap's;
   * - a user only the retiring generation knew (its records are no longer in the topics) gets an empty state
   *   at the swap's sequence, so `removedAt` still says when it went.
   * Each transaction reads what it rewrites, so a live batch committed in between (sequence above the swap's)
   * is left alone. Then the generation is marked reconciled (reads take views as stored) and the retiring one
   * dropped. Interrupted (shutdown, crash), it starts over at the next `collectGarbage`: it is idempotent.
   */
  private async reconcile(): Promise<void> {
    const active = this.active;
    const retiring = this.retiring;
    const floor = active.floor;
    if (retiring === undefined) return;
    if (floor !== undefined) {
      const swapVersion = (version: ViewVersion) => this.floorVersion(version, floor);
      for (const [from, step] of [
        [
          active,
          (userId: string, state: UserState) =>
            this.reconcileUser(active, retiring, floor, userId, state, swapVersion),
        ],
        [retiring, (userId: string) => this.reconcileGone(active, userId, floor)],
      ] as const) {
        let start: string | undefined;
        for (;;) {
          if (this.closed) return;
          let last: string | undefined;
          await this.commit('reconcile versions after a swap', () => {
            // The chunk is read first, then rewritten: no cursor is open on a database while it is written.
            const chunk = [
              ...from.users.getRange({
                ...(start === undefined ? {} : { start }),
                limit: this.reconcileChunk + 1,
              }),
            ]
              .filter(({ key }) => key !== start)
              .slice(0, this.reconcileChunk);
            for (const { key, value } of chunk) step(key, value);
            last = chunk.at(-1)?.key;
          });
          if (last === undefined) break;
          start = last;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    }
    if (this.closed) return;
    await this.commit('finish the reconciliation of a swap', () => {
      const info: GenerationInfo = { ...active.info, reconciled: true };
      this.meta.put(genKey(active.id), JSON.stringify(info));
      this.meta.remove('retiringGeneration');
      this.meta.remove(genKey(retiring.id));
      active.info = info;
      this.retiring = undefined;
    });
    await retiring.drop();
  }

  /** One user of the active generation (see `reconcile`); runs inside a write transaction. */
  private reconcileUser(
    active: Generation,
    retiring: Generation,
    floor: bigint,
    userId: string,
    state: UserState,
    swapVersion: (version: ViewVersion) => ViewVersion,
  ): void {
    const view = active.views.getBinary(userId);
    const old = retiring.views.getBinary(userId);
    if (view !== undefined) {
      const decoded = decodeView(view);
      if (BigInt(decoded.version.sequence) >= floor) return; // written after the swap
      if (old !== undefined && restJsonOf(old).equals(restJsonOf(view))) {
        active.views.put(userId, old);
        active.users.put(userId, { counts: state.counts, version: decodeView(old).version });
      } else {
        const version = swapVersion(decoded.version);
        active.views.put(userId, encodeView({ ...decoded, version }));
        active.users.put(userId, { counts: state.counts, version });
      }
      return;
    }
    if (BigInt(state.version.sequence) >= floor) return;
    const before = old === undefined ? retiring.users.get(userId) : undefined;
    const version =
      before === undefined
        ? swapVersion(state.version)
        : retiring.floor !== undefined && BigInt(before.version.sequence) < retiring.floor
          ? { ...before.version, sequence: retiring.floor.toString() }
          : before.version;
    active.users.put(userId, { counts: state.counts, version });
  }

  /** A user of the retiring generation (see `reconcile`); runs inside a write transaction. */
  private reconcileGone(active: Generation, userId: string, floor: bigint): void {
    if (active.users.doesExist(userId)) return;
    const version: ViewVersion = {
      sequence: floor.toString(),
      appliedAt: active.info.activatedAt ?? new Date().toISOString(),
      eventTime: null,
      source: { topic: '', partition: 0, offset: '0' },
    };
    active.users.put(userId, {
      counts: { tweetCount: 0, followingCount: 0, followerCount: 0, likeCount: 0 },
      version,
    });
  }

  /**
   * Drops sub-databases of generations that are neither active nor shadow (left by a crash between a
   * swap and the drop of the old generation). Only the serving process calls it.
   */
  async collectGarbage(): Promise<number[]> {
    // A swap reconciled only in part (the process stopped during the pass): finish it in the background.
    this.startReconcile();
    const keep = new Set(
      [this.active, this.shadowGen, this.retiring].flatMap((g) => (g === undefined ? [] : [g.id])),
    );
    const orphans = new Set<number>();
    for (const name of this.env.getKeys()) {
      if (typeof name !== 'string') continue;
      const id = generationOfDb(name);
      if (id !== undefined && !keep.has(id)) orphans.add(id);
    }
    for (const id of orphans) {
      await new Generation(this.env, {
        id,
        viewVersion: 0,
        state: 'building',
        createdAt: '',
        reason: 'orphan',
      }).drop();
      await this.commit('forget an orphaned generation', () => void this.meta.remove(genKey(id)));
    }
    return [...orphans];
  }

  // ---- operator requests and ownership (cross-process, through meta) ----

  /** Records a request to rebuild the view (`matview rebuild`); the serving process picks it up. */
  async requestRebuild(reason: string): Promise<RebuildRequest> {
    const request: RebuildRequest = { requestedAt: new Date().toISOString(), reason };
    await this.commit('record the rebuild request', () => {
      void this.meta.put('rebuildRequested', JSON.stringify(request));
    });
    return request;
  }

  /** Drops a pending rebuild request (one already under way serves it). */
  async clearRebuildRequest(): Promise<void> {
    await this.commit('clear the rebuild request', () => void this.meta.remove('rebuildRequested'));
  }

  /** The pending rebuild request, if any (reads the latest committed state, from any process). */
  rebuildRequest(): RebuildRequest | undefined {
    // Written by another process (`matview rebuild`): read what is committed now, not this thread's
    // snapshot (lmdb-js renews it only when this thread commits or resets it; with the writer thread on,
    // this thread rarely commits).
    this.env.resetReadTxn();
    const raw = this.meta.get('rebuildRequested');
    return raw === undefined ? undefined : (JSON.parse(raw) as RebuildRequest);
  }

  /** Marks this process as the one serving the store. */
  async claimOwner(): Promise<void> {
    const owner: StoreOwner = { pid: process.pid, hostname: hostname(), startedAt: new Date().toISOString() };
    await this.commit('record the owner', () => void this.meta.put('owner', JSON.stringify(owner)));
  }

  async releaseOwner(): Promise<void> {
    const raw = this.meta.get('owner');
    if (raw !== undefined && (JSON.parse(raw) as StoreOwner).pid === process.pid)
      await this.commit('release the owner', () => void this.meta.remove('owner'));
  }

  /** The serving process recorded in the store, if it is still alive on this host. */
  liveOwner(): StoreOwner | undefined {
    const raw = this.meta.get('owner');
    if (raw === undefined) return undefined;
    const owner = JSON.parse(raw) as StoreOwner;
    if (owner.hostname !== hostname()) return owner;
    try {
      process.kill(owner.pid, 0);
      return owner;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM' ? owner : undefined;
    }
  }

  /** Gives a restored copy its own identity (so it joins its own consumer group) and no owner. */
  async resetIdentity(): Promise<string> {
    const id = randomUUID();
    await this.commit('reset the identity', () => {
      this.meta.put('instanceId', id);
      this.meta.remove('owner');
    });
    return id;
  }

  /**
   * Writes a consistent, compacted copy of the whole environment (every generation, offsets and meta)
   * into directory `dir` as `dir/data.mdb` (LMDB `mdb_env_copy2` with `MDB_CP_COMPACT`, in a read
   * transaction: safe while another process writes).
   */
  async backup(dir: string): Promise<void> {
    // The environment is a directory, so LMDB appends `/data.mdb` to the target itself.
    mkdirSync(dir, { recursive: true });
    await this.env.backup(dir, true);
  }

  // ---- lifecycle ----

  /** Listen to commits: called synchronously after each commit, in commit order. Returns an unsubscribe. */
  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.reconciling; // stops after its current chunk; the next start finishes it
    await this.writer?.close();
    await this.env.close();
  }
}

/** What a batch's transaction produced (on this thread or the writer thread). */
export interface WrittenBatch {
  readonly changed: number;
  readonly noops: number;
  readonly event: CommitEvent;
  readonly generation: number;
  readonly visible: boolean;
}

/**
 * Opens the environment of a store (this thread's handle; the writer thread opens its own on the same
 * path, and LMDB serializes their write transactions). Always a directory (data.mdb + lock.mdb): lmdb-js
 * would treat a path with a dot (`view.restore-1`) as a file.
 */
export function openEnvironment(path: string, mapSize: number | undefined): RootDatabase {
  return open({
    path,
    noSubdir: false,
    maxDbs: MAX_DBS,
    mapSize: mapSize ?? 1024 * 1024 * 1024,
    // Every write here is an explicit transaction already. With event-turn batching lmdb-js adds an
    // internal commit promise per event turn that nobody can handle: a failed commit (disk full, I/O
    // error) became an unhandled rejection that killed the process instead of a StoreWriteError.
    eventTurnBatching: false,
  });
}

export const metaOf = (env: RootDatabase): Database<string, string> =>
  env.openDB<string, string>({ name: 'meta', encoding: 'string' });

/** A generation's record in meta (a store written before generations: generation 0 from `viewVersion`). */
export function readGenerationInfo(meta: Database<string, string>, id: number): GenerationInfo {
  const raw = meta.get(genKey(id));
  if (raw !== undefined) return JSON.parse(raw) as GenerationInfo;
  // Only a store whose meta was written before generations reaches here with create: false.
  return {
    id,
    viewVersion: Number(meta.get('viewVersion') ?? '0'),
    state: 'active',
    createdAt: '',
    reason: 'initial',
  };
}

/** The id of the generation readers see, as committed (read inside a write transaction: where swaps serialize). */
export const committedActiveGeneration = (meta: Database<string, string>): number =>
  Number(meta.get('activeGeneration') ?? '0');

/**
 * The body of a batch's write transaction: materializes `input` into `generation` and writes rows, user
 * states, views, offsets and the next sequence. Offsets only move forward.
 */
export function writeBatch(
  meta: Database<string, string>,
  generation: Generation,
  input: BatchInput,
  appliedAt: number,
  visible: boolean,
): WrittenBatch {
  const sequence = BigInt(meta.get('sequence') ?? '0') + 1n;
  const writes = materialize(stateReaderOf(generation), input.changes, {
    sequence,
    appliedAt: new Date(appliedAt).toISOString(),
  });
  for (const w of writes.rows) generation.rows.put(rowKey(w.table, w.key), w.stored);
  for (const [id, s] of writes.users) generation.users.put(id, s);
  for (const [id, v] of writes.views) {
    if (v === null) generation.views.remove(id);
    else generation.views.put(id, encodeView(v));
  }
  for (const p of input.positions) {
    const k = offsetKey(p.topic, p.partition);
    const stored = generation.offsets.get(k);
    if (stored === undefined || BigInt(p.next) > BigInt(stored)) generation.offsets.put(k, p.next);
  }
  meta.put('sequence', sequence.toString());
  return {
    changed: writes.views.size,
    noops: writes.noops,
    event: { sequence, changes: writes.views },
    generation: generation.id,
    visible,
  };
}

function stateReaderOf(generation: Generation): StateReader {
  return {
    row: (t: Table, k: string) => generation.rows.get(rowKey(t, k)),
    user: (id: string) => generation.users.get(id),
  };
}

/**
 * The reason a commit failed. lmdb-js rejects with a generic "Commit failed (see commitError for details)"
 * whose `commitError` is another rejected promise holding the real error (ENOSPC, EIO…): read it, both for
 * a message that says what happened and because left alone it is an unhandled rejection.
 */
async function commitFailure(error: unknown): Promise<string> {
  const message = error instanceof Error ? error.message : String(error);
  const commitError = (error as { commitError?: unknown } | null)?.commitError;
  if (!(commitError instanceof Promise)) return message;
  const cause: unknown = await commitError.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  return cause instanceof Error ? cause.message : message;
}

/** The message of a failed batch transaction (on either thread). */
export async function batchFailure(error: unknown): Promise<string> {
  return `LMDB write failed, nothing of the batch was applied: ${await commitFailure(error)}`;
}

export function openStore(options: StoreOptions): LmdbStore {
  return new LmdbStore(options);
}
