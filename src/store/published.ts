/**
 * What the view topic holds and what it still lacks, as far as this store knows (VIEW_TOPIC_OUT,
 * src/sink/view-topic-out.ts). Outside every generation (a swap does not change what the topic holds), in the
 * store's environment so it is copied by snapshots with the rest.
 *
 * - database `view-outbox`: every committed change of a user's view not yet acknowledged by the topic, written
 *   by the commit itself (writeViewOutbox, in the commit's transaction: write.ts) while the store publishes.
 *   Keys `[sequence (20 digits), userId]` sort in commit order; the value is the byte `1`, the value's version
 *   sequence (8 bytes, big-endian) and the record's value (seed 002's JSON with its version), or the byte `0`
 *   for a tombstone. The publisher removes entries in
 *   the transaction that records their acknowledgement, so a crash anywhere leaves every change not known to
 *   be published in the outbox: none is skipped, some may be sent twice.
 * - database `view-topic/<topic>`: userId → the version sequence of the value the topic holds for the user (8
 *   bytes, big-endian), recorded with the acknowledgement (a user's version names the commit that last
 *   changed it, so an equal version is an equal value: src/store/versions.ts). It is what
 *   lets a capture (a new topic, a generation swap, a view rebuild, a store from before the outbox) find the
 *   users whose published value is out of date, deleted users included: the views alone cannot say which
 *   users the topic still holds after their users row went away.
 * - meta `viewTopic.topic`: the topic published to (commits write the outbox while it is set);
 *   `viewTopic.mark`: every commit up to this sequence has been published; `viewTopic.layout`: the generation
 *   and UserInformation build the last finished capture compared against (another one at start: a capture
 *   did not finish, or a swap or rebuild came after it).
 */
import type { Database, RootDatabase } from 'lmdb';
import type { UserInformation } from '../views/user-information.js';
import { encodeUserValue } from '../views/view-record.js';
import { entryCount, writeTransaction } from './environment.js';
import { keysAfter } from './reads.js';
import { stringKeyed } from './string-keys.js';
import { readFast } from './fast-read.js';

export const VIEW_TOPIC_KEY = 'viewTopic.topic';
const MARK_KEY = 'viewTopic.mark';
const LAYOUT_KEY = 'viewTopic.layout';
const dbName = (topic: string): string => `view-topic/${topic}`;

/** `[commit sequence (20 digits, so that it sorts as a number), userId]`. */
export type ViewOutboxKey = [sequence: string, userId: string];
export type ViewOutbox = Database<Buffer, ViewOutboxKey>;

export const viewOutboxOf = (env: RootDatabase): ViewOutbox =>
  env.openDB<Buffer, ViewOutboxKey>({ name: 'view-outbox', encoding: 'binary' });

const TOMBSTONE_ENTRY = Buffer.from([0]);

const sequenceKey = (sequence: bigint): string => sequence.toString().padStart(20, '0');

/**
 * Inside a commit's transaction: when the store publishes a view topic, the users the commit changed, with
 * their new values (null: the users row is gone). A commit that is not visible (a shadow generation) writes
 * none: a swap is published by a capture (src/sink/view-topic-out.ts).
 */
export function writeViewOutbox(
  meta: Database<string, string>,
  outbox: ViewOutbox,
  sequence: bigint,
  changes: ReadonlyMap<string, UserInformation | null> | undefined,
): void {
  if (changes === undefined || changes.size === 0 || meta.get(VIEW_TOPIC_KEY) === undefined) return;
  const seq = sequenceKey(sequence);
  for (const [userId, view] of changes)
    void outbox.put(
      [seq, userId],
      view === null ? TOMBSTONE_ENTRY : entryOf(BigInt(view.version.sequence), encodeUserValue(view)),
    );
}

