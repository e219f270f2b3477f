/**
 * Backpressure for subscription streams: stop pulling events while the connection's outgoing buffer is
 * above a threshold, and resume when the transport drains. Pulling is what makes the hub hand over an
 * event; while nobody pulls, the hub conflates (src/live/subscription.ts), so a slow client costs at most
 * "threshold bytes + one pending state per watched user", whatever the rate of change.
 *
 * graphql-ws already awaits each `send` callback before pulling the next event of the same operation, and
 * Node flushes queued chunks in one `writev` whose callbacks fire together, so a stalled client usually
 * holds at most one unsent message per operation and the hub conflates the rest. That bound still scales
 * with operations × message size (up to WS_MAX_SUBSCRIPTIONS × large users); this gate is the explicit
 * per-connection ceiling on top, independent of how the protocol library schedules its sends.
 */
import type { Duplex } from 'node:stream';

/** What the gate asks of a connection. */
export interface FlowControl {
  /** True while the connection has too much unsent data to take another event. */
  mustWait(): boolean;
  /** Resolves when the connection may have room again (drained or closed), or when `signal` aborts. */
  whenWritable(signal: AbortSignal): Promise<void>;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * Flow control of a WebSocket: `bufferedAmount` (the `ws` getter: bytes queued in user space) against
 * `threshold`, woken by the raw socket's `drain`. Node emits `drain` only after a write returned false, so
 * waiting is attempted only while `writableNeedDrain` is set: the effective threshold is at least the
 * socket's writable high-water mark (16 KiB by default), and the gate can never wait for a `drain` that
 * will not come.
 */
export function socketFlowControl(
  socket: { readonly bufferedAmount: number },
  raw: Duplex,
  threshold: number,
): FlowControl {
  return {
    mustWait: () => socket.bufferedAmount > threshold && raw.writableNeedDrain && !raw.destroyed,
    whenWritable: (signal) =>
      new Promise<void>((resolve) => {
        const done = (): void => {
          raw.off('drain', done);
          raw.off('close', done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        if (signal.aborted || raw.destroyed) return resolve();
        raw.on('drain', done);
        raw.on('close', done);
        signal.addEventListener('abort', done);
      }),
  };
}

/**
 * Wraps an event stream so that each `next()` first waits until `flow` has room. `return()` ends a wait
 * at once and closes the inner stream (a hand-written iterator for the reason given in subscription.ts:
 * graphql-ws #653). `onWait` is told each time a pull had to wait, for metrics and tests.
 */
export function gateAsyncIterator<T>(
  inner: AsyncIterator<T>,
  flow: FlowControl,
  onWait?: () => void,
): AsyncIterableIterator<T> {
  // Created on the first wait only: most subscriptions never wait, and an AbortController is not small.
  let stop: AbortController | undefined;
  let stopped = false;
  const finish = async (): Promise<IteratorReturnResult<undefined>> => {
    stopped = true;
    stop?.abort();
    await inner.return?.();
    return DONE;
  };
  const waitThenNext = async (): Promise<IteratorResult<T>> => {
    while (!stopped && flow.mustWait()) {
      onWait?.();
      await flow.whenWritable((stop ??= new AbortController()).signal);
    }
    if (stopped) return DONE;
    return inner.next();
  };
  return {
    // Not an async function: with room to write (nearly always) the inner promise is handed through as is,
    // saving a promise and a microtask per event, which adds up over a fan-out to thousands of watchers.
    next(): Promise<IteratorResult<T>> {
      if (stopped) return Promise.resolve(DONE);
      return flow.mustWait() ? waitThenNext() : inner.next();
    },
    return: finish,
    throw: finish,
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
