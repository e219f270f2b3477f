/**
 * The bufferedAmount gate alone: it stops pulling while the connection is over its threshold, resumes on
 * `drain`, and a `return()` during a wait ends it at once. Driven by a real Node stream whose writes
 * complete only when the test says so, so nothing depends on timing.
 */
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { gateAsyncIterator, socketFlowControl, type FlowControl } from '../../api/ws/backpressure.js';

/** A duplex whose writes stay buffered until `flush()`: a socket whose peer stopped reading. */
function stalledSocket(highWaterMark: number) {
  const pending: (() => void)[] = [];
  const raw = new Duplex({
    writableHighWaterMark: highWaterMark,
    read() {},
    write(_chunk, _encoding, callback) {
      pending.push(() => callback());
    },
  });
  // ws's `bufferedAmount` is the raw socket's writable length (plus the sender's queue, empty here).
  const ws = {
    get bufferedAmount() {
      return raw.writableLength;
    },
  };
  const flush = () => {
    while (pending.length > 0) pending.shift()!();
  };
  return { raw, ws, flush };
}

/** An endless source that counts pulls and returns. */
function source() {
  const calls = { next: 0, return: 0 };
  const iterator: AsyncIterator<number> = {
    next: async () => ({ value: ++calls.next, done: false }),
    return: async () => {
      calls.return++;
      return { value: undefined, done: true };
    },
  };
  return { iterator, calls };
}

/** Whether a promise is still pending after everything already queued has run. */
async function isPending(p: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  return (await Promise.race([p, new Promise((r) => setImmediate(() => r(marker)))])) === marker;
}

describe('socketFlowControl', () => {
  it('should ask to wait only while the buffer is over the threshold and a drain is due, and wake on drain', async () => {
    const { raw, ws, flush } = stalledSocket(64);
    const flow = socketFlowControl(ws, raw, 100);
    expect(flow.mustWait()).toBe(false);
    raw.write(Buffer.alloc(80)); // over the high-water mark (drain due) but under the threshold
    expect([raw.writableNeedDrain, flow.mustWait()]).toEqual([true, false]);
    raw.write(Buffer.alloc(80));
    expect(flow.mustWait()).toBe(true);
    const writable = flow.whenWritable(new AbortController().signal);
    expect(await isPending(writable)).toBe(true);
    flush();
    await writable;
    expect(flow.mustWait()).toBe(false);
  });

  it('should never wait for a drain that cannot come (threshold below the high-water mark), and wake on close or abort', async () => {
    const { raw, ws } = stalledSocket(1024);
    const flow = socketFlowControl(ws, raw, 10);
    raw.write(Buffer.alloc(100)); // over the threshold, under the high-water mark: no drain will be emitted
    expect([raw.writableNeedDrain, flow.mustWait()]).toEqual([false, false]);
    raw.write(Buffer.alloc(1000));
    expect(flow.mustWait()).toBe(true);
    const stop = new AbortController();
    const aborted = flow.whenWritable(stop.signal);
    stop.abort();
    await aborted;
    const closed = flow.whenWritable(new AbortController().signal);
    raw.destroy();
    await closed;
    expect(flow.mustWait()).toBe(false); // destroyed: nothing to wait for, the close path cleans up
  });
});

describe('gateAsyncIterator', () => {
  it('should not pull while the connection must wait, and pull again once it is writable', async () => {
    let full = true;
    let release: () => void = () => {};
    const flow: FlowControl = {
      mustWait: () => full,
      whenWritable: () => new Promise<void>((r) => (release = r)),
    };
    const { iterator, calls } = source();
    let waits = 0;
    const gated = gateAsyncIterator(iterator, flow, () => waits++);
    const next = gated.next();
    expect(await isPending(next)).toBe(true);
    expect(calls.next).toBe(0);
    release(); // woken but still full: waits again
    expect(await isPending(next)).toBe(true);
    full = false;
    release();
    expect(await next).toEqual({ value: 1, done: false });
    expect({ waits, pulls: calls.next }).toEqual({ waits: 2, pulls: 1 });
    expect(await gated.next()).toEqual({ value: 2, done: false });
  });

  it('should end a waiting pull at once on return(), close the source and stop listening', async () => {
    let signal: AbortSignal | undefined;
    const flow: FlowControl = {
      mustWait: () => true,
      whenWritable: (s) => {
        signal = s;
        return new Promise<void>((r) => s.addEventListener('abort', () => r()));
      },
    };
    const { iterator, calls } = source();
    const gated = gateAsyncIterator(iterator, flow);
    const next = gated.next();
    expect(await isPending(next)).toBe(true);
    expect(await gated.return!()).toEqual({ value: undefined, done: true });
    expect(await next).toEqual({ value: undefined, done: true });
    expect({ aborted: signal?.aborted, pulls: calls.next, returns: calls.return }).toEqual({
      aborted: true,
      pulls: 0,
      returns: 1,
    });
    expect(await gated.next()).toEqual({ value: undefined, done: true });
  });
});
