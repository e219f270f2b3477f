/**
 * Turns of the one event loop that also serves reads, taken by everything that decodes a lot at once: a
 * partition that is behind hands over its whole prefetch at once, and decoding it in one task (its Fetch
 * response, then its records) would make a read arriving meanwhile wait for all of it.
 */

/**
 * How long a handler decodes in one turn of the event loop, in ms. A partition that is behind hands over its
 * whole prefetch at once, and the handlers of all partitions run on the one event loop that also serves
 * reads: decoding without turns, a read arriving during a catch-up waits for every handler's batch (hundreds
 * of ms). Shorter slices serve reads sooner and decode less per second (each turn also polls I/O). A turn of
 * the loop also runs the Fetch responses that arrived (each decodes for a slice before its first turn) and
 * what the batches settled call, so a read waits for several slices: at 5 ms, `user(id)` p99 while the
 * catch-up bench caught up was 77-303 ms (median 110, 6 runs), at 2 ms (and a batch's merge and its metrics
 * no longer one long task each: partition-feed.ts `mergeBatches`, metrics.ts `observeAll`) 35-64 ms (median
 * 48, 9 runs), at the same catch-up rate (medians 87k and 91k records/s: the writer thread sets it).
 */
export const DECODE_SLICE_MS = 2;

/** Records decoded between two looks at the clock. */
export const DECODE_CHECK_EVERY = 64;

/** While both wait, live handlers get this many turns for each turn of a rebuild's handler. */
export const LIVE_TURNS_PER_REBUILD_TURN = 3;

/**
 * Turns of the event loop shared by every handler: `next()` resolves in a later turn, one waiter per turn, so
 * between two slices of decoding (whichever handler they belong to) the loop polls for I/O once. (Each
 * handler waiting on its own `setImmediate` would resume all together in one check phase, 16 slices back to
 * back.) An immediate queued while immediates run waits for the next turn (Node's event loop), which is what
 * spaces them. The live feed's slices go before a rebuild's, LIVE_TURNS_PER_REBUILD_TURN to one while both
 * wait: while a rebuild replays history, the batches that keep the served view fresh do not queue behind
 * it, and a live feed that stays busy does not stop the rebuild.
 */
export class LoopTurns {
  private readonly waiting: (() => void)[] = [];
  private readonly waitingRebuild: (() => void)[] = [];
  private scheduled = false;
  /** Live turns given in a row while a rebuild's handler waited. */
  private liveInARow = 0;

  /**
   * When the last waiter was resumed (ms, performance.now()). A handler that starts in a task of its own
   * finds it old and takes a turn after its first few records: conservative, never late.
   */
  private turnStart = performance.now();

  /** Whether the caller's slice (since the last waiter resumed) is used up. */
  private spent(): boolean {
    return performance.now() - this.turnStart >= DECODE_SLICE_MS;
  }

  /**
   * Whether a handler about to decode the record at `index` of its batch should wait for its next turn
   * (`next`): its slice is used up, looked at every DECODE_CHECK_EVERY records.
   */
  due(index: number): boolean {
    return index > 0 && index % DECODE_CHECK_EVERY === 0 && this.spent();
  }

  /** Resolves in a later turn; `rebuild`: the caller is a rebuild's handler (it waits for live ones). */
  next(rebuild = false): Promise<void> {
    return new Promise((resolve) => {
      (rebuild ? this.waitingRebuild : this.waiting).push(resolve);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.turnStart = performance.now();
      const rebuildsTurn =
        this.waitingRebuild.length > 0 &&
        (this.waiting.length === 0 || this.liveInARow >= LIVE_TURNS_PER_REBUILD_TURN);
      if (rebuildsTurn) this.liveInARow = 0;
      else if (this.waitingRebuild.length > 0) this.liveInARow++;
      (rebuildsTurn ? this.waitingRebuild : this.waiting).shift()?.();
      if (this.waiting.length + this.waitingRebuild.length > 0) this.schedule();
    });
  }
}

/**
 * One side's view of a {@link LoopTurns} (the live feed's or a rebuild's) for a decoder that times its own
 * slices: it decodes for `sliceMs` from its start or its last turn, then waits for `next()`. A Fetch response
 * is decoded as soon as it arrives, so unlike a handler it does not take a turn before its first slice: a
 * response that decodes within a slice (what a caught-up feed fetches) is decoded at once, as before.
 */
export interface DecodeTurns {
  readonly sliceMs: number;
  /** Resolves in a later turn of the event loop. */
  next(): Promise<void>;
}

/**
 * The turns the decoders of this process take (one event loop, one queue): the ingest handlers' record
 * decoding (src/pipeline) and the Kafka source's Fetch response decoding (kafkajs-internals.ts).
 */
export const decodeTurns = new LoopTurns();

/** The live feed's or a rebuild's turns of {@link decodeTurns}. */
export const turnsOf = (role: 'live' | 'rebuild'): DecodeTurns => ({
  sliceMs: DECODE_SLICE_MS,
  next: () => decodeTurns.next(role === 'rebuild'),
});
