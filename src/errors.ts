/**
 * The error catalogue: every failure matview raises on purpose has a class here with a stable
 * `code` (never reused), a `retriable` flag and the context needed to act on it.
 * Modelled on fastify `lib/errors.js` (codes as data, tested against docs/errors.md) and
 * kafkajs `src/errors.js` (`retriable`, `cause`, predicates instead of string matching).
 */

export interface MatviewErrorOptions {
  readonly cause?: unknown;
  readonly retriable?: boolean;
}

export class MatviewError extends Error {
  readonly code: string;
  readonly retriable: boolean;

  constructor(code: string, message: string, options: MatviewErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** A configuration value is missing or malformed; the message names the variable and the fix. */
export class ConfigError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super('MV_ERR_CONFIG_INVALID', message, options);
  }
}

/** Codes attached to invalid changelog records (they travel in the DLQ `matview.error.code` header). */
export const RecordErrorCode = {
  /** Key missing, empty, not UTF-8 or longer than 512 bytes. */
  KeyInvalid: 'MV_ERR_RECORD_KEY_INVALID',
  /** Value is not valid UTF-8 JSON. */
  JsonInvalid: 'MV_ERR_RECORD_JSON_INVALID',
  /** Value is JSON but not an object. */
  NotObject: 'MV_ERR_RECORD_NOT_OBJECT',
  /** A required field is absent or null. */
  FieldMissing: 'MV_ERR_RECORD_FIELD_MISSING',
  /** A field has the wrong JSON type (ids must be non-empty strings). */
  FieldType: 'MV_ERR_RECORD_FIELD_TYPE',
  /** The key field inside the value differs from the record key. */
  KeyMismatch: 'MV_ERR_RECORD_KEY_MISMATCH',
  /** A date-time field is neither ISO-8601 nor the `Tue Jan 22 15:14:44 +0000 2008` form. */
  DateInvalid: 'MV_ERR_RECORD_DATE_INVALID',
  /** Not a change event of the topic's format: no Debezium envelope, an unknown `op`, no row where one is needed. */
  EnvelopeInvalid: 'MV_ERR_RECORD_ENVELOPE_INVALID',
  /** Not in the Confluent wire format (magic byte 0, 4-byte schema id), or the bytes do not decode with that schema. */
  AvroInvalid: 'MV_ERR_RECORD_AVRO_INVALID',
  /** The schema registry has no schema with the record's schema id. */
  SchemaUnknown: 'MV_ERR_RECORD_SCHEMA_UNKNOWN',
  /** The record's schema is not an Avro schema matview can read. */
  SchemaInvalid: 'MV_ERR_RECORD_SCHEMA_INVALID',
  /** The record's schema lacks the column mapped to a required contract field. */
  SchemaMismatch: 'MV_ERR_RECORD_SCHEMA_MISMATCH',
} as const;
export type RecordErrorCode = (typeof RecordErrorCode)[keyof typeof RecordErrorCode];

/** A changelog record that cannot be applied; it goes to the dead-letter topic. */
export class InvalidRecordError extends MatviewError {
  constructor(code: RecordErrorCode, message: string, options?: MatviewErrorOptions) {
    super(code, message, options);
  }
}

/** The dead-letter topic could not be written; the feed pauses and retries rather than dropping. */
export class DeadLetterWriteError extends MatviewError {
  constructor(
    readonly topic: string,
    options?: MatviewErrorOptions,
  ) {
    super('MV_ERR_DLQ_WRITE', `Could not write to dead-letter topic "${topic}"`, {
      retriable: true,
      ...options,
    });
  }
}

/**
 * The schema registry could not answer (unreachable, timed out, 5xx, refused the credentials): the batch
 * is retried, never dead-lettered, since the records themselves may be fine.
 */
export class SchemaRegistryError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super('MV_ERR_SCHEMA_REGISTRY', message, { retriable: true, ...options });
  }
}

/**
 * What lmdb-js 3.5.6 says when the check it runs before a commit finds its list of free pages inconsistent
 * (pages listed twice): it refuses that commit (MDB_BAD_TXN) and every later one of the store. An lmdb-js
 * fault, open upstream (HarperFast/harper#685, #686), reproduced here on a store after a 10M-record rebuild
 * (README "Operations"). Its other messages for the same fault name the free-space record it could not
 * delete.
 */
const LMDB_FREE_LIST_FAULT = /freelist entry \d+ had bad\/duplicate entries|free-space record/;

/** What an operator can do about a store whose free-page list lmdb-js refuses (README "Operations"). */
export const FREE_LIST_ADVICE =
  "lmdb-js found the store's list of free pages inconsistent and refuses to commit into it; the data " +
  'committed so far stays readable. Write a compacted copy, which has no such list, and install it: ' +
  '`matview snapshot <file>`, stop the server, `matview restore <file> --force`, start it again';

