/**
 * The dead-letter outbox and its drainer (src/pipeline/dead-letter-drainer.ts): messages stored with a
 * batch reach their topic in order, leave the outbox only once acknowledged, and a topic that refuses
 * writes holds up neither the others nor the feed. Then end to end through the store's writer thread, LMDB
 * and the kafkajs writer to the mock cluster, byte for byte.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { DeadLetterHeader, toOutboxEntry } from '../../src/feed/dead-letter.js';
import { createKafkaWriter } from '../../src/feed/kafka-writer.js';
import type { ChangelogWriter, FeedRecord, OutgoingMessage } from '../../src/feed/types.js';
import type { DeadLetterWriteError } from '../../src/errors.js';
import { RecordErrorCode } from '../../src/errors.js';
import { silentLogger, type Logger } from '../../src/ops/logger.js';
import { startDeadLetterDrainer } from '../../src/pipeline/dead-letter-drainer.js';
import { ChangeBatch } from '../../src/materializer/change-batch.js';
import { openStore, type LmdbStore } from '../../src/store/lmdb-store.js';
import { consumeAll, uniqueTopic, useKafka } from '../utils/kafka-mock.js';
import { eventually } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';

class FakeWriter implements ChangelogWriter {
  readonly sent: { topic: string; messages: readonly OutgoingMessage[] }[] = [];
  readonly failing = new Set<string>();
  attempts = 0;

  async send(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    this.attempts++;
    if (this.failing.has(topic)) throw new Error(`broker said no to ${topic}`);
    this.sent.push({ topic, messages });
  }
  async close(): Promise<void> {}
}

const record = (topic: string, offset: number, over: Partial<FeedRecord> = {}): FeedRecord => ({
  topic,
  partition: 0,
  offset: String(offset),
  timestamp: '1700000000000',
  key: Buffer.from(`k${offset}`),
  value: Buffer.from('{nope'),
  headers: { 'trace-id': Buffer.from('abc') },
  ...over,
});

/** Commits a batch holding only these dead letters (their offsets move on, as ingest does). */
async function storeDeadLetters(store: LmdbStore, records: readonly FeedRecord[]): Promise<void> {
  await store.applyBatch({
    changes: new ChangeBatch().columns(),
    positions: records.map((r) => ({
      topic: r.topic,
      partition: r.partition,
      next: String(Number(r.offset) + 1),
    })),
    deadLetters: records.map((r) =>
      toOutboxEntry({ record: r, code: RecordErrorCode.JsonInvalid, message: 'bad JSON' }, '.dlq'),
    ),
  });
}

const offsetsOf = (messages: readonly OutgoingMessage[]) =>
  messages.map((m) => String(m.headers?.[DeadLetterHeader.SourceOffset]));

