/**
 * Configuration: read once from the environment, validated, then frozen and passed down.
 * Nothing else in matview reads `process.env`. Every bad value is reported with the variable,
 * the value it had and what is allowed (fastify `initial-config-validation.js`, kafkajs messages).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import type { KafkaClientOptions } from '../feed/kafka-client.js';
import type { KafkaSecurity } from '../feed/kafka-security.js';
import type { RegistrySettings } from '../formats/index.js';
import { loadSources, type Sources } from '../formats/sources.js';
import { defaultMaxRecordsPerCommit } from '../store/commit-queue.js';
import { defaultRebuildChunkRecords } from '../store/shadow-chunks.js';
import { defaultViewRebuildBufferEntries } from '../store/view-rebuild.js';
import { kafkaSecurityFrom } from './kafka-security-config.js';
import type { Logger } from './logger.js';
import { loadPersistedDocuments, type PersistedDocuments } from './persisted-documents.js';

const port = z.coerce
  .number({ error: 'must be a number' })
  .int('must be an integer')
  .min(0, 'must be between 0 and 65535')
  .max(65535, 'must be between 0 and 65535');
const positiveInt = z.coerce
  .number({ error: 'must be a number' })
  .int('must be an integer')
  .positive('must be > 0');
const nonNegative = z.coerce.number({ error: 'must be a number' }).min(0, 'must be >= 0');
const topic = z
  .string()
  .regex(
    /^[a-zA-Z0-9._-]{1,200}$/,
    'must be a Kafka topic name (letters, digits, ".", "_", "-"; 1-200 chars)',
  );
const brokers = z
  .string()
  .transform((s) => s.split(',').map((b) => b.trim()))
  .refine(
    (list) => list.length > 0 && list.every((b) => b.length > 0),
    'must be a non-empty comma-separated list',
  )
  .refine(
    (list) => list.every((b) => /^[^\s:]+:\d{1,5}$/.test(b)),
    'every entry must be host:port, e.g. "localhost:9092"',
  );
/** `CORS_ORIGINS`: `*`, `none`, or a list of serialized origins (`scheme://host[:port]`, RFC 6454 §6.1). */
const corsOrigins = z
  .string()
  .transform((s): '*' | string[] =>
    s.trim() === '*' ? '*' : s.trim() === 'none' ? [] : s.split(',').map((o) => o.trim()),
  )
  .refine(
    (v) => v === '*' || v.every(isSerializedOrigin),
    'must be "*", "none" or a comma-separated list of origins like "https://app.example.com" (scheme://host[:port], no path, no trailing slash)',
  );
/** `SUBSCRIPTION_CALLBACK_URLS`: URL prefixes (http/https, no credentials, query or fragment). */
const callbackPrefixes = z
  .string()
  .transform((s) => s.split(',').map((u) => u.trim()))
  .refine(
    (list) => list.length > 0 && list.every(isCallbackPrefix),
    'must be a comma-separated list of http(s) URL prefixes of the router\'s callback endpoint, e.g. "http://router:4000/callback/" (no user:password@, query or fragment)',
  );
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
/** `auto`, or a boolean as `bool` reads one. */
const autoOrBool = z
  .enum(['auto', 'true', 'false', '1', '0'])
  .transform((v): boolean | 'auto' => (v === 'auto' ? 'auto' : v === 'true' || v === '1'));

/**
 * Cores a box needs for `DECODE_THREAD=auto` to start the decode thread (src/pipeline/decode-thread.ts). It is a
 * third busy thread beside the event loop and the writer thread while an instance catches up: on the 2-core
 * bench box (shared with the mock broker and the bench's client) it took cores from the event loop rather
 * than work off it (the figures are in decode-thread.ts), so there it stays off unless asked for.
 */
export const DECODE_THREAD_AUTO_CORES = 4;
const tokenList = z
  .string()
  .transform((s) => s.split(',').map((t) => t.trim()))
  .refine(
    (list) => list.every((t) => /^[\x21-\x7e]{16,}$/.test(t)),
    'must be a comma-separated list of tokens, each at least 16 visible ASCII characters without spaces',
  );

function isCallbackPrefix(prefix: string): boolean {
  try {
    const url = new URL(prefix);
    return (
      (url.protocol === 'http:' || url.protocol === 'https:') &&
      url.username === '' &&
      url.password === '' &&
      url.search === '' &&
      url.hash === ''
    );
  } catch {
    return false;
  }
}

function isSerializedOrigin(origin: string): boolean {
  if (!/^https?:\/\/[^/\s]+$/.test(origin)) return false;
  try {
    return new URL(origin).origin === origin;
  } catch {
    return false;
  }
}

