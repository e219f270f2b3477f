/**
 * Rebuild as a bulk load: commits into a shadow generation (a rebuild from the feed) are applied in memory
 * (buffered-generation.ts) and written a chunk at a time, each chunk by one write transaction in key order,
 * instead of one transaction per group commit. A transaction copies every page it touches, and on a large
 * store each record touches other pages: replaying 10M records over 1M users into a shadow on the writer
 * thread (the `rebuild` bench) ran at 12.1k records/s in chunks, 8.2k committing batch by batch (see
 * docs/scaling.md).
 *
 * The views are not written with every chunk. A chunk writes the rows, the positions and the dead letters of
 * its batches; the views' changes (values, counts, rank keys) stay in memory across chunks (`BufferedViews`)
 * and are written, in key order, by the chunk before the swap, the one at close, and any chunk that finds
 * them holding VIEW_REBUILD_BUFFER_ENTRIES entries; more than VIEWS_WRITE_SLICE of them in transactions of
 * that many after the chunk's (`writeViews`), so the writer thread's live commits go in between its slices
 * instead of waiting for the whole write (at 1M users ~6M entries, ~27 s): live commits queue apart from
 * the shadow's (commit-queue.ts `CommitQueues`), so neither the write before the swap, nor one on a
 * shadow batch's path (a full buffer), nor a shadow batch waiting for either holds them up. A user's view is then written about once per rebuild
 * rather than once per chunk, and each record costs about one LMDB write (its row) while the views are
 * buffered: 3M records over 1M users (the `rebuild` bench's workload) 21.3k records/s against 10.9k, 27 s
 * of its 141 s in the final write of the views.
 *
 * Rows first. A rebuild from the changelogs (src/wiring/rebuild.ts) begins its shadow marked `viewsPending`
 * (LmdbStore.beginShadow with `rowsFirst`), and while the stored mark is set and nothing of the shadow's views
 * is buffered here, its commits store rows and positions only (`commitBatch`'s `rowsOnly`): no view applies,
 * no view or rank key moves. Once the shadow reached the end offsets its rebuild started from, its feed
 * stops, its views are built from its rows (view-rebuild.ts: users rows last, so each user's view and rank
 * keys once, with its final counts) in one switch that clears the mark, and the rebuild goes on from the
 * stored positions with views applied commit by commit, buffered across chunks as described above, until
 * the swap. Applying every commit's view changes (the views' apply with its rank moves, then their writes)
 * was 56 % of a profiled replay of 2M records over 1M users; the build from the rows touches each user once.
 * A crash in either phase resumes it: rows only while the mark is set (the build runs again from every
 * stored row), views after.
 *
 * When a chunk is written:
 * - when it holds `maxRecords` records (REBUILD_CHUNK_RECORDS);
 * - when no batch for the shadow came for `idleMs` (IDLE_WRITE_MS) after the last one, and when its first
 *   batch is `maxAgeMs` (MAX_CHUNK_AGE_MS) old: a rebuild that is not far behind, which is where it ends,
 *   stores its progress within that time even while batches keep coming (the swap waits for it);
 * - before the swap compares the shadow's positions with the live end (LmdbStore.trySwap), and when the store
 *   closes;
 * - before a batch for another shadow (a new rebuild replaced the old one).
 *
 * A shadow's batch therefore resolves once applied to the chunk, before it is durable: nothing reads the
 * shadow meanwhile, and the rebuild resumes from the stored positions, which move with the chunk.
 *
 * A full chunk that writes rows and positions only (its views stay buffered) commits while the next batches
 * apply: the batch that filled it waits until its transaction has run its writes on this thread, then the
 * next batches read the shadow through it until its write settled (`overInFlight`), and the next write
 * waits for it, so chunks are stored in order. Its commit (LMDB's write and sync of the chunk's pages) was
 * 0.3-0.4 s of every 250k-record chunk of the `rebuild` bench's rows, during which the thread waited: 6M
 * records' rows in process took 33.9 and 35.2 s against 37.9 and 38.2 s (alternated).
 *
 * What holds:
 * - Exactness: a batch applies to the stored generation with the chunk's earlier batches on top, which is
 *   what committing them one by one would have stored (the reference-model test checks it).
 * - Crashes: a chunk not yet written is lost with the process, and so are its positions: the generation
 *   stays at its last written chunk, a prefix of the feed, and the rebuild resumes from the positions stored
 *   with it. A stop writes the chunk and the views; one that outlasts SHUTDOWN_TIMEOUT_MS ends like a crash.
 * - Views behind rows: a chunk written without the views buffered before it (or with none: rows only) marks
 *   the generation `viewsPending` in the same transaction, and one written with them clears it (with the
 *   last slice of them, when they are written in slices). A crash (or a stop that did not write them)
 *   leaves the stored views behind the stored rows, and the shadow's next commits store rows only until its
 *   views are built from its rows (view-rebuild.ts, into new builds switched in one transaction: a crash
 *   meanwhile leaves the mark, and the build runs again): a rebuild from the changelogs does that once it
 *   reached its targets; any other caller of LmdbStore.beginShadow has it done before its feed resumes. A
 *   swap refuses a generation so marked.
 * - Failures: a write that fails writes nothing and keeps the chunk, whole, to be written again (its batch,
 *   if it was written on one's path, fails: a store write error stops the rebuild's feed, and the next start
 *   resumes it). One that fails while the next batches apply over it is reported (`onWriteError`), and it
 *   and the chunk applied over it are lost, as below: the batch that waits for it fails, later ones are
 *   refused. A commit body that throws halfway leaves part of its commit in the chunk: the chunk is dropped
 *   and the shadow's later batches are refused (`lost`), since the feed moved past the batches resolved
 *   into it. The writer thread's caller does the same for a worker that ended (writer-thread.ts).
 * - Offsets out of range: the rebuild fails when a partition it applied anything of goes out of range, stored
 *   or still in the chunk (src/wiring/rebuild.ts), so a reset cannot leave a hole behind a chunk.
 * - Swaps: the shadow's positions are stored only with a chunk, so a swap, which needs them at the live end,
 *   comes after the chunk that got there. A chunk to be written into a generation that is active by now (the
 *   swap came first) or gone (the rebuild was abandoned) writes nothing, like a late rebuild commit
 *   (write.ts): the live feed applies those records.
 * - Sequences: a buffered commit's values carry the store's next sequence at the time it applied (it is not
 *   taken: nobody sees a shadow's values before the swap, which gives every value it did not change the old
 *   version and the others the swap's own, higher, sequence: versions.ts). The chunk's write takes the
 *   next sequence, so at least every one its values carry, and the swap's is higher.
 * - Dead letters of the chunk's batches go into the outbox with the chunk's write, with the positions past
 *   them (outbox.ts).
 */
