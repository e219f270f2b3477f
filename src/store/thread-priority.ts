/**
 * The writer thread's CPU priority (WRITER_THREAD_NICE). The writer thread commits as fast as batches come,
 * and while an instance catches up it is busy all the time; the event loop answers reads, decodes records
 * and feeds subscriptions in short tasks. When the box has fewer cores than busy threads (2 cores: the
 * writer, the event loop, V8's collector helpers, a broker or a sidecar), the kernel shares each core
 * between them in slices of a few milliseconds, and a read waits for the slices the writer holds. Lowering
 * the writer's priority (a higher nice value, for that thread only) lets the event loop go first whenever
 * both want a core. The writer still gets every cycle nobody else wants, but when the cores are short it is
 * the one that waits, and it sets a catch-up's pace: on the catch-up bench (2 cores shared with the mock
 * broker and the bench's client), 10 steps lowered `user(id)` p99 while catching up from 48 to 37 ms (medians
 * of 9 runs each) and the catch-up from 91k to 75k records/s. Hence off by default (0).
 *
 * Linux only: there a thread is a task with its own nice value (`setpriority` on its thread id), read from
 * `/proc/thread-self`. Elsewhere a nice value is the whole process's: nothing is changed.
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** What lowering the writer thread's priority did (reported by the writer thread to the store's owner). */
export type ThreadPriority =
  /** Set: the thread's nice value now (the process's plus the increment, at most 19). */
  | { readonly nice: number; readonly tid: number }
  /** Not on this platform, or nothing asked (an increment of 0). */
  | { readonly skipped: 'platform' | 'zero' }
  | { readonly failed: string };

/** The highest nice value (the lowest priority) Linux has. */
export const MAX_NICE = 19;

/** The calling thread's kernel id (Linux: `/proc/thread-self` links to `<pid>/task/<tid>`), if it has one. */
function currentThreadId(): number | undefined {
  if (process.platform !== 'linux') return undefined;
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  return Number.isSafeInteger(tid) && tid > 0 ? tid : undefined;
}

/**
 * Lowers the calling thread's CPU priority by `increment` nice steps from the process's (its main thread's)
 * nice value, at most to {@link MAX_NICE}. Never throws: what happened is the result.
 */
export function lowerThreadPriority(increment: number): ThreadPriority {
  if (increment === 0) return { skipped: 'zero' };
  try {
    const tid = currentThreadId();
    if (tid === undefined) return { skipped: 'platform' };
    // The process's own nice value is its main thread's (pid = the main thread's tid).
    const nice = Math.min(MAX_NICE, getPriority(process.pid) + increment);
    setPriority(tid, nice);
    return { nice, tid };
  } catch (e) {
    return { failed: e instanceof Error ? e.message : String(e) };
  }
}

/** What to tell the operator about WRITER_THREAD_NICE, at start: a level and a message, or nothing. */
export interface PriorityNotice {
  readonly level: 'warn' | 'debug';
  readonly message: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

/**
 * The notice for `increment` (WRITER_THREAD_NICE): a warning when it asks for something that does not happen
 * (no writer thread to lower, a platform where a nice value is the whole process's, a failure), a debug line
 * when it was applied. `priority`: what the writer thread reported (undefined without a writer thread).
 */
export function priorityNotice(
  increment: number,
  writerThread: boolean,
  priority: ThreadPriority | undefined,
): PriorityNotice | undefined {
  if (increment === 0) return undefined;
  if (!writerThread)
    return {
      level: 'warn',
      message:
        'WRITER_THREAD_NICE has no effect with WRITER_THREAD=false: commits run on the event loop, which keeps the process priority',
      fields: { increment },
    };
  if (priority === undefined || ('skipped' in priority && priority.skipped !== 'platform')) return undefined;
  if ('skipped' in priority)
    return {
      level: 'warn',
      message: `WRITER_THREAD_NICE is not applied on ${process.platform}: a nice value there is the whole process's, so the writer thread runs at the event loop's priority`,
      fields: { increment, platform: process.platform },
    };
  if ('failed' in priority)
    return {
      level: 'warn',
      message:
        "could not lower the writer thread's CPU priority (WRITER_THREAD_NICE): it runs at the event loop's",
      fields: { err: priority.failed, increment },
    };
  return { level: 'debug', message: "writer thread's CPU priority lowered", fields: { ...priority } };
}
