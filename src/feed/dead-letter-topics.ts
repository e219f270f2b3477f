/**
 * The dead-letter topics on a managed cluster. Confluent Cloud, MSK, Aiven and most self-managed clusters
 * disable topic auto-creation, so `<topic><DLQ_SUFFIX>` may not exist. `matview serve` checks at start
 * (metadata without auto-creation) and creates the missing ones when its credentials allow; when they do
 * not, it says so once, with the command that creates them: `matview topics create` (src/cli/topics.ts),
 * which an operator runs with credentials that may create topics. Meanwhile invalid records wait in the
 * store's outbox (src/pipeline/dead-letter-drainer.ts): nothing is lost and the feed goes on.
 */
import type { Admin } from 'kafkajs';
import { DeadLetterTopicMissingError } from '../errors.js';
import type { Logger } from '../ops/logger.js';
import { createKafkaClient, type KafkaClientOptions } from './kafka-client.js';
import { describeKafkaError, errorChain } from './kafka-errors.js';

/** How long dead letters are kept: two weeks to notice, inspect and replay them (Kafka's default is 7 days). */
export const DLQ_RETENTION_MS = 14 * 24 * 60 * 60 * 1000;

/**
 * The settings a dead-letter topic is created with: delete (not compact: every rejected record is kept,
 * not the latest per key) after DLQ_RETENTION_MS; partitions and replication are the broker's defaults
 * (`num.partitions`, `default.replication.factor`: -1 in CreateTopics, Kafka >= 2.4, KIP-464).
 */
export const DLQ_TOPIC_CONFIG: Readonly<Record<string, string>> = Object.freeze({
  'cleanup.policy': 'delete',
  'retention.ms': String(DLQ_RETENTION_MS),
});

/** The same topic creation with Kafka's own CLI, for operators who create topics themselves. */
export const kafkaTopicsCommand = (topic: string): string =>
  `kafka-topics.sh --bootstrap-server <broker> --create --if-not-exists --topic ${topic} ` +
  Object.entries(DLQ_TOPIC_CONFIG)
    .map(([k, v]) => `--config ${k}=${v}`)
    .join(' ');

const typeOf = (error: unknown): string | undefined => {
  for (const e of errorChain(error)) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string') return type;
  }
  return undefined;
};

/** The topics of `topics` the cluster does not have. Asks without auto-creation (the admin client never asks for it). */
export async function missingTopics(admin: Admin, topics: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const topic of topics) {
    try {
      await admin.fetchTopicMetadata({ topics: [topic] });
    } catch (error) {
      if (typeOf(error) !== 'UNKNOWN_TOPIC_OR_PARTITION') throw error;
      missing.push(topic);
    }
  }
  return missing;
}

export interface TopicCreation {
  readonly created: readonly string[];
  readonly existed: readonly string[];
  /** Topics the broker refused, with its reason (error type and message). */
  readonly failed: readonly { readonly topic: string; readonly reason: string }[];
}

/** Creates `topics` with DLQ_TOPIC_CONFIG; reports each topic's outcome instead of throwing for one. */
export async function createDeadLetterTopics(
  admin: Admin,
  topics: readonly string[],
): Promise<TopicCreation> {
  if (topics.length === 0) return { created: [], existed: [], failed: [] };
  const configEntries = Object.entries(DLQ_TOPIC_CONFIG).map(([name, value]) => ({ name, value }));
  try {
    await admin.createTopics({
      topics: topics.map((topic) => ({ topic, configEntries })),
      waitForLeaders: true,
    });
    return { created: [...topics], existed: [], failed: [] };
  } catch (error) {
    const perTopic = (error as { errors?: unknown }).errors;
    if (!Array.isArray(perTopic)) {
      // Refused as a whole (not authorized to talk to the controller, cluster unreachable…).
      const reason = describeKafkaError(error);
      return { created: [], existed: [], failed: topics.map((topic) => ({ topic, reason })) };
    }
    const byTopic = new Map(perTopic.map((e: { topic?: unknown }) => [String(e.topic), e] as const));
    const result: { created: string[]; existed: string[]; failed: { topic: string; reason: string }[] } = {
      created: [],
      existed: [],
      failed: [],
    };
    for (const topic of topics) {
      const e = byTopic.get(topic);
      if (e === undefined) result.created.push(topic);
      else if (typeOf(e) === 'TOPIC_ALREADY_EXISTS') result.existed.push(topic);
      else result.failed.push({ topic, reason: `${typeOf(e) ?? 'error'}: ${describeKafkaError(e)}` });
    }
    return result;
  }
}

/**
 * `matview serve`'s start check: creates missing dead-letter topics when it may, and otherwise logs once
 * (MV_ERR_DLQ_TOPIC_MISSING) what is missing and how to create it. Never throws: false when the cluster
 * could not be asked (the feed reports why; the caller asks again later), the outbox keeps the dead
 * letters either way.
 */
export async function ensureDeadLetterTopics(
  client: KafkaClientOptions,
  topics: readonly string[],
  logger: Logger,
): Promise<boolean> {
  const admin = createKafkaClient(client).admin();
  try {
    await admin.connect();
    const missing = await missingTopics(admin, topics);
    if (missing.length === 0) return true;
    const outcome = await createDeadLetterTopics(admin, missing);
    if (outcome.created.length > 0)
      logger.info(
        { topics: outcome.created, config: DLQ_TOPIC_CONFIG },
        'created the missing dead-letter topics',
      );
    if (outcome.failed.length > 0) {
      const reasons = [...new Set(outcome.failed.map((f) => f.reason))].join('; ');
      const err = new DeadLetterTopicMissingError(
        outcome.failed.map((f) => f.topic),
        reasons,
      );
      logger.warn(
        {
          err,
          code: err.code,
          topics: outcome.failed.map((f) => f.topic),
          create: outcome.failed.map((f) => kafkaTopicsCommand(f.topic)),
        },
        err.message,
      );
    }
    return true;
  } catch (err) {
    logger.debug({ err }, 'could not check the dead-letter topics');
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
