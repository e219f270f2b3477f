/**
 * Tracks where the feed stands against the store: readiness (caught up with the end offsets seen
 * at start), per-partition lag, and freshness. Implements the API's FeedMonitor.
 */
import type { FeedBatch, FeedSource, PartitionPosition } from '../feed/types.js';
import type { LmdbStore } from '../store/lmdb-store.js';
import type { FeedMonitor, FeedStatusSnapshot, PartitionStatus } from './feed-monitor.js';
import type { Metrics } from './metrics.js';

const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export class FeedTracker implements FeedMonitor {
  private readonly targets = new Map<string, PartitionPosition>();
  private readonly highWatermarks = new Map<string, string>();
  private caughtUp = false;
  private targetsKnown = false;
  private newestEventMs: number | undefined;

  constructor(
    private readonly store: LmdbStore,
    private readonly source: FeedSource,
    private readonly metrics: Metrics,
    private readonly viewVersion: number,
    private readonly onCaughtUp: () => void = () => {},
  ) {}

  /** The end offsets seen at start: ready once every partition reached them. */
  setTargets(ends: readonly PartitionPosition[]): void {
    for (const e of ends) {
      this.targets.set(key(e.topic, e.partition), e);
      this.observeHighWatermark(e.topic, e.partition, e.next);
    }
    this.targetsKnown = true;
    this.check();
  }

  /** Called after every handled batch (committed or all-skipped). */
  applied(batch: FeedBatch, newestTimestampMs: number | undefined): void {
    this.observeHighWatermark(batch.topic, batch.partition, batch.highWatermark);
    if (newestTimestampMs !== undefined && (this.newestEventMs === undefined || newestTimestampMs > this.newestEventMs)) {
      this.newestEventMs = newestTimestampMs;
    }
    this.refreshMetrics();
    this.check();
  }

  private observeHighWatermark(topic: string, partition: number, hw: string): void {
    const k = key(topic, partition);
    const prev = this.highWatermarks.get(k);
    if (prev === undefined || BigInt(hw) > BigInt(prev)) this.highWatermarks.set(k, hw);
  }

  private check(): void {
    if (this.caughtUp || !this.targetsKnown) return;
    for (const t of this.targets.values()) {
      if (t.next === '0') continue;
      const at = this.store.position(t.topic, t.partition);
      if (at === undefined || BigInt(at) < BigInt(t.next)) return;
    }
    this.caughtUp = true;
    this.metrics.ready.set(1);
    this.onCaughtUp();
  }

  refreshMetrics(): void {
    for (const p of this.partitions()) {
      if (p.lag !== null) this.metrics.partitionLag.set({ topic: p.topic, partition: String(p.partition) }, Number(p.lag));
    }
    const age = this.newestEventAgeSeconds();
    if (age !== null) this.metrics.newestEventAgeSeconds.set(age);
  }

  ready(): boolean {
    return this.caughtUp;
  }

  live(): boolean {
    return this.source.status().state !== 'crashed';
  }

  reason(): string | null {
    const status = this.source.status();
    if (status.state === 'crashed' || status.state === 'retrying') return `feed ${status.state}: ${status.reason ?? 'unknown'}`;
    if (!this.targetsKnown) return 'waiting for the end offsets of the source topics';
    if (!this.caughtUp) return 'catching up with the end offsets seen at start';
    return null;
  }

  private newestEventAgeSeconds(): number | null {
    return this.newestEventMs === undefined ? null : Math.max(0, (Date.now() - this.newestEventMs) / 1000);
  }

  private partitions(): PartitionStatus[] {
    const keys = new Set([...this.highWatermarks.keys()]);
    const stored = new Map(this.store.positions().map((p) => [key(p.topic, p.partition), p] as const));
    for (const k of stored.keys()) keys.add(k);
    return [...keys].sort().map((k) => {
      const [topic = '', partition = '0'] = k.split('\u0000');
      const next = stored.get(k)?.next ?? '0';
      const hw = this.highWatermarks.get(k) ?? null;
      const lag = hw === null ? null : (BigInt(hw) > BigInt(next) ? BigInt(hw) - BigInt(next) : 0n).toString();
      return { topic, partition: Number(partition), next, highWatermark: hw, lag };
    });
  }

  snapshot(): FeedStatusSnapshot {
    const status = this.source.status();
    return {
      ready: this.caughtUp,
      source: this.source.kind,
      state: status.state,
      reason: this.reason(),
      partitions: this.partitions(),
      newestEventAgeSeconds: this.newestEventAgeSeconds(),
      sequence: this.store.sequence().toString(),
      viewVersion: this.viewVersion,
    };
  }
}
