/**
 * The Kafka source's answers to partition errors of a fetch (kafkajs `consumerGroup.js` `recoverFromFetch`
 * handles the same cases), against the broker stand-in, which can answer any error for any partition (the
 * librdkafka mock can only be killed): a moved leader is routine, an ACL refusal is reported and retried, an
 * out-of-range position is handed to the caller and continued from the earliest offset.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { KafkaFailureCause } from '../../src/feed/kafka-errors.js';
import { createKafkaSource } from '../../src/feed/kafka-source.js';
import type { FeedSource } from '../../src/feed/types.js';
import { silentLogger } from '../../src/ops/logger.js';
import { startStandIn, type StandIn, type StandInEvent } from '../utils/kafka-stand-in.js';
import { eventually, runningWithoutFailures } from '../utils/server.js';

const opened: { close(): Promise<void> }[] = [];
const sources: FeedSource[] = [];
afterAll(async () => {
  await Promise.allSettled(sources.map((s) => s.stop()));
  await Promise.allSettled(opened.map((o) => o.close()));
});

async function setup(
  resumeFrom: (topic: string, partition: number) => string | undefined = () => undefined,
  fetchErrors = new Map<string, number>(),
) {
  const broker = await startStandIn({ topics: { users: 2 }, fetchErrors });
  opened.push(broker);
  const causes: KafkaFailureCause[] = [];
  const resets: string[] = [];
  const source = createKafkaSource({
    brokers: broker.brokers,
    clientId: 'matview-test',
    connectionTimeoutMs: 2_000,
    logger: silentLogger,
    fetchMaxWaitMs: 50,
    onFailure: (cause) => causes.push(cause),
  });
  sources.push(source);
  await source.start({
    topics: ['users'],
    resumeFrom,
    handler: async () => undefined,
    onFatal: () => undefined,
    onOffsetOutOfRange: (topic, partition) => {
      resets.push(`${topic}[${partition}]`);
      // Called before the source looks the earliest offset up: from there on the stand-in answers normally.
      fetchErrors.delete(`${topic}/${partition}`);
    },
  });
  return { broker, source, fetchErrors, causes, resets };
}

const count = (broker: StandIn, what: (e: StandInEvent) => boolean) => broker.events.filter(what).length;
const metadataRequests = (broker: StandIn) => count(broker, (e) => e.kind === 'request' && e.api === 3);
const fetchedAt = (broker: StandIn, partition: number) =>
  broker.events.flatMap((e) =>
    e.kind === 'fetch' ? e.partitions.filter((p) => p.partition === partition).map((p) => p.offset) : [],
  );

describe('Kafka source, partition errors', () => {
  it('should look the leader up again after NOT_LEADER_FOR_PARTITION, without reporting a failure', async () => {
    const { broker, source, fetchErrors, causes } = await setup();
    await runningWithoutFailures(source);
    const before = metadataRequests(broker);
    fetchErrors.set('users/0', 6);
    await eventually(
      () => (metadataRequests(broker) > before ? true : undefined),
      20_000,
      'a metadata refresh',
    );
    fetchErrors.delete('users/0');
    await runningWithoutFailures(source);
    expect(causes).toEqual([]);
  });

  it('should report a topic ACL refusal as not authorized, count it, retry, and recover once granted', async () => {
    const { source, fetchErrors, causes } = await setup();
    await runningWithoutFailures(source);
    fetchErrors.set('users/1', 29); // TOPIC_AUTHORIZATION_FAILED
    const status = await eventually(
      () => (source.status().state === 'retrying' ? source.status() : undefined),
      20_000,
      'the refusal reported',
    );
    expect(status.reason).toMatch(
      /^Kafka refused an operation \(not authorized\): .*\(users\[1\]\); grant the ACLs/,
    );
    await eventually(() => (causes.length > 1 ? true : undefined), 20_000, 'a second attempt');
    expect(new Set(causes)).toEqual(new Set(['authorization']));
    fetchErrors.delete('users/1');
    await runningWithoutFailures(source);
  });

  it('should hand OFFSET_OUT_OF_RANGE to the caller once and go on from the earliest offset', async () => {
    const { broker, source, resets } = await setup(
      (_t, p) => (p === 1 ? '7' : undefined),
      new Map([['users/1', 1]]), // OFFSET_OUT_OF_RANGE
    );
    await eventually(() => (resets.length > 0 ? true : undefined), 20_000, 'the reset reported');
    // The stand-in's partitions start at 0: the source asks for the earliest offset and fetches from there.
    await eventually(
      () => (fetchedAt(broker, 1).includes('0') ? true : undefined),
      20_000,
      'a fetch from offset 0',
    );
    expect(fetchedAt(broker, 1)[0]).toBe('7');
    expect(resets).toEqual(['users[1]']);
    await runningWithoutFailures(source);
  });
});
