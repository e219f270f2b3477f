/**
 * What the view topic holds, as far as this store knows (VIEW_TOPIC_OUT, src/sink/view-topic-out.ts): per
 * user, a fingerprint of the value last published and acknowledged, and how far the store's commits have
 * been published. Outside every generation (a swap does not change what the topic holds), in the store's
 * environment so it is copied by snapshots with the rest.
 *
 * - database `view-topic/<topic>`: userId → 8-byte fingerprint of the value last published (seed 002's JSON
 *   with its version; a tombstone removes the key). It is what lets a restart after a crash, a generation swap or a view rebuild
 *   find the users whose published value is out of date, deleted users included: the views alone cannot say
 *   which users the topic still holds after their users row went away.
 * - meta `viewTopic.topic`: the topic the fingerprints describe; `viewTopic.mark`: every commit up to this
 *   sequence has been published.
 *
 * Written only by the publisher, after Kafka acknowledged what it records: never on a commit's path.
 */
import type { Database, RootDatabase } from 'lmdb';
import { StoreWriteError, isMatviewError } from '../errors.js';
import { commitFailure } from './environment.js';
import { keysAfter } from './reads.js';

const TOPIC_KEY = 'viewTopic.topic';
const MARK_KEY = 'viewTopic.mark';
const dbName = (topic: string): string => `view-topic/${topic}`;

export class PublishedIndex {
  private readonly db: Database<Buffer, string>;

  private constructor(
    private readonly env: RootDatabase,
    private readonly meta: Database<string, string>,
    readonly topic: string,
  ) {
    this.db = env.openDB<Buffer, string>({ name: dbName(topic), encoding: 'binary' });
  }

  /**
   * The index of `topic`. When the store last published to another topic (or never did), publishing starts
   * over: the mark is 0 and nothing is known to be published; the other topic's index is dropped.
   */
  static async open(
    env: RootDatabase,
    meta: Database<string, string>,
    topic: string,
  ): Promise<{ index: PublishedIndex; fresh: boolean }> {
    const index = new PublishedIndex(env, meta, topic);
    const before = meta.get(TOPIC_KEY);
    if (before === topic) return { index, fresh: false };
    await index.commit('start publishing to a view topic', () => {
      void meta.put(TOPIC_KEY, topic);
      void meta.put(MARK_KEY, '0');
    });
    if (before !== undefined) await env.openDB({ name: dbName(before) }).drop();
    // A stale index of this topic (published to it, then to another, then back) would claim values the topic
    // may no longer hold.
    await index.db.clearAsync();
    return { index, fresh: true };
  }

  /** Every commit up to this sequence has been published (0: nothing known to be). */
  mark(): bigint {
    return BigInt(this.meta.get(MARK_KEY) ?? '0');
  }

  /** The fingerprint of the value last published for `userId`, undefined when the topic holds none. */
  fingerprint(userId: string): Buffer | undefined {
    return this.db.getBinary(userId);
  }

  /** Up to `limit` published userIds after `after` (exclusive), in key order, read completely. */
  page(after: string | undefined, limit: number): string[] {
    return keysAfter(this.db, after, limit);
  }

  /** Published users (counts every entry: tests and diagnostics). */
  size(): number {
    return this.db.getCount();
  }

  /**
   * Records acknowledged publications in one transaction: a fingerprint per user (null: a tombstone), and,
   * when given, the new mark.
   */
  async record(updates: ReadonlyMap<string, Buffer | null>, mark?: bigint): Promise<void> {
    await this.commit('record what the view topic holds', () => {
      for (const [userId, fingerprint] of updates)
        if (fingerprint === null) void this.db.remove(userId);
        else void this.db.put(userId, fingerprint);
      if (mark !== undefined) void this.meta.put(MARK_KEY, mark.toString());
    });
  }

  private async commit(what: string, action: () => void): Promise<void> {
    try {
      await this.env.transaction(action);
    } catch (e) {
      if (isMatviewError(e)) throw e;
      throw new StoreWriteError(`LMDB write failed (${what}): ${await commitFailure(e)}`, { cause: e });
    }
  }
}
