/**
 * Group commit: feed batches that arrive while a commit is being written wait, and then go into ONE
 * transaction together (up to a record budget). When the instance is far behind, every partition has a
 * batch waiting, so commits grow to the budget and each user, row and page is written once per commit
 * instead of once per batch: that is the catch-up mode. When it is caught up, a batch finds nothing in
 * flight and commits alone at once, so freshness is what it was. No mode switch, no timer.
 *
 * Runs wherever the commit runs: on the writer thread (batch-writer.ts) or on the caller's thread.
 * Requests for different generations (the active one, a shadow being rebuilt) never share a commit, and
 * the active generation's and the shadows' queue apart (`CommitQueues`).
 * Each partition's batches arrive in offset order (the handlers hand them over in the order the source
 * handed them out: src/pipeline/batch-steps.ts, 4.), and concatenation keeps that order. A merged commit that
 * fails is retried batch by batch, so only the batch that fails alone is rejected (and redelivered by its
 * source); a batch that continues from a failed one is refused then (commit.ts `checkContinuity`). A stop
 * refuses what waits (`refuseWaiting`): it waits for the commit in progress (one per queue) only.
 */
import type { BatchInput } from '../materializer/change-batch.js';
import { recordsIn, type PackedCommitInput } from './packed-changes.js';

/**
 * Records merged into one commit at most, by default, when commits run on the writer thread
 * (MAX_RECORDS_PER_COMMIT). A commit writes every user and every page it touches once, so the bigger it is,
 * the fewer writes per record: replaying 1.2M records over 200k users into a fresh store, 16 batches of 10k
 * in flight as the feed has them (the `rebuild` bench's replay, scaled down), ran at 18.6k records/s with
 * 50k, 23.8k with 100k and 26.2k with 200k; the catch-up's 446k records over 22.3k users, committed in
 * process in commits of 55k, 110k and 223k, took 13.0, 9.0 and 6.2 µs per record. The commits of a catch-up
 * reach this bound when partitions prefetch enough (DEFAULT_PREFETCH_BYTES in src/feed/kafka-source.ts).
 * The bound is stopping: a stopping instance waits for the commit in progress (what is queued behind it is
 * refused and read again at the next start): a stop 3.5 s into that catch-up took 0.9-1.6 s. Reads do not
 * wait for it (the writer thread is not the event loop).
 */
export const DEFAULT_MAX_RECORDS_PER_COMMIT = 250_000;

/**
 * The default with the writer thread off (WRITER_THREAD=false): the commit then runs on the event loop, which
 * serves nothing while it does, so commits stay smaller.
 */
export const DEFAULT_MAX_RECORDS_PER_COMMIT_ON_EVENT_LOOP = 50_000;

/** MAX_RECORDS_PER_COMMIT's default: where the commits run decides it. */
export const defaultMaxRecordsPerCommit = (writerThread: boolean): number =>
  writerThread ? DEFAULT_MAX_RECORDS_PER_COMMIT : DEFAULT_MAX_RECORDS_PER_COMMIT_ON_EVENT_LOOP;

export interface CommitRequest<I extends BatchInput | PackedCommitInput = BatchInput> {
  readonly input: I;
  /** A generation id, or the one active when the transaction runs. */
  readonly target: 'active' | number;
  /** The caller's tag for the request (the writer thread's request id). */
  readonly id: number;
}

interface Waiting<R, I extends BatchInput | PackedCommitInput> {
  readonly request: CommitRequest<I>;
  readonly resolve: (result: R) => void;
  readonly reject: (error: unknown) => void;
}

export class CommitQueue<R, I extends BatchInput | PackedCommitInput = BatchInput> {
  private readonly waiting: Waiting<R, I>[] = [];
  private running = false;
  private readonly idleWaiters: (() => void)[] = [];
  /** Set once the queue refuses requests (a stop): the error each refused request gets. */
  private refusal: (() => Error) | undefined;

  /**
   * `write` runs one transaction for the merged input (and resolves with its result once durable); every
   * request merged into it (`ids`, in order) gets that result. `maxRecords` caps the records merged into
   * one commit (one request bigger than that still commits alone). `merge` puts several inputs together,
   * in order.
   */
  constructor(
    private readonly write: (input: I, target: 'active' | number, ids: number[]) => Promise<R>,
    private readonly maxRecords: number,
    private readonly merge: (inputs: readonly I[]) => I,
  ) {}

