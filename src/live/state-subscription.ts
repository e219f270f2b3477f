/**
 * A live subscription to a value computed from the store (a ranking, the totals): its first event is the
 * current value, then a new event whenever the value changed, as read at delivery. State-based: a reader
 * slower than the changes gets the latest value, never a queue, and an event goes out only when what the
 * reader asked for differs from what it got last (`fingerprint`), so a commit that leaves its value as it
 * was sends nothing.
 *
 * The hub wakes it when a commit changed any (view, key) it depends on; `read()` returns the value and the
 * keys it depends on now (a ranking's dependencies are its members, which change). Pure: no store, no
 * socket; the hub feeds it. Hand-written iterator for the same reason as UserSubscription's.
 */

/** A (view, key) a subscription depends on, as `view\u0000key`. */
export type Dependency = string;

export const dependency = (view: string, key: string): Dependency => `${view}\u0000${key}`;

export interface StateRead<T> {
  readonly value: T;
  /** What the value depends on now; a change of any of them wakes the subscription. */
  readonly dependencies: readonly Dependency[];
}

export interface StateHooks {
  /** Dependencies changed (after a read): re-index. */
  reindex(subscription: StateSubscription<unknown>, before: readonly Dependency[]): void;
  onClose(subscription: StateSubscription<unknown>): void;
  /** As in SubscriptionHooks: true to deliver now, false when the hub flushes later. */
  admit?(subscription: StateSubscription<unknown>): boolean;
  onConflated(): void;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

export class StateSubscription<T> implements AsyncIterableIterator<T> {
  dependencies: readonly Dependency[] = [];
  /** The fingerprint of the last value delivered (undefined before the first). */
  private sent: string | undefined;
  /** A commit woke it and the value has not been read since. */
  private dirty = true;
  /** The commit that woke it last: a commit changing several of its dependencies wakes it once. */
  private wokenBy = -1n;
  private readonly waiters: ((result: IteratorResult<T, undefined>) => void)[] = [];
  private closed = false;
  private deliveredCount = 0;

  constructor(
    private readonly read: () => StateRead<T>,
    private readonly fingerprint: (value: T) => string,
    private readonly hooks: StateHooks,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  get delivered(): number {
    return this.deliveredCount;
  }

  /**
   * Reads the dependencies and indexes them (at subscribe: see the hub's no-gap note). The first `next()`
   * reads again and delivers the value of that moment.
   */
  start(): void {
    this.refresh();
    this.dirty = true;
  }

  /** Commit `sequence` changed something it depends on (once per commit, however many). */
  wake(sequence: bigint): void {
    if (this.closed || sequence === this.wokenBy) return;
    this.wokenBy = sequence;
    if (this.dirty) this.hooks.onConflated();
    this.dirty = true;
    if (this.waiters.length === 0) return;
    if (this.hooks.admit === undefined || this.hooks.admit(this as StateSubscription<unknown>)) this.flush();
  }

  next(): Promise<IteratorResult<T, undefined>> {
    if (this.closed) return Promise.resolve(DONE);
    if (this.waiters.length === 0) {
      const value = this.take();
      if (value !== undefined) return Promise.resolve({ value: value.value, done: false });
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Hands the current value to a waiting read, if it differs from the last one sent. */
  flush(): void {
    while (this.waiters.length > 0) {
      const value = this.take();
      if (value === undefined) return;
      this.waiters.shift()!({ value: value.value, done: false });
    }
  }

  return(): Promise<IteratorReturnResult<undefined>> {
    this.close();
    return Promise.resolve(DONE);
  }

  throw(): Promise<IteratorReturnResult<undefined>> {
    this.close();
    return Promise.resolve(DONE);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const resolve of this.waiters.splice(0)) resolve(DONE);
    this.hooks.onClose(this as StateSubscription<unknown>);
  }

  /** The value to deliver now, or undefined when nothing changed since the last one. */
  private take(): { value: T } | undefined {
    if (!this.dirty) return undefined;
    const value = this.refresh();
    const print = this.fingerprint(value);
    if (print === this.sent) return undefined;
    this.sent = print;
    this.deliveredCount++;
    return { value };
  }

  private refresh(): T {
    const now = this.read();
    this.dirty = false;
    const before = this.dependencies;
    if (before.length !== now.dependencies.length || before.some((d, i) => d !== now.dependencies[i])) {
      this.dependencies = now.dependencies;
      this.hooks.reindex(this as StateSubscription<unknown>, before);
    }
    return now.value;
  }
}
