/**
 * Rebuild as a bulk load: commits into a shadow generation (a rebuild from the feed) are applied in memory
 * (buffered-generation.ts) and written a chunk at a time, each chunk by one write transaction in key order,
 * instead of one transaction per group commit. Measured replaying 2M records over 1M users into a fresh
 * store: ~25k records/s in chunks of 1M records and ~23k in chunks of 250k, against ~12k committing every
 * 100k records, because a transaction copies every page it touches and a large store's commits touch
 * different pages with every record (see docs/scaling.md).
 *
 * When a chunk is written:
 * - when it holds `maxRecords` records (REBUILD_CHUNK_RECORDS);
 * - when no further batch for the shadow is waiting (`idle`): a rebuild that is not far behind, which is
 *   where it ends, writes batch by batch as before, so its stored positions reach the live end and the swap
 *   (which compares them) can happen;
 * - before a batch for another shadow (a new rebuild replaced the old one).
 *
 * What holds:
 * - Exactness: a batch applies to the stored generation with the chunk's earlier batches on top, which is
 *   what committing them one by one would have stored (the reference-model test checks it).
 * - Crashes: a chunk not yet written is lost with the process, and so are its positions: the generation
 *   stays at its last written chunk, a prefix of the feed, and the rebuild resumes from the positions stored
 *   with it. Stopping does the same on purpose (`discard`): writing up to `maxRecords` records would hold
 *   up the stop by seconds, and nothing is lost by it.
 * - Swaps: the shadow's positions are stored only with a chunk, so a swap, which needs them at the live end,
 *   comes after the chunk that got there. A chunk to be written into a generation that is active by now (the
 *   swap came first) or gone (the rebuild was abandoned) writes nothing, like a late rebuild commit
 *   (write.ts): the live feed applies those records.
 * - Sequences: a buffered commit's values carry the store's next sequence at the time it applied (it is not
 *   taken: nobody sees a shadow's values before the swap, which gives every value it did not change the old
 *   version and the others the swap's own, higher, sequence: versions.ts). The chunk's write takes the
 *   next sequence, or the one its values carry if no commit came in between, so the swap's is higher.
 * - Dead letters of the chunk's batches go into the outbox with the chunk's write, with the positions past
 *   them (outbox.ts).
 */
import type { Database, RootDatabase } from 'lmdb';
import { isReplicaInput, recordsOf } from '../materializer/change-batch.js';
import { USER_INFORMATION } from '../views/user-information.js';
import { commitBatch, type CommitPlan } from '../materializer/commit.js';
import { StoreWriteError, isMatviewError } from '../errors.js';
import { batchFailure } from './environment.js';
import { BufferedGeneration } from './buffered-generation.js';
import { writeOutbox, type OutboxEntry } from './outbox.js';
import {
  committedActiveGeneration,
  readGenerationInfo,
  type GenerationHandles,
  type Outboxes,
  type StoreInput,
  type WrittenCommit,
} from './write.js';

/**
 * Records per chunk of a rebuild by default (REBUILD_CHUNK_RECORDS). 2M records over 1M users: ~23k
 * records/s at 250k, ~25k at 1M; a chunk in memory is about 1 KB per record there, and writing one of 250k
 * took 8-15 s.
 */
export const DEFAULT_REBUILD_CHUNK_RECORDS = 250_000;

export interface ShadowChunksOptions {
  readonly env: RootDatabase;
  readonly meta: Database<string, string>;
  readonly outboxes: Outboxes;
  readonly handles: GenerationHandles;
  readonly plan: CommitPlan;
  /** Records per chunk at most (a batch bigger than that is a chunk alone). */
  readonly maxRecords: number;
}

interface Chunk {
  readonly buffer: BufferedGeneration;
  readonly deadLetters: OutboxEntry[];
}

export class ShadowChunks {
  private chunk: Chunk | undefined;
  /**
   * Generations whose chunk was lost to a failure (a write that failed, a commit body that threw): their
   * batches are refused from then on. The batches resolved into that chunk are not stored, and the feed,
   * which moved past them, would apply later records over the gap; the failure stops the rebuild's feed
   * (a store write error is not retried), and the next start resumes it from the stored positions.
   */
  private readonly lost = new Map<number, string>();

  constructor(private readonly o: ShadowChunksOptions) {}

  /** Whether a commit for `target` goes through a chunk (a shadow's changelog records; not a replica's values). */
  handles(input: StoreInput, target: 'active' | number): target is number {
    return target !== 'active' && this.o.maxRecords > 0 && !isReplicaInput(input);
  }