import { isReplicaInput, recordsOf } from '../materializer/change-batch.js';
import { USER_INFORMATION } from '../views/user-information.js';
import { checkContinuity, commitBatch } from '../materializer/commit.js';
import { StoreWriteError, messageOf } from '../errors.js';
import { batchError, entryCount, writeTransaction } from './environment.js';
import type { Database } from 'lmdb';
import type { CommitPlan, GenerationState, RowStore } from '../materializer/commit.js';
import { BufferedGeneration, BufferedViews, writeSlice } from './buffered-generation.js';
import { withViewsPending, type Generation } from './generation.js';
import { defaultViewRebuildBufferEntries } from './view-rebuild.js';
import { writeOutbox, type OutboxEntry } from './outbox.js';
import {
  committedActiveGeneration,
  genKey,
  lateRebuildCommit,
  readGenerationInfo,
  type CommitBody,
  type CommitContext,
  type StoreInput,
  type WrittenCommit,
} from './write.js';

/**
 * Records per chunk of a rebuild by default (REBUILD_CHUNK_RECORDS); a chunk older than MAX_CHUNK_AGE_MS is
 * written before it is full. Since a chunk keeps its rows as bytes (buffered-generation.ts), the rows of the
 * `rebuild` bench's replay (10M records over 1M users, writer thread, rows only, alternated) took 65.7, 64.1,
 * 65.7 and 66.2 s in chunks of 1M (peak RSS 2.6-2.8 GB) against 79.8, 70.6 and 86.6 s in chunks of 250k
 * (2.3-2.4 GB); in chunks of 2M, 72.0 s. Chunks of 1M were the default for a day, and are not: of six stores
 * filled so (that replay), three were stores lmdb-js 3.5.6 refused to write once reopened, its list of free
 * pages found inconsistent (README "Operations"; a chunk's transaction frees about a page per record it
 * rewrites, up to the whole store), against none of five filled in chunks of 250k. Before (a row object per
 * buffered row), 2M records into a shadow on the writer thread: 15.7k records/s batch by batch, 20-23k in
 * chunks of 250k, 23.6k in chunks of 1M.
 */
