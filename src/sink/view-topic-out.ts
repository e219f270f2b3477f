/**
 * The view topic out (VIEW_TOPIC_OUT, docs/view-topic.md): publishes every committed change of the
 * UserInformation view to a Kafka topic, key = userId, value = the view as JSON (seed 002's fields plus
 * `version`), a tombstone when the user disappears, and a status record (empty key) carrying the totals and
 * this producer's heartbeat. Serving replicas (VIEW_TOPIC_IN) read it.
 *
 * A sink that follows commits (DESIGN.md): it listens to the store's commit events and reads what was
 * committed; it is never on a write transaction's path, and a slow or unreachable cluster never slows the
 * feed (changes wait as a set of users, at most one entry per user).
 *
 * Per key the topic never loses or reorders a change; it may repeat a value, and values committed between two
 * rounds go out as the newest of them (as changes within one commit already do). Why:
 * 1. One round at a time: the users changed since the last round are taken, each user's CURRENT value is read
 *    from the store when its message is built, and the messages go out in build order over one producer with
 *    one request in flight per broker (kafka-writer.ts). A later round reads a value at least as new, so per
 *    key the topic's order is the store's commit order, and its last value is the newest (what compaction
 *    keeps).
 * 2. What the topic holds is recorded in the store (published.ts): per user, the fingerprint of the seed 002
 *    JSON last acknowledged, and the mark (every commit up to it is published). Before a round is sent, its
 *    users are recorded as UNKNOWN (the topic may hold anything for them); after Kafka acknowledged the round,
 *    their fingerprints (or their removal, for tombstones) and the new mark. So a crash
 *    - after a commit, before its round was sent: the mark is behind the store's sequence;
 *    - after the send, before the acknowledgement was recorded: same, and those users are UNKNOWN.
 * 3. At start, a mark behind the store's sequence means a resync: every user with a view whose value differs
 *    from its fingerprint (UNKNOWN differs from everything) is published again, and every user the topic may
 *    hold who has no view any more gets a tombstone. Users whose current value (version included) is the one
 *    last published are not sent again. A generation swap or a view rebuild (which may change any user at
 *    once) triggers the same resync while running: the swap's event is a lazy diff that is only valid during
 *    the event, the fingerprints are not. A user the swap (or rebuild) recomputed unchanged keeps its version
 *    (src/store/versions.ts), so only the users it changed are published again, and the topic keeps serving
 *    exactly what this instance serves.
 * A round or resync whose send fails is retried (with backoff) until it is acknowledged: nothing is dropped.
 */
import { hash } from 'node:crypto';
import type { ChangelogWriter, OutgoingMessage } from '../feed/types.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { PublishedIndex } from '../store/published.js';
import { userChanges, type CommitEvent, type CommitListener } from '../store/types.js';
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

/** What the publisher needs of the store (`LmdbStore` has all of it). */
export interface PublishingStore {
  readonly instanceId: string;
  onCommit(listener: CommitListener): () => void;
  sequence(): bigint;
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
  /** Users per produce request (default 2,000). */
  readonly chunk?: number;
  /** Longest wait between retries of a failed send (default 10 s; the first waits 200 ms). */
  readonly maxRetryMs?: number;
  /** How long `close` waits for a round whose send has not returned (default 5 s). */
  readonly closeWaitMs?: number;
  /**
   * Shortest time between the starts of two rounds (default 100 ms). Each round adds two small store
   * transactions (module comment, 2.), which share LMDB's one writer with the commits: spacing them bounds
   * that cost however often commits come, and lets a round carry more users. It is added to the topic's
   * freshness at most.
   */
  readonly roundIntervalMs?: number;
}

/** The publisher, as the wiring drives it. */
export interface ViewTopicOut {
  /** Starts following commits and, when the mark is behind, resyncs. Call before anything commits. */
  start(): void;
  /** Resolves once every commit seen so far is published and recorded (tests; shutdown). */
  flush(): Promise<void>;
  /**
   * Stops: nothing new starts; the round in flight may finish (a send that does not return within
   * `closeWaitMs` is abandoned: what it did not record is published again after the next start).
   */
  close(): Promise<void>;
}

/** Fingerprint of a user the topic may hold anything for (in flight when a crash came). */
const UNKNOWN = Buffer.alloc(8);

