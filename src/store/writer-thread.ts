/**
 * The writer thread (WRITER_THREAD, on in `matview serve`): `LmdbStore.applyBatch` runs its write
 * transaction (rows, every view, offsets, sequence) on a worker thread with its own handle on the same LMDB
 * environment, so the event loop that answers reads and feeds subscriptions never spends a commit's tens of
 * milliseconds on it. The worker group-commits (commit-queue.ts): batches that arrive while it writes go
 * into its next transaction together. Everything else stays where it was: the caller still decodes records
 * and publishes the commit event (in commit order: replies arrive in the order the worker's commits
 * resolved; the changed user views come packed and are decoded when asked for, packed-views.ts), and the
 * rare writes (swap, shadow, owner, view rebuilds at start) run on the caller's thread, where
 * LMDB serializes them with the worker's transactions. A rebuild's shadow has its views built from its
 * rows here, beside its chunks (`buildShadowViews`): at a million users that build takes tens of seconds,
 * which the event loop that answers reads must not spend (live commits wait for a page or a few of it).
 *
 * The worker resolves "the active generation" from the committed meta inside its transaction, so a batch
 * committed after a swap lands in the new generation, as it does on one thread. When a reply arrives the
 * caller renews its read snapshot (lmdb-js keeps a thread's read transaction until told otherwise), so the
 * commit is readable before its event is published.
 */
import type { Worker } from 'node:worker_threads';
import { MatviewError, StoreStoppingError, StoreWriteError } from '../errors.js';
import { startWorker } from '../worker-entry.js';
import { USER_INFORMATION } from '../views/user-information.js';
import { isReplicaInput } from '../materializer/change-batch.js';
import {
  ALL_FIELDS,
  packChanges,
  packedChangesTransferables,
  type CrossingFields,
} from './packed-changes.js';
import { PackedViewMap, type PackedViews } from './packed-views.js';
import type { RebuildChunkTiming } from './shadow-chunks.js';
import type { ThreadPriority } from './thread-priority.js';
import type { PackedStoreInput, StoreInput, WrittenCommit } from './write.js';
import type { ViewBuild } from './generation.js';
import type { Table } from '../views/source.js';

/** What the worker is started with. */
export interface WriterData {
  readonly path: string;
  readonly mapSize: number | undefined;
  /** Records merged into one commit at most (group commit). */
  readonly maxRecordsPerCommit: number;
  /** Records per chunk of a rebuild's shadow at most (shadow-chunks.ts); 0: a shadow commits like the rest. */
  readonly rebuildChunkRecords: number;
  readonly rebuildChunkTiming: RebuildChunkTiming;
  /** Entries of a rebuild's views kept across its chunks at most (default: the worker's own heap decides). */
  readonly viewBufferEntries?: number;
  /** Entries of those views written by one transaction at most (default VIEWS_WRITE_SLICE). */
  readonly viewWriteSlice?: number;
  /**
   * Nice steps the worker lowers its own CPU priority by, below the process's (WRITER_THREAD_NICE,
   * thread-priority.ts); 0 or absent: unchanged.
   */
  readonly niceIncrement?: number;
}

/** Caller → worker. */
export type WriterRequest =
  | {
      readonly kind: 'apply';
      readonly id: number;
      readonly input: StoreInput | PackedStoreInput;
      /** A generation id, or the one active when the transaction runs. */
      readonly target: 'active' | number;
    }
  /** Write the rebuild's chunk waiting, if any (shadow-chunks.ts), and say so with `chunk-written`. */
  | { readonly kind: 'write-chunk'; readonly id: number }
  /**
   * Build a shadow's views from its rows here, where its chunks are (view-rebuild.ts `buildShadowViews`), and
   * say so with `views-built`. `topics`: each table's topic, which the built values' versions name.
   */
  | {
      readonly kind: 'build-shadow-views';
      readonly id: number;
      readonly generation: number;
      readonly topics: Partial<Record<Table, string>>;
    }
  /** Stop the shadow's views being built at their next page (a stop): its build rejects, nothing is switched. */
  | { readonly kind: 'abort-shadow-build' }
  /** Refuse the batches waiting and every later one (a stop): see `CommitQueue.refuseWaiting`. */
  | { readonly kind: 'refuse' }
  | { readonly kind: 'close' };

/** Worker → caller: one reply per commit, naming every request merged into it, and one per `write-chunk`. */
export type WriterReply =
  | {
      readonly kind: 'chunk-written';
      readonly id: number;
      /** Why the write failed, if it did. */
      readonly failed?: string;
    }
  | {
      readonly kind: 'views-built';
      readonly id: number;
      /** What was built; absent when the shadow's views were not behind its rows, or when it failed. */
      readonly built?: BuiltViews;
      /** Why the build failed, if it did, and the MatviewError code thrown, if one was. */
      readonly failed?: string;
      readonly code?: string;
    }
  /** A chunk written on its own (idle, or at close) failed: kept and tried again, or left to the next start. */
  | { readonly kind: 'chunk-write-failed'; readonly message: string }
  /** Sent once the worker started: what lowering its priority did (`niceIncrement`). */
  | { readonly kind: 'priority'; readonly priority: ThreadPriority }
  | {
      readonly ids: readonly number[];
      readonly ok: true;
      readonly result: WrittenCommit;
      /** The commit's changed user views, packed (its `events` hold an empty map in their place): packed-views.ts. */
      readonly users?: PackedViews;
    }
  | {
      readonly ids: readonly number[];
      readonly ok: false;
      readonly message: string;
      /** The MatviewError code thrown inside the transaction, if one was (else a StoreWriteError). */
      readonly code: string | undefined;
      readonly retriable: boolean;
      /** Refused because the store is stopping (StoreStoppingError): nothing was tried. */
      readonly refused?: true;
    };

