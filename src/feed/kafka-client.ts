/**
 * The one place Kafka clients are built: brokers, client id, timeouts, TLS and SASL (kafka-security.ts),
 * codecs and logging are the same for the consumer (kafka-source.ts), the dead-letter producer
 * (kafka-writer.ts), the admin client (offset ranges, topic checks) and the CLI.
 */
import { kafkajs } from './kafkajs-module.js';
import type {
  KafkaConfig,
  Kafka as KafkaClient,
  LogEntry,
  logCreator as LogCreator,
  RetryOptions,
} from 'kafkajs';
import type { Logger } from '../ops/logger.js';
import { registerCodecs } from './codecs.js';
import { PLAINTEXT, saslOptions, tlsOptions, type KafkaSecurity } from './kafka-security.js';
import {
  READ_COMMITTED,
  createCluster,
  createKafkajsLogger,
  createSocketFactory,
  type KafkajsCluster,
} from './kafkajs-internals.js';

// kafkajs is CommonJS; only some of its exports are visible as ESM named exports (see codecs.ts).
const { Kafka, logLevel } = kafkajs;

/** Connection settings shared by every Kafka client of a process. */
export interface KafkaClientOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  /** TCP (and TLS) connect timeout per broker (kafkajs `connectionTimeout`). */
  readonly connectionTimeoutMs: number;
  /** Where kafkajs' own log lines go (pino, at debug: matview logs every failure it acts on itself). */
  readonly logger: Logger;
  /** TLS and SASL; default plaintext without authentication. */
  readonly security?: KafkaSecurity;
  /**
   * Overrides kafkajs' retry/backoff (kafkajs `retry`: initialRetryTime, retries, maxRetryTime…).
   * Tests shorten it; production keeps kafkajs' defaults (note kafkajs silently switches to much
   * faster defaults when NODE_ENV=test: kafkajs `src/retry/index.js`).
   */
  readonly retry?: RetryOptions;
}

const KAFKAJS_LEVEL_NAME: Record<number, string> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/**
 * The level kafkajs itself logs at, from the pino logger's: kafkajs builds every entry it logs, and at its
 * DEBUG level that is several per request, so nothing below what pino will print.
 */
export function kafkajsLevelFor(logger: Logger): number {
  if (logger.isLevelEnabled('trace')) return logLevel.DEBUG;
  if (logger.isLevelEnabled('debug')) return logLevel.WARN;
  return logLevel.NOTHING;
}

/**
 * Maps kafkajs log entries onto pino, as JSON with our `service` binding. kafkajs logs each retry of each
 * failed request at error level; the source, the writer and the CLI report every failure they act on once,
 * with its cause and what to check, so kafkajs' errors and warnings are diagnostics at pino's debug level
 * (its info and debug lines at trace), with kafkajs' own level kept as `kafkajsLevel`. kafkajs passes errors
 * as `error` plus `stack`; they become pino's `err`.
 */
export function kafkaLogCreator(logger: Logger): LogCreator {
  const base = logger.child({ component: 'kafkajs' });
  return () => (entry: LogEntry) => {
    const { namespace, level, log } = entry;
    const { message, timestamp: _timestamp, error, stack, ...extra } = log;
    const fields: Record<string, unknown> = { namespace, kafkajsLevel: KAFKAJS_LEVEL_NAME[level], ...extra };
    if (error !== undefined)
      fields['err'] = error instanceof Error ? error : { message: String(error), stack };
    if (level <= logLevel.WARN) base.debug(fields, message);
    else base.trace(fields, message);
  };
}

/** The options every kafkajs client of matview is built with. */
function baseConfig(options: KafkaClientOptions) {
  const security = options.security ?? PLAINTEXT;
  const ssl = tlsOptions(security.tls);
  const sasl = saslOptions(security.sasl, options.logger);
  return {
    brokers: [...options.brokers],
    clientId: options.clientId,
    connectionTimeout: options.connectionTimeoutMs,
    ...(ssl === undefined ? {} : { ssl }),
    ...(sasl === undefined ? {} : { sasl }),
  };
}

/** A kafkajs client (producer, admin) wired the way matview wants it: security, codecs, logs into pino. */
export function createKafkaClient(options: KafkaClientOptions): KafkaClient {
  registerCodecs();
  const config: KafkaConfig = {
    ...baseConfig(options),
    logLevel: kafkajsLevelFor(options.logger),
    logCreator: kafkaLogCreator(options.logger),
    ...(options.retry === undefined ? {} : { retry: options.retry }),
  };
  return new Kafka(config);
}

export interface ClusterClientOptions extends KafkaClientOptions {
  /** Ask brokers to create missing topics on metadata requests (the broker's `auto.create.topics.enable` decides). */
  readonly allowAutoTopicCreation: boolean;
}

/**
 * kafkajs' cluster layer (broker pool, metadata, connections) with the same settings as `createKafkaClient`:
 * what the Kafka source fetches through. Its retries are short (a few attempts within seconds): the source
 * runs its own backoff around them and reports each failure, instead of waiting out kafkajs' 30 s budget.
 */
export function createClusterClient(options: ClusterClientOptions): KafkajsCluster {
  registerCodecs();
  const logCreator = kafkaLogCreator(options.logger);
  return createCluster({
    ...baseConfig(options),
    logger: createKafkajsLogger(kafkajsLevelFor(options.logger), logCreator),
    socketFactory: createSocketFactory(),
    enforceRequestTimeout: true,
    // Metadata is refreshed by the source itself (leader moves, new partitions); this only bounds how
    // stale kafkajs' broker list may get between those refreshes.
    metadataMaxAge: 300_000,
    retry: options.retry ?? { retries: 2, initialRetryTime: 300, maxRetryTime: 2_000 },
    allowAutoTopicCreation: options.allowAutoTopicCreation,
    maxInFlightRequests: null,
    isolationLevel: READ_COMMITTED,
  });
}
