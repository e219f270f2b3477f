/**
 * The view topic out (VIEW_TOPIC_OUT, docs/view-topic.md): publishes every committed change of the
 * UserInformation view to a Kafka topic, key = userId, value = the view as JSON (seed 002's fields plus
 * `version`), a tombstone when the user disappears, and a status record (empty key) carrying the totals and
 * this producer's heartbeat. Serving replicas (VIEW_TOPIC_IN) read it.
 *
 * A sink that follows commits (DESIGN.md): each commit writes the users it changed, with their new values, into
 * the store's view outbox in its own transaction (published.ts); this module sends them. It is never on a
 * commit's path, and a slow or unreachable cluster never slows the feed (the outbox grows on disk).
 *
 * Per key the topic carries every committed value, in commit order; it may repeat one (after a crash), never
 * skip or reorder one. Why:
 * 1. A round takes the oldest changes in the outbox, in commit order, at most ONE per user (a user's next
 *    change waits for the next round), sends them over one producer with one request in flight per broker
 *    (kafka-writer.ts), and once Kafka acknowledged them, removes them from the outbox and records what the
 *    topic now holds per user, in one transaction. A crash before that transaction leaves the round in the
 *    outbox: it is sent again, and since every user had one value in it, a value that did land is followed
 *    by itself (a repeat), never by an older one. Rounds are strictly one after another, so per key the
 *    topic's order is the outbox's, which is the commit order.
 * 2. A capture writes into the outbox, at the current sequence W, the value of every user whose value the
 *    topic may not hold (its version differs from the one recorded with the last acknowledgement, or it has
 *    changes waiting), and a tombstone for every user the topic holds who has no view. It runs where the view
 *    may change for every user at once without a commit writing the outbox: a new topic, a generation swap, a
 *    view rebuild, and at start when one did not finish (or the store is from before the outbox). The wiring
 *    awaits it while NOTHING ELSE COMMITS (before the feed starts; inside the swap's hold of the live feed,
 *    after the rebuild's own consumer stopped, whose late batches the store does not commit into the
 *    generation it swapped in: write.ts `lateRebuildCommit`), so what it reads is exactly the view at W: the values
 *    committed before W go out first (their keys sort before W), the captured ones next, then the changes of
 *    later commits. A capture that is interrupted is run again at start (the layout it finished against is
 *    recorded last); what it wrote twice is a repeat. If a swap ever reached the publisher without the
 *    wiring's capture, the next round runs it anyway (late: it is then only eventually exact).
 * A send that fails is retried (with backoff) until it is acknowledged: nothing is dropped.
 */
import type { ChangelogWriter, OutgoingMessage } from '../feed/types.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { type PublishedIndex, type ViewOutboxKey } from '../store/published.js';
import type { CommitEvent, CommitListener } from '../store/types.js';
import type { TotalsValue } from '../views/totals.js';
import { TOTALS } from '../views/totals.js';
import type { UserInformation } from '../views/user-information.js';
import { USER_INFORMATION } from '../views/user-information.js';
import {
  STATUS_VIEW,
  VIEW_HEADER,
  encodeStatusValue,
  encodeUserValue,
  type ProducerStatus,
} from '../views/view-record.js';

const VIEW_HEADERS = { [VIEW_HEADER]: USER_INFORMATION };

/** What the publisher needs of the store (`LmdbStore` has all of it). */
export interface PublishingStore {
  readonly instanceId: string;
  onCommit(listener: CommitListener): () => void;
  sequence(): bigint;
  /** The sequence of the commit the synchronous reads see right now. */
  readSequence(): bigint;
  getUser(userId: string): UserInformation | undefined;
  userIdsPage(after: string | undefined, limit: number): string[];
  totals(): TotalsValue | undefined;
  /** Which generation and UserInformation build readers see: a change means "any user may have changed". */
  activeGeneration(): {
    readonly id: number;
    readonly info: { readonly views: Readonly<Record<string, { readonly build: number }>> };
  };
}