/** Each entry: environment variable → schema with its default. Documented in README "Configuration". */
const schema = z.object({
  PORT: port.default(4000),
  HOST: z.string().min(1).default('0.0.0.0'),
  KAFKA_BROKERS: brokers.optional(),
  KAFKA_CLIENT_ID: z.string().min(1).default('matview'),
  KAFKA_GROUP_ID: z.string().min(1).optional(),
  KAFKA_FETCH_MAX_WAIT_MS: positiveInt.max(30_000, 'must be <= 30000').default(100),
  KAFKA_COMMIT_INTERVAL_MS: nonNegative
    .int('must be an integer')
    .max(60_000, 'must be <= 60000')
    .default(1_000),
  KAFKA_CONCURRENT_PARTITIONS: positiveInt.max(64, 'must be <= 64').default(16),
  KAFKA_CONNECTION_TIMEOUT_MS: positiveInt.default(3_000),
  KAFKA_PREFETCH_BYTES: positiveInt
    .min(1024, 'must be >= 1024')
    .max(64 * 1024 * 1024, 'must be <= 67108864')
    .optional(),
  // TLS and SASL: cross-checked and read by kafka-security-config.ts.
  KAFKA_SSL: bool.default(false),
  KAFKA_SSL_CA_FILE: z.string().min(1).optional(),
  KAFKA_SSL_CERT_FILE: z.string().min(1).optional(),
  KAFKA_SSL_KEY_FILE: z.string().min(1).optional(),
  KAFKA_SSL_REJECT_UNAUTHORIZED: bool.default(true),
  KAFKA_SASL_MECHANISM: z
    .enum(['plain', 'scram-sha-256', 'scram-sha-512', 'oauthbearer'], {
      error: 'must be "plain", "scram-sha-256", "scram-sha-512" or "oauthbearer"',
    })
    .optional(),
  KAFKA_SASL_USERNAME: z.string().min(1).optional(),
  KAFKA_SASL_USERNAME_FILE: z.string().min(1).optional(),
  KAFKA_SASL_PASSWORD: z.string().min(1).optional(),
  KAFKA_SASL_PASSWORD_FILE: z.string().min(1).optional(),
  KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND: z.string().min(1).optional(),
  KAFKA_SASL_OAUTHBEARER_TOKEN_FILE: z.string().min(1).optional(),
  DATA_DIR: z.string().min(1, 'must not be empty').default('./data'),
  LMDB_MAP_SIZE_MB: positiveInt.default(1024),
  MAX_RECORDS_PER_COMMIT: positiveInt.max(1_000_000, 'must be <= 1000000').optional(),
  REBUILD_CHUNK_RECORDS: nonNegative
    .int('must be an integer')
    .max(10_000_000, 'must be <= 10000000')
    .optional(),
  REBUILD_ROWS_FIRST: autoOrBool.default('auto'),
  COLD_START_BULK_LOAD: autoOrBool.default('auto'),
  VIEW_REBUILD_BUFFER_ENTRIES: positiveInt.max(100_000_000, 'must be <= 100000000').optional(),
  WRITER_THREAD: bool.default(true),
  DECODE_THREAD: autoOrBool.default('auto'),
  WRITER_THREAD_NICE: nonNegative.int('must be an integer').max(19, 'must be <= 19').default(0),
  TOPIC_USERS: topic.default('users'),
  TOPIC_TWEETS: topic.default('tweets'),
  TOPIC_FOLLOWS: topic.default('follows'),
  TOPIC_LIKES: topic.default('likes'),
  DLQ_SUFFIX: z
    .string()
    .regex(/^[a-zA-Z0-9._-]{1,40}$/, 'must be 1-40 topic-name characters')
    .default('.dlq'),
  DEMO: bool.default(true),
  DEMO_RATE: nonNegative.max(100_000, 'must be <= 100000').default(20),
  DEMO_USERS: positiveInt.max(10_000_000).default(200),
  DEMO_SEED: z.coerce.number().int().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  NODE_ENV: z.string().default('production'),
  CORS_ORIGINS: corsOrigins.default('*'),
  MIN_OFFSETS_TIMEOUT_MS: positiveInt.max(60_000, 'must be <= 60000').default(2_000),
  APQ_CACHE_BYTES: nonNegative.int('must be an integer').default(8 * 1024 * 1024),
  PERSISTED_DOCUMENTS_FILE: z.string().min(1).optional(),
  SUBSCRIPTION_CALLBACK_URLS: callbackPrefixes.optional(),
  MAX_BODY_BYTES: positiveInt.default(100_000),
  MAX_QUERY_DEPTH: positiveInt.default(6),
  MAX_ALIASES: positiveInt.default(15),
  MAX_TOKENS: positiveInt.default(1000),
  MAX_IDS: positiveInt.default(500),
  MAX_BATCH_OPERATIONS: nonNegative.int().default(10),
  INTROSPECTION: bool.optional(),
  HTTP_HEADERS_TIMEOUT_MS: positiveInt.default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: positiveInt.default(30_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: positiveInt.default(5_000),
  HTTP_MAX_CONNECTIONS: nonNegative.int('must be an integer').default(10_000),
  SHUTDOWN_TIMEOUT_MS: positiveInt.default(10_000),
  WS_INIT_TIMEOUT_MS: positiveInt.max(60_000, 'must be <= 60000').default(3_000),
  WS_KEEPALIVE_MS: nonNegative.int('must be an integer').max(600_000, 'must be <= 600000').default(12_000),
  WS_MAX_SUBSCRIPTIONS: positiveInt.max(10_000, 'must be <= 10000').default(100),
  WS_MAX_PAYLOAD_BYTES: positiveInt.default(100_000),
  WS_BACKPRESSURE_BYTES: positiveInt.default(262_144),
  WS_AUTH_TOKENS: tokenList.optional(),
  READY_MAX_LAG: nonNegative.int('must be an integer').default(10_000),
  READY_LAG_GRACE_MS: nonNegative.int('must be an integer').default(30_000),
  READY_DURING_FEED_OUTAGE: bool.default(true),
  LIVE_STALL_MS: positiveInt.default(60_000),
  LAG_REFRESH_MS: positiveInt.max(600_000, 'must be <= 600000').default(5_000),
  OFFSET_RESET_POLICY: z
    .enum(['rebuild', 'fail'], { error: 'must be "rebuild" or "fail"' })
    .default('rebuild'),
  SOURCES_FILE: z.string().optional(),
  SCHEMA_REGISTRY_USER_INFO: z
    .string()
    .regex(/^[^:]+:.*$/s, 'must be "user:password" (Confluent basic.auth.user.info)')
    .optional(),
  SCHEMA_REGISTRY_USER_INFO_FILE: z.string().optional(),
  SCHEMA_REGISTRY_CA_FILE: z.string().optional(),
  SCHEMA_REGISTRY_CERT_FILE: z.string().optional(),
  SCHEMA_REGISTRY_KEY_FILE: z.string().optional(),
  SCHEMA_REGISTRY_REJECT_UNAUTHORIZED: bool.default(true),
  SCHEMA_REGISTRY_TIMEOUT_MS: positiveInt.max(600_000, 'must be <= 600000').default(10_000),
  VIEW_TOPIC_OUT: topic.optional(),
  VIEW_TOPIC_IN: topic.optional(),
  VIEW_TOPIC_HEARTBEAT_MS: positiveInt
    .min(100, 'must be >= 100')
    .max(600_000, 'must be <= 600000')
    .default(2_000),
  VIEW_TOPIC_MAX_SILENCE_MS: nonNegative
    .int('must be an integer')
    .max(3_600_000, 'must be <= 3600000')
    .default(15_000),
});

type Env = z.infer<typeof schema>;

/** Variables whose values are secrets: validation messages name them without their value. */
const SECRET_KEYS: ReadonlySet<string> = new Set([
  'WS_AUTH_TOKENS',
  'SCHEMA_REGISTRY_USER_INFO',
  'KAFKA_SASL_PASSWORD',
  // A command line may carry a client secret (`curl -d client_secret=…`).
  'KAFKA_SASL_OAUTHBEARER_TOKEN_COMMAND',
]);

/** The variables a sources file replaces. */
const TOPIC_VARIABLES = ['TOPIC_USERS', 'TOPIC_TWEETS', 'TOPIC_FOLLOWS', 'TOPIC_LIKES'] as const;

/** Every environment variable matview reads (the README's configuration table lists each). */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(schema.shape));

