/**
 * The replica's ingest handler (VIEW_TOPIC_IN, DESIGN.md "Where the next pieces go": view topic in → feed →
 * decode (view format) → store): turns a batch of the view topic into durable store commits, by the same
 * steps as the changelog ingest (batch-steps.ts): records below the stored offset are skipped; each record is
 * decoded (src/views/view-record.ts); an undecodable one goes to `<topic>.dlq` like any invalid record;
 * a record of a view this code does not serve is skipped (counted); user views, tombstones and the totals go
 * to the store (src/materializer/replicate.ts: the view is the row), in chunks, each with its offset.
 *
 * The producer's heartbeat in each status record goes to `onStatus` once the batch is durable (the
 * upstream watch turns it into readiness).
 */
import { decodeTurns } from '../feed/loop-turns.js';
import type { FeedHandler } from '../feed/types.js';
import { ReplicaBatch } from '../materializer/change-batch.js';
import { TOTALS_KEY } from '../views/totals.js';
import { decodeViewRecord, type ProducerStatus } from '../views/view-record.js';
import { handlerSteps, observeApplied, tailOf, type DeadLetter, type HandlerOptions } from './batch-steps.js';

export interface ViewIngestOptions extends HandlerOptions {
  /** The view topic (VIEW_TOPIC_IN). */
  readonly topic: string;
  /** The newest producer status of a durable batch (live role only). */
  readonly onStatus?: (status: ProducerStatus) => void;
}

export function createViewIngestHandler(options: ViewIngestOptions): FeedHandler {
  const { topic, metrics, onApplied } = options;
  const steps = handlerSteps(
    options,
    () => new ReplicaBatch(),
    (values, positions) => ({ replica: values.columns(), positions }),
  );
  const { rebuild } = steps;

  return steps.handler(async (batch) => {
    if (batch.topic !== topic) throw new Error(`view ingest got a batch of another topic "${batch.topic}"`);
    const started = performance.now();
    const tail = tailOf(batch);
    const fresh = steps.fresh(batch);
    const skipped = batch.records.length - fresh.length;
    const lastOffset = fresh[fresh.length - 1]?.offset;
    const chunks = steps.chunks();
    const invalid: DeadLetter[] = [];
    const eventTimes: number[] = [];
    const ignored = new Map<string, number>();
    let status: ProducerStatus | undefined;
    let valid = 0;
    for (let i = 0; i < fresh.length; i++) {
      if (decodeTurns.due(i)) await decodeTurns.next(rebuild);
      const record = fresh[i]!;
      const d = decodeViewRecord(record.key, record.value, record.headers, {
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        timestamp: Number(record.timestamp),
      });
      if (!d.ok) {
        invalid.push({ record, code: d.code, message: d.message });
        continue;
      }
      const { partition, offset } = record;
      if (d.kind === 'other') {
        ignored.set(d.view, (ignored.get(d.view) ?? 0) + 1);
        continue;
      }
      if (d.kind === 'user') {
        chunks.current.push('user-information', d.userId, d.view, topic, partition, offset);
        if (d.view?.version.eventTime != null) eventTimes.push(Date.parse(d.view.version.eventTime));
      } else {
        status = d.status.producer;
        if (d.status.totals === null) continue;
        chunks.current.push('totals', TOTALS_KEY, d.status.totals, topic, partition, offset);
      }
      valid++;
      chunks.added(offset);
    }
    if (!rebuild) {
      if (skipped > 0) metrics.recordsSkipped.inc({ topic }, skipped);
      for (const [view, n] of ignored) metrics.viewTopicRecordsIgnored.inc({ view }, n);
    }
    const newestEventMs =
      eventTimes.reduce<number | undefined>(
        (newest, t) => (newest === undefined || t > newest ? t : newest),
        undefined,
      ) ?? tail.timestamp;
    const committed = await steps.finish(batch, { chunks, lastOffset, tail, invalid, valid, newestEventMs });
    if (committed === undefined) return;
    const { result } = committed;
    observeApplied(metrics, batch, { valid, invalid: invalid.length }, started, result.appliedAt, eventTimes);
    if (status !== undefined) options.onStatus?.(status);
    onApplied?.(batch, result, newestEventMs, tail);
  });
}
