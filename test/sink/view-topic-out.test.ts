/**
 * Issue 19, the view topic out (src/sink/view-topic-out.ts) on a real store and an in-memory topic: every
 * committed value is published, per key in commit order, a tombstone when a user disappears; after a crash
 * in either window (after the commit before the produce, after the produce before it is recorded) the restart
 * sends what the topic may lack from the view outbox, deleted users included; a generation swap publishes
 * exactly the users it changed. The topic may repeat a value, never skip or reorder one: per key, the topic
 * with repeats removed is exactly the list of committed values.
 */
import { describe, expect, it } from 'vitest';
import type { ChangelogWriter, OutgoingMessage } from '../../src/feed/types.js';
import { silentLogger } from '../../src/ops/logger.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { openStore, type LmdbStore } from '../../src/store/lmdb-store.js';
import { userChanges } from '../../src/store/types.js';
import type { PublishedIndex } from '../../src/store/published.js';
import { createViewTopicOut, type ViewTopicOut } from '../../src/sink/view-topic-out.js';
import { STATUS_VIEW, VIEW_HEADER } from '../../src/views/view-record.js';
import { commitInput, follow, profile, tweet, type TestRecord } from '../utils/changes.js';
import { eventually } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';

const TOPIC = 'user-information';

interface Sent {
  key: string;
  value: Record<string, unknown> | null;
  status: boolean;
}

/**
 * An in-memory topic. `mode` decides what a send does: land and ack; hang before landing, or land and hang
 * (a process killed there); fail; or wait for `open()` and then land.
 */
class MemoryTopic implements ChangelogWriter {
  readonly log: Sent[] = [];
  mode: 'ok' | 'hang-before' | 'hang-after' | 'fail' | 'gate' = 'ok';
  sends = 0;
  private gate: Promise<void> | undefined;
  private opened: () => void = () => undefined;
  close_(): void {
    this.gate = new Promise((resolve) => (this.opened = resolve));
  }
  open(): void {
    this.opened();
  }
  async send(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    expect(topic).toBe(TOPIC);
    this.sends++;
    if (this.mode === 'fail') throw new Error('broker gone');
    if (this.mode === 'hang-before') return new Promise(() => undefined);
    if (this.mode === 'gate') await this.gate;
    for (const m of messages)
      this.log.push({
        key: Buffer.isBuffer(m.key) ? m.key.toString() : String(m.key),
        value: m.value === null ? null : (JSON.parse(m.value.toString()) as Record<string, unknown>),
        status: m.headers?.[VIEW_HEADER]?.toString() === STATUS_VIEW,
      });
    if (this.mode === 'hang-after') return new Promise(() => undefined);
  }
  async close(): Promise<void> {}

  /** The last value per user key (what compaction keeps; tombstones remove the key). */
  compacted(): Map<string, Record<string, unknown>> {
    const out = new Map<string, Record<string, unknown>>();
    for (const s of this.log)
      if (!s.status) {
        if (s.value === null) out.delete(s.key);
        else out.set(s.key, s.value);
      }
    return out;
  }

  users(): Sent[] {
    return this.log.filter((s) => !s.status);
  }

  lastStatus(): Record<string, unknown> | undefined {
    return [...this.log].reverse().find((s) => s.status)?.value ?? undefined;
  }
}

async function publisher(
  store: LmdbStore,
  topic: MemoryTopic,
  adapt: (index: PublishedIndex) => PublishedIndex = (index) => index,
  capture = true,
): Promise<ViewTopicOut> {
  const opened = await store.publishedIndex(TOPIC);
  const index = adapt(opened.index);
  const fresh = opened.fresh;
  const out = createViewTopicOut({
    store,
    index,
    fresh,
    writer: topic,
    topic: TOPIC,
    heartbeatMs: 60_000,
    status: () => ({ ready: true, lag: '0' }),
    metrics: createMetrics({ defaultMetrics: false }),
    logger: silentLogger,
    chunk: 3,
    maxRetryMs: 20,
    // A hanging send is abandoned at once on close (the crash tests close a publisher stuck in one).
    closeWaitMs: 20,
  });
  out.start();
  // As the wiring does before the feed starts.
  if (capture) await out.capture();
  return out;
}