/** An outbox entry for a value: `1`, its version, its bytes. */
function entryOf(version: bigint, value: string): Buffer {
  const bytes = Buffer.from(value);
  const out = Buffer.allocUnsafe(9 + bytes.length);
  out[0] = 1;
  out.writeBigUInt64BE(version, 1);
  bytes.copy(out, 9);
  return out;
}

/** One change waiting in the view outbox. */
export interface PendingChange {
  readonly key: ViewOutboxKey;
  readonly sequence: bigint;
  readonly userId: string;
  /** The record's value, null for a tombstone. */
  readonly value: Buffer | null;
  /** The value's version sequence (0 for a tombstone). */
  readonly version: bigint;
}

const versionBytes = (version: bigint): Buffer => {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(version);
  return out;
};

/** What to record once Kafka acknowledged a send. */
export interface Acknowledged {
  /** Per user, the version of the value the topic now holds (null: nothing, a tombstone was sent). */
  readonly held?: ReadonlyMap<string, bigint | null>;
  /** Outbox entries sent (or passed over: a tombstone for a user the topic holds nothing for). */
  readonly sent?: readonly ViewOutboxKey[];
  /**
   * Move the mark: to the commit before the oldest change left in the outbox, or to the store's sequence
   * when none is left; `layout`: and record that a capture against that layout finished.
   */
  readonly mark?: { readonly layout?: string };
}

export class PublishedIndex {
  private readonly db: Database<Buffer, string>;
  private readonly outbox: ViewOutbox;

  private constructor(
    private readonly env: RootDatabase,
    private readonly meta: Database<string, string>,
    readonly topic: string,
  ) {
    this.db = env.openDB<Buffer, string>(stringKeyed({ name: dbName(topic), encoding: 'binary' }));
    this.outbox = viewOutboxOf(env);
  }

  /**
   * The index of `topic`. When the store last published to another topic (or never did), publishing starts
   * over: the mark is 0, nothing is known to be published, and a capture publishes every user; the other
   * topic's index and outbox are dropped.
   */
  static async open(
    env: RootDatabase,
    meta: Database<string, string>,
    topic: string,
  ): Promise<{ index: PublishedIndex; fresh: boolean }> {
    const index = new PublishedIndex(env, meta, topic);
    const before = meta.get(VIEW_TOPIC_KEY);
    if (before === topic) return { index, fresh: false };
    await index.commit('start publishing to a view topic', () => {
      void meta.put(VIEW_TOPIC_KEY, topic);
      void meta.put(MARK_KEY, '0');
      void meta.remove(LAYOUT_KEY);
    });
    if (before !== undefined) await env.openDB({ name: dbName(before) }).drop();
    // A stale index of this topic (published to it, then to another, then back) would claim values the topic
    // may no longer hold; the outbox held changes for the other topic.
    await index.db.clearAsync();
    await index.outbox.clearAsync();
    return { index, fresh: true };
  }

  /**
   * The store no longer publishes (started without VIEW_TOPIC_OUT): commits stop writing the outbox, and what
   * it held is dropped. Publishing again later starts over (every user is published once more). Returns the
   * topic it published to, if it did.
   */
  static async stop(env: RootDatabase, meta: Database<string, string>): Promise<string | undefined> {
    const topic = meta.get(VIEW_TOPIC_KEY);
    if (topic === undefined) return undefined;
    await writeTransaction(env, 'stop publishing', () => {
      void meta.remove(VIEW_TOPIC_KEY);
      void meta.remove(MARK_KEY);
      void meta.remove(LAYOUT_KEY);
    });
    await env.openDB({ name: dbName(topic) }).drop();
    await viewOutboxOf(env).clearAsync();
    return topic;
  }

  /** Every commit up to this sequence has been published (0: nothing known to be). */
  mark(): bigint {
    return BigInt(this.meta.get(MARK_KEY) ?? '0');
  }

  /** The layout the last finished capture compared against (undefined: none finished since this started). */
  layout(): string | undefined {
    return this.meta.get(LAYOUT_KEY);
  }

