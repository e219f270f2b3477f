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
 * 2. A resync compares every user with what the topic holds (per user: the fingerprint of the value and its
 *    version, published.ts) and sends the current value where it differs, tombstones for users the topic
 *    holds without a view. It runs for a new topic, after a generation swap or a view rebuild (they may change
 *    any user at once and write no outbox: their event is a lazy diff), and at start when one did not finish
 *    (or the store is from before the outbox). At a swap seen running, the changes committed before it go out
 *    first, as rounds; then the resync; rounds wait while it runs. Afterwards a change in the outbox older
 *    than the version the topic holds for its user is passed over (the resync sent something newer), so per
 *    key nothing goes backwards. The one place values are collapsed: a user the swap changed and a later
 *    commit changed again before the resync read it goes from its pre-swap value to the one read.
 *    A resync's sends are recorded as UNKNOWN before they go out, so a crash in flight still leaves a trace of
 *    users the topic may hold, and the resync runs again at start.
 * A send that fails is retried (with backoff) until it is acknowledged: nothing is dropped.
 */
import { hash } from 'node:crypto';
import type { ChangelogWriter, OutgoingMessage } from '../feed/types.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import {
  TOMBSTONE,
  UNKNOWN,
  type Held,
  type PublishedIndex,
  type ViewOutboxKey,
} from '../store/published.js';
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
  /** Starts following commits and, when a resync did not finish, resyncs. Call before anything commits. */
  start(): void;
  /** Resolves once every commit seen so far is published and recorded (tests; shutdown). */
  flush(): Promise<void>;
  /**
   * Stops: nothing new starts; the round in flight may finish (a send that does not return within
   * `closeWaitMs` is abandoned: what it did not record is published again after the next start).
   */
  close(): Promise<void>;
}