export interface Topics {
  readonly users: string;
  readonly tweets: string;
  readonly follows: string;
  readonly likes: string;
}

export interface Config {
  readonly port: number;
  readonly host: string;
  /** undefined: the embedded in-process changelog with the demo generator. */
  readonly kafka:
    | {
        readonly brokers: readonly string[];
        readonly clientId: string;
        /**
         * Group of the informational offset commits (lag tools); never joined: every instance reads all
         * partitions itself. undefined: `matview-<instanceId>`, one group per data directory.
         */
        readonly groupId: string | undefined;
        readonly fetchMaxWaitMs: number;
        readonly connectionTimeoutMs: number;
        /**
         * Bytes of records fetched ahead per partition while its previous batch is applied (unset: the feed's
         * default, DEFAULT_PREFETCH_BYTES in src/feed/kafka-source.ts).
         */
        readonly prefetchBytes?: number;
        /** TLS and SASL (KAFKA_SSL*, KAFKA_SASL*), shared by every Kafka client. */
        readonly security: KafkaSecurity;
        /** Shortest interval between the informational offset commits to the group; 0: every batch. */
        readonly commitIntervalMs: number;
        /** Partitions whose batches are applied at once (each partition stays in offset order). */
        readonly concurrentPartitions: number;
      }
    | undefined;
  readonly dataDir: string;
  readonly lmdbMapSizeBytes: number;
  /** Records materialized in one LMDB write transaction at most (bounds how long one transaction runs). */
  readonly maxRecordsPerCommit: number;
  /** Records per chunk of a rebuild's shadow generation at most (src/store/shadow-chunks.ts); 0: no chunks. */
  readonly rebuildChunkRecords: number;
  /**
   * Whether a rebuild from the changelogs replays its rows before it builds its views from them
   * (src/wiring/rebuild.ts); `auto` (the default): when the live view is large against a commit
   * (`rowsFirstPays`).
   */
  readonly rebuildRowsFirst: boolean | 'auto';
  /**
   * Whether a store that never applied a record loads the topics' history as a rebuild before the live feed
   * starts (src/wiring/cold-start.ts); `auto` (the default): when the history holds at least
   * `maxRecordsPerCommit` records.
   */
  readonly coldStartBulkLoad: boolean | 'auto';
  /**
   * Entries a view rebuilt from the stored rows buffers in memory between writes (src/store/view-rebuild.ts);
   * default: what a third of the heap limit holds.
   */
  readonly viewRebuildBufferEntries: number;
  /** Materialize and commit batches on a worker thread (src/store/writer-thread.ts). */
  readonly writerThread: boolean;
  /** Nice steps the writer thread runs below the event loop's CPU priority (src/store/thread-priority.ts). */
  readonly writerThreadNice: number;
  /**
   * Decode large batches on a worker thread (src/pipeline/decode-thread.ts); only with the writer thread.
   * `DECODE_THREAD=auto` (the default): when the box has at least DECODE_THREAD_AUTO_CORES cores.
   */
  readonly decodeThread: boolean;
  readonly topics: Topics;
  /**
   * `SOURCES_FILE` (default unset): the sources file (src/formats/sources.ts), validated at start: each table's
   * topic, format and column mapping. Unset: every topic is read in the `json` format from `TOPIC_*`. Setting
   * both is refused: the file names the topics.
   */
  readonly sources: Sources | undefined;
  /** Credentials and TLS for the schema registry the sources file names (`SCHEMA_REGISTRY_*`). */
  readonly schemaRegistry: RegistrySettings;
  readonly dlqSuffix: string;
  readonly demo: {
    readonly enabled: boolean;
    readonly rate: number;
    readonly users: number;
    readonly seed: number | undefined;
  };
  readonly logLevel: Env['LOG_LEVEL'];
  readonly development: boolean;
  readonly limits: {
    readonly maxBodyBytes: number;
    readonly maxDepth: number;
    readonly maxAliases: number;
    readonly maxTokens: number;
    readonly maxIds: number;
    readonly maxBatchOperations: number;
    /** Slowloris guards (node:http): time to receive the headers / the whole request; idle keep-alive; open sockets (0 = no cap). */
    readonly headersTimeoutMs: number;
    readonly requestTimeoutMs: number;
    readonly keepAliveTimeoutMs: number;
    readonly maxConnections: number;
  };
  readonly introspection: boolean;
  /**
   * `CORS_ORIGINS` (default `*`, as Apollo Server's standalone server): origins whose pages may read `/graphql`,
   * `/users/:id` and `/health/*` (api/http/cors.ts); a browser WebSocket from any other origin is refused.
   * `*` any origin, `none` no CORS headers (same-origin only), else the exact origins listed.
   */
  readonly corsOrigins: '*' | readonly string[];
  /**
   * `MIN_OFFSETS_TIMEOUT_MS` (default 2000): longest a request carrying `extensions.minOffsets` waits for those
   * records to be applied before it is refused with NOT_YET_APPLIED (api/consistency/min-offsets.ts).
   */
  readonly minOffsetsTimeoutMs: number;
  /** Gateways and partners (api/gateway/): APQ, the persisted-documents allow-list, the subscription callback. */
  readonly gateway: {
    /**
     * `APQ_CACHE_BYTES` (default 8 MiB, 0 = APQ off): automatic persisted queries, with a cache bounded to this
     * many bytes of query text (least recently used out first).
     */
    readonly apqCacheBytes: number;
    /**
     * `PERSISTED_DOCUMENTS_FILE` (default unset): a manifest of the only operations allowed, over HTTP and
     * WebSocket alike (APQ registration is then off). Loaded and checked at start.
     */
    readonly persistedDocuments: PersistedDocuments | undefined;
    /**
     * `SUBSCRIPTION_CALLBACK_URLS` (default unset = off): URL prefixes Apollo Router's subscription callbacks may
     * use (the HTTP callback protocol); a callback URL under none of them is refused, so no client can make the
     * server call an address of its choosing.
     */
    readonly callbackUrlPrefixes: readonly string[];
  };
  readonly shutdownTimeoutMs: number;
  /** GraphQL subscriptions over WebSocket (graphql-transport-ws on `/graphql`; api/ws.ts, src/live). */
  readonly live: {
    /**
     * `WS_INIT_TIMEOUT_MS` (default 3000): how long a new socket may stay silent before `connection_init`;
     * after that it is closed with 4408, so idle half-open sockets cannot pile up (graphql-ws
     * `connectionInitWaitTimeout`).
     */
    readonly initTimeoutMs: number;
    /**
     * `WS_KEEPALIVE_MS` (default 12000, 0 = off): interval of WebSocket pings; a client that has not answered
     * the previous ping by the next one is dropped, so dead peers free their subscriptions. Keep it below
     * proxy idle timeouts (often 30-60 s).
     */
    readonly keepAliveMs: number;
    /**
     * `WS_MAX_SUBSCRIPTIONS` (default 100): operations one connection may have running at once; the next
     * `subscribe` gets an error message TOO_MANY_SUBSCRIPTIONS (the socket stays open). The number of ids of
     * one `usersChanged` is bounded by `MAX_IDS`, as for `users`.
     */
    readonly maxSubscriptionsPerConnection: number;
    /**
     * `WS_MAX_PAYLOAD_BYTES` (default 100000): largest incoming WebSocket message; a bigger one closes the
     * socket with 1009 before it is buffered whole (`ws` `maxPayload`). The WebSocket twin of MAX_BODY_BYTES.
     */
    readonly maxPayloadBytes: number;
    /**
     * `WS_BACKPRESSURE_BYTES` (default 262144): when more than this many bytes wait unsent on a socket, its
     * subscriptions stop taking events until it drains; meanwhile each keeps only the latest state per
     * watched user (conflation). Bounds the memory a slow client costs. Effective minimum: the socket's
     * 16 KiB write high-water mark.
     */
    readonly backpressureBytes: number;
    /**
     * `WS_AUTH_TOKENS` (default unset = no auth): comma-separated bearer tokens (each >= 16 characters). When
     * set, `connection_init` must carry `{ authorization: "Bearer <token>" }` with one of them, else the
     * socket is closed with 4403. Applies to the WebSocket transport only, not to HTTP requests.
     */
    readonly authTokens: readonly string[];
  };
  /** The view topic (docs/view-topic.md): publishing the view's changes, or serving them as a replica. */
  readonly viewTopic: {
    /**
     * `VIEW_TOPIC_OUT` (default unset): this instance materializes the changelogs and publishes every committed
     * change of the view to this topic (key = userId, value = the view as JSON, a tombstone when the user
     * disappears), following the store's commits (src/sink/view-topic-out.ts).
     */
    readonly out: string | undefined;
    /**
     * `VIEW_TOPIC_IN` (default unset): this instance is a serving replica: it reads only this topic (no source
     * topics, no materializer) and serves the whole API from it. Needs KAFKA_BROKERS; excludes VIEW_TOPIC_OUT,
     * SOURCES_FILE and TOPIC_*.
     */
    readonly in: string | undefined;
    /**
     * `VIEW_TOPIC_HEARTBEAT_MS` (default 2000): with VIEW_TOPIC_OUT, the status record (totals and the producer's
     * own readiness) is published at least this often, so replicas can tell a quiet view from a dead producer.
     */
    readonly heartbeatMs: number;
    /**
     * `VIEW_TOPIC_MAX_SILENCE_MS` (default 15000, 0 = never): with VIEW_TOPIC_IN, readiness drops when the newest
     * status record of the topic is older than this (the producer stopped: this replica may be behind its
     * sources). Only once the topic has carried a status record (an engine that publishes none is not checked).
     */
    readonly maxSilenceMs: number;
  };
  /** Readiness, liveness and recovery (src/wiring/feed-tracker.ts, src/wiring/rebuild.ts). */
  readonly ops: {
    /**
     * `READY_MAX_LAG` (default 10000): once ready, `/health/ready` drops back to 503 when the total lag (records
     * behind the high watermarks, all partitions) stays above this for `READY_LAG_GRACE_MS`; ready again once
     * it is back under. Keeps a replica that fell far behind out of the load balancer.
     */
    readonly readyMaxLag: number;
    /** `READY_LAG_GRACE_MS` (default 30000): how long the lag may exceed `READY_MAX_LAG` before readiness drops. */
    readonly readyLagGraceMs: number;
    /**
     * `READY_DURING_FEED_OUTAGE` (default true): once caught up, `/health/ready` stays 200 while the brokers are
     * unreachable and the replica serves its last state (staleness shows in feedStatus, asOf and metrics).
     * `false`: 503 during an outage, as before (every replica leaves rotation at once).
     */
    readonly readyDuringFeedOutage: boolean;
    /**
     * `LIVE_STALL_MS` (default 60000): `/health/live` answers 503 when records are waiting (lag > 0) and the feed
     * has not handled a batch for this long: a stalled loop the orchestrator should restart.
     */
    readonly liveStallMs: number;
    /** `LAG_REFRESH_MS` (default 5000): how often high watermarks are fetched, so lag is seen even when nothing is consumed. */
    readonly lagRefreshMs: number;
    /**
     * `OFFSET_RESET_POLICY` (default `rebuild`): what to do when a stored position is outside the records the topic
     * still holds (retention removed records the view needs, or the topic was recreated). `rebuild`: rebuild the
     * view from the earliest offset in a shadow generation while the old one serves (not ready until swapped);
     * `fail`: stop with MV_ERR_OFFSET_OUT_OF_RANGE. Records are never skipped silently.
     */
    readonly offsetResetPolicy: 'rebuild' | 'fail';
  };
}

