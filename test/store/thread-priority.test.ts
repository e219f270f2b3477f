/**
 * WRITER_THREAD_NICE (src/store/thread-priority.ts): the store's writer thread lowers its own CPU priority by
 * the increment asked, from the process's, and nothing else changes priority: the event loop's thread keeps
 * the process's. Read back from the kernel (`getpriority` on each thread id), on Linux, where a thread has a
 * nice value of its own.
 */
import { readdirSync } from 'node:fs';
import { getPriority } from 'node:os';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/lmdb-store.js';
import { MAX_NICE, priorityNotice, type ThreadPriority } from '../../src/store/thread-priority.js';
import { tempDir } from '../utils/tmp.js';

/** Nice value of every thread of this process, by thread id. */
const niceOfThreads = (): Map<number, number> =>
  new Map(readdirSync('/proc/self/task').map((tid) => [Number(tid), getPriority(Number(tid))] as const));

/** Opens a store with a writer thread lowered by `increment`, and returns what its worker reported. */
async function writerPriority(
  increment: number,
): Promise<{ priority: ThreadPriority; nice: Map<number, number> }> {
  let report!: (p: ThreadPriority) => void;
  const reported = new Promise<ThreadPriority>((resolve) => (report = resolve));
  const store = openStore({
    path: tempDir(),
    writerThread: true,
    writerThreadNice: increment,
    onWriterPriority: report,
  });
  try {
    const priority = await reported;
    return { priority, nice: niceOfThreads() };
  } finally {
    await store.close();
  }
}

describe.runIf(process.platform === 'linux')('the writer thread CPU priority (WRITER_THREAD_NICE)', () => {
  it('should lower the writer thread alone by the increment, from the process nice value', async () => {
    const base = getPriority(process.pid);
    const before = niceOfThreads();
    const { priority, nice } = await writerPriority(3);
    const expected = Math.min(MAX_NICE, base + 3);
    expect(priority).toEqual({ nice: expected, tid: expect.any(Number) as number });
    const tid = (priority as { tid: number }).tid;
    expect(before.has(tid)).toBe(false);
    expect(nice.get(tid)).toBe(expected);
    // Every other thread (the event loop's, libuv's and V8's) is where it was.
    for (const [other, value] of nice)
      if (other !== tid && before.has(other)) expect(value).toBe(before.get(other));
    expect(getPriority(process.pid)).toBe(base);
  });

  it('should stop at the lowest priority', async () => {
    const { priority, nice } = await writerPriority(MAX_NICE);
    expect(priority).toEqual({ nice: MAX_NICE, tid: expect.any(Number) as number });
    expect(nice.get((priority as { tid: number }).tid)).toBe(MAX_NICE);
  });

  it('should leave the writer thread at the process priority with an increment of 0', async () => {
    const base = getPriority(process.pid);
    const before = niceOfThreads();
    const { priority, nice } = await writerPriority(0);
    expect(priority).toEqual({ skipped: 'zero' });
    // The threads the store started (its writer among them) run at the process's priority.
    const started = [...nice].filter(([tid]) => !before.has(tid));
    expect(started.length).toBeGreaterThan(0);
    for (const [, value] of started) expect(value).toBe(base);
  });
});

describe('what start says about WRITER_THREAD_NICE', () => {
  it('should warn when the increment asked for is not applied, and say at debug level when it is', () => {
    expect(priorityNotice(0, true, { skipped: 'zero' })).toBeUndefined();
    expect(priorityNotice(0, false, undefined)).toBeUndefined();
    expect(priorityNotice(5, false, undefined)).toEqual({
      level: 'warn',
      message: expect.stringContaining('no effect with WRITER_THREAD=false') as string,
      fields: { increment: 5 },
    });
    expect(priorityNotice(5, true, { skipped: 'platform' })).toEqual({
      level: 'warn',
      message: expect.stringContaining(`not applied on ${process.platform}`) as string,
      fields: { increment: 5, platform: process.platform },
    });
    expect(priorityNotice(5, true, { failed: 'EACCES' })).toEqual({
      level: 'warn',
      message: expect.stringContaining("could not lower the writer thread's CPU priority") as string,
      fields: { err: 'EACCES', increment: 5 },
    });
    expect(priorityNotice(5, true, { nice: 5, tid: 42 })).toEqual({
      level: 'debug',
      message: "writer thread's CPU priority lowered",
      fields: { nice: 5, tid: 42 },
    });
  });
});