/** 8 bytes of SHA-1 over a published value: what decides whether the topic's value is the current one. */
export const fingerprintOf = (value: Buffer): Buffer => {
  const fp = hash('sha1', value, 'buffer').subarray(0, 8);
  // UNKNOWN and TOMBSTONE are reserved (a 2^-63 chance): a fingerprint that happens to be one is made not to be.
  return fp.equals(UNKNOWN) || fp.equals(TOMBSTONE) ? Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]) : fp;
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createViewTopicOut(options: ViewTopicOutOptions): ViewTopicOut {
  const { store, index, writer, topic, metrics } = options;
  const log = options.logger.child({ component: 'view-topic-out', topic });
  const chunk = options.chunk ?? 2_000;
  const maxRetryMs = options.maxRetryMs ?? 10_000;
  const roundIntervalMs = options.roundIntervalMs ?? 100;
  let lastRoundAt = 0;

  /** A commit since the last round: the outbox may hold changes, or the mark may move. */
  let outboxWaiting = true;
  /** The last round left changes behind: the next one starts at once. */
  let backlog = false;
  let totalsDirty = true;
  let resync: string | undefined = options.fresh ? 'new-topic' : undefined;
  /** A swap or rebuild seen running: changes committed before it are sent before the resync. */
  let resyncAfter: bigint | undefined;
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

  const pending = (): boolean => resync !== undefined || outboxWaiting || totalsDirty || heartbeatDue;

  const onCommit = (event: CommitEvent): void => {
    const now = layoutOf();
    if (now !== layout) {
      // A swap or a view rebuild: its event may be a lazy diff over every user, valid only now, and it wrote
      // no outbox. The resync compares every user with what the topic holds instead.
      layout = now;
      if (resync === undefined) resyncAfter = event.sequence;
      resync = 'swap-or-rebuild';
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
        if (resync !== undefined) {
          // Changes committed before the swap go out first, as they were committed.
          const [oldest] = resyncAfter === undefined ? [] : index.pending(1);
          if (oldest !== undefined && resyncAfter !== undefined && oldest.sequence < resyncAfter)
            await round();
          else {
            resyncAfter = undefined;
            await resyncAll();
          }
        } else if (outboxWaiting) {
          const wait = lastRoundAt + roundIntervalMs - Date.now();
          if (wait > 0 && !backlog) await sleep(wait);
          if (closed) return;
          lastRoundAt = Date.now();
          await round();
        }
        if (closed) return;
        if (totalsDirty || heartbeatDue) await publishStatus();
        failures = 0;
      } catch (err) {
        // The store refused a write (the round stays in the outbox, or the resync is pending again): nothing is
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

  const countPublished = (messages: readonly OutgoingMessage[]): void => {
    for (const m of messages)
      metrics.viewTopicRecordsPublished.inc({ kind: m.value === null ? 'tombstone' : 'view' });
  };

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
    const held = new Map<string, Held | null>();
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
      const was = index.heldVersion(change.userId);
      // Older than what the topic holds (a resync sent something newer): passed over.
      if (was !== undefined && change.sequence < was.version) continue;
      if (change.value === null) {
        // A tombstone where the topic holds no value (never published, or a resync's tombstone) says nothing.
        if (was === undefined) continue;
        held.set(change.userId, null);
        if (was.tombstone) continue;
        messages.push({ key: change.userId, value: null });
      } else {
        held.set(change.userId, { fingerprint: fingerprintOf(change.value), version: change.sequence });
        messages.push({ key: change.userId, value: change.value, headers: VIEW_HEADERS });
      }
    }
    backlog = left;
    if (left || sent.length > 0) outboxWaiting = true;
    if (sent.length === 0 && (resync !== undefined || index.mark() >= seen)) return;
    try {
      if (!(await send(messages))) return;
      await index.record({ held, sent, ...(resync === undefined ? { mark: {} } : {}) });
    } catch (err) {
      outboxWaiting = true;
      throw err;
    }
    countPublished(messages);
    refreshGauges();
  }

  /**
   * A resync's page: publishes the current value of `userIds` where the topic may not hold it, then records it.
   * Returns false when closed before the acknowledgement.
   */
  async function publishCurrent(userIds: readonly string[]): Promise<boolean> {
    const messages: OutgoingMessage[] = [];
    const after = new Map<string, Held>();
    // In the same synchronous stretch as the reads below: no change of a user gone by then may follow its
    // tombstone.
    const readAt = store.readSequence();
    for (const userId of userIds) {
      const view = store.getUser(userId);
      const was = index.held(userId);
      if (view === undefined) {
        if (was === undefined || was.fingerprint.equals(TOMBSTONE)) continue;
        messages.push({ key: userId, value: null });
        after.set(userId, { fingerprint: TOMBSTONE, version: readAt });
        continue;
      }
      const value = Buffer.from(encodeUserValue(view));
      const fp = fingerprintOf(value);
      if (was !== undefined && was.fingerprint.equals(fp)) continue;
      messages.push({ key: userId, value, headers: VIEW_HEADERS });
      after.set(userId, { fingerprint: fp, version: BigInt(view.version.sequence) });
    }
    if (messages.length === 0) return true;
    // The topic may hold anything for these users until the acknowledgement is recorded (module comment, 2.).
    await index.record({
      held: new Map([...after].map(([userId, h]) => [userId, { fingerprint: UNKNOWN, version: h.version }])),
    });
    if (!(await send(messages))) return false;
    await index.record({ held: after });
    countPublished(messages);
    return true;
  }

  async function resyncAll(): Promise<void> {
    const why = resync ?? 'resync';
    const upTo = seen;
    metrics.viewTopicResyncs.inc({ reason: why });
    const started = Date.now();
    log.info(
      { reason: why, mark: index.mark().toString(), sequence: upTo.toString() },
      'view topic resync started',
    );
    resync = undefined;
    const target = layout;
    totalsDirty = true;
    let users = 0;
    let gone = 0;
    try {
      await resyncPages(
        (n) => (users += n),
        (n) => (gone += n),
      );
    } catch (err) {
      resync ??= why;
      throw err;
    }
    // Closed (nothing more is recorded), or another swap meanwhile (it starts over): not finished.
    if (closed || resync !== undefined) return;
    await index.record({ mark: { layout: target } });
    const pruned = await index.pruneTombstones();
    outboxWaiting = true;
    refreshGauges();
    log.info(
      { reason: why, users, tombstones: gone, pruned, durationMs: Date.now() - started },
      'view topic resync finished',
    );
  }

  /** Every user with a view, then every user the topic may hold without one: published where needed. */
  async function resyncPages(onUsers: (n: number) => void, onGone: (n: number) => void): Promise<void> {
    for (let after: string | undefined; ;) {
      const page = store.userIdsPage(after, chunk);
      if (page.length === 0) break;
      after = page[page.length - 1];
      if (!(await publishCurrent(page)) || resync !== undefined) return;
      onUsers(page.length);
    }
    for (let after: string | undefined; ;) {
      const page = index.page(after, chunk);
      if (page.length === 0) break;
      after = page[page.length - 1];
      const missing = page.filter((userId) => store.getUser(userId) === undefined);
      if (!(await publishCurrent(missing)) || resync !== undefined) return;
      onGone(missing.length);
    }
  }

  async function publishStatus(): Promise<void> {
    totalsDirty = false;
    heartbeatDue = false;
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
    start() {
      unsubscribe = store.onCommit(onCommit);
      // A resync (or the swap or rebuild that called for one) that did not finish before the last stop, or a
      // store from before the outbox.
      if (resync === undefined && index.layout() !== layout) resync = 'unfinished-at-start';
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