/** Parses and validates the environment. Throws one ConfigError listing every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const v = env[key];
    // An empty string means "unset" for optional settings, except where emptiness is itself an error.
    if (v !== undefined && (v !== '' || key === 'KAFKA_BROKERS' || key === 'DATA_DIR' || key === 'PORT'))
      input[key] = v;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const byKey = new Map<string, string>();
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0]);
      // One reason per variable: the first failed rule is the one to fix first.
      // Secrets are named, never echoed: the message ends up in logs.
      const shown = SECRET_KEYS.has(key) ? '<redacted>' : JSON.stringify(input[key] ?? '');
      if (!byKey.has(key)) byKey.set(key, `${key}=${shown} ${issue.message}`);
    }
    const problems = [...byKey.values()];
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  const sources = e.SOURCES_FILE === undefined ? undefined : loadSources(e.SOURCES_FILE);
  const topics =
    sources === undefined
      ? { users: e.TOPIC_USERS, tweets: e.TOPIC_TWEETS, follows: e.TOPIC_FOLLOWS, likes: e.TOPIC_LIKES }
      : {
          users: sources.topics.users.topic,
          tweets: sources.topics.tweets.topic,
          follows: sources.topics.follows.topic,
          likes: sources.topics.likes.topic,
        };
  checkSources(input, sources, e.KAFKA_BROKERS === undefined && e.DEMO);
  checkViewTopics(input, e);
  const names = Object.values(topics);
  if (new Set(names).size !== names.length) {
    throw new ConfigError(
      `Invalid configuration: TOPIC_USERS/TWEETS/FOLLOWS/LIKES must be four different topics, got ${names.join(', ')}`,
    );
  }
  const { security, problems } = kafkaSecurityFrom(e, (name) => input[name] !== undefined);
  if (problems.length > 0) throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  if (e.VIEW_TOPIC_OUT !== undefined && names.includes(e.VIEW_TOPIC_OUT))
    throw new ConfigError(
      `Invalid configuration: VIEW_TOPIC_OUT=${JSON.stringify(e.VIEW_TOPIC_OUT)} is also a source topic: the view topic must be a topic of its own`,
    );
  const development = e.NODE_ENV === 'development';
  return deepFreeze({
    port: e.PORT,
    host: e.HOST,
    kafka:
      e.KAFKA_BROKERS === undefined
        ? undefined
        : {
            brokers: e.KAFKA_BROKERS,
            clientId: e.KAFKA_CLIENT_ID,
            groupId: e.KAFKA_GROUP_ID,
            fetchMaxWaitMs: e.KAFKA_FETCH_MAX_WAIT_MS,
            connectionTimeoutMs: e.KAFKA_CONNECTION_TIMEOUT_MS,
            ...(e.KAFKA_PREFETCH_BYTES === undefined ? {} : { prefetchBytes: e.KAFKA_PREFETCH_BYTES }),
            security,
            commitIntervalMs: e.KAFKA_COMMIT_INTERVAL_MS,
            concurrentPartitions: e.KAFKA_CONCURRENT_PARTITIONS,
          },
    dataDir: e.DATA_DIR,
    lmdbMapSizeBytes: e.LMDB_MAP_SIZE_MB * 1024 * 1024,
    maxRecordsPerCommit: e.MAX_RECORDS_PER_COMMIT ?? defaultMaxRecordsPerCommit(e.WRITER_THREAD),
    rebuildChunkRecords: e.REBUILD_CHUNK_RECORDS ?? defaultRebuildChunkRecords(e.WRITER_THREAD),
    rebuildRowsFirst: e.REBUILD_ROWS_FIRST,
    coldStartBulkLoad: e.COLD_START_BULK_LOAD,
    viewRebuildBufferEntries: e.VIEW_REBUILD_BUFFER_ENTRIES ?? defaultViewRebuildBufferEntries(),
    writerThread: e.WRITER_THREAD,
    writerThreadNice: e.WRITER_THREAD_NICE,
    decodeThread:
      e.DECODE_THREAD === 'auto' ? availableParallelism() >= DECODE_THREAD_AUTO_CORES : e.DECODE_THREAD,
    topics,
    sources,
    schemaRegistry: registrySettings(e),
    dlqSuffix: e.DLQ_SUFFIX,
    demo: { enabled: e.DEMO, rate: e.DEMO_RATE, users: e.DEMO_USERS, seed: e.DEMO_SEED },
    logLevel: e.LOG_LEVEL,
    development,
    limits: {
      maxBodyBytes: e.MAX_BODY_BYTES,
      maxDepth: e.MAX_QUERY_DEPTH,
      maxAliases: e.MAX_ALIASES,
      maxTokens: e.MAX_TOKENS,
      maxIds: e.MAX_IDS,
      maxBatchOperations: e.MAX_BATCH_OPERATIONS,
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      maxConnections: e.HTTP_MAX_CONNECTIONS,
    },
    introspection: e.INTROSPECTION ?? development,
    corsOrigins: e.CORS_ORIGINS,
    minOffsetsTimeoutMs: e.MIN_OFFSETS_TIMEOUT_MS,
    gateway: {
      apqCacheBytes: e.APQ_CACHE_BYTES,
      persistedDocuments: persistedDocumentsOf(e.PERSISTED_DOCUMENTS_FILE),
      callbackUrlPrefixes: e.SUBSCRIPTION_CALLBACK_URLS ?? [],
    },
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    live: {
      initTimeoutMs: e.WS_INIT_TIMEOUT_MS,
      keepAliveMs: e.WS_KEEPALIVE_MS,
      maxSubscriptionsPerConnection: e.WS_MAX_SUBSCRIPTIONS,
      maxPayloadBytes: e.WS_MAX_PAYLOAD_BYTES,
      backpressureBytes: e.WS_BACKPRESSURE_BYTES,
      authTokens: e.WS_AUTH_TOKENS ?? [],
    },
    viewTopic: {
      out: e.VIEW_TOPIC_OUT,
      in: e.VIEW_TOPIC_IN,
      heartbeatMs: e.VIEW_TOPIC_HEARTBEAT_MS,
      maxSilenceMs: e.VIEW_TOPIC_MAX_SILENCE_MS,
    },
    ops: {
      readyMaxLag: e.READY_MAX_LAG,
      readyLagGraceMs: e.READY_LAG_GRACE_MS,
      readyDuringFeedOutage: e.READY_DURING_FEED_OUTAGE,
      liveStallMs: e.LIVE_STALL_MS,
      lagRefreshMs: e.LAG_REFRESH_MS,
      offsetResetPolicy: e.OFFSET_RESET_POLICY,
    },
  });
}

/** SOURCES_FILE replaces TOPIC_*; and the embedded demo writes matview's own json, nothing else. */
function checkSources(
  input: Record<string, string>,
  sources: Sources | undefined,
  embeddedDemo: boolean,
): void {
  if (sources === undefined) return;
  const set = TOPIC_VARIABLES.filter((k) => input[k] !== undefined);
  if (set.length > 0)
    throw new ConfigError(
      `Invalid configuration: SOURCES_FILE and ${set.join(', ')} are both set: the sources file names every topic; unset ${set.join(', ')} (or SOURCES_FILE)`,
    );
  const other = Object.values(sources.topics).find((t) => t.format !== 'json');
  if (embeddedDemo && other !== undefined)
    throw new ConfigError(
      `Invalid configuration: SOURCES_FILE reads "${other.topic}" as ${other.format}, but without KAFKA_BROKERS the embedded changelog's demo writes matview's json: set KAFKA_BROKERS, or DEMO=false`,
    );
}

