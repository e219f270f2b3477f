/**
 * The dead-letter outbox's keys: every topic name reads back as itself, its messages in commit order, and a
 * topic's range holds exactly its own messages. String keys joined with a control character failed this for
 * topics like `user-information-….dlq` (lmdb-js read them back as tuples), and their dead letters were never
 * sent.
 */
import { open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import {
  outboxEntries,
  outboxOf,
  outboxSize,
  outboxTopics,
  writeOutbox,
  type OutboxEntry,
} from '../../src/store/outbox.js';
import { tempDir } from '../utils/tmp.js';

const TOPICS = [
  'tweets.dlq',
  'users.dlq',
  'user-information-mx6pl0dc-7d41abf6.dlq',
  'u',
  'uu.dlq',
  'uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu.dlq',
  'a.b_c-D.dlq',
  'ünïcode.dlq',
];

const entry = (topic: string, n: number): OutboxEntry => ({
  topic,
  message: { key: Buffer.from(`k${n}`), value: Buffer.from(`v${n}`), headers: {} },
});

describe('the dead-letter outbox', () => {
  it('should give back every topic and its messages in commit order, whatever the topic name', async () => {
    const env = open({ path: tempDir(), maxDbs: 4 });
    const outbox = outboxOf(env);
    // Written in several commits, topics interleaved, sequences crossing a digit boundary.
    for (const [i, sequence] of [9n, 10n, 12_345_678_901_234_567_890n].entries())
      await env.transaction(() =>
        writeOutbox(
          outbox,
          sequence,
          TOPICS.flatMap((t) => [entry(t, i * 2), entry(t, i * 2 + 1)]),
        ),
      );
    expect(outboxTopics(outbox)).toEqual([...TOPICS].sort());
    for (const topic of TOPICS)
      expect({
        topic,
        keys: outboxEntries(outbox, topic, 100).map(({ entry: e }) => e.message.key?.toString()),
      }).toEqual({ topic, keys: ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'] });
    // `u` is the fourth topic of each commit: its messages are the 7th and 8th of the first one.
    expect(outboxEntries(outbox, 'u', 2).map(({ key }) => key)).toEqual([
      ['u', '00000000000000000009', 6],
      ['u', '00000000000000000009', 7],
    ]);
    expect(outboxSize(outbox)).toBe(TOPICS.length * 6);
    await env.close();
  });
});
