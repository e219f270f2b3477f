/**
 * Configuration: read once from the environment, validated, then frozen and passed down.
 * Nothing else in matview reads `process.env`. Every bad value is reported with the variable,
 * the value it had and what is allowed (fastify `initial-config-validation.js`, kafkajs messages).
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';

const port = z.coerce
  .number({ error: 'must be a number' })
  .int('must be an integer')
  .min(0, 'must be between 0 and 65535')
  .max(65535, 'must be between 0 and 65535');
const positiveInt = z.coerce.number({ error: 'must be a number' }).int('must be an integer').positive('must be > 0');
const nonNegative = z.coerce.number({ error: 'must be a number' }).min(0, 'must be >= 0');
const topic = z
  .string()
  .regex(/^[a-zA-Z0-9._-]{1,200}$/, 'must be a Kafka topic name (letters, digits, ".", "_", "-"; 1-200 chars)');
const brokers = z
  .string()
  .transform((s) => s.split(',').map((b) => b.trim()))
  .refine((list) => list.length > 0 && list.every((b) => b.length > 0), 'must be a non-empty comma-separated list')
  .refine(
    (list) => list.every((b) => /^[^\s:]+:\d{1,5}$/.test(b)),
    'every entry must be host:port, e.g. "localhost:9092"',
  );
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

/** Each entry: environment variable → schema with its default. Documented in README "Configuration". */
const schema = z.object({
  PORT: port.default(4000),
  HOST: z.string().min(1).default('0.0.0.0'),
  KAFKA_BROKERS: brokers.optional(),
  KAFKA_CLIENT_ID: z.string().min(1).default('matview'),
  KAFKA_GROUP_ID: z.string().min(1).optional(),
  KAFKA_FETCH_MAX_WAIT_MS: positiveInt.max(30_000, 'must be <= 30000').default(100),
  KAFKA_SESSION_TIMEOUT_MS: positiveInt.default(30_000),
  KAFKA_CONNECTION_TIMEOUT_MS: positiveInt.default(3_000),
  DATA_DIR: z.string().min(1, 'must not be empty').default('./data'),
  LMDB_MAP_SIZE_MB: positiveInt.default(1024),
  TOPIC_USERS: topic.default('users'),
  TOPIC_TWEETS: topic.default('tweets'),
  TOPIC_FOLLOWS: topic.default('follows'),
  TOPIC_LIKES: topic.default('likes'),
  DLQ_SUFFIX: z.string().regex(/^[a-zA-Z0-9._-]{1,40}$/, 'must be 1-40 topic-name characters').default('.dlq'),
  DEMO: bool.default(true),
  DEMO_RATE: nonNegative.max(100_000, 'must be <= 100000').default(20),
  DEMO_USERS: positiveInt.max(10_000_000).default(200),
  DEMO_SEED: z.coerce.number().int().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  NODE_ENV: z.string().default('production'),
  MAX_BODY_BYTES: positiveInt.default(100_000),
  MAX_QUERY_DEPTH: positiveInt.default(6),
  MAX_ALIASES: positiveInt.default(15),
  MAX_TOKENS: positiveInt.default(1000),
  MAX_IDS: positiveInt.default(500),
  MAX_BATCH_OPERATIONS: nonNegative.int().default(10),
  INTROSPECTION: bool.optional(),
  SHUTDOWN_TIMEOUT_MS: positiveInt.default(10_000),
});

type Env = z.infer<typeof schema>;

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
        /** undefined: `matview-<instanceId>`, one group per data directory (every instance reads all partitions). */
        readonly groupId: string | undefined;
        readonly fetchMaxWaitMs: number;
        readonly sessionTimeoutMs: number;
        readonly connectionTimeoutMs: number;
      }
    | undefined;
  readonly dataDir: string;
  readonly lmdbMapSizeBytes: number;
  readonly topics: Topics;
  readonly dlqSuffix: string;
  readonly demo: { readonly enabled: boolean; readonly rate: number; readonly users: number; readonly seed: number | undefined };
  readonly logLevel: Env['LOG_LEVEL'];
  readonly development: boolean;
  readonly limits: {
    readonly maxBodyBytes: number;
    readonly maxDepth: number;
    readonly maxAliases: number;
    readonly maxTokens: number;
    readonly maxIds: number;
    readonly maxBatchOperations: number;
  };
  readonly introspection: boolean;
  readonly shutdownTimeoutMs: number;
}

/** Parses and validates the environment. Throws one ConfigError listing every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const v = env[key];
    // An empty string means "unset" for optional settings, except where emptiness is itself an error.
    if (v !== undefined && (v !== '' || key === 'KAFKA_BROKERS' || key === 'DATA_DIR' || key === 'PORT')) input[key] = v;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const byKey = new Map<string, string>();
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0]);
      // One reason per variable: the first failed rule is the one to fix first.
      if (!byKey.has(key)) byKey.set(key, `${key}=${JSON.stringify(input[key] ?? '')} ${issue.message}`);
    }
    const problems = [...byKey.values()];
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  const topics = { users: e.TOPIC_USERS, tweets: e.TOPIC_TWEETS, follows: e.TOPIC_FOLLOWS, likes: e.TOPIC_LIKES };
  const names = Object.values(topics);
  if (new Set(names).size !== names.length) {
    throw new ConfigError(`Invalid configuration: TOPIC_USERS/TWEETS/FOLLOWS/LIKES must be four different topics, got ${names.join(', ')}`);
  }
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
            sessionTimeoutMs: e.KAFKA_SESSION_TIMEOUT_MS,
            connectionTimeoutMs: e.KAFKA_CONNECTION_TIMEOUT_MS,
          },
    dataDir: e.DATA_DIR,
    lmdbMapSizeBytes: e.LMDB_MAP_SIZE_MB * 1024 * 1024,
    topics,
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
    },
    introspection: e.INTROSPECTION ?? development,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
  });
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