describe('the dead-letter drainer', () => {
  it('should send each topic its messages in order and remove them once acknowledged', async () => {
    const store = openStore({ path: tempDir() });
    await storeDeadLetters(store, [record('tweets', 3), record('likes', 1), record('tweets', 4)]);
    await storeDeadLetters(store, [record('tweets', 9)]);
    expect(store.outboxSize()).toBe(4);
    const writer = new FakeWriter();
    const drainer = startDeadLetterDrainer({ outbox: store, writer, logger: silentLogger });
    await eventually(() => (store.outboxSize() === 0 ? true : undefined), 10_000, 'the outbox drained');
    await drainer.stop();
    const byTopic = new Map<string, string[]>();
    for (const s of writer.sent)
      byTopic.set(s.topic, [...(byTopic.get(s.topic) ?? []), ...offsetsOf(s.messages)]);
    expect(Object.fromEntries(byTopic)).toEqual({ 'likes.dlq': ['1'], 'tweets.dlq': ['3', '4', '9'] });
    await store.close();
  });

  it('should keep what a topic refuses, say so once, go on with the other topics, and send it once the topic accepts', async () => {
    const store = openStore({ path: tempDir() });
    const lines: Record<string, unknown>[] = [];
    const logger: Logger = pino(
      { level: 'info' },
      { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
    );
    const writer = new FakeWriter();
    writer.failing.add('tweets.dlq');
    const failures: DeadLetterWriteError[] = [];
    const drainer = startDeadLetterDrainer({
      outbox: store,
      writer,
      logger,
      idleMs: 50,
      onFailure: (_topic, err) => failures.push(err),
    });
    await storeDeadLetters(store, [record('tweets', 1), record('users', 5)]);
    drainer.wake();
    await eventually(
      () => (writer.sent.some((s) => s.topic === 'users.dlq') ? true : undefined),
      10_000,
      'users.dlq sent',
    );
    await eventually(() => (failures.length >= 2 ? true : undefined), 20_000, 'tweets.dlq retried');
    expect(
      store
        .outboxEntries('tweets.dlq', 10)
        .map((e) => String(e.entry.message.headers?.[DeadLetterHeader.SourceOffset])),
    ).toEqual(['1']);
    expect(failures[0]).toMatchObject({ code: 'MV_ERR_DLQ_WRITE', topic: 'tweets.dlq' });
    writer.failing.delete('tweets.dlq');
    await eventually(
      () => (store.outboxSize() === 0 ? true : undefined),
      20_000,
      'tweets.dlq sent once it accepts',
    );
    await drainer.stop();
    const warnings = lines.filter((l) => l['code'] === 'MV_ERR_DLQ_WRITE');
    expect(warnings).toHaveLength(1);
    expect(lines.some((l) => l['msg'] === 'dead-letter topic accepts writes again')).toBe(true);
    await store.close();
  });
});

describe('dead letters end to end to Kafka', () => {
  const kafka = useKafka();

  it('should land on <topic>.dlq with the original bytes and headers, through the writer thread and LMDB', async () => {
    const store = openStore({ path: tempDir(), writerThread: true });
    const writer = createKafkaWriter({
      brokers: kafka.brokers,
      clientId: 'matview-test-dlq',
      connectionTimeoutMs: 2_000,
      logger: silentLogger,
      compression: 'gzip',
    });
    const source = uniqueTopic('tweets');
    await storeDeadLetters(store, [
      record(source, 5, {
        key: Buffer.from('t1'),
        value: Buffer.from([0x7b, 0xff, 0x00]),
        headers: { bin: Buffer.from([0, 255, 10]) },
      }),
      record(source, 9, { key: Buffer.from('t2'), value: null, headers: {} }),
    ]);
    const drainer = startDeadLetterDrainer({ outbox: store, writer, logger: silentLogger });
    await eventually(() => (store.outboxSize() === 0 ? true : undefined), 30_000, 'sent');
    await drainer.stop();
    await writer.close();

    const got = await consumeAll(kafka.brokers, `${source}.dlq`, 2);
    const hex = (b: Buffer | null | undefined) => (b == null ? null : b.toString('hex'));
    expect(
      got
        .map((r) => ({
          key: r.key?.toString(),
          value: hex(r.value),
          headers: Object.fromEntries(
            Object.entries(r.headers).map(([k, v]) => [k, k === 'bin' ? hex(v) : v?.toString()]),
          ),
        }))
        .sort((a, b) => String(a.key).localeCompare(String(b.key))),
    ).toEqual([
      {
        key: 't1',
        value: '7bff00',
        headers: {
          bin: '00ff0a',
          [DeadLetterHeader.SourceTopic]: source,
          [DeadLetterHeader.SourcePartition]: '0',
          [DeadLetterHeader.SourceOffset]: '5',
          [DeadLetterHeader.ErrorCode]: 'MV_ERR_RECORD_JSON_INVALID',
          [DeadLetterHeader.ErrorMessage]: 'bad JSON',
        },
      },
      {
        key: 't2',
        value: null,
        headers: {
          [DeadLetterHeader.SourceTopic]: source,
          [DeadLetterHeader.SourcePartition]: '0',
          [DeadLetterHeader.SourceOffset]: '9',
          [DeadLetterHeader.ErrorCode]: 'MV_ERR_RECORD_JSON_INVALID',
          [DeadLetterHeader.ErrorMessage]: 'bad JSON',
        },
      },
    ]);
    await store.close();
  });
});
