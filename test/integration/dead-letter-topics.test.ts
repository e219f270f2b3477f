/**
 * Issue 14.4: at start, `matview serve` checks that the dead-letter topics exist (metadata without
 * auto-creation), creates the missing ones when its credentials allow, and otherwise says so once, with the
 * command that creates them. Against the broker stand-in, which records what it was asked to create.
 */
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../src/ops/logger.js';
import { startServer, type Running } from '../../src/wiring/runtime.js';
import { startStandIn, type StandIn } from '../utils/kafka-stand-in.js';
import { eventually, testServerConfig } from '../utils/server.js';

const opened: { close(): Promise<void> }[] = [];
afterAll(async () => {
  for (const o of opened.reverse()) await o.close().catch(() => undefined);
});

const SOURCE = { users: 'users', tweets: 'tweets', follows: 'follows', likes: 'likes' };

async function serve(broker: StandIn): Promise<{ running: Running; lines: Record<string, unknown>[] }> {
  const lines: Record<string, unknown>[] = [];
  const logger: Logger = pino(
    { level: 'info' },
    { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
  );
  const running = await startServer(testServerConfig({ brokers: broker.brokers, topics: SOURCE }), logger);
  opened.push(running);
  return { running, lines };
}

describe('dead-letter topics at start', () => {
  it('should create the missing dead-letter topics when the credentials allow', async () => {
    const broker = await startStandIn({
      topics: { users: 1, tweets: 1, follows: 1, likes: 1, 'users.dlq': 1 },
    });
    opened.push(broker);
    const { lines } = await serve(broker);
    const created = await eventually(
      () => lines.find((l) => l['msg'] === 'created the missing dead-letter topics'),
      20_000,
      'the creation',
    );
    expect((created['topics'] as string[]).sort()).toEqual(['follows.dlq', 'likes.dlq', 'tweets.dlq']);
  });

  it('should say once which are missing and how to create them when the credentials do not allow it', async () => {
    const broker = await startStandIn({
      topics: { users: 1, tweets: 1, follows: 1, likes: 1 },
      createTopicsError: 31,
    });
    opened.push(broker);
    const { running, lines } = await serve(broker);
    const warning = await eventually(
      () => lines.find((l) => l['code'] === 'MV_ERR_DLQ_TOPIC_MISSING'),
      20_000,
      'the warning',
    );
    expect(warning['level']).toBe(40);
    expect(String(warning['msg'])).toMatch(
      /^Dead-letter topics users\.dlq, tweets\.dlq, follows\.dlq, likes\.dlq do not exist and could not be created \(CLUSTER_AUTHORIZATION_FAILED: .*\)\. Create them with `matview topics create`/,
    );
    expect(warning['create']).toContain(
      'kafka-topics.sh --bootstrap-server <broker> --create --if-not-exists --topic users.dlq --config cleanup.policy=delete --config retention.ms=1209600000',
    );
    // The feed is not held up by it.
    await eventually(
      () => (running.source.status().state === 'running' ? true : undefined),
      20_000,
      'the feed running',
    );
    expect(lines.filter((l) => l['code'] === 'MV_ERR_DLQ_TOPIC_MISSING')).toHaveLength(1);
  });
});
