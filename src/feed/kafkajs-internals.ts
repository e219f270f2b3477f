/**
 * The parts of kafkajs' internals the Kafka source is built on, typed. kafkajs' public consumer only
 * comes as a consumer-group member; matview reads every partition of its topics itself (what the Java
 * client calls `assign()`), so it drives kafkajs' own cluster and protocol layer directly: the Cluster
 * (broker pool, metadata, SASL, TLS, retries on connect), the Fetch request of a connected broker, and
 * the Batch that drops aborted transactions and control records.
 *
 * kafkajs 2.2.4 is in maintenance and frozen, and package.json pins it exactly. These modules are not
 * part of its public API, so the version is checked when this module loads: a different kafkajs fails at
 * start with a sentence, not in the middle of a fetch.
 */
import { createRequire } from 'node:module';
import type { Broker, Cluster, ISocketFactory, LogEntry, RetryOptions, SASLOptions } from 'kafkajs';

const require = createRequire(import.meta.url);

/** The kafkajs release these internals were read from (package.json pins the same). */
export const KAFKAJS_VERSION = '2.2.4';

const installed = (require('kafkajs/package.json') as { version: string }).version;
if (installed !== KAFKAJS_VERSION) {
  throw new Error(
    `matview drives kafkajs ${KAFKAJS_VERSION}'s internals (src/feed/kafkajs-internals.ts) but kafkajs ${installed} is installed: ` +
      `install the version package.json pins (npm ci)`,
  );
}

/** kafkajs' logger as its internals expect it (`src/loggers/index.js`). */
export interface KafkajsLogger {
  namespace(name: string): unknown;
}

/** `src/protocol/isolationLevel.js`: READ_COMMITTED hides records of open and aborted transactions. */
export const READ_COMMITTED = 1;

/** Options of `new Cluster(...)` (`src/cluster/index.js`). */
export interface ClusterOptions {
  readonly logger: KafkajsLogger;
  readonly socketFactory: ISocketFactory;
  readonly brokers: string[];
  readonly ssl?: object;
  readonly sasl?: SASLOptions;
  readonly clientId: string;
  readonly connectionTimeout: number;
  readonly authenticationTimeout?: number;
  readonly reauthenticationThreshold?: number;
  readonly requestTimeout?: number;
  readonly enforceRequestTimeout: boolean;
  readonly metadataMaxAge: number;
  readonly retry: RetryOptions;
  readonly allowAutoTopicCreation: boolean;
  readonly maxInFlightRequests: number | null;
  readonly isolationLevel: number;
}

/** What `Cluster` has beyond kafkajs' published `Cluster` type (same file). */
export interface KafkajsCluster extends Cluster {
  findBroker(node: { nodeId: string | number }): Promise<KafkajsBroker>;
  findGroupCoordinator(group: { groupId: string }): Promise<KafkajsBroker>;
}

/** A decoded record of a Fetch response (`src/protocol/recordBatch/record/v0/decoder.js`). */
export interface FetchedMessage {
  readonly offset: string;
  readonly timestamp: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers?: Record<string, Buffer | Buffer[] | undefined>;
  readonly isControlRecord?: boolean;
}

/** One partition of a Fetch response, errors not thrown (see `fetchLenient`). */
export interface FetchedPartition {
  readonly partition: number;
  readonly errorCode: number;
  readonly highWatermark: string;
  readonly abortedTransactions?: readonly { producerId: string; firstOffset: string }[];
  readonly messages: readonly FetchedMessage[];
}

export interface FetchResponse {
  readonly errorCode?: number;
  readonly responses: readonly { topicName: string; partitions: readonly FetchedPartition[] }[];
}

interface ProtocolRequest {
  readonly request: unknown;
  readonly response: { decode(raw: Buffer): Promise<unknown>; parse(data: unknown): Promise<unknown> };
  readonly requestTimeout?: number;
}

/** `Broker` with the members `fetchLenient` needs (`src/broker/index.js`). */
export interface KafkajsBroker extends Broker {
  readonly nodeId: number | null;
  lookupRequest(apiKey: number, definitions: unknown): (options: object) => ProtocolRequest;
  readonly connectionPool: { send(request: ProtocolRequest): Promise<unknown> };
}