/**
 * A replica (VIEW_TOPIC_IN) reads the view topic from Kafka and nothing else: the settings that name source
 * topics, or that publish a view topic, have no meaning there and are refused rather than ignored.
 */
function checkViewTopics(input: Record<string, string>, e: Env): void {
  const fail = (message: string): never => {
    throw new ConfigError(`Invalid configuration: ${message}`);
  };
  if (e.VIEW_TOPIC_OUT !== undefined && e.KAFKA_BROKERS === undefined)
    fail(
      'VIEW_TOPIC_OUT is set without KAFKA_BROKERS: the view topic is published to a Kafka cluster; set KAFKA_BROKERS',
    );
  if (e.VIEW_TOPIC_IN === undefined) return;
  if (e.VIEW_TOPIC_OUT !== undefined)
    fail(
      'VIEW_TOPIC_IN and VIEW_TOPIC_OUT are both set: an instance either materializes the changelogs and publishes the view (VIEW_TOPIC_OUT) or serves a published view as a replica (VIEW_TOPIC_IN); unset one',
    );
  if (e.KAFKA_BROKERS === undefined)
    fail(
      'VIEW_TOPIC_IN is set without KAFKA_BROKERS: a replica reads the view topic from Kafka; set KAFKA_BROKERS',
    );
  if (e.SOURCES_FILE !== undefined)
    fail(
      'VIEW_TOPIC_IN and SOURCES_FILE are both set: a replica reads only the view topic, never the source topics; unset SOURCES_FILE',
    );
  const set = TOPIC_VARIABLES.filter((k) => input[k] !== undefined);
  if (set.length > 0)
    fail(
      `VIEW_TOPIC_IN and ${set.join(', ')} are both set: a replica reads only the view topic, never the source topics; unset ${set.join(', ')}`,
    );
}