  submit(request: CommitRequest<I>): Promise<R> {
    if (this.refusal !== undefined) return Promise.reject(this.refusal());
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ request, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  /**
   * Stops taking commits (a stop): every request still waiting is rejected with `error()`, and so is every
   * later one. The commit in flight finishes. With commits of up to the budget, a stop would otherwise wait
   * for the commit in flight and then for the one merging everything queued behind it; what is refused is
   * read again at the next start, since the positions move with the data.
   */
  refuseWaiting(error: () => Error): void {
    this.refusal = error;
    for (const w of this.waiting.splice(0)) w.reject(error());
  }

  /** Resolves once no commit runs and none waits (at once when idle). */
  idle(): Promise<void> {
    if (!this.running && this.waiting.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Requests waiting for the commit in flight. */
  get backlog(): number {
    return this.waiting.length;
  }

  /** Requests waiting for `target`. */
  waitingFor(target: 'active' | number): number {
    let n = 0;
    for (const w of this.waiting) if (w.request.target === target) n++;
    return n;
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.waiting.length > 0) {
        const group = this.take();
        const target = group[0]!.request.target;
        try {
          const result = await this.write(
            group.length === 1 ? group[0]!.request.input : this.merge(group.map((w) => w.request.input)),
            target,
            group.map((w) => w.request.id),
          );
          for (const w of group) w.resolve(result);
        } catch (e) {
          if (group.length === 1) {
            group[0]!.reject(e);
            continue;
          }
          // One batch's failure must not fail the others merged with it (they would be retried together
          // again and again): each commits alone, and only what fails alone is rejected.
          for (const w of group) {
            try {
              w.resolve(await this.write(w.request.input, target, [w.request.id]));
            } catch (alone) {
              w.reject(alone);
            }
          }
        }
      }
    } finally {
      this.running = false;
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** The oldest request and every later one for the same target, within the record budget. */
  private take(): Waiting<R, I>[] {
    const first = this.waiting[0]!;
    const target = first.request.target;
    const group: Waiting<R, I>[] = [];
    let records = 0;
    for (let i = 0; i < this.waiting.length;) {
      const w = this.waiting[i]!;
      const n = recordsIn(w.request.input);
      if (w.request.target !== target) {
        i++;
        continue;
      }
      // Stop at the first that does not fit: later requests never overtake earlier ones of their target.
      if (group.length > 0 && records + n > this.maxRecords) break;
      group.push(w);
      records += n;
      this.waiting.splice(i, 1);
    }
    return group;
  }
}

/**
 * Two {@link CommitQueue}s with one interface: commits for the active generation (the live feed) and for a
 * numbered generation (a rebuild's shadow) queue apart. A shadow's commit can take long (its chunk is
 * written on its path, or it waits for a chunk or views write in progress: shadow-chunks.ts), and live
 * commits queued behind it used to wait for all of it. Apart, LMDB still serializes the two queues'
 * transactions, one at a time, so a live commit waits for one transaction at most. Nothing orders a live
 * commit against a shadow's: they write different generations, each partition's batches stay in order in
 * their own queue, and the swap resolves which generation is active inside its own transaction (write.ts).
 */
export class CommitQueues<R, I extends BatchInput | PackedCommitInput = BatchInput> {
  private readonly live: CommitQueue<R, I>;
  private readonly shadows: CommitQueue<R, I>;

  constructor(
    write: (input: I, target: 'active' | number, ids: number[]) => Promise<R>,
    maxRecords: number,
    merge: (inputs: readonly I[]) => I,
  ) {
    this.live = new CommitQueue(write, maxRecords, merge);
    this.shadows = new CommitQueue(write, maxRecords, merge);
  }

  private of(target: 'active' | number): CommitQueue<R, I> {
    return target === 'active' ? this.live : this.shadows;
  }

  submit(request: CommitRequest<I>): Promise<R> {
    return this.of(request.target).submit(request);
  }

  /** {@link CommitQueue.refuseWaiting} on both. */
  refuseWaiting(error: () => Error): void {
    this.live.refuseWaiting(error);
    this.shadows.refuseWaiting(error);
  }

  waitingFor(target: 'active' | number): number {
    return this.of(target).waitingFor(target);
  }

  /** Resolves once no live commit runs and none waits. */
  liveIdle(): Promise<void> {
    return this.live.idle();
  }
}