export const DEFAULT_REBUILD_CHUNK_RECORDS = 250_000;

/**
 * The default with the writer thread off (WRITER_THREAD=false): the chunk is written on the event loop, which
 * serves nothing meanwhile, so chunks stay as small as that thread's commits (MAX_RECORDS_PER_COMMIT's 50k).
 */
export const DEFAULT_REBUILD_CHUNK_RECORDS_ON_EVENT_LOOP = 50_000;

/** REBUILD_CHUNK_RECORDS' default: where the commits run decides it. */
export const defaultRebuildChunkRecords = (writerThread: boolean): number =>
  writerThread ? DEFAULT_REBUILD_CHUNK_RECORDS : DEFAULT_REBUILD_CHUNK_RECORDS_ON_EVENT_LOOP;

/** When a chunk is written though not full. */
export interface RebuildChunkTiming {
  /** How long a chunk waits for the shadow's next batch before it is written anyway (default IDLE_WRITE_MS). */
  readonly idleMs?: number;
  /** A chunk whose first batch is this old is written with its next batch (default MAX_CHUNK_AGE_MS). */
  readonly maxAgeMs?: number;
}

export interface ShadowChunksOptions extends CommitContext, RebuildChunkTiming {
  /** Records per chunk at most (a batch bigger than that is a chunk alone). */
  readonly maxRecords: number;
  /**
   * Entries of the views (values and index keys) kept in memory across chunks at most
   * (VIEW_REBUILD_BUFFER_ENTRIES; default `defaultViewRebuildBufferEntries()`): the chunk that finds more
   * writes them with its rows.
   */
  readonly viewBufferEntries?: number;
  /** Entries of the buffered views written by one transaction at most (default VIEWS_WRITE_SLICE). */
  readonly viewWriteSlice?: number;
  /**
   * Told when a chunk written on its own (idle or at close: no batch waits for it) fails; the chunk is kept
   * and written again RETRY_WRITE_MS later. A write on a batch's path fails that batch instead.
   */
  readonly onWriteError?: (error: unknown) => void;
}

/**
 * A chunk is written once no batch for its shadow arrived for this long: a rebuild that is not far behind
 * (the feed, not the store, sets its pace) then stores its progress within this time, and its positions
 * reach the live end the swap compares with. Batches of a rebuild that is far behind arrive every few ms.
 */
export const IDLE_WRITE_MS = 100;

/**
 * A chunk is written once its first batch is this old, whatever comes after: a rebuild that caught up with a
 * feed whose batches come less than IDLE_WRITE_MS apart still stores its progress, so the swap (which needs
 * the stored positions at the live end) waits seconds, not a whole chunk. Far behind, the age rarely cuts a
 * chunk short: the `rebuild` bench's 10M records over 1M users (rows only, writer thread) went, in chunks of
 * 1M (four times the default), in 9 full ones, one of 840k and the last of 160k.
 */
export const MAX_CHUNK_AGE_MS = 5_000;

/**
 * Entries of a rebuild's buffered views written by one transaction at most, when they are written after a
 * chunk. Live commits wait for one slice at most (module comment). A rebuild's swap at 300k users with
 * its views buffered (~1.8M entries), live commits every 10 ms meanwhile (a scratch driver, one run each):
 * in one transaction the swap took 4.3 s and the longest wait between live commits was 4.3 s; in slices of
 * 250k (a view rebuild's WRITE_SLICE) 5.0 s and 3.5 s; in slices of 50k 3.9 s and 0.65 s. Bigger
 * transactions cost more per entry (LMDB's dirty pages), so slices cost nothing here.
 */
export const VIEWS_WRITE_SLICE = 50_000;

/** After a failed write, the chunk is kept and its write tried again this much later. */
export const RETRY_WRITE_MS = 1_000;

interface Chunk {
  readonly buffer: BufferedGeneration;
  /** Its generation replays rows only (`viewsPending` as stored, nothing of its views buffered). */
  readonly rowsOnly: boolean;
  readonly deadLetters: OutboxEntry[];
  /** When its first batch was applied (ms since the epoch). */
  readonly since: number;
  /** Records of its batches (applied or skipped). */
  records: number;
}