  /** The version of the value the topic holds for `userId`, undefined when it holds none. */
  held(userId: string): bigint | undefined {
    const bytes = readFast(this.db, userId);
    return bytes === undefined || bytes.length < 8 ? undefined : bytes.readBigUInt64BE(0);
  }

  /** Up to `limit` userIds with an entry after `after` (exclusive), in key order, read completely. */
  page(after: string | undefined, limit: number): string[] {
    return keysAfter(this.db, after, limit);
  }

  /** Users the topic holds a value for (tests and diagnostics). */
  size(): number {
    return this.db.getCount();
  }

  /** The oldest `limit` changes waiting in the outbox, from `after` (exclusive) on. */
  pending(limit: number, after?: ViewOutboxKey): PendingChange[] {
    const out: PendingChange[] = [];
    for (const change of this.changes(after)) {
      out.push(change());
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * The changes waiting in the outbox, oldest first, from `after` (exclusive) on, read lazily: each comes as
   * its user, and a function that reads the change (its value is read only then: a round passes over many
   * entries it leaves for later).
   */
  *changes(after?: ViewOutboxKey): Generator<(() => PendingChange) & { readonly userId: string }> {
    for (const key of this.outbox.getKeys(after === undefined ? {} : { start: after })) {
      if (after !== undefined && key[0] === after[0] && key[1] === after[1]) continue;
      const read = (): PendingChange => {
        const value = this.outbox.getBinary(key);
        if (value === undefined) throw new Error(`view outbox entry ${key.join('/')} vanished while read`);
        return {
          key,
          sequence: BigInt(key[0]),
          userId: key[1],
          value: value[0] === 0 ? null : value.subarray(9),
          version: value[0] === 0 ? 0n : value.readBigUInt64BE(1),
        };
      };
      yield Object.assign(read, { userId: key[1] });
    }
  }

  /** Users with a change waiting in the outbox. */
  pendingUsers(): Set<string> {
    const users = new Set<string>();
    for (const key of this.outbox.getKeys()) users.add(key[1]);
    return users;
  }

  /**
   * Writes changes into the outbox at `sequence`, in one transaction (a capture): per user its value with
   * that value's version, or null for a tombstone.
   */
  async enqueue(
    sequence: bigint,
    changes: ReadonlyMap<string, { readonly version: bigint; readonly value: string } | null>,
  ): Promise<void> {
    const seq = sequenceKey(sequence);
    await this.commit('write captured values into the view outbox', () => {
      for (const [userId, change] of changes)
        void this.outbox.put(
          [seq, userId],
          change === null ? TOMBSTONE_ENTRY : entryOf(change.version, change.value),
        );
    });
  }

  /** Changes waiting in the outbox. */
  outboxSize(): number {
    return entryCount(this.outbox);
  }

  /** Records acknowledged publications in one transaction (`Acknowledged`). */
  async record(ack: Acknowledged): Promise<void> {
    await this.commit('record what the view topic holds', () => {
      for (const key of ack.sent ?? []) void this.outbox.remove(key);
      for (const [userId, held] of ack.held ?? [])
        if (held === null) void this.db.remove(userId);
        else void this.db.put(userId, versionBytes(held));
      if (ack.mark !== undefined) {
        // Read inside the write transaction: the outbox and the sequence as committed, after the removals.
        const [oldest] = [...this.outbox.getKeys({ limit: 1 })];
        const mark =
          oldest === undefined ? (this.meta.get('sequence') ?? '0') : (BigInt(oldest[0]) - 1n).toString();
        void this.meta.put(MARK_KEY, mark);
        if (ack.mark.layout !== undefined) void this.meta.put(LAYOUT_KEY, ack.mark.layout);
      }
    });
  }

  private commit(what: string, action: () => void): Promise<void> {
    return writeTransaction(this.env, what, action);
  }
}
