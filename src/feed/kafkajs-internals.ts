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
// kafkajs with its request queue fixed, before any connection of these internals is made (that module says why).
import './kafkajs-module.js';
import type { DecodeTurns } from './loop-turns.js';
import { decodeFetchedBatch, decodeRecordBatch } from './record-batch.js';

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
  /** A header a producer sent without a value (Java's `new RecordHeader(key, null)`) is null. */
  readonly headers?: Record<string, Buffer | null | (Buffer | null)[] | undefined>;
  readonly isControlRecord?: boolean;
}

/** One partition of a Fetch response, errors not thrown (see `fetchLenient`). */
export interface FetchedPartition {
  readonly partition: number;
  readonly errorCode: number;
  readonly highWatermark: string;
  readonly abortedTransactions?: readonly { producerId: string; firstOffset: string }[];
  /**
   * kafkajs' records; from `decodeFetchV11` without aborted transactions, the feed's records already
   * (record-batch.ts FetchedRecord, which has the members read here).
   */
  readonly messages: readonly FetchedMessage[];
}

export interface FetchResponse {
  readonly errorCode?: number;
  readonly responses: readonly { topicName: string; partitions: readonly FetchedPartition[] }[];
}

interface ProtocolRequest {
  readonly request: { readonly apiVersion: number };
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

/** `src/protocol/decoder.js`, the members the Fetch response decoding below uses. */
interface KafkajsDecoder {
  readonly buffer: Buffer;
  readInt8(): number;
  readInt16(): number;
  readInt32(): number;
  readInt64(): { toString(): string };
  readString(): string;
  readBytes(length: number): Buffer;
  canReadBytes(length: number): boolean;
  readArray<T>(reader: (decoder: KafkajsDecoder) => T): T[];
}
const DecoderClass = require('kafkajs/src/protocol/decoder.js') as new (buffer: Buffer) => KafkajsDecoder;
const decodeMessageSet = require('kafkajs/src/protocol/messageSet/decoder.js') as (
  decoder: KafkajsDecoder,
  size: number,
) => Promise<FetchedMessage[]>;
const { MAGIC_BYTE } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as { MAGIC_BYTE: number };

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
export async function fetchLenient(
  broker: KafkajsBroker,
  request: FetchRequest,
  turns?: DecodeTurns,
): Promise<FetchResponse> {
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
    response: {
      decode: (raw) =>
        turns !== undefined && protocol.request.apiVersion === 11
          ? decodeFetchV11(raw, turns)
          : protocol.response.decode(raw),
      parse: async (data) => data,
    },
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

/** `src/protocol/requests/fetch/v4/decodeMessages.js`: where a record batch's magic byte is. */
const MAGIC_OFFSET = 16;
/** Same file: the smallest record batch. */
const RECORD_BATCH_OVERHEAD = 49;

/**
 * kafkajs' decoding of a Fetch v11 response (`src/protocol/requests/fetch/v11/response.js` with
 * `v4/decodeMessages.js`), the same result field for field, except that it takes a turn of the event loop
 * between two record batches once it decoded for `turns.sliceMs`. kafkajs decodes a whole response in one
 * task: at 1 MiB per partition a response of a broker leading 5 partitions is ~15,000 records, ~75 ms during
 * which no read is answered. A record batch is what a producer sent at once (hundreds to a few thousand
 * records). v11 is what kafkajs 2.2.4 asks any broker since Kafka 2.3 for; older versions keep kafkajs' decode.
 */
export async function decodeFetchV11(raw: Buffer, turns: DecodeTurns): Promise<FetchResponse> {
  const decoder = new DecoderClass(raw);
  const clientSideThrottleTime = decoder.readInt32();
  const errorCode = decoder.readInt16();
  const sessionId = decoder.readInt32();
  let batches = 0;
  let sliceStart = performance.now();
  const turn = async (): Promise<void> => {
    if (batches++ === 0 || performance.now() - sliceStart < turns.sliceMs) return;
    await turns.next();
    sliceStart = performance.now();
  };
  const responses = await readArrayInOrder(decoder, async (d) => {
    const topicName = d.readString();
    const partitions = await readArrayInOrder(d, async (p) => {
      const partition = p.readInt32();
      const errorCode = p.readInt16();
      const highWatermark = p.readInt64().toString();
      const lastStableOffset = p.readInt64().toString();
      const lastStartOffset = p.readInt64().toString();
      const abortedTransactions = p.readArray((a) => ({
        producerId: a.readInt64().toString(),
        firstOffset: a.readInt64().toString(),
      }));
      const preferredReadReplica = p.readInt32();
      // Records of aborted transactions are dropped by kafkajs' Batch, which needs kafkajs' record shape.
      const fetched = abortedTransactions.length === 0 ? { topic: topicName, partition } : undefined;
      const messages = await decodeMessages(p, turn, fetched);
      return {
        partition,
        errorCode,
        highWatermark,
        lastStableOffset,
        lastStartOffset,
        abortedTransactions,
        preferredReadReplica,
        messages,
      };
    });
    return { topicName, partitions };
  });
  return { throttleTime: 0, clientSideThrottleTime, errorCode, sessionId, responses } as FetchResponse;
}

/** `Decoder#readArrayAsync`: each element decoded after the previous one. */
async function readArrayInOrder<T>(
  decoder: KafkajsDecoder,
  reader: (decoder: KafkajsDecoder) => Promise<T>,
): Promise<T[]> {
  const length = decoder.readInt32();
  if (length === -1) return [];
  const array = new Array<T>(length);
  for (let i = 0; i < length; i++) array[i] = await reader(decoder);
  return array;
}

/**
 * `v4/decodeMessages.js`, with `turn()` before each record batch, and each record batch decoded by
 * record-batch.ts: as the feed's records of `fetched` (FetchedRecord, one object per record) when given,
 * else kafkajs' result with fewer allocations.
 */
async function decodeMessages(
  decoder: KafkajsDecoder,
  turn: () => Promise<void>,
  fetched?: { readonly topic: string; readonly partition: number },
): Promise<FetchedMessage[]> {
  const messagesSize = decoder.readInt32();
  if (messagesSize <= 0 || !decoder.canReadBytes(messagesSize)) return [];
  const messagesBuffer = decoder.readBytes(messagesSize);
  const magicByte = messagesBuffer.subarray(MAGIC_OFFSET).readInt8(0);
  if (magicByte !== MAGIC_BYTE) return decodeMessageSet(new DecoderClass(messagesBuffer), messagesSize);
  const records: FetchedMessage[] = [];
  for (let at = 0; messagesBuffer.length - at >= RECORD_BATCH_OVERHEAD;) {
    await turn();
    try {
      if (fetched !== undefined)
        at = await decodeFetchedBatch(messagesBuffer, at, fetched.topic, fetched.partition, records);
      else {
        const batch = await decodeRecordBatch(messagesBuffer, at);
        for (const record of batch.records) records.push(record);
        at = batch.next;
      }
    } catch (e) {
      // The tail of a partition's data can be a partial record batch (how maxBytes works).
      if ((e as Error).name === 'KafkaJSPartialMessageError') break;
      throw e;
    }
  }
  return records;
}
