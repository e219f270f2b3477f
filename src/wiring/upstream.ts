/**
 * A replica's view of its upstream (VIEW_TOPIC_IN): the producer of the view topic says in its status
 * records (docs/view-topic.md) when it published last and whether it is caught up with its own sources. A
 * replica that has read everything the topic holds is still behind the sources when that producer is dead,
 * or catching up itself: this turns the newest status into readiness and a reason (feed-tracker.ts), so
 * `/health/ready` and `feedStatus` say so while reads keep being served.
 *
 * Time is the producer's clock (`producer.at`) against this one: VIEW_TOPIC_MAX_SILENCE_MS must be well
 * above the clock skew between the two machines (NTP keeps it to milliseconds). A topic whose producer
 * publishes no status records (another engine) is not watched: the replica is then as fresh as its topic.
 */
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { ProducerStatus } from '../views/view-record.js';

export interface UpstreamWatchOptions {
  /** VIEW_TOPIC_MAX_SILENCE_MS; 0: silence is never a reason. */
  readonly maxSilenceMs: number;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now?: () => number;
}

export class UpstreamWatch {
  private newest: ProducerStatus | undefined;
  private newestAt = Number.NEGATIVE_INFINITY;
  private reported: string | null = null;
  private readonly now: () => number;

  constructor(private readonly options: UpstreamWatchOptions) {
    this.now = options.now ?? Date.now;
  }

  /** A status record was applied (in topic order per partition; the newest by its time is kept). */
  observe(status: ProducerStatus): void {
    const at = Date.parse(status.at);
    if (at < this.newestAt) return;
    this.newest = status;
    this.newestAt = at;
    this.refresh();
  }

  /** The newest producer status seen, if any. */
  status(): ProducerStatus | undefined {
    return this.newest;
  }

  /** Why the view may be behind its sources although the topic is read to its end; null when it is not. */
  reason(): string | null {
    const s = this.newest;
    if (s === undefined) return null;
    const silentMs = this.now() - this.newestAt;
    if (this.options.maxSilenceMs > 0 && silentMs > this.options.maxSilenceMs)
      return `behind: the view topic's producer ${s.id} has published nothing for ${Math.round(silentMs / 1000)} s (its last status at ${s.at}, VIEW_TOPIC_MAX_SILENCE_MS=${this.options.maxSilenceMs}); this replica may be behind the sources`;
    if (!s.ready)
      return `behind: the view topic's producer ${s.id} is not caught up with its sources${s.lag === null ? '' : ` (${s.lag} records behind)`}; so is this replica`;
    return null;
  }

  /** Updates the age gauge and logs when the reason changes (the tracker calls it every second). */
  refresh(): void {
    if (this.newest !== undefined)
      this.options.metrics.viewTopicProducerAgeSeconds.set(Math.max(0, (this.now() - this.newestAt) / 1000));
    const reason = this.reason();
    if ((reason === null) === (this.reported === null)) {
      this.reported = reason;
      return;
    }
    this.reported = reason;
    if (reason === null)
      this.options.logger.info({ producer: this.newest?.id }, "view topic's producer is caught up again");
    else this.options.logger.warn({ producer: this.newest?.id, reason }, "view topic's producer is behind");
  }
}
