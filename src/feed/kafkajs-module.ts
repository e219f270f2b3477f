/**
 * kafkajs, required when a module that uses it is initialized rather than imported: the bundle
 * (scripts/build.mjs) keeps kafkajs external, and an external package imported statically is loaded with the
 * bundle by every `matview` command (`matview help` took 0.28-0.29 s with it, 0.25 s without), while only the
 * modules of the commands that use the Kafka client, initialized when a command imports them
 * (src/cli/main.ts), need it. One object either way: kafkajs is CommonJS, and Node's cjs-module-lexer does
 * not see `CompressionCodecs` and the like as named exports (its index.js builds its exports with a spread).
 *
 * With one fix of kafkajs 2.2.4 (frozen upstream, pinned exactly in package.json), made here because every
 * connection of the process shares the class, kafkajs' public clients and src/feed/kafkajs-internals.ts alike:
 * a connection's request queue (`src/network/requestQueue/index.js`) checked its pending requests again 1 ms
 * after every check, whether any waited or not (kafkajs#1704: `throttledUntil` is -1 when nothing throttles,
 * so the delay it computes is minus the clock), from its first response until it closes. An idle `matview
 * serve` on the mock cluster ran ~5,300 of these timers a second on the event loop that answers reads (the
 * process's idle CPU, 4-7 % of a core, did not move measurably without them), and Node 24 prints a
 * `TimeoutNegativeWarning` for them into the logs (kafkajs#1751). Now the queue is checked only while a
 * request waits or a throttle is on: a request that cannot go out at once is queued by `push`, which
 * schedules its own check, and one that finishes goes on to check the queue, so nothing that waits is left
 * without a check.
 */
import { createRequire } from 'node:module';
import type * as Kafkajs from 'kafkajs';

export const kafkajs = createRequire(import.meta.url)('kafkajs') as typeof Kafkajs;

/** kafkajs' RequestQueue, the fields the fix reads. */
interface RequestQueue {
  throttledUntil: number;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  pending: unknown[];
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/** `src/network/requestQueue/index.js`: how long a queued request waits for a check while not throttled. */
const CHECK_PENDING_REQUESTS_INTERVAL = 10;

const queue = (
  createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as { prototype: RequestQueue }
).prototype;
/** kafkajs' method with the fix: nothing is scheduled when no request waits and no throttle is on. */
queue.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(this: RequestQueue): void {
  if (this.throttleCheckTimeoutId) return;
  let scheduleAt = this.throttledUntil - Date.now();
  if (this.pending.length > 0) scheduleAt = scheduleAt > 0 ? scheduleAt : CHECK_PENDING_REQUESTS_INTERVAL;
  else if (scheduleAt <= 0) return;
  this.throttleCheckTimeoutId = setTimeout(() => {
    this.throttleCheckTimeoutId = null;
    this.checkPendingRequests();
  }, scheduleAt);
};
