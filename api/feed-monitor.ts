/**
 * What the API may ask about the feed: readiness, liveness and a status snapshot for `feedStatus`.
 * Implemented by the serve wiring (src/wiring/feed-tracker.ts); the API only reads it.
 */
import type { FeedState } from '../src/feed/types.js';

export interface PartitionStatus {
  readonly topic: string;
  readonly partition: number;
  /** Next offset to apply (stored in LMDB). */
  readonly next: string;
  /** Latest high watermark seen, or null if not known yet. */
  readonly highWatermark: string | null;
  /** highWatermark - next (never negative), or null if unknown. */
  readonly lag: string | null;
}

export interface FeedStatusSnapshot {
  /** True once every partition reached the end offsets seen at start. */
  readonly ready: boolean;
  readonly source: 'kafka' | 'embedded';
  readonly state: FeedState;
  readonly reason: string | null;
  readonly partitions: readonly PartitionStatus[];
  /** Seconds since the event time of the newest applied record (the source commit time where the format carries it, e.g. Debezium source.ts_ms; else the Kafka timestamp); null before the first. */
  readonly newestEventAgeSeconds: number | null;
  /**
   * Seconds since the source stopped answering (state `retrying`: brokers unreachable); the replica serves its
   * last state meanwhile. Null while the source answers.
   */
  readonly feedDownSeconds: number | null;
  /** Last store commit sequence (uint64 decimal). */
  readonly sequence: string;
  /** Version of the UserInformation view definition being served. */
  readonly viewVersion: number;
  /** Invalid records stored for the dead-letter topics and not yet acknowledged by them. */
  readonly deadLettersWaiting: number;
}

export interface FeedMonitor {
  ready(): boolean;
  /** The feed loop is alive (not crashed, not stalled). */
  live(): boolean;
  /** Readable reason when not ready / not live. */
  reason(): string | null;
  snapshot(): FeedStatusSnapshot;
  /**
   * Records the view is behind the source (sum of the partitions' lags), as last computed, or null when it is
   * not known (no high watermark seen yet, or the source cannot be reached). Cheap: answered on every GraphQL
   * response (`extensions.asOf.lagRecords`).
   */
  lagRecords(): number | null;
}
