/**
 * Tracks where the feed stands against the store and answers the health probes (implements the API's
 * FeedMonitor):
 * - ready: every partition reached the end offsets seen at start; afterwards it drops back to not ready
 *   while the total lag stays above READY_MAX_LAG for READY_LAG_GRACE_MS, and while a recovery rebuild
 *   (offset out of range) has not swapped in yet;
 * - during a broker outage (the source retrying) a replica that has caught up stays ready and serves its
 *   last state (READY_DURING_FEED_OUTAGE, default true): every replica sees the same outage, and taking them
 *   all out of rotation at once stops reads although each holds a good, slightly stale view. The staleness
 *   shows instead: `feedDownSeconds` in feedStatus, `extensions.asOf.lagRecords` null (the lag is unknown),
 *   `matview_feed_up` 0 and the MatviewServingStale alert. `false` restores not-ready during an outage;
 * - live: the feed loop is not crashed and not stalled (records waiting, no batch handled for LIVE_STALL_MS,
 *   while the source answers: a restart cannot bring a broker back, and a restarted replica cannot start
 *   without one);
 * - lag per partition (high watermark − next offset) and freshness, exported as metrics.
 * High watermarks come from every fetched batch and from a periodic `endOffsets`, so lag is visible even
 * when the consumer fetches nothing.
 */
import { offsetBelow } from '../feed/partition-feed.js';
import type { FeedBatch, FeedSource, PartitionPosition } from '../feed/types.js';
import type { LmdbStore } from '../store/lmdb-store.js';
import { USER_INFORMATION } from '../views/user-information.js';
import type { FeedMonitor, FeedStatusSnapshot, PartitionStatus } from '../../api/feed-monitor.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';

const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/**
 * `hw - next`, at least 0, of two offsets in decimal: as numbers while both are safe integers (every offset a
 * topic reaches in practice; BigInt arithmetic was most of an `applied` call's cost), else as BigInts.
 */
function lagOf(hw: string, next: string): string {
  const h = Number(hw);
  const n = Number(next);
  if (Number.isSafeInteger(h) && Number.isSafeInteger(n)) return String(h > n ? h - n : 0);
  return (BigInt(hw) > BigInt(next) ? BigInt(hw) - BigInt(next) : 0n).toString();
}

/** The sum of the partitions' lags (as numbers while the sum is a safe integer, as `lagOf`). */
function sumOfLags(partitions: readonly PartitionStatus[]): bigint {
  let sum = 0;
  for (const p of partitions) if (p.lag !== null) sum += Number(p.lag);
  if (Number.isSafeInteger(sum)) return BigInt(sum);
  return partitions.reduce((n, p) => n + (p.lag === null ? 0n : BigInt(p.lag)), 0n);
}

export interface FeedTrackerOptions {
  readonly store: LmdbStore;
  readonly source: FeedSource;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Topics whose high watermarks `refreshHighWatermarks` fetches. */
  readonly topics: readonly string[];
  /** READY_MAX_LAG: total lag above which readiness drops after the grace period. */
  readonly maxLag: number;
  /** READY_LAG_GRACE_MS. */
  readonly lagGraceMs: number;
  /** LIVE_STALL_MS: no batch handled for this long while lag > 0 means stalled. */
  readonly stallMs: number;
  /** Dead-letter messages waiting in the store's outbox (feedStatus and `matview_dlq_outbox_records`). */
  readonly deadLettersWaiting?: () => number;
  /** READY_DURING_FEED_OUTAGE: stay ready (once caught up) while the source is retrying. Default true. */
  readonly readyDuringOutage?: boolean;
  /** Clock, injectable for tests. */
  readonly now?: () => number;
  /**
   * A replica's upstream (upstream.ts): why the view may be behind its sources although this feed is caught
   * up (the view topic's producer is silent or behind); not ready while it says so.
   */
  readonly upstream?: { reason(): string | null; refresh(): void };
}