export interface ViewTopicOutOptions {
  readonly store: PublishingStore;
  readonly index: PublishedIndex;
  /** True when the index was just created for this topic: everything is published once. */
  readonly fresh: boolean;
  readonly writer: ChangelogWriter;
  readonly topic: string;
  /** VIEW_TOPIC_HEARTBEAT_MS: the status record goes out at least this often. */
  readonly heartbeatMs: number;
  /** This producer's own readiness and lag behind its sources (the feed tracker). */
  readonly status: () => { readonly ready: boolean; readonly lag: string | null };
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Records per produce request, and at most per round (default 2,000). */
  readonly chunk?: number;
  /** Longest wait between retries of a failed send (default 10 s; the first waits 200 ms). */
  readonly maxRetryMs?: number;
  /** How long `close` waits for a round whose send has not returned (default 5 s). */
  readonly closeWaitMs?: number;
  /**
   * Shortest time between the starts of two rounds while the publisher keeps up (default 100 ms). Each round
   * adds a store transaction, which shares LMDB's one writer with the commits: spacing them bounds that cost
   * however often commits come, and lets a round carry more changes. A round that leaves changes behind (the
   * outbox has a backlog) is followed at once. It is added to the topic's freshness at most.
   */
  readonly roundIntervalMs?: number;
}

