/**
 * kafkajs' request queue as src/feed/kafkajs-module.ts fixes it: a check of the pending requests is scheduled
 * only while one waits (for the in-flight limit or a broker's throttle), never again and again for an empty
 * queue (kafkajs#1704, 1 ms timers forever; a TimeoutNegativeWarning each on Node 24), and every request that
 * waits still goes out.
 */
import { createRequire } from 'node:module';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import '../../src/feed/kafkajs-module.js';

interface Queue {
  push(request: object): void;
  fulfillRequest(response: { correlationId: number; payload: Buffer; size: number }): void;
  maybeThrottle(ms: number): void;
  destroy(): void;
  pending: unknown[];
  throttleCheckTimeoutId: unknown;
}
const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as new (
  options: object,
) => Queue;

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

describe("kafkajs' request queue (fixed)", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const queueOf = (maxInFlightRequests: number) =>
    new RequestQueue({
      maxInFlightRequests,
      requestTimeout: 30_000,
      enforceRequestTimeout: false,
      clientId: 'test',
      broker: 'broker:9092',
      logger: quiet,
    });

  /** Pushes request `id`, noting when it is sent and when it is answered. */
  const push = (queue: Queue, id: number, sent: number[], answered: number[]) =>
    queue.push({
      entry: {
        correlationId: id,
        apiName: 'Fetch',
        apiKey: 1,
        apiVersion: 11,
        resolve: () => answered.push(id),
        reject: (error: Error) => {
          throw error;
        },
      },
      expectResponse: true,
      sendRequest: () => sent.push(id),
    });
  const answer = (queue: Queue, id: number) =>
    queue.fulfillRequest({ correlationId: id, payload: Buffer.alloc(0), size: 0 });

  it('should send a request that waited for the in-flight limit when the one ahead is answered, and then schedule nothing', () => {
    const queue = queueOf(1);
    const sent: number[] = [];
    const answered: number[] = [];
    push(queue, 1, sent, answered);
    push(queue, 2, sent, answered);
    expect(sent).toEqual([1]);
    expect(queue.pending).toHaveLength(1);
    answer(queue, 1);
    expect(sent).toEqual([1, 2]);
    answer(queue, 2);
    expect(answered).toEqual([1, 2]);
    // The check request 2 scheduled when it was queued runs once; nothing waits, so it schedules no other
    // (kafkajs 2.2.4 scheduled one 1 ms ahead after every check).
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(10);
    expect(queue.throttleCheckTimeoutId).toBeNull();
    expect(vi.getTimerCount()).toBe(0);
    queue.destroy();
  });

  it("should hold a request while the broker's throttle lasts, send it when the throttle ends, then schedule nothing", () => {
    const queue = queueOf(10);
    const sent: number[] = [];
    const answered: number[] = [];
    push(queue, 1, sent, answered);
    answer(queue, 1);
    queue.maybeThrottle(50);
    push(queue, 2, sent, answered);
    expect(sent).toEqual([1]);
    vi.advanceTimersByTime(49);
    expect(sent).toEqual([1]);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([1, 2]);
    answer(queue, 2);
    expect(answered).toEqual([1, 2]);
    expect(vi.getTimerCount()).toBe(0);
    queue.destroy();
  });
});