/**
 * LMDB refused a write (map full, disk error, or lmdb-js' fault with its free pages: FREE_LIST_ADVICE is
 * added to the message). Nothing after the last commit was applied.
 */
export class StoreWriteError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super(
      'MV_ERR_STORE_WRITE',
      LMDB_FREE_LIST_FAULT.test(message) ? `${message} (${FREE_LIST_ADVICE})` : message,
      options,
    );
  }
}

/**
 * A batch the store refused because it is stopping (shutdown): nothing of it was applied, and the feed reads
 * it again at the next start (the positions are stored with the data). Not a failure: nobody logs it as one.
 */
export class StoreStoppingError extends StoreWriteError {
  constructor() {
    super('the store is stopping: the batch was not applied; it is read again at the next start', {
      retriable: true,
    });
  }
}

/**
 * A batch that continues its partition from an offset the store's position has not reached: the source
 * handed it out while the batch before it was still being applied (src/feed/partition-feed.ts), and that one
 * was not applied. Nothing of it was applied; the source reads the partition again from where the store is.
 */
export class BatchOutOfOrderError extends MatviewError {
  static readonly CODE = 'MV_ERR_BATCH_OUT_OF_ORDER';

  constructor(topic: string, partition: number, from: string, position: string | undefined) {
    super(
      BatchOutOfOrderError.CODE,
      `${topic}[${partition}]: the batch continues from offset ${from}, but the store's position is ${position ?? 'none'}: the batch before it was not applied, so this one was not either; the partition is read again from the store's position`,
      { retriable: true },
    );
  }
}

/** The data directory cannot be created or written. */
export class DataDirError extends MatviewError {
  constructor(
    readonly dir: string,
    reason: string,
    options?: MatviewErrorOptions,
  ) {
    super('MV_ERR_DATA_DIR', `DATA_DIR "${dir}" is not usable: ${reason}`, options);
  }
}

/** The Kafka consumer crashed and will not recover by itself; the process exits so a supervisor restarts it. */
export class FeedCrashError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super('MV_ERR_FEED_CRASH', message, options);
  }
}

/**
 * The Kafka cluster refused matview's credentials: SASL authentication failed (wrong username, password
 * or token, a mechanism the listener does not enable) or no OAUTHBEARER token could be obtained. Reads go
 * on from the store; the feed retries with backoff.
 */
export class KafkaAuthError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super('MV_ERR_KAFKA_AUTH', message, { retriable: true, ...options });
  }
}

/** The TLS handshake with a broker failed (unknown CA, name mismatch, expired or missing certificate). */
export class KafkaTlsError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super('MV_ERR_KAFKA_TLS', message, { retriable: true, ...options });
  }
}

/** No broker answered (refused, timed out, connection closed); the feed retries with backoff. */
export class KafkaUnreachableError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super('MV_ERR_KAFKA_UNREACHABLE', message, { retriable: true, ...options });
  }
}

/** The cluster's ACLs refuse an operation matview needs (read a topic, commit to the group, create a topic). */
export class KafkaNotAuthorizedError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super('MV_ERR_KAFKA_NOT_AUTHORIZED', message, { retriable: true, ...options });
  }
}

/** A broker answered a request with an error matview has no specific handling for; retried with backoff. */
export class KafkaRequestError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super('MV_ERR_KAFKA_REQUEST', message, { retriable: true, ...options });
  }
}

/**
 * Dead-letter topics are missing and could not be created with matview's credentials (managed clusters
 * usually disable auto-creation). Invalid records wait in the store's outbox meanwhile; nothing is lost.
 */
export class DeadLetterTopicMissingError extends MatviewError {
  constructor(
    readonly topics: readonly string[],
    reason: string,
    options?: MatviewErrorOptions,
  ) {
    super(
      'MV_ERR_DLQ_TOPIC_MISSING',
      `Dead-letter topic${topics.length === 1 ? '' : 's'} ${topics.join(', ')} ` +
        `${topics.length === 1 ? 'does' : 'do'} not exist and could not be created (${reason}). ` +
        'Create them with `matview topics create` using credentials allowed to create topics, or ask a cluster ' +
        'administrator to; invalid records wait in the store (matview_dlq_outbox_records) until then',
      { retriable: true, ...options },
    );
  }
}

/** `matview topics create` could not create a topic (not authorized, policy violation, invalid config). */
export class TopicCreateError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super('MV_ERR_TOPIC_CREATE', message, options);
  }
}