export class FeedTracker implements FeedMonitor {
  private readonly targets = new Map<string, PartitionPosition>();
  private readonly highWatermarks = new Map<string, string>();
  /** Bumped whenever a high watermark moves: part of what `refreshLag`'s last reading is valid for. */
  private highWatermarkMoves = 0;
  /**
   * The partitions as `refreshLag` last read them, with the store state and high watermarks they were read
   * at. A commit of a catch-up resolves tens of batches at once, each calling `applied`: the first reads the
   * positions from the store and sets the gauges, the others find nothing moved.
   */
  private lagRead:
    { readonly sequence: bigint; readonly moves: number; readonly partitions: PartitionStatus[] } | undefined;
  /**
   * The stored positions by partition key, as of the commit sequence they were read at: they move only with
   * commits. A trickle of small batches moves the high watermarks between commits, and each batch's `applied`
   * used to read them all from the store again.
   */
  private positionsRead:
    { readonly sequence: bigint; readonly next: ReadonlyMap<string, string> } | undefined;
  /** The lag each partition's gauge was last set to: a gauge is set when its partition's lag moved. */
  private readonly exportedLag = new Map<string, string>();
  private readonly store: LmdbStore;
  private readonly source: FeedSource;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly now: () => number;
  private caughtUp = false;
  private targetsKnown = false;
  private newestEventMs: number | undefined;
  private lastProgressAt: number;
  /** Since when the total lag has been above maxLag (undefined: it is not). */
  private lagAboveSince: number | undefined;
  /** Since when records have been waiting (total lag > 0), undefined while caught up. */
  private waitingSince: number | undefined;
  private lagging = false;
  private stalled = false;
  private blockedBy: string | undefined;
  /** A cold start's bulk load runs (`blockForBulkLoad`): no live feed yet, so no stall either. */
  private bulkLoading = false;
  /** Total lag as of the last evaluation; null while no partition's high watermark is known. */
  private totalLag: number | null = null;
  /** Since when the source has been retrying (broker unreachable), undefined while it answers. */
  private downSince: number | undefined;

  constructor(private readonly options: FeedTrackerOptions) {
    this.store = options.store;
    this.source = options.source;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.lastProgressAt = this.now();
    this.metrics.ready.set(0);
    this.metrics.live.set(1);
    this.metrics.feedUp.set(1);
    this.metrics.lastProgressSeconds.set(this.lastProgressAt / 1000);
  }

  /** The end offsets seen at start: ready once every partition reached them. */
  setTargets(ends: readonly PartitionPosition[]): void {
    for (const e of ends) {
      this.targets.set(key(e.topic, e.partition), e);
      this.observeHighWatermark(e.topic, e.partition, e.next);
    }
    this.targetsKnown = true;
    this.evaluate();
  }

  /** Called after every handled batch of the live feed (committed or all-skipped). */
  applied(batch: FeedBatch, newestTimestampMs: number | undefined): void {
    this.observeHighWatermark(batch.topic, batch.partition, batch.highWatermark);
    if (
      newestTimestampMs !== undefined &&
      (this.newestEventMs === undefined || newestTimestampMs > this.newestEventMs)
    ) {
      this.newestEventMs = newestTimestampMs;
    }
    this.lastProgressAt = this.now();
    this.metrics.lastProgressSeconds.set(this.lastProgressAt / 1000);
    this.refreshLag();
  }

  /** Keeps readiness at 503 with `reason` (a recovery rebuild whose old view is known to be incomplete). */
  block(reason: string): void {
    this.blockedBy = reason;
    this.evaluate();
  }

  /**
   * `block`, unless readiness is blocked already: the reason there stays (a rebuild after an offset reset, a
   * cold start's bulk load), as it says more than the one given here, and the same swap lifts both.
   */
  blockUnlessBlocked(reason: string): void {
    if (this.blockedBy === undefined) this.block(reason);
  }

  /**
   * `block`, for a cold start's bulk load (src/wiring/cold-start.ts): the live feed starts only once it has
   * swapped in, so the records waiting for the active generation are not a stall until then (the load's
   * own consumer failing for good is fatal, and its views built from its rows run for minutes at a million
   * users without a batch).
   */
  blockForBulkLoad(reason: string): void {
    this.bulkLoading = true;
    this.block(reason);
  }

  unblock(): void {
    this.blockedBy = undefined;
    this.bulkLoading = false;
    this.evaluate();
  }

  /** Fetches the current high watermarks, so lag shows even while nothing is fetched. Never throws. */
  async refreshHighWatermarks(): Promise<void> {
    try {
      for (const e of await this.source.endOffsets(this.options.topics))
        this.observeHighWatermark(e.topic, e.partition, e.next);
    } catch (err) {
      this.logger.debug({ err }, 'could not refresh high watermarks');
    }
    this.refreshMetrics();
  }

  private observeHighWatermark(topic: string, partition: number, hw: string): void {
    const k = key(topic, partition);
    const prev = this.highWatermarks.get(k);
    if (prev === undefined || offsetBelow(prev, hw)) {
      this.highWatermarks.set(k, hw);
      this.highWatermarkMoves++;
    }
  }