export class ShadowChunks {
  private chunk: Chunk | undefined;
  /**
   * The views of the shadow being filled, buffered across its chunks: a chunk writes rows and positions,
   * these are written when full, before the swap and at close. When present with a chunk, of the same
   * generation.
   */
  private views: { readonly id: number; readonly buffer: BufferedViews } | undefined;
  private readonly viewBufferEntries: number;
  /**
   * Generations whose chunk was lost to a commit body that threw halfway (part of that commit may be in it):
   * their batches are refused from then on. The batches resolved into that chunk are not stored, and the feed,
   * which moved past them, would apply later records over the gap; the failure stops the rebuild's feed
   * (a store write error is not retried), and the next start resumes it from the stored positions.
   */
  private readonly lost = new Map<number, string>();

  /** The write of an idle chunk, when one is scheduled. */
  private idle: NodeJS.Timeout | undefined;
  /** Chunk operations run one at a time: a batch applies over what the previous chunk wrote. */
  private serial: Promise<unknown> = Promise.resolve();

  private readonly viewWriteSlice: number;

  /**
   * The chunk whose write is committing while the next one applies (`writeNow` with `overlapped`), until
   * the next write waits for it; its buffer is let go once it is written.
   */
  private inFlight: InFlightWrite | undefined;

  constructor(private readonly o: ShadowChunksOptions) {
    this.viewBufferEntries = o.viewBufferEntries ?? defaultViewRebuildBufferEntries();
    this.viewWriteSlice = o.viewWriteSlice ?? VIEWS_WRITE_SLICE;
  }

  private exclusive<T>(action: () => Promise<T>): Promise<T> {
    const run = this.serial.then(action, action);
    this.serial = run.catch(() => undefined);
    return run;
  }

  /**
   * Writes the chunk once no batch for its shadow came within `idleMs` (a later batch postpones it). A write
   * that fails keeps the chunk and is tried again (a full disk may have room later); a batch meanwhile is
   * applied to the same chunk, and the failure reaches the feed when a write on a batch's path fails.
   */
  scheduleIdleWrite(delayMs = this.o.idleMs ?? IDLE_WRITE_MS): void {
    clearTimeout(this.idle);
    if (this.chunk === undefined) return;
    this.idle = setTimeout(() => {
      this.idle = undefined;
      this.exclusive(() => this.writeNow(this.viewsFull())).catch((e: unknown) => {
        this.o.onWriteError?.(e);
        this.scheduleIdleWrite(RETRY_WRITE_MS);
      });
    }, delayMs);
  }

  /** Whether a commit for `target` goes through a chunk (a shadow's changelog records; not a replica's values). */
  buffers(input: StoreInput, target: 'active' | number): target is number {
    return target !== 'active' && this.o.maxRecords > 0 && !isReplicaInput(input);
  }

  /**
   * Applies one (group) commit of the shadow generation `into` to the chunk, writing the chunk when it is
   * full. Resolves with what the commit did; it is durable once the chunk is written.
   */
  apply(input: StoreInput, into: number, batches: number): Promise<CommitBody> {
    clearTimeout(this.idle);
    return this.exclusive(() => this.applyNow(input, into, batches));
  }