  /**
   * Applies one (group) commit of the shadow generation `into` to the chunk, writing the chunk when it is
   * full. Resolves with what the commit did; it is durable once the chunk is written.
   */
  async apply(input: StoreInput, into: number, batches: number): Promise<WrittenCommit> {
    if (isReplicaInput(input)) throw new Error("a replica's view values do not go through a rebuild's chunk");
    const lost = this.lost.get(into);
    if (lost !== undefined)
      throw new StoreWriteError(
        `an earlier chunk of this rebuild was lost (${lost}); the rebuild resumes from its stored positions at the next start`,
      );
    if (this.chunk !== undefined && this.chunk.buffer.id !== into) await this.write();
    const { meta, handles, plan } = this.o;
    // Reads below see the last committed state (the swap, the rows a chunk wrote on this thread).
    this.o.env.resetReadTxn();
    const committed = BigInt(meta.get('sequence') ?? '0');
    const appliedAt = Date.now();
    const skippedAll = (): WrittenCommit => ({
      sequence: committed,
      appliedAt,
      generation: into,
      visible: false,
      events: new Map(),
      changed: 0,
      accepted: 0,
      skipped: recordsOf(input),
      noops: 0,
      batches,
    });
    // Swapped in since (a late rebuild commit: write.ts), or dropped.
    if (committedActiveGeneration(meta) === into) {
      this.discard();
      return skippedAll();
    }
    if (readGenerationInfo(meta, into) === undefined) {
      this.discard();
      throw new StoreWriteError(`the store has no generation ${into}`);
    }
    const chunk = (this.chunk ??= {
      buffer: new BufferedGeneration(handles.get(into), into),
      deadLetters: [],
    });
    const sequence = committed + 1n;
    let outcome: ReturnType<typeof commitBatch>;
    try {
      outcome = commitBatch(chunk.buffer, plan, input, sequence, appliedAt);
    } catch (e) {
      // Part of this commit may be in the chunk: the chunk is lost.
      this.lose(into, e);
      throw e;
    }
    chunk.buffer.buffered(recordsOf(input), sequence, appliedAt);
    if (input.deadLetters !== undefined) chunk.deadLetters.push(...input.deadLetters);
    if (chunk.buffer.records >= this.o.maxRecords) await this.write();
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

  /** The shadow whose chunk is waiting to be written, if any. */
  get pending(): number | undefined {
    return this.chunk?.buffer.id;
  }

  /** Writes the chunk waiting, if any, in one transaction (nothing when its generation is active or gone by now). */
  async write(): Promise<void> {
    const chunk = this.chunk;
    if (chunk === undefined) return;
    this.chunk = undefined;
    const { meta, outboxes, env } = this.o;
    const into = chunk.buffer.id;
    try {
      await env.transaction(() => {
        if (committedActiveGeneration(meta) === into || readGenerationInfo(meta, into) === undefined) return;
        // The next sequence, or the one the chunk's values carry if higher (no commit came between).
        const next = BigInt(meta.get('sequence') ?? '0') + 1n;
        const sequence = next > chunk.buffer.sequence ? next : chunk.buffer.sequence;
        chunk.buffer.writeTo();
        if (chunk.deadLetters.length > 0) writeOutbox(outboxes.deadLetters, sequence, chunk.deadLetters);
        meta.put('sequence', sequence.toString());
      });
    } catch (e) {
      this.lose(into, e);
      throw e;
    }
  }

  private lose(into: number, error: unknown): void {
    if (this.chunk?.buffer.id === into) this.chunk = undefined;
    this.lost.set(into, error instanceof Error ? error.message : String(error));
  }

  /** Drops the chunk waiting (a stop: the generation stays at its last written chunk). */
  discard(): void {
    this.chunk = undefined;
  }
}

/**
 * One commit of a commit queue (the writer thread's, or the store's own with the writer thread off): a
 * shadow's changelog batches go through `chunks`, and the chunk is written once no further batch for that
 * shadow is waiting (`waitingFor`); everything else commits at once through `commit`.
 */
export async function commitOrBuffer(
  chunks: ShadowChunks,
  input: StoreInput,
  target: 'active' | number,
  batches: number,
  waitingFor: (target: number) => number,
  commit: () => Promise<WrittenCommit>,
): Promise<WrittenCommit> {
  if (!chunks.handles(input, target)) return commit();
  try {
    const result = await chunks.apply(input, target, batches);
    if (waitingFor(target) === 0) await chunks.write();
    return result;
  } catch (e) {
    if (isMatviewError(e)) throw e;
    throw new StoreWriteError(await batchFailure(e), { cause: e });
  }
}