/** The publisher, as the wiring drives it. */
export interface ViewTopicOut {
  /** Starts following commits. Call before anything commits, then await `capture`. */
  start(): void;
  /**
   * Writes into the outbox what the topic lacks after a new topic, a swap, a view rebuild or an unfinished
   * capture (module comment, 2.); resolves at once when none is due. Await it while nothing else commits.
   */
  capture(): Promise<void>;
  /** Resolves once every commit seen so far is published and recorded (tests; shutdown). */
  flush(): Promise<void>;
  /**
   * Stops: nothing new starts; the round in flight may finish (a send that does not return within
   * `closeWaitMs` is abandoned: what it did not record is published again after the next start).
   */
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createViewTopicOut(options: ViewTopicOutOptions): ViewTopicOut {
  const { store, index, writer, topic, metrics } = options;
  const log = options.logger.child({ component: 'view-topic-out', topic });
  const chunk = options.chunk ?? 2_000;
  const maxRetryMs = options.maxRetryMs ?? 10_000;
  const roundIntervalMs = options.roundIntervalMs ?? 100;
  let lastRoundAt = 0;
  let lastStatusAt = 0;

  /** A commit since the last round: the outbox may hold changes, or the mark may move. */
  let outboxWaiting = true;
  /** The last round left changes behind: the next one starts at once. */
  let backlog = false;
  let totalsDirty = true;
  /** Why a capture is due (module comment, 2.), undefined when none is. */
  let captureDue: string | undefined = options.fresh ? 'new-topic' : undefined;
  let capturing: Promise<void> | undefined;
  let heartbeatDue = true;
  /** The last commit event seen. */
  let seen = store.sequence();
  let layout = layoutOf();
  let closed = false;
  let pump: Promise<void> | undefined;
  const idleWaiters: (() => void)[] = [];
  let unsubscribe: () => void = () => undefined;
  let heartbeat: NodeJS.Timeout | undefined;

  function layoutOf(): string {
    const g = store.activeGeneration();
    return `${g.id}#${g.info.views[USER_INFORMATION]?.build ?? 0}`;
  }

  const pending = (): boolean => captureDue !== undefined || outboxWaiting || totalsDirty || heartbeatDue;

  const onCommit = (event: CommitEvent): void => {
    const now = layoutOf();
    if (now !== layout) {
      // A swap or a view rebuild: it wrote no outbox. The wiring awaits `capture` before anything else commits;
      // should it not, the pump runs it (module comment, 2.).
      layout = now;
      captureDue = 'swap-or-rebuild';
    }
    outboxWaiting = true;
    if (event.views.has(TOTALS)) totalsDirty = true;
    if (event.sequence > seen) seen = event.sequence;
    refreshGauges();
    kick();
  };

  function refreshGauges(): void {
    metrics.viewTopicOutboxChanges.set(index.outboxSize());
    metrics.viewTopicUnpublishedCommits.set(Number(seen > index.mark() ? seen - index.mark() : 0n));
  }

  function kick(): void {
    if (closed || pump !== undefined || !pending()) return;
    pump = run().finally(() => {
      pump = undefined;
      if (!pending() || closed) {
        for (const w of idleWaiters.splice(0)) w();
      } else kick();
    });
  }

  async function run(): Promise<void> {
    for (let failures = 0; !closed && pending();) {
      try {
        if (captureDue !== undefined) await capture();
        else if (outboxWaiting) {
          const wait = lastRoundAt + roundIntervalMs - Date.now();
          if (wait > 0 && !backlog) await sleep(wait);
          if (closed) return;
          lastRoundAt = Date.now();
          await round();
        }
        if (closed) return;
        // A status for changed totals waits while changes are waiting, up to a round interval: each send is a
        // produce round trip, and a round per status would halve how fast a backlog drains.
        if (heartbeatDue || (totalsDirty && (!outboxWaiting || Date.now() - lastStatusAt >= roundIntervalMs)))
          await publishStatus();
        failures = 0;
      } catch (err) {
        // The store refused a write (the round stays in the outbox, or the capture is due again): nothing is
        // lost, the work is tried again. After close, the store may be gone: stop quietly.
        if (closed) return;
        metrics.viewTopicPublishFailures.inc();
        const delay = Math.min(maxRetryMs, 200 * 2 ** Math.min(failures++, 10));
        log.error({ err, delayMs: delay }, 'view topic publishing failed; retrying');
        await sleep(delay);
      }
    }
  }

  /** Sends `messages` until Kafka acknowledges them (or the publisher closes: false). */
  async function send(messages: readonly OutgoingMessage[]): Promise<boolean> {
    if (messages.length === 0) return true;
    for (let attempt = 0; ; attempt++) {
      if (closed && attempt > 0) return false;
      try {
        await writer.send(topic, messages);
        if (attempt > 0) log.info({ attempts: attempt + 1 }, 'view topic writable again');
        return true;
      } catch (err) {
        metrics.viewTopicPublishFailures.inc();
        const delay = Math.min(maxRetryMs, 200 * 2 ** Math.min(attempt, 10));
        if (attempt === 0) log.warn({ err, delayMs: delay }, 'could not publish to the view topic; retrying');
        await sleep(delay);
      }
    }
  }

  /**
   * One round (module comment, 1.): the oldest changes in the outbox, at most one per user, sent, then removed
   * with what the topic now holds in one transaction. An empty outbox moves the mark to the last commit.
   */
  async function round(): Promise<void> {
    outboxWaiting = false;
    // Looks a little past the round's size: a user with several changes waiting defers only its own later ones.
    const users = new Set<string>();
    const sent: ViewOutboxKey[] = [];
    const messages: OutgoingMessage[] = [];
    const held = new Map<string, bigint | null>();
    let left = false;
    let scanned = 0;
    for (const next of index.changes()) {
      if (messages.length >= chunk || scanned++ >= chunk * 4) {
        left = true;
        break;
      }
      if (users.has(next.userId)) {
        left = true;
        continue;
      }
      users.add(next.userId);
      const change = next();
      sent.push(change.key);
      if (change.value === null) {
        // A tombstone where the topic holds no value (the user never got one out) says nothing.
        if (index.held(change.userId) === undefined) continue;
        held.set(change.userId, null);
        messages.push({ key: change.userId, value: null });
      } else {
        held.set(change.userId, change.version);
        messages.push({ key: change.userId, value: change.value, headers: VIEW_HEADERS });
      }
    }
    backlog = left;
    if (left || sent.length > 0) outboxWaiting = true;
    if (sent.length === 0 && (captureDue !== undefined || index.mark() >= seen)) return;
    try {
      if (!(await send(messages))) return;
      await index.record({ held, sent, ...(captureDue === undefined ? { mark: {} } : {}) });
    } catch (err) {
      outboxWaiting = true;
      throw err;
    }
    for (const m of messages)
      metrics.viewTopicRecordsPublished.inc({ kind: m.value === null ? 'tombstone' : 'view' });
    refreshGauges();
  }

  /**
   * The capture (module comment, 2.): every user whose value the topic may not hold goes into the outbox at the
   * current sequence, every user it holds without a view gets a tombstone there; then the layout is recorded.
   * Exact only while nothing else commits (the wiring's call); concurrent calls share one run.
   */
  function capture(): Promise<void> {
    // One at a time; a call during one waits for it, then runs what became due meanwhile (another swap).
    if (capturing !== undefined) return capturing.then(capture, capture);
    const why = captureDue;
    if (why === undefined) return Promise.resolve();
    captureDue = undefined;
    const running = captureAll(why)
      .catch((err: unknown) => {
        captureDue ??= why;
        throw err;
      })
      .finally(() => {
        capturing = undefined;
      });
    capturing = running;
    return running;
  }

  async function captureAll(why: string): Promise<void> {
    // The last commit's sequence: a swap's own (it writes no outbox, so no change is overwritten), or at start
    // the last commit's, whose changes the values read now are. `sequence()` moves with each commit event;
    // the read snapshot's meta may still show the commit before a swap (readers switch generations inside
    // the swap's transaction) or already show a writer commit whose event is on its way: the larger of the two.
    const readAt = store.readSequence();
    const last = store.sequence();
    const at = readAt > last ? readAt : last;
    const target = layout;
    metrics.viewTopicCaptures.inc({ reason: why });
    const started = Date.now();
    log.info({ reason: why, sequence: at.toString() }, 'view topic capture started');
    // Users with changes waiting: what the topic will hold for them is not what it holds now.
    const waiting = index.pendingUsers();
    let users = 0;
    let gone = 0;
    for (let after: string | undefined; ;) {
      const page = store.userIdsPage(after, chunk);
      if (page.length === 0) break;
      after = page[page.length - 1];
      const changes = new Map<string, { version: bigint; value: string }>();
      for (const userId of page) {
        const view = store.getUser(userId);
        if (view === undefined) continue;
        const version = BigInt(view.version.sequence);
        if (!waiting.has(userId) && index.held(userId) === version) continue;
        changes.set(userId, { version, value: encodeUserValue(view) });
      }
      if (changes.size > 0) await index.enqueue(at, changes);
      users += changes.size;
    }
    for (let after: string | undefined; ;) {
      const page = index.page(after, chunk);
      if (page.length === 0) break;
      after = page[page.length - 1];
      const missing = page.filter((userId) => store.getUser(userId) === undefined);
      if (missing.length > 0) await index.enqueue(at, new Map(missing.map((userId) => [userId, null])));
      gone += missing.length;
    }
    // Users with changes waiting and no view, whom the topic does not hold yet: their last change is a
    // tombstone or will be followed by one they already have; nothing to add.
    await index.record({ mark: { layout: target } });
    outboxWaiting = true;
    totalsDirty = true;
    refreshGauges();
    kick();
    log.info(
      { reason: why, users, tombstones: gone, durationMs: Date.now() - started },
      'view topic capture finished',
    );
  }

  async function publishStatus(): Promise<void> {
    totalsDirty = false;
    heartbeatDue = false;
    lastStatusAt = Date.now();
    const own = options.status();
    const mark = index.mark();
    const producer: ProducerStatus = {
      id: store.instanceId,
      at: new Date().toISOString(),
      ready: own.ready,
      lag: own.lag,
      sequence: mark === 0n ? null : mark.toString(),
    };
    const message: OutgoingMessage = {
      key: Buffer.alloc(0),
      value: encodeStatusValue({ producer, totals: store.totals() ?? null }),
      headers: { [VIEW_HEADER]: STATUS_VIEW },
    };
    if (await send([message])) metrics.viewTopicRecordsPublished.inc({ kind: 'status' });
  }

  return {
    capture,
    start() {
      unsubscribe = store.onCommit(onCommit);
      // A capture (or the swap or rebuild that called for one) that did not finish before the last stop, or a
      // store from before the outbox.
      if (captureDue === undefined && index.layout() !== layout) captureDue = 'unfinished-at-start';
      heartbeat = setInterval(() => {
        heartbeatDue = true;
        kick();
      }, options.heartbeatMs);
      heartbeat.unref();
      refreshGauges();
      kick();
    },
    flush() {
      if (!pending() && pump === undefined) return Promise.resolve();
      return new Promise<void>((resolve) => {
        idleWaiters.push(resolve);
        kick();
      });
    },
    async close() {
      closed = true;
      clearInterval(heartbeat);
      unsubscribe();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        pump,
        new Promise((resolve) => (timer = setTimeout(resolve, options.closeWaitMs ?? 5_000))),
      ]);
      clearTimeout(timer);
      for (const w of idleWaiters.splice(0)) w();
    },
  };
}