  private async applyNow(input: StoreInput, into: number, batches: number): Promise<CommitBody> {
    if (isReplicaInput(input)) throw new Error("a replica's view values do not go through a rebuild's chunk");
    const lost = this.lost.get(into);
    if (lost !== undefined)
      throw new StoreWriteError(
        `an earlier chunk of this rebuild was lost (${lost}); the rebuild resumes from its stored positions at the next start`,
      );
    const waiting = this.chunk?.buffer.id ?? this.views?.id;
    if (waiting !== undefined && waiting !== into) await this.writeNow(true);
    const { meta, handles, plan } = this.o;
    // Reads below see the last committed state (the swap, the rows a chunk wrote on this thread).
    this.o.env.resetReadTxn();
    const committed = BigInt(meta.get('sequence') ?? '0');
    const appliedAt = Date.now();
    // Swapped in since (a late rebuild commit: write.ts), or dropped.
    if (committedActiveGeneration(meta) === into) {
      this.discard();
      return lateRebuildCommit(meta, into, input, batches);
    }
    const info = readGenerationInfo(meta, into);
    if (info === undefined) {
      this.discard();
      throw new StoreWriteError(`the store has no generation ${into}`);
    }
    const generation = handles.get(into);
    const builds = JSON.stringify(generation.info.views);
    // Its views were rebuilt from its rows since (a rebuild that ended and resumed in this process:
    // LmdbStore.beginShadow): what is buffered belongs to the run that ended, whose feed stopped; the resumed
    // run reads again from the stored positions.
    if (this.views !== undefined && this.views.buffer.builds !== builds) this.discard();
    // Stored views behind the stored rows and none buffered: its views are built from its rows before the
    // swap (LmdbStore.buildShadowViews), so until then its commits store rows and positions only.
    const rowsOnly = info.viewsPending === true && this.views?.id !== into;
    if (this.chunk !== undefined && this.chunk.rowsOnly !== rowsOnly) await this.writeNow(false);
    if (!rowsOnly)
      this.views ??= {
        id: into,
        buffer: new BufferedViews(generation, viewsEmpty(generation, plan), builds),
      };
    // The chunk before, while its write commits, is what the store holds (LMDB shows it once committed).
    const stored = this.inFlight?.id === into ? overInFlight(generation, this.inFlight) : generation;
    // An input past a gap is refused before any of it is in a chunk (commitBatch would refuse it too, but a
    // throw from there leaves the chunk not knowing what it holds).
    checkContinuity(this.chunk?.buffer ?? stored, input.positions);
    const chunk = (this.chunk ??= {
      buffer: new BufferedGeneration(
        stored,
        into,
        generation.rows.fields,
        rowsOnly ? undefined : this.views?.buffer,
        // Rows a filter of the shadow's keys rules out are not looked up (row-key-filter.ts).
        this.o.knownRows.of(into, generation.rows),
      ),
      rowsOnly,
      deadLetters: [],
      since: appliedAt,
      records: 0,
    });
    const sequence = committed + 1n;
    let outcome: ReturnType<typeof commitBatch>;
    try {
      outcome = commitBatch(chunk.buffer, plan, input, sequence, appliedAt, rowsOnly);
    } catch (e) {
      // Part of this commit may be in the chunk: the chunk is lost.
      this.lose(into, e);
      throw e;
    }
    chunk.records += recordsOf(input);
    if (input.deadLetters !== undefined) chunk.deadLetters.push(...input.deadLetters);
    if (
      chunk.records >= this.o.maxRecords ||
      appliedAt - chunk.since >= (this.o.maxAgeMs ?? MAX_CHUNK_AGE_MS)
    ) {
      const withViews = this.viewsFull();
      // A chunk of rows and positions commits while the next batches apply over it.
      await this.writeNow(withViews, !withViews);
    }
    return {
      sequence: committed,
      appliedAt,
      generation: into,
      visible: false,
      events: new Map(),
      changed: outcome.events.get(USER_INFORMATION)?.size ?? 0,
      accepted: outcome.accepted,
      skipped: outcome.skipped,
      noops: outcome.noops,
      batches,
    };
  }

  /** Whether the views buffered across chunks are to be written with the next chunk. */
  private viewsFull(): boolean {
    return this.views !== undefined && this.views.buffer.entries >= this.viewBufferEntries;
  }

  /** The shadow whose chunk or views are waiting to be written, if any. */
  get pending(): number | undefined {
    return this.chunk?.buffer.id ?? this.views?.id;
  }

  /**
   * Writes the chunk and the views waiting, if any, in one transaction (nothing when their generation is
   * active or gone by now): before a swap compares the shadow's positions, and at close.
   */
  write(): Promise<void> {
    clearTimeout(this.idle);
    return this.exclusive(() => this.writeNow(true));
  }

  /**
   * Writes the chunk and views waiting, then runs `build` (a shadow's views built from its rows,
   * LmdbStore.buildShadowViews) before any later batch of a shadow applies: the build reads the rows it
   * replays in several transactions, which no batch of its shadow may change meanwhile.
   */
  buildViews<T>(build: () => Promise<T>): Promise<T> {
    clearTimeout(this.idle);
    return this.exclusive(async () => {
      await this.writeNow(true);
      return build();
    });
  }

