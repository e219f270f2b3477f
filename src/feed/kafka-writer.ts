/**
 * ChangelogWriter over a kafkajs producer: used for the dead-letter topics, the demo generator
 * when pointed at a real cluster, and tests.
 */
import { kafkajs } from './kafkajs-module.js';
import type { Message, Producer } from 'kafkajs';
import { InvariantError } from '../errors.js';
import { createKafkaClient, type KafkaClientOptions } from './kafka-client.js';
import type { ChangelogWriter, OutgoingMessage } from './types.js';

const { CompressionTypes, Partitioners } = kafkajs;

export interface KafkaWriterOptions extends KafkaClientOptions {
  /** Record-batch compression. Only what every consumer can read without extra codecs. Default 'none'. */
  readonly compression?: 'gzip' | 'none';
  /**
   * Idempotent producer (exactly-once per partition across retries). Off by default because the
   * librdkafka mock cluster cannot serve InitProducerId to kafkajs (kafkajs looks up the
   * controller, and the mock reports one it cannot find: "Broker 0 not found in the cached
   * metadata"). Turn it on against a real cluster.
   */
  readonly idempotent?: boolean;
}

/** A ChangelogWriter that can also be connected eagerly (to fail fast at start-up). */
export interface KafkaWriter extends ChangelogWriter {
  /** Connects now. Optional: `send` connects lazily on first use. Safe to call repeatedly. */
  connect(): Promise<void>;
}

const toKafkaMessage = (m: OutgoingMessage): Message => ({
  key: m.key,
  // null stays null: kafkajs encodes it as a null value, i.e. a tombstone.
  value: m.value,
  ...(m.headers === undefined ? {} : { headers: { ...m.headers } }),
  ...(m.partition === undefined ? {} : { partition: m.partition }),
});

/**
 * Creates a writer. It connects lazily on the first `send` (or eagerly via `connect()`), writes
 * with acks=all and, unless idempotent, one request in flight per broker so kafkajs' retries
 * cannot reorder messages. Partitioning without an explicit partition is kafkajs'
 * DefaultPartitioner: murmur2 of the key, the same as Java's default, so keys land where other
 * producers put them.
 */
export function createKafkaWriter(options: KafkaWriterOptions): KafkaWriter {
  const kafka = createKafkaClient(options);
  const idempotent = options.idempotent ?? false;
  const compression = options.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
  let connecting: Promise<Producer> | undefined;
  let closed = false;

  function connect(): Promise<Producer> {
    // send() after close() is a bug in the caller's shutdown order.
    if (closed) return Promise.reject(new InvariantError('KafkaWriter.send() called after close()'));
    connecting ??= (async () => {
      const p = kafka.producer({
        createPartitioner: Partitioners.DefaultPartitioner,
        idempotent,
        // Ordering across kafkajs retries: an idempotent producer keeps order with up to 5 in flight.
        maxInFlightRequests: idempotent ? 5 : 1,
        allowAutoTopicCreation: true,
      });
      try {
        await p.connect();
      } catch (error) {
        connecting = undefined;
        throw error;
      }
      return p;
    })();
    return connecting;
  }

  return {
    async connect() {
      await connect();
    },

    async send(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
      if (messages.length === 0) return;
      const p = await connect();
      await p.send({ topic, acks: -1, compression, messages: messages.map(toKafkaMessage) });
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      const pending = connecting;
      connecting = undefined;
      const p = await pending?.catch(() => undefined);
      await p?.disconnect();
    },
  };
}
