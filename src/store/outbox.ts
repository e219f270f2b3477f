/**
 * The dead-letter outbox (issue 14): the DLQ copies of invalid records, stored in the same transaction as
 * the offsets that pass those records, so none is lost or stored twice whatever the crash, and the feed
 * never waits for a dead-letter topic. `src/pipeline/dead-letter-drainer.ts` sends them and removes each
 * once the broker acknowledged it. One outbox per store, beside the generations (a rebuild writes none).
 *
 * Keys sort by topic, then commit sequence, then position in the commit: each topic drains in the order its
 * records were consumed, and one topic that cannot be written does not hold up the others. Keys are arrays
 * (`[topic, sequence, index]`, lmdb-js' ordered-binary tuples): a string key joining the parts with a control
 * character reads back as a tuple for some topic names, and its range then finds nothing.
 */
import type { Database, RootDatabase } from 'lmdb';
import type { OutgoingMessage } from '../feed/types.js';
import { entryCount } from './environment.js';

/** A dead-letter message waiting to be sent to `topic`. */
export interface OutboxEntry {
  readonly topic: string;
  readonly message: OutgoingMessage;
}

/** `[topic, commit sequence (20 digits, so that it sorts as a number), position in the commit]`. */
export type OutboxKey = [topic: string, sequence: string, index: number];

export type Outbox = Database<OutboxEntry, OutboxKey>;

export const outboxOf = (env: RootDatabase): Outbox => env.openDB<OutboxEntry, OutboxKey>({ name: 'outbox' });

export const outboxKey = (topic: string, sequence: bigint, index: number): OutboxKey => [
  topic,
  sequence.toString().padStart(20, '0'),
  index,
];

/** Sorts after every key of `topic` (sequences are digits). */
const pastTopic = (topic: string): [string, string] => [topic, '\uffff'];

/** Stores a commit's dead letters (inside its transaction). */
export function writeOutbox(outbox: Outbox, sequence: bigint, entries: readonly OutboxEntry[]): void {
  for (const [index, entry] of entries.entries())
    void outbox.put(outboxKey(entry.topic, sequence, index), entry);
}

/** Topics with dead-letter messages waiting, in key order. */
export function outboxTopics(outbox: Outbox): string[] {
  const topics: string[] = [];
  let start: [string, string] | undefined;
  for (;;) {
    const [key] = [...outbox.getKeys({ ...(start === undefined ? {} : { start }), limit: 1 })];
    if (key === undefined) return topics;
    topics.push(key[0]);
    start = pastTopic(key[0]);
  }
}

/** The oldest `limit` messages waiting for `topic`, with their keys. */
export function outboxEntries(
  outbox: Outbox,
  topic: string,
  limit: number,
): { key: OutboxKey; entry: OutboxEntry }[] {
  return [...outbox.getRange({ start: [topic], end: pastTopic(topic), limit })].map(({ key, value }) => ({
    key,
    entry: value,
  }));
}

/** Messages waiting, over every topic. */
export const outboxSize = (outbox: Outbox): number => entryCount(outbox);