/** A shadow's views built from its rows, as the writer thread reports it (ViewRebuildResult, cloneable). */
export interface BuiltViews {
  readonly rows: number;
  readonly rebuilt: readonly string[];
  /** The builds replaced, to be dropped. */
  readonly replaced: readonly (readonly [string, ViewBuild | undefined])[];
}

const STORE_WRITE_CODE = new StoreWriteError('').code;

interface Pending {
  readonly resolve: (result: WrittenCommit) => void;
  readonly reject: (error: Error) => void;
}

export class WriterThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly chunkWrites = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private readonly viewBuilds = new Map<
    number,
    { resolve: (built: BuiltViews | undefined) => void; reject: (e: Error) => void }
  >();
  /** Shadow generations the running worker applied batches to: it may hold an unwritten chunk of them. */
  private readonly shadows = new Set<number>();
  /**
   * Shadows whose chunk may have ended with a worker (shadow-chunks.ts): the batches resolved into it are not
   * stored and their feed has moved past them, so the shadow's later batches are refused, as the worker
   * refuses those of a lost chunk.
   */
  private readonly lostShadows = new Set<number>();
  private nextId = 0;
  private closing: Promise<void> | undefined;
  private refusing = false;

  /**
   * `onCommitted` runs before a reply settles its promise (the caller renews its read snapshot there);
   * `crossing`: the fields of a plain input's rows packed for the writer thread (the store's `packedFields`);
   * `onPriority`: what each worker started did to its CPU priority (`niceIncrement`).
   */
  constructor(
    private readonly data: WriterData,
    private readonly onCommitted: () => void,
    private readonly onChunkWriteError: (error: unknown) => void,
    private readonly crossing: CrossingFields = ALL_FIELDS,
    private readonly onPriority: (priority: ThreadPriority) => void = () => undefined,
  ) {
    // Started now, so it has loaded by the first batch.
    this.worker = this.spawn();
  }

  /**
   * Commits `input` on the worker (possibly together with other batches). Rejects with a StoreWriteError
   * when it did not commit.
   */
  apply(input: StoreInput | PackedStoreInput, target: 'active' | number): Promise<WrittenCommit> {
    if (this.refusing) return Promise.reject(new StoreStoppingError());
    if (this.closing !== undefined) return Promise.reject(new StoreWriteError('the store is closing'));
    if (target !== 'active') {
      if (this.lostShadows.has(target))
        return Promise.reject(
          new StoreWriteError(
            `the writer thread ended while it held a chunk of this rebuild; the rebuild resumes from its stored positions at the next start`,
          ),
        );
      this.shadows.add(target);
    }
    // Packed before anything is registered (unless the caller packed it): what cannot be packed goes as it is.
    let sent: StoreInput | PackedStoreInput = input;
    let transfer: ArrayBuffer[] = [];
    if ('packed' in input) transfer = packedChangesTransferables(input.packed);
    else if (!isReplicaInput(input)) {
      const { changes, ...rest } = input;
      const packed = packChanges(changes, this.crossing);
      if (packed !== undefined) {
        sent = { ...rest, packed };
        transfer = packedChangesTransferables(packed);
      }
    }
    const worker = (this.worker ??= this.spawn());
    const id = this.nextId++;
    return new Promise<WrittenCommit>((resolve, reject) => {
      if (this.pending.size === 0) worker.ref();
      this.pending.set(id, { resolve, reject });
      const request: WriterRequest = { kind: 'apply', id, input: sent, target };
      worker.postMessage(request, transfer);
    });
  }

  /** The batches the worker has not started to commit are refused, and so is every later one. */
  refuseWaiting(): void {
    if (this.refusing) return;
    this.refusing = true;
    const request: WriterRequest = { kind: 'refuse' };
    this.worker?.postMessage(request);
  }

  /** Writes the rebuild's chunk waiting on the worker, if any (shadow-chunks.ts). */
  writeChunk(): Promise<void> {
    if (this.closing !== undefined) return Promise.resolve();
    const worker = (this.worker ??= this.spawn());
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      worker.ref();
      this.chunkWrites.set(id, { resolve, reject });
      const request: WriterRequest = { kind: 'write-chunk', id };
      worker.postMessage(request);
    });
  }

  /**
   * Builds the views of shadow `generation` from its rows on the worker, after its chunk waiting, when they are
   * behind them (view-rebuild.ts `buildShadowViews`): its live commits go on between the build's pages and
   * writes, and this thread keeps serving.
   */
  buildShadowViews(
    generation: number,
    topics: Partial<Record<Table, string>>,
  ): Promise<BuiltViews | undefined> {
    if (this.closing !== undefined) return Promise.reject(new StoreWriteError('the store is closing'));
    const worker = (this.worker ??= this.spawn());
    const id = this.nextId++;
    return new Promise<BuiltViews | undefined>((resolve, reject) => {
      worker.ref();
      this.viewBuilds.set(id, { resolve, reject });
      const request: WriterRequest = { kind: 'build-shadow-views', id, generation, topics };
      worker.postMessage(request);
    });
  }

  /** Stops a `buildShadowViews` in progress at its next page (it rejects with StoreStoppingError). */
  abortShadowBuild(): void {
    const request: WriterRequest = { kind: 'abort-shadow-build' };
    this.worker?.postMessage(request);
  }

  /** Lets the worker finish what it was sent (a rebuild's chunk waiting is written), close its handle and exit. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      const worker = this.worker;
      if (worker === undefined) return;
      worker.ref();
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      const request: WriterRequest = { kind: 'close' };
      worker.postMessage(request);
      await exited;
    })());
  }

  private spawn(): Worker {
    const worker = startWorker(import.meta.url, './batch-writer.ts', 'batch-writer', {
      workerData: this.data satisfies WriterData,
    });
    worker.unref(); // referenced only while a batch is in flight (or while closing)
    worker.on('message', (reply: WriterReply) => {
      if ('kind' in reply && reply.kind === 'priority') {
        this.onPriority(reply.priority);
        return;
      }
      // Before settling either way: the commit is readable here once this thread renews its snapshot.
      this.onCommitted();
      if (!('kind' in reply)) this.settleCommit(reply);
      else if (reply.kind === 'chunk-written') this.settleChunkWrite(reply);
      else if (reply.kind === 'views-built') this.settleViewBuild(reply);
      else this.onChunkWriteError(new StoreWriteError(reply.message));
      if (
        this.pending.size === 0 &&
        this.chunkWrites.size === 0 &&
        this.viewBuilds.size === 0 &&
        this.closing === undefined
      )
        worker.unref();
    });
    worker.on('error', (error) => {
      this.failAll(
        new StoreWriteError(`the store's writer thread failed: ${error.message}`, { cause: error }),
      );
    });
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = undefined; // the next batch starts a new one
      for (const g of this.shadows) this.lostShadows.add(g);
      this.shadows.clear();
      this.failAll(new StoreWriteError(`the store's writer thread exited (code ${code}) during a commit`));
    });
    return worker;
  }

  /** Every request merged into the commit gets the same result, with the user views decoded on demand. */
  private settleCommit(reply: Exclude<WriterReply, { kind: string }>): void {
    const result =
      reply.ok && reply.users !== undefined
        ? {
            ...reply.result,
            events: new Map(reply.result.events).set(USER_INFORMATION, new PackedViewMap(reply.users)),
          }
        : undefined;
    for (const id of reply.ids) {
      const waiting = this.pending.get(id);
      if (waiting === undefined) continue;
      this.pending.delete(id);
      if (reply.ok) {
        waiting.resolve(result ?? reply.result);
      } else if (reply.refused === true) {
        waiting.reject(new StoreStoppingError());
      } else {
        waiting.reject(
          reply.code === undefined || reply.code === STORE_WRITE_CODE
            ? new StoreWriteError(reply.message)
            : new MatviewError(reply.code, reply.message, { retriable: reply.retriable }),
        );
      }
    }
  }

  private settleChunkWrite(reply: Extract<WriterReply, { kind: 'chunk-written' }>): void {
    const waiting = this.chunkWrites.get(reply.id);
    this.chunkWrites.delete(reply.id);
    if (reply.failed === undefined) waiting?.resolve();
    else waiting?.reject(new StoreWriteError(reply.failed));
  }

  private settleViewBuild(reply: Extract<WriterReply, { kind: 'views-built' }>): void {
    const waiting = this.viewBuilds.get(reply.id);
    this.viewBuilds.delete(reply.id);
    if (reply.failed === undefined) waiting?.resolve(reply.built);
    else
      waiting?.reject(
        reply.code === undefined || reply.code === STORE_WRITE_CODE
          ? new StoreWriteError(`LMDB write failed, the view rebuild did not finish: ${reply.failed}`)
          : new MatviewError(reply.code, reply.failed),
      );
  }

  private failAll(error: StoreWriteError): void {
    for (const w of this.chunkWrites.values()) w.reject(error);
    this.chunkWrites.clear();
    for (const w of this.viewBuilds.values()) w.reject(error);
    this.viewBuilds.clear();
    if (this.pending.size === 0) return;
    // Whether those batches committed is unknown here: the caller renews its snapshot, and the feed
    // re-reads from the stored offsets (a committed batch is then skipped as already applied).
    this.onCommitted();
    for (const waiting of this.pending.values()) waiting.reject(error);
    this.pending.clear();
  }
}
