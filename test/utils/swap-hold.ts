/**
 * A rebuild's swap hook (StartOptions `beforeSwap`) that holds the next swap until the test releases it, so
 * that "during the rebuild, its shadow complete" is a state the test controls.
 */
export class SwapHold {
  private waiting: { reached: () => void; release: Promise<void> } | undefined;

  /** Holds the next swap: `reached` settles when it waits, `release()` lets it go on. */
  next(): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const atSwap = new Promise<void>((r) => (reached = r));
    this.waiting = { reached, release: new Promise<void>((r) => (release = r)) };
    return { reached: atSwap, release };
  }

  readonly beforeSwap = async (): Promise<void> => {
    const w = this.waiting;
    this.waiting = undefined;
    if (w === undefined) return;
    w.reached();
    await w.release;
  };
}