/** What the store serves, as the topic should hold it (seed 002 fields and version). */
function served(store: LmdbStore): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  for (let after: string | undefined; ;) {
    const page = store.userIdsPage(after, 100);
    if (page.length === 0) return out;
    after = page[page.length - 1];
    for (const id of page)
      out.set(id, JSON.parse(JSON.stringify(store.getUser(id))) as Record<string, unknown>);
  }
}

/** Every value committed per user, in commit order (null: gone), as JSON: what the topic must carry. */
function committedValues(store: LmdbStore, into = new Map<string, (string | null)[]>()) {
  store.onCommit((event) => {
    for (const [userId, view] of userChanges(event)) {
      const list = into.get(userId) ?? [];
      list.push(view === null ? null : JSON.stringify(view));
      into.set(userId, list);
    }
  });
  return into;
}

/** Per key, the topic with consecutive repeats removed is exactly `committed` (nothing skipped or reordered). */
function expectEveryValue(
  topic: MemoryTopic,
  committed: ReadonlyMap<string, readonly (string | null)[]>,
): void {
  const carried = new Map<string, (string | null)[]>();
  for (const s of topic.users()) {
    const list = carried.get(s.key) ?? [];
    const value = s.value === null ? null : JSON.stringify(s.value);
    if (list.length === 0 || list[list.length - 1] !== value) list.push(value);
    carried.set(s.key, list);
  }
  expect(Object.fromEntries(carried)).toEqual(Object.fromEntries(committed));
}

/** Per key, the versions of the published values never go down (repeats allowed). */
function expectNoRegression(topic: MemoryTopic): void {
  const last = new Map<string, bigint>();
  for (const s of topic.users()) {
    if (s.value === null) continue;
    const seq = BigInt((s.value['version'] as { sequence: string }).sequence);
    expect(seq, `user ${s.key}`).toBeGreaterThanOrEqual(last.get(s.key) ?? 0n);
    last.set(s.key, seq);
  }
}

let offset = 0;
const at = (records: Omit<TestRecord, 'offset'>[]) =>
  commitInput(records.map((r) => ({ ...r, offset: offset++ })));

