/**
 * Readiness and liveness rules of the FeedTracker, driven by a fake clock and a fake source over a real
 * store: catch-up to the start targets, the READY_MAX_LAG bound with its grace period, recovery blocks, and
 * stall detection (lag > 0 without progress for LIVE_STALL_MS).
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import type { FeedBatch, FeedSource, FeedStatus, PartitionPosition } from '../../src/feed/types.js';
import { FeedTracker } from '../../src/wiring/feed-tracker.js';
import { silentLogger } from '../../src/ops/logger.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { commitInput } from '../utils/changes.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { tempDir } from '../utils/tmp.js';

function setup(options: { readyDuringOutage?: boolean } = {}) {
  let now = 1_000_000;
  let ends: PartitionPosition[] = [{ topic: 't', partition: 0, next: '100' }];
  const status: { -readonly [K in keyof FeedStatus]: FeedStatus[K] } = {
    state: 'running',
    lastActivityAt: 0,
  };
  const source: FeedSource = {
    kind: 'kafka',
    start: async () => undefined,
    stop: async () => undefined,
    endOffsets: async () => ends,
    status: () => status,
  };
  const store = openStore({ path: tempDir() });
  const metrics = createMetrics({ defaultMetrics: false });
  const tracker = new FeedTracker({
    store,
    source,
    metrics,
    logger: silentLogger,
    topics: ['t'],
    maxLag: 10,
    lagGraceMs: 5_000,
    stallMs: 30_000,
    now: () => now,
    ...options,
  });
  const applyTo = async (next: number) => {
    await store.applyBatch(commitInput([], [{ topic: 't', partition: 0, next: String(next) }]));
    const batch: FeedBatch = { topic: 't', partition: 0, records: [], highWatermark: ends[0]!.next };
    tracker.applied(batch, now);
  };
  return {
    store,
    metrics,
    tracker,
    status,
    applyTo,
    advance: (ms: number) => (now += ms),
    setEnd: (next: number) => (ends = [{ topic: 't', partition: 0, next: String(next) }]),
  };
}

describe('FeedTracker', () => {
  it('should be ready once the start targets are reached, and not ready while the lag stays above the bound past the grace period', async () => {
    const t = setup();
    t.tracker.setTargets([{ topic: 't', partition: 0, next: '100' }]);
    expect({ ready: t.tracker.ready(), reason: t.tracker.reason() }).toEqual({
      ready: false,
      reason: 'catching up with the end offsets seen at start',
    });
    await t.applyTo(100);
    expect({ ready: t.tracker.ready(), gauge: (await t.metrics.ready.get()).values[0]?.value }).toEqual({
      ready: true,
      gauge: 1,
    });

    // 50 records behind: above the bound, but within the grace period.
    t.setEnd(150);
    await t.tracker.refreshHighWatermarks();
    t.advance(4_000);
    t.tracker.refreshMetrics();
    expect(t.tracker.ready()).toBe(true);
    t.advance(1_000);
    t.tracker.refreshMetrics();
    expect({
      ready: t.tracker.ready(),
      reason: t.tracker.reason(),
      gauge: (await t.metrics.ready.get()).values[0]?.value,
    }).toEqual({
      ready: false,
      reason: 'lag above READY_MAX_LAG (10 records) for 5000 ms',
      gauge: 0,
    });
    // Back within the bound: ready again at once.
    await t.applyTo(145);
    expect(t.tracker.ready()).toBe(true);
    await t.store.close();
  });

  it('should read the positions once per commit, however many batches and watermarks move meanwhile', async () => {
    const t = setup();
    t.tracker.setTargets([{ topic: 't', partition: 0, next: '100' }]);
    await t.applyTo(40);
    let reads = 0;
    const positions = t.store.positions.bind(t.store);
    t.store.positions = (...args) => (reads++, positions(...args));
    const lag = async () => (await t.metrics.partitionLag.get()).values.map((v) => v.value);
    // More batches of that commit (a catch-up's commit resolves tens at once): nothing moved.
    const batch: FeedBatch = { topic: 't', partition: 0, records: [], highWatermark: '100' };
    for (let i = 0; i < 3; i++) t.tracker.applied(batch, undefined);
    expect({ reads, lag: await lag() }).toEqual({ reads: 0, lag: [60] });
    // A higher watermark moves the lag without a read (positions move only with commits); the next commit
    // is read.
    t.tracker.applied({ ...batch, highWatermark: '110' }, undefined);
    expect({ reads, lag: await lag(), ready: t.tracker.ready() }).toEqual({
      reads: 0,
      lag: [70],
      ready: false,
    });
    await t.applyTo(110);
    expect({ reads, lag: await lag(), ready: t.tracker.ready() }).toEqual({
      reads: 1,
      lag: [0],
      ready: true,
    });
    await t.store.close();
  });

  it("should keep every partition's lag exact after each batch", async () => {
    const t = setup();
    const ends = [100, 80, 60, 0];
    const positions = [0, 0, 0, 0];
    t.tracker.setTargets(ends.map((next, partition) => ({ topic: 't', partition, next: String(next) })));
    const next = prng(7);
    const random = (n: number) => Math.floor(next() * n);
    for (let step = 0; step < 60; step++) {
      const partition = random(4);
      // A batch moves its partition forward; its fetch may have seen a higher watermark.
      if (random(3) === 0) ends[partition]! += random(20);
      positions[partition] = Math.min(ends[partition]!, positions[partition]! + random(30));
      await t.store.applyBatch(
        commitInput([], [{ topic: 't', partition, next: String(positions[partition]) }]),
      );
      t.tracker.applied(
        { topic: 't', partition, records: [], highWatermark: String(ends[partition]) },
        undefined,
      );
      const lags = ends.map((end, p) => end - positions[p]!);
      const gauges = (await t.metrics.partitionLag.get()).values.map((v) => [v.labels.partition, v.value]);
      expect({ total: t.tracker.lagRecords(), gauges }).toEqual({
        total: lags.reduce((a, b) => a + b, 0),
        gauges: lags.map((lag, p) => [String(p), lag]),
      });
    }
    await t.store.close();
  });

  it('should count the lag exactly beyond 2^53 (offsets are int64)', async () => {
    const t = setup();
    // 2^53 - 7, then watermarks 2^53 and 2^53 + 1, which a double cannot tell apart (a lag of 7, not 8).
    t.tracker.setTargets([{ topic: 't', partition: 0, next: '9007199254740985' }]);
    await t.store.applyBatch(commitInput([], [{ topic: 't', partition: 0, next: '9007199254740985' }]));
    const batch: FeedBatch = { topic: 't', partition: 0, records: [], highWatermark: '9007199254740992' };
    t.tracker.applied(batch, undefined);
    t.tracker.applied({ ...batch, highWatermark: '9007199254740993' }, undefined);
    // A lower watermark reported later (an older fetch's) does not move it back.
    t.tracker.applied({ ...batch, highWatermark: '9007199254740990' }, undefined);
    expect({ lag: t.tracker.lagRecords(), partitions: t.tracker.snapshot().partitions }).toEqual({
      lag: 8,
      partitions: [
        {
          topic: 't',
          partition: 0,
          next: '9007199254740985',
          highWatermark: '9007199254740993',
          lag: '8',
        },
      ],
    });
    await t.store.close();
  });

  it('should stay not ready while blocked by a recovery rebuild', async () => {
    const t = setup();
    t.tracker.setTargets([]);
    expect(t.tracker.ready()).toBe(true);
    t.tracker.block('rebuilding');
    expect({ ready: t.tracker.ready(), reason: t.tracker.reason() }).toEqual({
      ready: false,
      reason: 'rebuilding',
    });
    t.tracker.unblock();
    expect(t.tracker.ready()).toBe(true);
    await t.store.close();
  });

  it('should report a stall only while records are waiting and no batch was handled for LIVE_STALL_MS', async () => {
    const t = setup();
    t.tracker.setTargets([{ topic: 't', partition: 0, next: '100' }]);
    await t.applyTo(100);
    // Idle and caught up: never stalled, however long.
    t.advance(120_000);
    t.tracker.refreshMetrics();
    expect(t.tracker.live()).toBe(true);
    // Records arrive, nothing is handled.
    t.setEnd(120);
    await t.tracker.refreshHighWatermarks();
    t.advance(30_000);
    t.tracker.refreshMetrics();
    expect(t.tracker.live()).toBe(true);
    t.advance(1);
    t.tracker.refreshMetrics();
    expect({ live: t.tracker.live(), gauge: (await t.metrics.live.get()).values[0]?.value }).toEqual({
      live: false,
      gauge: 0,
    });
    expect(t.tracker.reason()).toMatch(/^feed stalled/);
    await t.applyTo(110);
    expect(t.tracker.live()).toBe(true);
    await t.store.close();
  });

  it('should stay ready once caught up while the brokers are unreachable, and show the outage instead', async () => {
    const t = setup();
    const gauge = async (m: 'ready' | 'feedUp' | 'live') => (await t.metrics[m].get()).values[0]?.value;
    t.tracker.setTargets([{ topic: 't', partition: 0, next: '100' }]);
    await t.applyTo(95); // 5 records waiting when the outage starts
    t.status.state = 'retrying';
    t.status.reason = 'connect ECONNREFUSED';
    t.tracker.refreshMetrics();
    // The first catch-up still gates readiness, outage or not.
    expect({ ready: t.tracker.ready(), lag: t.tracker.lagRecords() }).toEqual({ ready: false, lag: null });
    t.status.state = 'running';
    await t.applyTo(100);
    expect({ ready: t.tracker.ready(), lag: t.tracker.lagRecords(), up: await gauge('feedUp') }).toEqual({
      ready: true,
      lag: 0,
      up: 1,
    });
    // Unreachable again, with records waiting: ready, live (no stall: a restart cannot bring brokers back).
    t.setEnd(120);
    await t.tracker.refreshHighWatermarks();
    t.status.state = 'retrying';
    t.tracker.refreshMetrics();
    t.advance(90_000);
    t.tracker.refreshMetrics();
    expect({
      ready: t.tracker.ready(),
      live: t.tracker.live(),
      lag: t.tracker.lagRecords(),
      down: t.tracker.snapshot().feedDownSeconds,
      reason: t.tracker.snapshot().reason,
      gauges: [await gauge('ready'), await gauge('live'), await gauge('feedUp')],
    }).toEqual({
      ready: true,
      live: true,
      lag: null,
      down: 90,
      reason: 'feed retrying: connect ECONNREFUSED',
      gauges: [1, 1, 0],
    });
    // A recovery rebuild still takes it out of rotation.
    t.tracker.block('rebuilding');
    expect(t.tracker.ready()).toBe(false);
    t.tracker.unblock();
    // Back: the outage ends.
    t.status.state = 'running';
    await t.applyTo(120);
    expect({
      ready: t.tracker.ready(),
      down: t.tracker.snapshot().feedDownSeconds,
      up: await gauge('feedUp'),
    }).toEqual({ ready: true, down: null, up: 1 });
    await t.store.close();
  });

  it('should turn not ready during an outage with READY_DURING_FEED_OUTAGE=false (the former behaviour)', async () => {
    const t = setup({ readyDuringOutage: false });
    t.tracker.setTargets([{ topic: 't', partition: 0, next: '100' }]);
    await t.applyTo(100);
    expect(t.tracker.ready()).toBe(true);
    t.status.state = 'retrying';
    t.tracker.refreshMetrics();
    expect({ ready: t.tracker.ready(), gauge: (await t.metrics.ready.get()).values[0]?.value }).toEqual({
      ready: false,
      gauge: 0,
    });
    await t.store.close();
  });
});