function registrySettings(e: Env): RegistrySettings {
  if (e.SCHEMA_REGISTRY_USER_INFO !== undefined && e.SCHEMA_REGISTRY_USER_INFO_FILE !== undefined)
    throw new ConfigError(
      'Invalid configuration: SCHEMA_REGISTRY_USER_INFO and SCHEMA_REGISTRY_USER_INFO_FILE are both set: set one',
    );
  if ((e.SCHEMA_REGISTRY_CERT_FILE === undefined) !== (e.SCHEMA_REGISTRY_KEY_FILE === undefined))
    throw new ConfigError(
      'Invalid configuration: SCHEMA_REGISTRY_CERT_FILE and SCHEMA_REGISTRY_KEY_FILE go together (mutual TLS): set both or neither',
    );
  let userInfo = e.SCHEMA_REGISTRY_USER_INFO;
  if (e.SCHEMA_REGISTRY_USER_INFO_FILE !== undefined) {
    const file = e.SCHEMA_REGISTRY_USER_INFO_FILE;
    try {
      userInfo = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(
        `Invalid configuration: SCHEMA_REGISTRY_USER_INFO_FILE=${JSON.stringify(file)} cannot be read: ${(err as Error).message}`,
      );
    }
    if (!userInfo.includes(':'))
      throw new ConfigError(
        `Invalid configuration: SCHEMA_REGISTRY_USER_INFO_FILE=${JSON.stringify(file)} must hold "user:password"`,
      );
  }
  return {
    userInfo,
    caFile: e.SCHEMA_REGISTRY_CA_FILE,
    certFile: e.SCHEMA_REGISTRY_CERT_FILE,
    keyFile: e.SCHEMA_REGISTRY_KEY_FILE,
    rejectUnauthorized: e.SCHEMA_REGISTRY_REJECT_UNAUTHORIZED,
    timeoutMs: e.SCHEMA_REGISTRY_TIMEOUT_MS,
  };
}

function persistedDocumentsOf(file: string | undefined): PersistedDocuments | undefined {
  if (file === undefined) return undefined;
  try {
    return loadPersistedDocuments(file);
  } catch (e) {
    throw new ConfigError(
      `Invalid configuration: PERSISTED_DOCUMENTS_FILE=${JSON.stringify(file)} ${(e as Error).message}`,
      { cause: e },
    );
  }
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/**
 * The options every Kafka client of matview is built with, from the configuration: one place, so that no
 * client (consumer, dead-letter producer, admin, CLI) can be built without the TLS/SASL settings.
 */
export function kafkaClientOptions(
  kafka: NonNullable<Config['kafka']>,
  logger: Logger,
  clientId: string = kafka.clientId,
): KafkaClientOptions {
  return {
    brokers: kafka.brokers,
    clientId,
    connectionTimeoutMs: kafka.connectionTimeoutMs,
    security: kafka.security,
    logger,
  };
}
