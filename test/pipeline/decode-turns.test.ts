/**
 * Decoding shares the event loop with reads (src/feed/loop-turns.ts): a handler decodes in
 * slices, and the slices of all handlers take turns of the loop, one slice per turn. A ticker that counts
 * the loop's turns (a setImmediate that schedules itself) shows both: without turns, a batch decodes in one
 * task (the ticker stands still); with a turn each, waiters queued together (the handlers of several
 * partitions) resume in turns of their own instead of back to back, the live feed's before a rebuild's.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { toOutboxEntry } from '../../src/feed/dead-letter.js';
import type { FeedBatch } from '../../src/feed/types.js';
import { jsonDecoder } from '../../src/formats/json.js';
import type { FormatDecoder } from '../../src/formats/types.js';
import { silentLogger } from '../../src/ops/logger.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { DECODE_SLICE_MS, LIVE_TURNS_PER_REBUILD_TURN, LoopTurns } from '../../src/feed/loop-turns.js';
import { createIngestHandler } from '../../src/pipeline/ingest.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { tempDir } from '../utils/tmp.js';

/** Counts turns of the event loop until stopped. */
function ticker() {
  let turns = 0;
  let running = true;
  const tick = () => {
    if (!running) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  return {
    get turns() {
      return turns;
    },
    stop: () => (running = false),
  };
}

let stopTicker: (() => void) | undefined;
afterEach(() => stopTicker?.());

describe('decode turns', () => {
  it('should resume waiters queued together one per turn of the event loop', async () => {
    const turns = new LoopTurns();
    const t = ticker();
    stopTicker = t.stop;
    const resumedAt = await Promise.all([0, 1, 2, 3].map(() => turns.next().then(() => t.turns)));
    // Each in a turn of its own, in the order they asked.
    expect(new Set(resumedAt).size).toBe(4);
    expect([...resumedAt].sort((a, b) => a - b)).toEqual(resumedAt);
  });

  it("should give the live feed's slices LIVE_TURNS_PER_REBUILD_TURN turns for each of a rebuild's while both wait", async () => {
    const turns = new LoopTurns();
    const order: string[] = [];
    const waiters = [
      ...['R1', 'R2'].map((name) => turns.next(true).then(() => order.push(name))),
      ...['L1', 'L2', 'L3', 'L4', 'L5', 'L6', 'L7', 'L8'].map((name) =>
        turns.next().then(() => order.push(name)),
      ),
    ];
    await Promise.all(waiters);
    expect(LIVE_TURNS_PER_REBUILD_TURN).toBe(3);
    expect(order).toEqual(['L1', 'L2', 'L3', 'R1', 'L4', 'L5', 'L6', 'R2', 'L7', 'L8']);
  });

  it('should let the event loop turn while a handler decodes a large batch', async () => {
    const t = ticker();
    stopTicker = t.stop;
    // Every record takes at least 20 µs to decode: 2,000 records take 40 ms, several slices of DECODE_SLICE_MS
    // (checked every DECODE_CHECK_EVERY records, 1.3 ms here). The turns seen by the first and the last decode.
    const seen: number[] = [];
    const spinning = (inner: FormatDecoder): FormatDecoder => ({
      format: inner.format,
      decode: (record) => {
        seen.push(t.turns);
        const until = performance.now() + 0.02;
        while (performance.now() < until);
        return inner.decode(record);
      },
    });
    const store = openStore({ path: tempDir() });
    const handler = createIngestHandler({
      store,
      tables: new Map([['users', 'users']]),
      decoders: new Map([['users', spinning(jsonDecoder('users'))]]),
      metrics: createMetrics({ defaultMetrics: false }),
      logger: silentLogger,
      deadLetters: { outboxEntry: (entry) => toOutboxEntry(entry, '.dlq') },
    });
    const records = 2_000;
    const batch: FeedBatch = {
      topic: 'users',
      partition: 0,
      highWatermark: String(records),
      records: Array.from({ length: records }, (_, i) => ({
        topic: 'users',
        partition: 0,
        offset: String(i),
        timestamp: '1700000000000',
        key: Buffer.from(`u${i}`),
        value: Buffer.from(JSON.stringify({ userId: `u${i}`, username: `name${i}` })),
        headers: {},
      })),
    };
    await handler(batch);
    expect(seen).toHaveLength(records);
    // 40 ms of decoding in slices of at most ~6.3 ms: at least 6 turns; in one task, none.
    expect(seen[records - 1]! - seen[0]!).toBeGreaterThanOrEqual(
      Math.floor((records * 0.02) / (DECODE_SLICE_MS + 1.3)),
    );
    expect(store.getUser(`u${records - 1}`)?.username).toBe(`name${records - 1}`);
    await store.close();
  });
});
