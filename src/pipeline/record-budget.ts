/**
 * A budget of records shared by the batches being applied at once (one per partition): a batch takes
 * its chunk's records before handing them to the store and gives them back once they are committed.
 * Everything in one LMDB write transaction was handed over while uncommitted, so no transaction holds
 * more than `limit` records, and materializing them (synchronous: on the store's writer thread, or on the
 * event loop readers and subscribers share when WRITER_THREAD is off) is bounded in time. Waiters are served in order; a chunk of at most `limit` records
 * always fits once the others have committed.
 */
export class RecordBudget {
  private inUse = 0;
  private readonly waiting: { n: number; grant: () => void }[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('a record budget needs a limit >= 1');
  }

  /** Largest chunk a batch should take at once: half the budget, so one chunk commits while another waits. */
  get chunk(): number {
    return Math.max(1, Math.floor(this.limit / 2));
  }

  async take(n: number): Promise<void> {
    if (n > this.limit) throw new RangeError(`cannot take ${n} records of a budget of ${this.limit}`);
    if (this.waiting.length === 0 && this.inUse + n <= this.limit) {
      this.inUse += n;
      return;
    }
    await new Promise<void>((grant) => this.waiting.push({ n, grant }));
  }

  give(n: number): void {
    this.inUse -= n;
    while (this.waiting.length > 0 && this.inUse + this.waiting[0]!.n <= this.limit) {
      const next = this.waiting.shift()!;
      this.inUse += next.n;
      next.grant();
    }
  }
}