  /** Re-derives caught-up, lagging and stalled from the current positions; logs and exports transitions. */
  private evaluate(partitions: readonly PartitionStatus[] = this.partitions()): void {
    const now = this.now();
    if (!this.caughtUp && this.targetsKnown && this.reachedTargets(partitions)) {
      this.caughtUp = true;
      this.logger.info({ sequence: this.store.sequence().toString() }, 'caught up: ready');
    }
    const totalLag = sumOfLags(partitions);
    this.totalLag = partitions.some((p) => p.lag !== null) ? Number(totalLag) : null;
    const state = this.source.status().state;
    const down = state === 'retrying' || state === 'crashed';
    // While the brokers are unreachable the lag is the last one seen, not a measure: READY_MAX_LAG waits
    // for fresh high watermarks (its grace period starts again when the source answers).
    if (totalLag > BigInt(this.options.maxLag) && !down) this.lagAboveSince ??= now;
    else this.lagAboveSince = undefined;
    const lagging =
      this.caughtUp &&
      this.lagAboveSince !== undefined &&
      now - this.lagAboveSince >= this.options.lagGraceMs;
    if (lagging !== this.lagging) {
      this.lagging = lagging;
      if (lagging)
        this.logger.warn(
          { lag: totalLag.toString(), maxLag: this.options.maxLag },
          'lag above READY_MAX_LAG: not ready',
        );
      else this.logger.info({ lag: totalLag.toString() }, 'lag back within READY_MAX_LAG: ready');
    }
    if (down !== (this.downSince !== undefined)) {
      const since = this.downSince;
      this.downSince = down ? now : undefined;
      if (down)
        this.logger.warn(
          { state, reason: this.source.status().reason, ready: this.ready() },
          this.caughtUp && this.options.readyDuringOutage !== false && state === 'retrying'
            ? 'feed source unreachable: serving the last state (READY_DURING_FEED_OUTAGE)'
            : 'feed source unreachable',
        );
      else this.logger.info({ downMs: now - (since ?? now) }, 'feed source answering again');
    }
    // Stalled: records waiting and no batch handled for stallMs, counted from when they started waiting
    // (an idle feed has nothing to handle; that is not a stall), while the source answers (a feed waiting for
    // its brokers is not stuck: restarting it cannot help).
    if (totalLag > 0n && !down) this.waitingSince ??= now;
    else this.waitingSince = undefined;
    const stalled =
      !this.bulkLoading &&
      this.waitingSince !== undefined &&
      now - Math.max(this.lastProgressAt, this.waitingSince) > this.options.stallMs;
    if (stalled !== this.stalled) {
      this.stalled = stalled;
      if (stalled)
        this.logger.error(
          { lag: totalLag.toString(), sinceMs: now - this.lastProgressAt },
          'feed stalled: not live',
        );
      else this.logger.info('feed progressing again: live');
    }
    this.metrics.ready.set(this.ready() ? 1 : 0);
    this.metrics.live.set(this.live() ? 1 : 0);
    this.metrics.feedUp.set(down ? 0 : 1);
  }

  /** Whether every partition's position (in `partitions`, as read from the store) reached its target. */
  private reachedTargets(partitions: readonly PartitionStatus[]): boolean {
    const at = new Map(partitions.map((p) => [key(p.topic, p.partition), p.next] as const));
    for (const t of this.targets.values()) {
      if (t.next === '0') continue;
      const next = at.get(key(t.topic, t.partition));
      if (next === undefined || offsetBelow(next, t.next)) return false;
    }
    return true;
  }

  /** Updates lag, freshness, store size and generation gauges and re-evaluates health; the runtime calls it every second. */
  refreshMetrics(): void {
    this.options.upstream?.refresh();
    const age = this.newestEventAgeSeconds();
    if (age !== null) this.metrics.newestEventAgeSeconds.set(age);
    this.metrics.lmdbSizeBytes.set(this.store.sizeBytes());
    this.metrics.viewGeneration.set(this.store.activeGeneration().id);
    for (const [view, version] of Object.entries(this.store.viewVersions()))
      this.metrics.viewVersion.set({ view }, version);
    this.metrics.dlqOutboxRecords.set(this.options.deadLettersWaiting?.() ?? 0);
    this.refreshLag();
  }