  /**
   * Writes the chunk waiting (its rows, positions and dead letters) and, `withViews`, the views buffered
   * across chunks. The generation's `viewsPending` says whether views stay buffered behind the rows written.
   */
  private async writeNow(withViews: boolean, overlapped = false): Promise<void> {
    await this.inFlightWritten();
    const chunk = this.chunk;
    const views = this.views;
    const into = chunk?.buffer.id ?? views?.id;
    if (into === undefined || (chunk === undefined && !withViews)) return;
    this.chunk = undefined;
    if (withViews) this.views = undefined;
    const { meta, outboxes, env } = this.o;
    const isStale = () =>
      committedActiveGeneration(meta) === into || readGenerationInfo(meta, into) === undefined;
    // Views too many for one transaction are written after the chunk, in slices (`writeViews`).
    const slices = withViews && views !== undefined && views.buffer.entries > this.viewWriteSlice;
    let stale = false;
    let run!: () => void;
    const ran = new Promise<void>((resolve) => (run = resolve));
    const written = writeTransaction(env, 'rebuild chunk', () => {
      // The commit (LMDB's write and sync of the pages) follows on lmdb-js' own thread.
      queueMicrotask(run);
      if (isStale()) {
        stale = true;
        return;
      }
      // At least every sequence the chunk's values carry: each was the next one when it applied.
      const sequence = BigInt(meta.get('sequence') ?? '0') + 1n;
      chunk?.buffer.writeRowsTo();
      if (withViews && !slices) views?.buffer.writeTo();
      markViewsPending(
        meta,
        into,
        chunk?.rowsOnly === true ||
          (views !== undefined && views.buffer.entries > 0 && (!withViews || slices)),
      );
      if (chunk !== undefined && chunk.deadLetters.length > 0)
        writeOutbox(outboxes.deadLetters, sequence, chunk.deadLetters);
      meta.put('sequence', sequence.toString());
    });
    if (overlapped && chunk !== undefined && !withViews) {
      const settled = written.then(() => {
        if (stale) this.forgetViewsOf(into);
      });
      this.inFlight = inFlightWrite(into, chunk.buffer, settled, (e) => {
        // The batches applied over it are in the chunk after it: both go, and the shadow's later batches are
        // refused (`lose`); the next write, and the next batch, say so.
        this.lose(into, e);
        this.o.onWriteError?.(e);
      });
      // Until its transaction ran the writes on this thread: lmdb-js calls back between this thread's tasks,
      // and the next batches, applied in one run of promise continuations, would hold the callback (and so
      // the commit) back until the next chunk is full.
      await Promise.race([ran, this.inFlight.done]);
      return;
    }
    try {
      await written;
    } catch (e) {
      // Nothing of it was written, and it is whole (writing does not change it): kept, to be written later.
      this.chunk ??= chunk;
      this.views ??= views;
      throw e;
    }
    if (!stale && slices) stale = await this.writeViews(into, views.buffer, isStale);
    if (stale) this.forgetViewsOf(into);
  }

  /**
   * Drops the views buffered for generation `into`: it was found active (swapped in: the live feed applies
   * those records) or gone when its chunk was written, or it lost a chunk (`lose`).
   */
  private forgetViewsOf(into: number): void {
    if (this.views?.id === into) this.views = undefined;
  }

  /** Waits for the chunk write in flight, if any; rejects with its error when it failed (once). */
  private async inFlightWritten(): Promise<void> {
    const write = this.inFlight;
    if (write === undefined) return;
    await write.done;
    if (this.inFlight === write) this.inFlight = undefined;
    if (write.failure !== undefined) throw write.failure;
  }

  /**
   * Writes buffered views in transactions of `viewWriteSlice` entries (VIEWS_WRITE_SLICE): at a million
   * users they are millions of entries, ~27 s in one transaction, which the writer thread's live commits
   * would wait for. The generation stays `viewsPending` (set with the chunk) until the last slice,
   * so a crash between slices is one that left the views behind the rows (rebuilt from them at the next
   * start), and the swap refuses it meanwhile. A slice that fails keeps the views, whole: the next write
   * starts again from the first entry (`writes()` does not change the buffer; puts and removals of the same
   * entries store the same), and the buffer remembers removals from then on (`storedWritten`), since what
   * the slices wrote is stored. Whether the generation turned out active or gone.
   */
  private async writeViews(into: number, buffer: BufferedViews, isStale: () => boolean): Promise<boolean> {
    const steps = buffer.writes();
    let stale = false;
    try {
      for (let done = false; !done && !stale;) {
        done = await writeTransaction(this.o.env, 'rebuild views', () => {
          if (isStale()) {
            stale = true;
            return true;
          }
          const last = writeSlice(steps, this.viewWriteSlice);
          if (last) markViewsPending(this.o.meta, into, false);
          return last;
        });
      }
    } catch (e) {
      buffer.storedWritten();
      this.views ??= { id: into, buffer };
      throw e;
    }
    return stale;
  }