/** 8 bytes of SHA-1 over a published value: what decides whether the topic's value is the current one. */
export const fingerprintOf = (value: Buffer): Buffer => {
  const fp = hash('sha1', value, 'buffer').subarray(0, 8);
  // UNKNOWN is reserved (a 2^-64 chance): a fingerprint that happens to be all zeros is made not to be.
  return fp.equals(UNKNOWN) ? Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]) : fp;
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createViewTopicOut(options: ViewTopicOutOptions): ViewTopicOut {
  const { store, index, writer, topic, metrics } = options;
  const log = options.logger.child({ component: 'view-topic-out', topic });
  const chunk = options.chunk ?? 2_000;
  const maxRetryMs = options.maxRetryMs ?? 10_000;
  const roundIntervalMs = options.roundIntervalMs ?? 100;
  let lastRoundAt = 0;

  let dirty = new Set<string>();
  let totalsDirty = true;
  let resync: string | undefined = options.fresh ? 'new-topic' : undefined;
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

  const pending = (): boolean => resync !== undefined || dirty.size > 0 || totalsDirty || heartbeatDue;

  const onCommit = (event: CommitEvent): void => {
    const now = layoutOf();
    if (now !== layout) {
      // A swap or a view rebuild: its event may be a lazy diff over every user, valid only now. The resync
      // compares every user with what the topic holds instead.
      layout = now;
      resync = 'swap-or-rebuild';
      dirty = new Set();
    } else {
      for (const userId of userChanges(event).keys()) dirty.add(userId);
    }
    if (event.views.has(TOTALS)) totalsDirty = true;
    if (event.sequence > seen) seen = event.sequence;
    refreshGauges();
    kick();
  };

  function refreshGauges(): void {
    metrics.viewTopicPendingUsers.set(dirty.size);
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
        if (resync !== undefined) await resyncAll();
        else if (dirty.size > 0) {
          const wait = lastRoundAt + roundIntervalMs - Date.now();
          if (wait > 0) await sleep(wait);
          if (closed) return;
          lastRoundAt = Date.now();
          await round();
        }
        if (closed) return;
        if (totalsDirty || heartbeatDue) await publishStatus();
        failures = 0;
      } catch (err) {
        // The store refused a write (its users are back in the set, or the resync is pending again): nothing is
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
   * Publishes the current value of `userIds` where the topic may not hold it, then records it (with `mark`,
   * when given, in the same transaction). Returns false when closed before the acknowledgement.
   */
  async function publishUsers(userIds: readonly string[], mark?: bigint): Promise<boolean> {
    const messages: OutgoingMessage[] = [];
    const after = new Map<string, Buffer | null>();
    for (const userId of userIds) {
      const view = store.getUser(userId);
      const held = index.fingerprint(userId);
      if (view === undefined) {
        if (held === undefined) continue;
        messages.push({ key: userId, value: null });
        after.set(userId, null);
        continue;
      }
      const value = Buffer.from(encodeUserValue(view));
      const fp = fingerprintOf(value);
      if (held !== undefined && held.equals(fp)) continue;
      messages.push({ key: userId, value, headers: { [VIEW_HEADER]: USER_INFORMATION } });
      after.set(userId, fp);
    }
    if (messages.length === 0) {
      if (mark !== undefined && mark > index.mark()) await index.record(new Map(), mark);
      return true;
    }
    // The topic may hold anything for these users until the acknowledgement is recorded (module comment, 2.).
    await index.record(new Map([...after.keys()].map((userId) => [userId, UNKNOWN])));
    if (!(await send(messages))) return false;
    await index.record(after, mark);
    for (const m of messages)
      metrics.viewTopicRecordsPublished.inc({ kind: m.value === null ? 'tombstone' : 'view' });
    return true;
  }

  async function round(): Promise<void> {
    const upTo = seen;
    const userIds = [...dirty];
    dirty = new Set();
    refreshGauges();
    // Every user changed by a commit up to `upTo` is published once the last chunk is: its mark. (A swap
    // meanwhile does not make that untrue; its resync records its own mark.)
    try {
      for (let i = 0; i < userIds.length; i += chunk) {
        const last = i + chunk >= userIds.length;
        if (!(await publishUsers(userIds.slice(i, i + chunk), last ? upTo : undefined))) return;
      }
    } catch (err) {
      for (const userId of userIds) dirty.add(userId);
      throw err;
    }
    refreshGauges();
  }

  async function resyncAll(): Promise<void> {
    const why = resync ?? 'resync';
    const upTo = seen;
    resync = undefined;
    dirty = new Set();
    totalsDirty = true;
    metrics.viewTopicResyncs.inc({ reason: why });
    const started = Date.now();
    log.info(
      { reason: why, mark: index.mark().toString(), sequence: upTo.toString() },
      'view topic resync started',
    );
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
    // Closed (nothing more is recorded), or another swap meanwhile (it starts over): no mark.
    if (closed || resync !== undefined) return;
    await index.record(new Map(), upTo);
    refreshGauges();
    log.info(
      { reason: why, users, tombstones: gone, durationMs: Date.now() - started },
      'view topic resync finished',
    );
  }

  /** Every user with a view, then every user the topic may hold without one: published where needed. */
  async function resyncPages(onUsers: (n: number) => void, onGone: (n: number) => void): Promise<void> {
    for (let after: string | undefined; ;) {
      const page = store.userIdsPage(after, chunk);
      if (page.length === 0) break;
      after = page[page.length - 1];
      if (!(await publishUsers(page)) || resync !== undefined) return;
      onUsers(page.length);
    }
    for (let after: string | undefined; ;) {
      const page = index.page(after, chunk);
      if (page.length === 0) break;
      after = page[page.length - 1];
      const missing = page.filter((userId) => store.getUser(userId) === undefined);
      if (!(await publishUsers(missing)) || resync !== undefined) return;
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
      if (resync === undefined && index.mark() < store.sequence()) resync = 'unpublished-at-start';
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
