/**
 * `matview demo [--kafka]`: runs the demo generator against Kafka (KAFKA_BROKERS, required with
 * --kafka) or the embedded changelog in DATA_DIR, until SIGTERM/SIGINT.
 */
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { startDemoGenerator } from '../demo/generator.js';
import { openEmbeddedChangelog } from '../feed/embedded-changelog.js';
import { createKafkaWriter } from '../feed/kafka-writer.js';
import type { ChangelogWriter, FeedSource } from '../feed/types.js';
import { kafkaClientOptions, type Config } from '../ops/config.js';
import { createLogger } from '../ops/logger.js';
import { ensureDataDir } from '../wiring/runtime.js';

export async function runDemo(config: Config, args: string[]): Promise<void> {
  const logger = createLogger(config.logLevel, { command: 'demo' });
  const useKafka = args.includes('--kafka');
  let writer: ChangelogWriter;
  let alreadySeeded: boolean;
  if (useKafka) {
    if (!config.kafka)
      throw new ConfigError('matview demo --kafka needs KAFKA_BROKERS (e.g. KAFKA_BROKERS=localhost:9092)');
    writer = createKafkaWriter(kafkaClientOptions(config.kafka, logger, `${config.kafka.clientId}-demo`));
    alreadySeeded = args.includes('--no-seed');
  } else {
    const log = await openEmbeddedChangelog({
      dir: join(ensureDataDir(config.dataDir), 'changelog'),
      logger,
    });
    const ends = await (log as FeedSource).endOffsets([config.topics.users]);
    alreadySeeded = ends.some((e) => e.next !== '0');
    writer = log;
  }
  const demo = startDemoGenerator({
    writer,
    topics: config.topics,
    rate: config.demo.rate,
    users: config.demo.users,
    ...(config.demo.seed === undefined ? {} : { seed: config.demo.seed }),
    logger,
    alreadySeeded,
  });
  const stop = async () => {
    await demo.stop();
    await writer.close();
    logger.info({ produced: demo.produced() }, 'demo stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  await demo.seeded;
  logger.info({ produced: demo.produced(), rate: config.demo.rate }, 'demo seeded; producing live traffic');
}
