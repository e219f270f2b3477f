/**
 * One read target per child process (so autocannon, in the parent, and the server each get a core and no
 * target's heap slows another's GC):
 *
 *   node --import tsx bench/lib/serve.ts <target> '<json options>'
 *
 * Targets: limit, matview, apollo-default, postgres-direct, redis-view. The child sends `{ port }` over IPC
 * when listening and answers every later message with its CPU time, so the parent can charge server CPU to
 * each measurement. Exits on SIGTERM/SIGINT (so `--cpu-prof` writes its profile).
 */
import 'reflect-metadata';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createApiServer } from '../../api/server.js';
import { loadConfig } from '../../src/ops/config.js';
import type { FeedMonitor } from '../../api/feed-monitor.js';
import { silentLogger } from '../../src/ops/logger.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { REST_FIELDS, type UserInformation } from '../../src/views/user-information.js';
import { followerCounts, viewOf } from './dataset.js';

export interface ServeOptions {
  readonly users: number;
  readonly viewPath?: string;
  readonly postgresUrl?: string;
  readonly redisUrl?: string;
}

/** The SDL most teams would write for seed 002's object (what apollo-default and redis-view serve). */
const TYPE_DEFS = `#graphql
  type User {
    userId: ID!
    username: String!
    name: String
    description: String
    location: String
    webPageUrl: String
    joinedDate: String
    profileImageUrl: String
    backgroundImageUrl: String
    tweetCount: Int!
    followingCount: Int!
    followerCount: Int!
    likeCount: Int!
  }
  type Query {
    user(id: ID!): User
  }
`;

const feed: FeedMonitor = {
  ready: () => true,
  live: () => true,
  reason: () => null,
  snapshot: () => ({
    ready: true,
    source: 'embedded',
    state: 'running',
    reason: null,
    partitions: [],
    newestEventAgeSeconds: null,
    feedDownSeconds: null,
    sequence: '0',
    viewVersion: 1,
    deadLettersWaiting: 0,
  }),
  lagRecords: () => 0,
};

const listen = (server: ReturnType<typeof createServer>): Promise<number> =>
  new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );

async function limit(): Promise<number> {
  const followers = followerCounts(10);
  const u = viewOf(1, followers);
  const body = Buffer.from(JSON.stringify(Object.fromEntries(REST_FIELDS.map((f) => [f, u[f]]))));
  // GET answers at once; POST reads the whole body first (the floor for any POST endpoint).
  return listen(
    createServer((req, res) => {
      const answer = () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
        res.end(body);
      };
      if (req.method === 'POST') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', answer);
      } else answer();
    }),
  );
}

async function matview(o: ServeOptions): Promise<number> {
  if (o.viewPath === undefined) throw new Error('matview needs viewPath');
  const store = openStore({ path: o.viewPath, create: false });
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', DEMO: 'false', LOG_LEVEL: 'silent' });
  const api = createApiServer({
    config,
    reader: store,
    feed,
    metrics: createMetrics({ defaultMetrics: false }),
    logger: silentLogger,
  });
  return (await api.listen()).port;
}

async function apolloDefault(o: ServeOptions): Promise<number> {
  const followers = followerCounts(o.users);
  const users = new Map<string, UserInformation>();
  for (let k = 0; k < o.users; k++) users.set(String(k), viewOf(k, followers));
  const server = new ApolloServer({
    typeDefs: TYPE_DEFS,
    resolvers: { Query: { user: (_: unknown, args: { id: string }) => users.get(args.id) ?? null } },
  });
  const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
  return Number(new URL(url).port);
}

