/**
 * Lets a rebuild pause the live feed for the moment of a generation swap. While held, the live handler's
 * next batch waits before it reads any position; `hold()` resolves once the batch in flight (if any) has
 * committed. With the live positions frozen, the shadow (already at the head of the log) reaches the
 * current end offsets within a fetch or two, and the swap cannot make a user's view step back to an older
 * state. Holds are short (bounded by the rebuild's handoff timeout), far below consumer session timeouts.
 */
import type { FeedHandler } from '../feed/types.js';

export class HandoffGate {
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  private held: Promise<void> | undefined;

  /** Wraps the live handler so that it waits while the gate is held and is counted while it runs. */
  wrap(handler: FeedHandler): FeedHandler {
    return async (batch, decoded) => {
      while (this.held !== undefined) await this.held;
      this.inFlight++;
      try {
        await handler(batch, decoded);
      } finally {
        this.inFlight--;
        if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
      }
    };
  }

  /** True while held. */
  isHeld(): boolean {
    return this.held !== undefined;
  }

  /**
   * Stops new live batches and resolves, once none is in flight, with the function that lets them go.
   * Holding twice is a bug in the caller (one rebuild at a time).
   */
  async hold(): Promise<() => void> {
    if (this.held !== undefined) throw new Error('HandoffGate is already held');
    let release!: () => void;
    this.held = new Promise<void>((resolve) => {
      release = () => {
        this.held = undefined;
        resolve();
      };
    });
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    return release;
  }
}
