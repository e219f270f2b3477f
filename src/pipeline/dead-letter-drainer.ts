/**
 * Sends the dead letters waiting in the store's outbox to their topics, and removes each once the topic
 * acknowledged it. Invalid records enter the outbox in the same LMDB transaction as the offsets that pass
 * them (src/pipeline/ingest.ts), so the feed never waits for a dead-letter topic: on a managed cluster
 * without `<topic>.dlq`, or while a broker refuses writes to it, the view stays fresh and the dead letters
 * wait, counted (`matview_dlq_outbox_records`, `feedStatus.deadLettersWaiting`).
 *
 * Each topic drains on its own, oldest first, in batches; a topic that fails backs off (1 s doubling to
 * 60 s) without holding up the others, and its failure is logged once until it works again. Delivery is at
 * least once: a crash between the broker's acknowledgement and the removal sends those messages again (a
 * duplicate in a dead-letter topic, never a loss).
 */
import { DeadLetterWriteError } from '../errors.js';
import type { ChangelogWriter } from '../feed/types.js';
import type { Logger } from '../ops/logger.js';
import type { OutboxEntry, OutboxKey } from '../store/lmdb-store.js';

/** What the drainer needs of the store (LmdbStore implements it). */
export interface Outbox {
  outboxTopics(): string[];
  outboxEntries(topic: string, limit: number): { key: OutboxKey; entry: OutboxEntry }[];
  removeFromOutbox(keys: readonly OutboxKey[]): Promise<void>;
  outboxSize(): number;
}

export interface DeadLetterDrainerOptions {
  readonly outbox: Outbox;
  readonly writer: ChangelogWriter;
  readonly logger: Logger;
  /** Messages sent to a topic at once (default 500). */
  readonly batchSize?: number;
  /** How long an idle drainer waits before it looks again (default 1 s); `wake()` cuts it short. */
  readonly idleMs?: number;
  /** Each failed send (a metric counts them). */
  readonly onFailure?: (topic: string, error: DeadLetterWriteError) => void;
}

export interface DeadLetterDrainer {
  /** Dead letters were stored: look now rather than at the next idle tick. */
  wake(): void;
  /** Ends the loop; resolves within `timeoutMs` even if a send hangs (what is unsent stays in the outbox). */
  stop(timeoutMs?: number): Promise<void>;
}

/** Backoff of a topic that failed `failures` times in a row: 1 s doubling to 60 s. */
export const drainBackoffMs = (failures: number): number =>
  Math.min(60_000, 1_000 * 2 ** Math.min(failures - 1, 6));

export function startDeadLetterDrainer(options: DeadLetterDrainerOptions): DeadLetterDrainer {
  const { outbox, writer } = options;
  const log = options.logger.child({ component: 'dead-letter-drainer' });
  const batchSize = options.batchSize ?? 500;
  const idleMs = options.idleMs ?? 1_000;
  const failing = new Map<string, { failures: number; retryAt: number }>();
  let stopped = false;
  let wakeUp: (() => void) | undefined;
  let woken = false;

  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (woken || stopped) {
        woken = false;
        return resolve();
      }
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakeUp = undefined;
        resolve();
      }
      wakeUp = done;
    });

  /** Sends one batch of `topic`; true when something was sent. */
  async function drainTopic(topic: string): Promise<boolean> {
    const waiting = outbox.outboxEntries(topic, batchSize);
    if (waiting.length === 0) return false;
    try {
      try {
        await writer.send(
          topic,
          waiting.map((w) => w.entry.message),
        );
      } catch (cause) {
        throw new DeadLetterWriteError(topic, { cause });
      }
      await outbox.removeFromOutbox(waiting.map((w) => w.key));
    } catch (error) {
      const err =
        error instanceof DeadLetterWriteError ? error : new DeadLetterWriteError(topic, { cause: error });
      const previous = failing.get(topic);
      const failures = (previous?.failures ?? 0) + 1;
      failing.set(topic, { failures, retryAt: Date.now() + drainBackoffMs(failures) });
      options.onFailure?.(topic, err);
      if (previous === undefined)
        log.warn(
          { err, code: err.code, topic, waiting: outbox.outboxSize() },
          `${err.message}: the dead letters stay in the store and are sent again with backoff; the feed goes on`,
        );
      return false;
    }
    if (failing.delete(topic)) log.info({ topic }, 'dead-letter topic accepts writes again');
    return true;
  }

  const loop = (async () => {
    while (!stopped) {
      let sent = false;
      try {
        const now = Date.now();
        for (const topic of outbox.outboxTopics()) {
          if (stopped) break;
          if ((failing.get(topic)?.retryAt ?? 0) > now) continue;
          if (await drainTopic(topic)) sent = true;
        }
      } catch (err) {
        // Reading the outbox failed (the store is closing): try again after a pause.
        log.debug({ err }, 'could not read the dead-letter outbox');
      }
      if (sent) continue;
      const soonest = Math.min(
        idleMs,
        ...[...failing.values()].map((f) => Math.max(1, f.retryAt - Date.now())),
      );
      await pause(soonest);
    }
  })();

  return {
    wake() {
      woken = true;
      wakeUp?.();
    },
    async stop(timeoutMs = 2_000) {
      stopped = true;
      wakeUp?.();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([loop, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    },
  };
}