async function redisView(o: ServeOptions): Promise<number> {
  if (o.redisUrl === undefined) throw new Error('redis-view needs redisUrl');
  const redis = new Redis(o.redisUrl);
  redis.on('error', () => undefined); // the server stopping at the end of the run
  const INTS = new Set(['tweetCount', 'followingCount', 'followerCount', 'likeCount']);
  const server = new ApolloServer({
    typeDefs: TYPE_DEFS,
    resolvers: {
      Query: {
        user: async (_: unknown, args: { id: string }) => {
          const h = await redis.hgetall(`user:${args.id}`);
          if (h['userId'] === undefined) return null;
          const u: Record<string, unknown> = {};
          for (const [k, v] of Object.entries(h)) u[k] = INTS.has(k) ? Number(v) : v;
          return u;
        },
      },
    },
  });
  const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
  return Number(new URL(url).port);
}

/** Seed 002's classic service: GET /users/:id answered with one SELECT and four COUNT(*)s. */
async function postgresDirect(o: ServeOptions): Promise<number> {
  if (o.postgresUrl === undefined) throw new Error('postgres-direct needs postgresUrl');
  const pool = new pg.Pool({ connectionString: o.postgresUrl, max: 16 });
  pool.on('error', () => undefined); // the database stopping at the end of the run
  const count = async (sql: string, id: string): Promise<number> =>
    Number((await pool.query<{ n: string }>({ name: sql, text: sql, values: [id] })).rows[0]?.n ?? 0);
  interface UserRow {
    user_id: string;
    username: string;
    name: string | null;
    description: string | null;
    location: string | null;
    web_page_url: string | null;
    joined_date: Date | null;
    profile_image_url: string | null;
    background_image_url: string | null;
  }
  const handle = async (id: string, res: ServerResponse) => {
    if (!/^\d{1,18}$/.test(id)) return notFound(res);
    const [user, tweetCount, followingCount, followerCount, likeCount] = await Promise.all([
      pool.query<UserRow>({ name: 'user', text: 'SELECT * FROM users WHERE user_id = $1', values: [id] }),
      count('SELECT COUNT(*) AS n FROM tweets WHERE user_id = $1', id),
      count('SELECT COUNT(*) AS n FROM follows WHERE follower_id = $1', id),
      count('SELECT COUNT(*) AS n FROM follows WHERE followee_id = $1', id),
      count('SELECT COUNT(*) AS n FROM likes WHERE user_id = $1', id),
    ]);
    const row = user.rows[0];
    if (row === undefined) return notFound(res);
    const body = JSON.stringify({
      userId: row.user_id,
      username: row.username,
      name: row.name,
      description: row.description,
      location: row.location,
      webPageUrl: row.web_page_url,
      joinedDate: row.joined_date?.toISOString() ?? null,
      profileImageUrl: row.profile_image_url,
      backgroundImageUrl: row.background_image_url,
      tweetCount,
      followingCount,
      followerCount,
      likeCount,
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const notFound = (res: ServerResponse) => {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"USER_NOT_FOUND"}}');
  };
  return listen(
    createServer((req: IncomingMessage, res: ServerResponse) => {
      const m = /^\/users\/([^/?]+)$/.exec(req.url ?? '');
      if (req.method !== 'GET' || m?.[1] === undefined) return notFound(res);
      handle(m[1], res).catch(() => {
        res.writeHead(500);
        res.end();
      });
    }),
  );
}

export const TARGET_KINDS = ['limit', 'matview', 'apollo-default', 'postgres-direct', 'redis-view'] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

async function main(): Promise<void> {
  const kind = process.argv[2] as TargetKind;
  const options = JSON.parse(process.argv[3] ?? '{}') as ServeOptions;
  const starts: Record<TargetKind, (o: ServeOptions) => Promise<number>> = {
    limit,
    matview,
    'apollo-default': apolloDefault,
    'postgres-direct': postgresDirect,
    'redis-view': redisView,
  };
  const port = await starts[kind](options);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));
  process.on('disconnect', () => process.exit(0));
  process.on('message', () => process.send?.({ cpu: process.cpuUsage(), rss: process.memoryUsage().rss }));
  if (process.send) process.send({ port });
  else console.log({ port });
}

// Only ever run as a child process; other modules import its types alone (`import type`).
await main();
