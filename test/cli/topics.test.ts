/**
 * `matview topics create` (issue 14.4) against the broker stand-in, run as an operator runs it: what it
 * asks the broker to create (the topics, their settings, the broker's partition and replication defaults),
 * over the same SASL/TLS settings as `serve`, and what it says when the credentials may not create topics.
 * On the librdkafka mock cluster CreateTopics cannot be tested (kafkajs does not find its controller).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCerts, type TestCerts } from '../utils/certs.js';
import { startStandIn, type StandIn, type StandInEvent } from '../utils/kafka-stand-in.js';
import { tempDir } from '../utils/tmp.js';
import { runCli } from './run-cli.js';

let certs: TestCerts;
const opened: StandIn[] = [];
beforeAll(() => {
  certs = makeTestCerts();
});
afterAll(async () => {
  await Promise.allSettled(opened.map((s) => s.close()));
});

const creations = (broker: StandIn) =>
  broker.events.filter(
    (e): e is Extract<StandInEvent, { kind: 'create-topics' }> => e.kind === 'create-topics',
  );

describe('matview topics create', () => {
  it('should create the missing dead-letter topics with their settings over SASL_SSL, and leave existing ones alone', async () => {
    const broker = await startStandIn({
      tls: { key: certs.serverKey, cert: certs.serverCert },
      sasl: { mechanisms: ['SCRAM-SHA-512'], users: { admin: 'admin-secret' } },
      topics: { users: 1, tweets: 1, follows: 1, likes: 1, 'likes.dlq': 1 },
    });
    opened.push(broker);
    const r = await runCli(['topics', 'create'], {
      KAFKA_BROKERS: broker.brokers.join(','),
      KAFKA_SSL: 'true',
      KAFKA_SSL_CA_FILE: certs.caFile,
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'admin',
      KAFKA_SASL_PASSWORD: 'admin-secret',
      DATA_DIR: tempDir(),
    });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout.trim().split('\n').sort()).toEqual(
      [
        'topics: likes.dlq exists',
        ...['users', 'tweets', 'follows'].map(
          (t) =>
            `topics: ${t}.dlq created (cleanup.policy=delete, retention.ms=1209600000; partitions and replication: the broker's defaults)`,
        ),
      ].sort(),
    );
    const [request] = creations(broker);
    expect(request?.topics.map((t) => ({ ...t })).sort((a, b) => a.name.localeCompare(b.name))).toEqual(
      ['follows.dlq', 'tweets.dlq', 'users.dlq'].map((name) => ({
        name,
        partitions: -1,
        replicationFactor: -1,
        configs: { 'cleanup.policy': 'delete', 'retention.ms': '1209600000' },
      })),
    );
    expect(broker.events.some((e) => e.kind === 'scram-client-final' && e.proofValid)).toBe(true);
  });

  it('should say which topics it could not create, why, and how to create them, and exit 1', async () => {
    const broker = await startStandIn({
      topics: { users: 1, tweets: 1, follows: 1, likes: 1 },
      createTopicsError: 31, // CLUSTER_AUTHORIZATION_FAILED
    });
    opened.push(broker);
    const r = await runCli(['topics', 'create'], {
      KAFKA_BROKERS: broker.brokers.join(','),
      DATA_DIR: tempDir(),
    });
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    for (const t of ['users', 'tweets', 'follows', 'likes']) {
      expect(lines).toContain(
        `topics: ${t}.dlq NOT created: CLUSTER_AUTHORIZATION_FAILED: Cluster authorization failed`,
      );
      expect(lines).toContain(
        `  kafka-topics.sh --bootstrap-server <broker> --create --if-not-exists --topic ${t}.dlq --config cleanup.policy=delete --config retention.ms=1209600000`,
      );
    }
    expect(lines.at(-1)).toMatch(/keeps the invalid records in its store/);
  });

  it('should refuse without KAFKA_BROKERS, and an unknown subcommand, with one line each', async () => {
    const none = await runCli(['topics', 'create'], { DATA_DIR: tempDir() });
    expect({ code: none.code, stderr: none.stderr.trim() }).toEqual({
      code: 1,
      stderr:
        'matview: matview topics create needs KAFKA_BROKERS (and the KAFKA_SSL*/KAFKA_SASL* settings of the cluster)',
    });
    const bad = await runCli(['topics', 'delete'], { DATA_DIR: tempDir() });
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n')[0]).toBe('matview topics: unknown subcommand "delete" (expected "create")');
  });
});