  private refreshLag(): void {
    // Positions move only with commits, each of which moves the sequence this thread reads with them.
    const sequence = this.store.readSequence();
    const last = this.lagRead;
    if (last !== undefined && last.sequence === sequence && last.moves === this.highWatermarkMoves) {
      this.evaluate(last.partitions);
      return;
    }
    const partitions = this.partitions(sequence);
    for (const p of partitions) {
      if (p.lag === null) continue;
      const k = key(p.topic, p.partition);
      if (this.exportedLag.get(k) === p.lag) continue;
      this.exportedLag.set(k, p.lag);
      this.metrics.partitionLag.set({ topic: p.topic, partition: String(p.partition) }, Number(p.lag));
    }
    this.lagRead = { sequence, moves: this.highWatermarkMoves, partitions };
    this.evaluate(partitions);
  }

  /**
   * Caught up, not lagging, not blocked, not crashed; and, under READY_DURING_FEED_OUTAGE=false, the source is
   * answering (see the module comment for why an outage does not make a caught-up replica unready by default).
   */
  ready(): boolean {
    const state = this.source.status().state;
    return (
      this.caughtUp &&
      !this.lagging &&
      this.blockedBy === undefined &&
      state !== 'crashed' &&
      (state !== 'retrying' || this.options.readyDuringOutage !== false) &&
      (this.options.upstream?.reason() ?? null) === null
    );
  }

  /** Null while the source is unreachable: the last computed lag no longer says how far behind the view is. */
  lagRecords(): number | null {
    const state = this.source.status().state;
    return state === 'retrying' || state === 'crashed' ? null : this.totalLag;
  }

  live(): boolean {
    return this.source.status().state !== 'crashed' && !this.stalled;
  }

  reason(): string | null {
    const status = this.source.status();
    if (status.state === 'crashed' || status.state === 'retrying')
      return `feed ${status.state}: ${status.reason ?? 'unknown'}`;
    if (this.stalled)
      return `feed stalled: records are waiting and no batch was handled for ${this.options.stallMs} ms`;
    if (this.blockedBy !== undefined) return this.blockedBy;
    if (!this.targetsKnown) return 'waiting for the end offsets of the source topics';
    if (!this.caughtUp) return 'catching up with the end offsets seen at start';
    if (this.lagging)
      return `lag above READY_MAX_LAG (${this.options.maxLag} records) for ${this.options.lagGraceMs} ms`;
    return this.options.upstream?.reason() ?? null;
  }

  private newestEventAgeSeconds(): number | null {
    return this.newestEventMs === undefined ? null : Math.max(0, (this.now() - this.newestEventMs) / 1000);
  }

  /** Every partition's position, high watermark and lag; the positions as of commit `sequence`. */
  private partitions(sequence: bigint = this.store.readSequence()): PartitionStatus[] {
    const stored = this.storedPositions(sequence);
    const keys = new Set([...this.highWatermarks.keys()]);
    for (const k of stored.keys()) keys.add(k);
    return [...keys].sort().map((k) => {
      const [topic = '', partition = '0'] = k.split('\u0000');
      const next = stored.get(k) ?? '0';
      const hw = this.highWatermarks.get(k) ?? null;
      return {
        topic,
        partition: Number(partition),
        next,
        highWatermark: hw,
        lag: hw === null ? null : lagOf(hw, next),
      };
    });
  }

  /**
   * The stored next offset by partition key, read from the store once per commit (read in the same
   * synchronous stretch as `sequence`, the commit they belong to).
   */
  private storedPositions(sequence: bigint): ReadonlyMap<string, string> {
    const last = this.positionsRead;
    if (last !== undefined && last.sequence === sequence) return last.next;
    const next = new Map(this.store.positions().map((p) => [key(p.topic, p.partition), p.next] as const));
    this.positionsRead = { sequence, next };
    return next;
  }

  snapshot(): FeedStatusSnapshot {
    const status = this.source.status();
    return {
      ready: this.ready(),
      source: this.source.kind,
      state: status.state,
      reason: this.reason(),
      partitions: this.partitions(),
      newestEventAgeSeconds: this.newestEventAgeSeconds(),
      // From the state now, not the last evaluation (up to a second old): RETRYING always comes with a number.
      feedDownSeconds:
        status.state !== 'retrying' && status.state !== 'crashed'
          ? null
          : Math.max(0, (this.now() - (this.downSince ?? this.now())) / 1000),
      sequence: this.store.sequence().toString(),
      viewVersion: this.store.viewVersions()[USER_INFORMATION] ?? 0,
      deadLettersWaiting: this.options.deadLettersWaiting?.() ?? 0,
    };
  }
}