/** `src/consumer/batch.js`: the records of one partition of a fetch, without aborted and control records. */
export interface KafkajsBatch {
  readonly messages: readonly FetchedMessage[];
  readonly highWatermark: string;
  isEmpty(): boolean;
  /** Records were fetched but all were control records, aborted, or below the fetch offset. */
  isEmptyDueToFiltering(): boolean;
  /** The offset of the last fetched record, filtered ones included (where the next fetch starts, minus 1). */
  lastOffset(): string;
}

export interface KafkajsProtocolError extends Error {
  readonly type: string;
  readonly code: number;
  readonly retriable: boolean;
}

const ClusterClass = require('kafkajs/src/cluster/index.js') as new (
  options: ClusterOptions,
) => KafkajsCluster;
const BatchClass = require('kafkajs/src/consumer/batch.js') as new (
  topic: string,
  fetchedOffset: string,
  partitionData: FetchedPartition,
) => KafkajsBatch;
const loggers = require('kafkajs/src/loggers/index.js') as {
  createLogger(options: {
    level: number;
    logCreator: (level: number) => (entry: LogEntry) => void;
  }): KafkajsLogger;
};
const defaultSocketFactory = require('kafkajs/src/network/socketFactory.js') as () => ISocketFactory;
const apiKeys = require('kafkajs/src/protocol/requests/apiKeys.js') as Record<string, number>;
const { requests } = require('kafkajs/src/protocol/requests/index.js') as {
  requests: Record<string, unknown>;
};
const protocolErrors = require('kafkajs/src/protocol/error.js') as {
  createErrorFromCode(code: number): KafkajsProtocolError;
};

export const createCluster = (options: ClusterOptions): KafkajsCluster => new ClusterClass(options);

export const createBatch = (topic: string, fetchedOffset: string, data: FetchedPartition): KafkajsBatch =>
  new BatchClass(topic, fetchedOffset, data);

export const createKafkajsLogger = (
  level: number,
  logCreator: (level: number) => (entry: LogEntry) => void,
): KafkajsLogger => loggers.createLogger({ level, logCreator });

export const createSocketFactory = (): ISocketFactory => defaultSocketFactory();

/** The protocol error of a Kafka error code (kafkajs `createErrorFromCode`: `type`, `retriable`). */
export const protocolError = (code: number): KafkajsProtocolError => protocolErrors.createErrorFromCode(code);

export interface FetchRequest {
  readonly maxWaitTime: number;
  readonly minBytes: number;
  readonly maxBytes: number;
  readonly isolationLevel: number;
  readonly topics: readonly {
    topic: string;
    partitions: readonly { partition: number; fetchOffset: string; maxBytes: number }[];
  }[];
}

/**
 * A Fetch request whose per-partition errors come back as data. kafkajs' `broker.fetch` throws the first
 * partition error of a response (`src/protocol/requests/fetch/v0/response.js` parse) and drops every other
 * partition's records with it; one partition out of range would delay all of that broker's partitions by a
 * round trip. Same request, same connection (the broker's fetch connection), same handling of a closed
 * connection as `Broker[SEND_REQUEST]`.
 */
export async function fetchLenient(broker: KafkajsBroker, request: FetchRequest): Promise<FetchResponse> {
  const protocol = broker.lookupRequest(
    apiKeys['Fetch']!,
    requests['Fetch'],
  )({
    ...request,
    topics: request.topics.map((t) => ({ topic: t.topic, partitions: [...t.partitions] })),
    rackId: '',
  });
  const lenient: ProtocolRequest = {
    ...protocol,
    response: { decode: (raw) => protocol.response.decode(raw), parse: async (data) => data },
  };
  try {
    const data = (await broker.connectionPool.send(lenient)) as FetchResponse;
    // v7+ carry a top-level error (fetch sessions, which kafkajs never opens): raise it like kafkajs would.
    if (data.errorCode !== undefined && data.errorCode !== 0) throw protocolError(data.errorCode);
    return data;
  } catch (error) {
    if ((error as Error).name === 'KafkaJSConnectionClosedError') await broker.disconnect();
    throw error;
  }
}