  private lose(into: number, error: unknown): void {
    if (this.chunk?.buffer.id === into) this.chunk = undefined;
    this.forgetViewsOf(into);
    this.lost.set(into, messageOf(error));
  }

  /**
   * Drops the chunk and the views waiting (a stop: the generation stays at its last written chunk, its views
   * rebuilt from its rows when it resumes).
   */
  discard(): void {
    clearTimeout(this.idle);
    this.chunk = undefined;
    this.views = undefined;
  }
}

/** A chunk's write that commits while the next chunk applies (ShadowChunks.writeNow `overlapped`). */
interface InFlightWrite {
  readonly id: number;
  /** The chunk, until its write settled: what the next chunk reads as stored meanwhile. */
  buffer: BufferedGeneration | undefined;
  /** Settles when the write did (never rejects: `failure` says). */
  readonly done: Promise<void>;
  failure?: unknown;
}

function inFlightWrite(
  id: number,
  buffer: BufferedGeneration,
  written: Promise<unknown>,
  onFailure: (error: unknown) => void,
): InFlightWrite {
  const write: InFlightWrite = {
    id,
    buffer,
    done: written.then(
      () => {
        write.buffer = undefined;
      },
      (e: unknown) => {
        write.buffer = undefined;
        write.failure = e;
        onFailure(e);
      },
    ),
  };
  return write;
}

/**
 * Generation `generation` as stored once `write` commits: reads see its chunk while it is in flight (LMDB shows
 * the state before it until then), and LMDB afterwards; writes go to LMDB (the next chunk writes after it).
 */
function overInFlight(generation: Generation, write: InFlightWrite): GenerationState {
  const reads = (): GenerationState => write.buffer ?? generation;
  const rows: RowStore = {
    row: (table, key) => reads().rows.row(table, key),
    keys: (table) => reads().rows.keys(table),
    put: (table, key, row, partition, offset, eventTime) =>
      generation.rows.put(table, key, row, partition, offset, eventTime),
    putStored: (table, key, bytes) => generation.rows.putStored(table, key, bytes),
    remove: (table, key) => generation.rows.remove(table, key),
  };
  return {
    rows,
    position: (topic, partition) => reads().position(topic, partition),
    setPosition: (topic, partition, next) => generation.setPosition(topic, partition, next),
    spaces: (view) => generation.spaces(view),
  };
}

/** Sets or clears generation `id`'s `viewsPending` (inside the caller's write transaction). */
function markViewsPending(meta: Database<string, string>, id: number, pending: boolean): void {
  const info = readGenerationInfo(meta, id);
  if (info === undefined || (info.viewsPending === true) === pending) return;
  meta.put(genKey(id), JSON.stringify(withViewsPending(info, pending)));
}

/** Whether every view space of `generation` is empty (a new shadow's): its buffer need not remember removals. */
function viewsEmpty(generation: Generation, plan: CommitPlan): boolean {
  for (const view of plan.registry.views)
    for (const space of Object.keys(view.spaces)) {
      if (entryCount(generation.db(view.name, space)) > 0) return false;
    }
  return true;
}

/**
 * One commit of a commit queue (the writer thread's, or the store's own with the writer thread off): a
 * shadow's changelog batches go through `chunks`, and once no further batch for that shadow is waiting
 * (`waitingFor`) the chunk's idle write is scheduled; everything else commits at once through `commit`.
 * The result says how long it took (`seconds`).
 */
export async function commitOrBuffer(
  chunks: ShadowChunks,
  input: StoreInput,
  target: 'active' | number,
  batches: number,
  waitingFor: (target: number) => number,
  commit: () => Promise<CommitBody>,
): Promise<WrittenCommit> {
  const started = performance.now();
  const timed = (body: CommitBody): WrittenCommit => ({
    ...body,
    seconds: (performance.now() - started) / 1000,
  });
  if (!chunks.buffers(input, target)) return timed(await commit());
  try {
    const result = await chunks.apply(input, target, batches);
    if (waitingFor(target) === 0) chunks.scheduleIdleWrite();
    return timed(result);
  } catch (e) {
    throw await batchError(e);
  }
}