/**
 * Another matview instance commits to the same KAFKA_GROUP_ID. Each instance reads every partition itself,
 * so nothing is split or lost, but the group's offsets (what lag tools show) flip between the two.
 */
export class GroupSharedError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super('MV_ERR_GROUP_SHARED', message, options);
  }
}

/**
 * A process could not open an LMDB environment (the store, the embedded changelog) that another process
 * writes: the writer did not let it in (lmdb-open-gate.ts) within the time allowed, or refused its token.
 */
export class OpenGateError extends MatviewError {
  constructor(
    readonly path: string,
    reason: string,
    options?: MatviewErrorOptions,
  ) {
    super('MV_ERR_OPEN_GATE', `Cannot open "${path}" next to the process writing it: ${reason}`, {
      retriable: true,
      ...options,
    });
  }
}

/** A CLI tool was pointed at a directory that holds no matview store. */
export class StoreMissingError extends MatviewError {
  constructor(
    readonly path: string,
    options?: MatviewErrorOptions,
  ) {
    super(
      'MV_ERR_STORE_MISSING',
      `No matview store in "${path}": check DATA_DIR (the store lives in DATA_DIR/view)`,
      options,
    );
  }
}

/**
 * A stored position is outside the records the source still holds: retention removed records the view
 * has not applied yet, or the topic was deleted and recreated. Raised with `OFFSET_RESET_POLICY=fail`;
 * with `rebuild` the view is rebuilt from the earliest offset instead. Never skipped silently.
 */
export class OffsetOutOfRangeError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super('MV_ERR_OFFSET_OUT_OF_RANGE', message, options);
  }
}

/** `matview snapshot` / `matview restore` refused or failed (target exists, not a snapshot, copy failed). */
export class SnapshotError extends MatviewError {
  constructor(message: string, options?: MatviewErrorOptions) {
    super('MV_ERR_SNAPSHOT', message, options);
  }
}

/**
 * An append to the embedded changelog went to the process that writes it (another matview process on the
 * same data directory, see `src/feed/changelog-writer-link.ts`), which went away or did not answer in time
 * after it had the request: the records may or may not be stored. The next append takes over as the writer
 * when that process is gone.
 */
export class ChangelogForwardError extends MatviewError {
  constructor(
    readonly dir: string,
    reason: string,
    options?: MatviewErrorOptions,
  ) {
    super('MV_ERR_CHANGELOG_FORWARD', `Append to the embedded changelog in "${dir}" failed: ${reason}`, {
      retriable: true,
      ...options,
    });
  }
}

/** A "can't happen" state: always a bug in matview. */
export class InvariantError extends MatviewError {
  constructor(message: string) {
    super(
      'MV_ERR_INVARIANT',
      `Invariant violated: ${message}. This is likely a bug in matview and should be reported.`,
    );
  }
}

/** Asserts a condition that only a bug can break (graphql-js `jsutils/invariant.ts`). */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}

export const isMatviewError = (e: unknown): e is MatviewError => e instanceof MatviewError;

/** The message of whatever was thrown (an Error's, else its string form). */
export const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** lmdb-js' `commitError` of a failed commit: a second rejected promise that holds the real error. */
function commitErrorOf(error: unknown): Promise<unknown> | undefined {
  const commitError = (error as { commitError?: unknown } | null)?.commitError;
  return commitError instanceof Promise ? commitError : undefined;
}

/**
 * The reason an LMDB commit failed (the store's and the embedded changelog's). lmdb-js rejects with a
 * generic "Commit failed (see commitError for details)" whose `commitError` holds the real error (ENOSPC,
 * EIO…): read it, both for a message that says what happened and because left alone it is an unhandled
 * rejection.
 */
export async function commitFailure(error: unknown): Promise<string> {
  const message = messageOf(error);
  const commitError = commitErrorOf(error);
  if (commitError === undefined) return message;
  const cause: unknown = await commitError.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  return cause instanceof Error ? cause.message : message;
}

/** A rejection of lmdb-js' commit, as opposed to an error thrown by the transaction's own code. */
export const isCommitFailure = (error: unknown): boolean => commitErrorOf(error) !== undefined;

/** A Kafka cluster that is down or refuses matview (credentials, TLS, ACLs): the feed's to retry, not a bug. */
export const isKafkaUnavailable = (e: unknown): boolean =>
  e instanceof KafkaAuthError ||
  e instanceof KafkaTlsError ||
  e instanceof KafkaUnreachableError ||
  e instanceof KafkaNotAuthorizedError ||
  e instanceof KafkaRequestError;
export const isRetriable = (e: unknown): boolean => isMatviewError(e) && e.retriable;
export const isInvalidRecord = (e: unknown): e is InvalidRecordError => e instanceof InvalidRecordError;