describe('the view topic out', () => {
  it('should publish every committed change, a tombstone for a user gone, and the totals', async () => {
    const store = openStore({ path: tempDir() });
    const topic = new MemoryTopic();
    const out = await publisher(store, topic);
    const committed = committedValues(store);
    await store.applyBatch(
      at([
        { table: 'users', key: 'a', row: profile('alice') },
        { table: 'users', key: 'b', row: profile('bob') },
        { table: 'tweets', key: 't1', row: tweet('a') },
      ]),
    );
    await out.flush();
    await store.applyBatch(at([{ table: 'follows', key: 'f1', row: follow('b', 'a') }]));
    await store.applyBatch(at([{ table: 'users', key: 'b', row: null }]));
    // A commit that changes nobody's view publishes nothing for users.
    await store.applyBatch(at([{ table: 'tweets', key: 't-unknown', row: null }]));
    await out.flush();
    expect(topic.compacted()).toEqual(served(store));
    const history = (key: string) =>
      topic
        .users()
        .filter((s) => s.key === key)
        .map((s) =>
          s.value === null
            ? null
            : `${String(s.value['followerCount'])}/${String(s.value['followingCount'])}`,
        );
    // Per key, every committed value in commit order, ending with the current one (b's follow and its delete
    // came in one round: both go out, in two).
    expect(history('a')).toEqual(['0/0', '1/0']);
    expect(history('b')).toEqual(['0/0', '0/1', null]);
    expectEveryValue(topic, committed);
    // The status goes out when the totals change (and on the heartbeat), naming what was published by then.
    expect(topic.lastStatus()).toMatchObject({
      producer: { id: store.instanceId, ready: true, lag: '0' },
      totals: { users: 1, tweets: 1, follows: 1, likes: 0 },
    });
    const { index } = await store.publishedIndex(TOPIC);
    expect({ mark: index.mark(), published: index.size() }).toEqual({ mark: store.sequence(), published: 1 });
    await out.close();
    await store.close();
  });

  it('should publish every value of a user changed by several commits during a round, in order', async () => {
    const store = openStore({ path: tempDir() });
    const topic = new MemoryTopic();
    const out = await publisher(store, topic);
    await store.applyBatch(at([{ table: 'users', key: 'a', row: profile('alice') }]));
    await out.flush();
    topic.mode = 'gate';
    topic.close_();
    await store.applyBatch(at([{ table: 'users', key: 'x', row: profile('x') }]));
    // While that round waits for Kafka, a tweets twice: both values go out, one round each.
    await store.applyBatch(at([{ table: 'tweets', key: 't1', row: tweet('a') }]));
    await store.applyBatch(at([{ table: 'tweets', key: 't2', row: tweet('a') }]));
    topic.open();
    await out.flush();
    expect(topic.users().map((s) => [s.key, s.value?.['tweetCount']])).toEqual([
      ['a', 0],
      ['x', 0],
      ['a', 1],
      ['a', 2],
    ]);
    expect(topic.compacted()).toEqual(served(store));
    await out.close();
    await store.close();
  });

  it.each(['hang-before', 'hang-after'] as const)(
    'should republish after a crash with the send %s landing, deletes included, never going back',
    async (mode) => {
      const path = tempDir();
      let store = openStore({ path });
      const topic = new MemoryTopic();
      let out = await publisher(store, topic);
      const committed = committedValues(store);
      await store.applyBatch(
        at([
          { table: 'users', key: 'a', row: profile('alice') },
          { table: 'users', key: 'b', row: profile('bob') },
          { table: 'users', key: 'c', row: profile('carol') },
        ]),
      );
      await out.flush();
      // The next round's send hangs: before reaching Kafka, or after landing without its acknowledgement.
      topic.mode = mode;
      const sends = topic.sends;
      await store.applyBatch(
        at([
          { table: 'users', key: 'b', row: null },
          { table: 'tweets', key: 't1', row: tweet('a') },
          { table: 'users', key: 'd', row: profile('dave') },
        ]),
      );
      await eventually(() => (topic.sends > sends ? true : undefined), 10_000, 'the round to be sent');
      // Then carol goes, and so does dave, whose value may have reached the topic but is not recorded as there.
      await store.applyBatch(
        at([
          { table: 'users', key: 'c', row: null },
          { table: 'users', key: 'd', row: null },
        ]),
      );
      // The process dies here: nothing after the hanging send runs (the publisher never returns from it and
      // records nothing more). The store keeps its commits.
      await out.close();
      await store.close();

      store = openStore({ path });
      topic.mode = 'ok';
      out = await publisher(store, topic);
      await out.flush();
      expect(topic.compacted()).toEqual(served(store));
      expect([...topic.compacted().keys()].sort()).toEqual(['a']);
      expectNoRegression(topic);
      // dave's value and tombstone both went out, though the round carrying his value never returned.
      expectEveryValue(topic, committed);
      const { index } = await store.publishedIndex(TOPIC);
      expect(index.mark()).toBe(store.sequence());
      // Nothing acknowledged was sent again: alice's first value only once, before the crash.
      expect(topic.users().filter((s) => s.key === 'a' && s.value?.['tweetCount'] === 0)).toHaveLength(1);
      await out.close();
      await store.close();
    },
  );

  it('should keep retrying a send the cluster refuses, and lose nothing', async () => {
    const store = openStore({ path: tempDir() });
    const topic = new MemoryTopic();
    topic.mode = 'fail';
    const out = await publisher(store, topic);
    await store.applyBatch(at([{ table: 'users', key: 'a', row: profile('alice') }]));
    while (topic.sends < 3) await new Promise((resolve) => setTimeout(resolve, 10));
    topic.mode = 'ok';
    await out.flush();
    expect(topic.compacted()).toEqual(served(store));
    await out.close();
    await store.close();
  });

  it('should keep a round whose record the store refused, and publish it again', async () => {
    const store = openStore({ path: tempDir() });
    const topic = new MemoryTopic();
    let refusals = 0;
    const out = await publisher(store, topic, (index) => {
      const record = index.record.bind(index);
      index.record = async (ack) => {
        // The acknowledgement of the first round with users cannot be recorded (disk full, say).
        if ((ack.sent?.length ?? 0) > 0 && refusals++ === 0) throw new Error('MDB_MAP_FULL');
        return record(ack);
      };
      return index;
    });
    await store.applyBatch(at([{ table: 'users', key: 'a', row: profile('alice') }]));
    await out.flush();
    expect(refusals).toBeGreaterThan(1);
    expect(topic.users().map((s) => s.key)).toEqual(['a', 'a']);
    expect(topic.compacted()).toEqual(served(store));
    const { index } = await store.publishedIndex(TOPIC);
    expect(index.mark()).toBe(store.sequence());
    await out.close();
    await store.close();
  });

  it('should send the changes committed before a swap, the swap, then later changes: every value', async () => {
    const store = openStore({ path: tempDir() });
    const topic = new MemoryTopic();
    const out = await publisher(store, topic);
    const committed = committedValues(store);
    const users: TestRecord[] = [
      { table: 'users', key: 'a', row: profile('alice'), offset: 0 },
      { table: 'users', key: 'b', row: profile('bob'), offset: 1 },
    ];
    await store.applyBatch(commitInput(users));
    await out.flush();
    // The topic stalls: a tweets twice, then a swap changes b (and leaves a as it is).
    topic.mode = 'gate';
    topic.close_();
    await store.applyBatch(commitInput([{ table: 'tweets', key: 't1', row: tweet('a'), offset: 0 }]));
    await store.applyBatch(commitInput([{ table: 'tweets', key: 't2', row: tweet('a'), offset: 1 }]));
    const { generation } = await store.beginShadow('requested');
    await store.applyBatch(
      commitInput([
        users[0]!,
        { table: 'users', key: 'b', row: profile('bob', { location: 'Oslo' }), offset: 1 },
        { table: 'tweets', key: 't1', row: tweet('a'), offset: 0 },
        { table: 'tweets', key: 't2', row: tweet('a'), offset: 1 },
      ]),
      generation,
    );
    expect((await store.trySwap(generation, [])).swapped).toBe(true);
    // What the wiring does inside the swap's hold of the live feed: nothing commits until it is done.
    await out.capture();
    // After the swap, b changes again through the feed.
    await store.applyBatch(commitInput([{ table: 'tweets', key: 't3', row: tweet('b'), offset: 2 }]));
    topic.open();
    await out.flush();
    expect(topic.compacted()).toEqual(served(store));
    expectNoRegression(topic);
    const history = (key: string) =>
      topic
        .users()
        .filter((s) => s.key === key)
        .map((s) => `${String(s.value?.['tweetCount'])} ${String(s.value?.['location'] ?? '-')}`);
    // a's two values went out before the swap (the capture repeats the last one: a had changes waiting), then
    // b's value at the swap, then its change after it.
    expect(history('a')).toEqual(['0 -', '1 -', '2 -', '2 -']);
    expect(history('b')).toEqual(['0 -', '0 Oslo', '1 Oslo']);
    expectEveryValue(topic, committed);
    await out.close();
    await store.close();
  });

  it('should send again at start what a round in flight carried, never going back', async () => {
    const path = tempDir();
    let store = openStore({ path });
    await store.applyBatch(
      at([
        { table: 'users', key: 'a', row: profile('alice') },
        { table: 'users', key: 'b', row: profile('bob') },
        { table: 'users', key: 'c', row: profile('carol') },
        { table: 'users', key: 'd', row: profile('dave') },
      ]),
    );
    const topic = new MemoryTopic();
    // The new topic's capture put all four in the outbox; the first round (3 of them) lands, but the process
    // dies before it is recorded.
    topic.mode = 'hang-after';
    let out = await publisher(store, topic);
    await eventually(() => (topic.sends > 0 ? true : undefined), 10_000, 'the first round to be sent');
    await store.applyBatch(at([{ table: 'users', key: 'a', row: null }]));
    await out.close();
    await store.close();

    store = openStore({ path });
    topic.mode = 'ok';
    out = await publisher(store, topic);
    await out.flush();
    expect(topic.compacted()).toEqual(served(store));
    expect([...topic.compacted().keys()].sort()).toEqual(['b', 'c', 'd']);
    expectNoRegression(topic);
    const { index } = await store.publishedIndex(TOPIC);
    expect({ mark: index.mark(), layout: index.layout(), outbox: index.outboxSize() }).toEqual({
      mark: store.sequence(),
      layout: `${store.activeGeneration().id}#${store.activeGeneration().info.views['user-information']!.build}`,
      outbox: 0,
    });
    await out.close();
    await store.close();
  });

  it('should capture again at start when a capture was interrupted, and lose nothing', async () => {
    const path = tempDir();
    let store = openStore({ path });
    await store.applyBatch(
      at(['a', 'b', 'c', 'd', 'e'].map((key) => ({ table: 'users' as const, key, row: profile(key) }))),
    );
    const topic = new MemoryTopic();
    // The new topic's capture writes its first page (3 users), then every write fails (the process is dying).
    let pages = 0;
    const dying = await publisher(
      store,
      topic,
      (index) => {
        const enqueue = index.enqueue.bind(index);
        index.enqueue = async (sequence, changes) => {
          if (pages++ >= 1) throw new Error('killed');
          return enqueue(sequence, changes);
        };
        return index;
      },
      false,
    );
    await expect(dying.capture()).rejects.toThrow('killed');
    await dying.close();
    await store.close();

    store = openStore({ path });
    const out = await publisher(store, topic);
    await out.flush();
    expect(topic.compacted()).toEqual(served(store));
    // The second capture wrote the first page again under the same keys (nothing committed in between): each
    // user once, d and e included, which the first one never reached.
    expect(topic.users().map((s) => s.key)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expectNoRegression(topic);
    await out.close();
    await store.close();
  });

  it('should publish what a generation swap changed, tombstones included', async () => {
    const store = openStore({ path: tempDir() });
    const topic = new MemoryTopic();
    const out = await publisher(store, topic);
    const records: TestRecord[] = [
      { table: 'users', key: 'a', row: profile('alice'), offset: 0 },
      { table: 'users', key: 'b', row: profile('bob'), offset: 1 },
      { table: 'users', key: 'c', row: profile('carol'), offset: 2 },
      { table: 'tweets', key: 't1', row: tweet('a'), offset: 0 },
    ];
    await store.applyBatch(commitInput(records));
    await out.flush();
    const sentBefore = topic.users().length;
    // The rebuilt generation differs: b is gone, c has another profile, a is the same.
    const { generation } = await store.beginShadow('requested');
    await store.applyBatch(
      commitInput([
        records[0]!,
        { table: 'users', key: 'c', row: profile('carol', { location: 'Paris' }), offset: 2 },
        records[3]!,
      ]),
      generation,
    );
    const swap = await store.trySwap(generation, []);
    expect(swap.swapped).toBe(true);
    await out.capture();
    await out.flush();
    expect(topic.compacted()).toEqual(served(store));
    expect(
      topic
        .users()
        .slice(sentBefore)
        .map((s) => [s.key, s.value?.['location'] ?? null]),
    ).toEqual([
      ['b', null],
      ['c', 'Paris'],
    ]);
    // a came out of the rebuild unchanged: it keeps its version and is not sent again; c reads with the
    // swap's sequence (the commit that made its new value visible).
    expect(topic.users()[sentBefore + 1]!.value!['version']).toMatchObject({
      sequence: swap.sequence!.toString(),
    });
    expectNoRegression(topic);
    await out.close();
    await store.close();
  });
});
