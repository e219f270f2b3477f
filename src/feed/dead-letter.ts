/**
 * Dead letters (CONTRACT.md §1 "Invalid record"): an invalid record is copied, byte for byte, to
 * `<topic><suffix>` with headers saying where it came from and why it was rejected, so it can be
 * inspected and replayed. The copy is stored in the store's outbox with the batch that consumed the
 * record (src/pipeline/ingest.ts), and src/pipeline/dead-letter-drainer.ts writes it to the topic over any
 * ChangelogWriter (Kafka or the embedded log).
 */
import { setHeader } from './headers.js';
import type { FeedRecord, OutgoingMessage } from './types.js';

/** Header names added to every dead-lettered record. Fixed: operators' tooling filters on them. */
export const DeadLetterHeader = {
  SourceTopic: 'matview.source.topic',
  SourcePartition: 'matview.source.partition',
  SourceOffset: 'matview.source.offset',
  ErrorCode: 'matview.error.code',
  ErrorMessage: 'matview.error.message',
  /** The Confluent schema id of the key or value that failed to decode (Avro formats), when it had one. */
  SchemaId: 'matview.schema.id',
} as const;

/** One rejected record and why (code: a RecordErrorCode from src/errors.ts). */
export interface DeadLetterEntry {
  readonly record: FeedRecord;
  readonly code: string;
  readonly message: string;
  /** The Confluent schema id of the key or value that failed to decode (Avro formats), when it had one. */
  readonly schemaId?: number;
}

/** Error messages can echo user data; keep the header bounded. */
const MAX_MESSAGE_CHARS = 2_000;

/**
 * The DLQ copy of one record: original key, value (null stays null, empty stays empty) and
 * headers, plus the matview.* headers, which win over same-named original headers (a record
 * replayed from a DLQ and rejected again describes its latest rejection).
 */
export function toDeadLetterMessage(entry: DeadLetterEntry): OutgoingMessage {
  const { record } = entry;
  const headers: Record<string, Buffer | string> = {};
  // A header without a value is left out: kafkajs' producer writes no NULL header value.
  for (const [name, value] of Object.entries(record.headers))
    if (value !== undefined) setHeader(headers, name, value);
  headers[DeadLetterHeader.SourceTopic] = record.topic;
  headers[DeadLetterHeader.SourcePartition] = String(record.partition);
  headers[DeadLetterHeader.SourceOffset] = record.offset;
  headers[DeadLetterHeader.ErrorCode] = entry.code;
  headers[DeadLetterHeader.ErrorMessage] =
    entry.message.length > MAX_MESSAGE_CHARS
      ? `${entry.message.slice(0, MAX_MESSAGE_CHARS)}…`
      : entry.message;
  if (entry.schemaId !== undefined) headers[DeadLetterHeader.SchemaId] = String(entry.schemaId);
  // No explicit partition: the DLQ topic may have a different partition count than the source,
  // so the key hash chooses (records with the same key stay together and in order); the source
  // partition travels in a header.
  // Copies: a fetched record's key and value are views of its whole Fetch response (or decompressed batch),
  // which would otherwise be kept with the outbox entry and copied whole to the writer thread.
  const { key, value } = record;
  return {
    key: key === null ? null : Buffer.from(key),
    value: value === null ? null : Buffer.from(value),
    headers,
  };
}

/** Where a record's dead letter goes: `<record.topic><suffix>` (suffix from config DLQ_SUFFIX, e.g. `.dlq`). */
export const deadLetterTopic = (record: FeedRecord, suffix: string): string => `${record.topic}${suffix}`;

/** The outbox entry of a rejected record: its DLQ topic and message. */
export function toOutboxEntry(
  entry: DeadLetterEntry,
  suffix: string,
): { topic: string; message: OutgoingMessage } {
  return { topic: deadLetterTopic(entry.record, suffix), message: toDeadLetterMessage(entry) };
}
