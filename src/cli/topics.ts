/**
 * `matview topics create`: creates the dead-letter topics (`<topic><DLQ_SUFFIX>` of each TOPIC_*) that are
 * missing, with the settings of src/feed/dead-letter-topics.ts (delete policy, 14-day retention, the
 * broker's partitions and replication), using KAFKA_BROKERS and the same TLS/SASL settings as `serve`.
 * Managed clusters usually disable auto-creation and give applications no right to create topics: run it
 * once with credentials that may (KAFKA_SASL_USERNAME/PASSWORD of an admin), or hand the printed
 * `kafka-topics.sh` lines to whoever administers the cluster.
 * Exit 0: every dead-letter topic exists afterwards; 1: some could not be created (each is named, with the
 * broker's reason); 2: bad usage.
 */
import { ConfigError, TopicCreateError } from '../errors.js';
import { createKafkaClient } from '../feed/kafka-client.js';
import { explainKafkaError } from '../feed/kafka-errors.js';
import {
  DLQ_TOPIC_CONFIG,
  createDeadLetterTopics,
  kafkaTopicsCommand,
  missingTopics,
} from '../feed/dead-letter-topics.js';
import { kafkaClientOptions, type Config } from '../ops/config.js';
import { createLogger } from '../ops/logger.js';
import { ExitCode, UsageError, parse, type Print } from './args.js';

export async function runTopics(config: Config, args: readonly string[], print: Print): Promise<ExitCode> {
  const { positionals } = parse('topics', args, {}, 1);
  if (positionals[0] !== 'create')
    throw new UsageError(`matview topics: unknown subcommand "${positionals[0]}" (expected "create")`);
  const kafka = config.kafka;
  if (kafka === undefined)
    throw new ConfigError(
      'matview topics create needs KAFKA_BROKERS (and the KAFKA_SSL*/KAFKA_SASL* settings of the cluster)',
    );
  const topics = Object.values(config.topics).map((t) => `${t}${config.dlqSuffix}`);
  const logger = createLogger(config.logLevel, { command: 'topics' });
  const admin = createKafkaClient(kafkaClientOptions(kafka, logger, `${kafka.clientId}-topics`)).admin();
  try {
    let missing: string[];
    try {
      await admin.connect();
      missing = await missingTopics(admin, topics);
    } catch (cause) {
      throw new TopicCreateError(`matview topics create: ${explainKafkaError(cause)}`, { cause });
    }
    for (const topic of topics) if (!missing.includes(topic)) print(`topics: ${topic} exists`);
    const outcome = await createDeadLetterTopics(admin, missing);
    const settings = Object.entries(DLQ_TOPIC_CONFIG)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ');
    for (const topic of outcome.created)
      print(`topics: ${topic} created (${settings}; partitions and replication: the broker's defaults)`);
    for (const topic of outcome.existed) print(`topics: ${topic} exists`);
    for (const { topic, reason } of outcome.failed) print(`topics: ${topic} NOT created: ${reason}`);
    if (outcome.failed.length === 0) return ExitCode.Ok;
    print(
      'topics: these credentials may not create them (or a topic policy refused the settings). Run this command with ' +
        'credentials allowed to create topics, or ask a cluster administrator to run:',
    );
    for (const { topic } of outcome.failed) print(`  ${kafkaTopicsCommand(topic)}`);
    print(
      'topics: until then matview keeps the invalid records in its store (matview_dlq_outbox_records); nothing is lost',
    );
    return ExitCode.Failed;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
