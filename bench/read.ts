/**
 * Quick read benchmark (issue 4's performance goal; a proper harness comes later):
 * bare node:http vs `POST /graphql user(id)` vs `GET /users/:id`, autocannon with 20 connections.
 *
 * The servers run in a child process and autocannon in this one, so on a 2-core box each gets a core.
 * Numbers are noisy there (and other work on the box shifts them), so targets are measured in
 * interleaved rounds and the median is reported, next to the server's own CPU time per request (from
 * `process.cpuUsage()` in the server process), which background load disturbs far less than req/s.
 * Compare the ratios of one run, not runs with each other.
 *
 *   node --import tsx bench/read.ts [--duration 10] [--rounds 3] [--users 100000]
 *   node --cpu-prof --import tsx bench/read.ts --serve   (profile the servers alone; Ctrl-C to stop)
 */
import 'reflect-metadata';
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { loadConfig } from '../src/ops/config.js';
import { silentLogger } from '../src/ops/logger.js';
import { createMetrics } from '../src/ops/metrics.js';
import type { FeedMonitor } from '../src/ops/feed-monitor.js';
import type { ViewReader } from '../src/store/types.js';
import { REST_FIELDS, type UserInformation } from '../src/views/user-information.js';
import { createApiServer } from '../api/server.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(args[at + 1]);
};
const DURATION = option('duration', 10);
const ROUNDS = option('rounds', 3);
const USERS = option('users', 100_000);
const CONNECTIONS = 20;

function user(n: number): UserInformation {
  return {
    userId: String(n),
    username: `user${n}`,
    name: `User Number ${n}`,
    description: 'Engineering @Uptake',
    location: 'Chicago, IL',
    webPageUrl: `https://example.com/${n}`,
    joinedDate: new Date(Date.UTC(2008, 0, 22) + n * 60_000).toISOString(),
    profileImageUrl: `https://pbs.twimg.com/profile_images/${n}/NCpgt2Iz.jpg`,
    backgroundImageUrl: `https://pbs.twimg.com/profile_banners/${n}/1350571359/1500x500`,
    tweetCount: n % 4000,
    followingCount: n % 1100,
    followerCount: n % 900,
    likeCount: n % 200,
    version: {
      sequence: String(n),
      appliedAt: new Date(Date.UTC(2024, 0, 1) + n).toISOString(),
      eventTime: null,
      source: { topic: 'users', partition: 0, offset: String(n) },
    },
  };
}

/** A reader as cheap as the real one should be: a map lookup, JSON prebuilt. */
function memoryReader(count: number): ViewReader {
  const users = new Map<string, UserInformation>();
  const json = new Map<string, Buffer>();
  for (let n = 0; n < count; n++) {
    const u = user(n);
    users.set(u.userId, u);
    json.set(u.userId, Buffer.from(JSON.stringify(Object.fromEntries(REST_FIELDS.map((f) => [f, u[f]])))));
  }
  return {
    getUser: (id) => users.get(id),
    getUserJson: (id) => json.get(id),
    getUsers: (ids) => ids.map((id) => users.get(id)),
    positions: () => [],
    sequence: () => BigInt(count),
  };
}

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
    sequence: '0',
    viewVersion: 1,
  }),
};

/** Child: bare node:http and the API server, ports sent to the parent. */
async function serve(): Promise<void> {
  const body = Buffer.from(JSON.stringify(Object.fromEntries(REST_FIELDS.map((f) => [f, user(1)[f]]))));
  // GET answers at once; POST reads the whole body first (the floor for any POST endpoint).
  const bare = createServer((req, res) => {
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    };
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', answer);
    } else answer();
  });
  await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', DEMO: 'false', LOG_LEVEL: 'silent' });
  const reader = memoryReader(USERS);
  const start = async (fastPath: boolean) => {
    const server = createApiServer({
      config,
      reader,
      feed,
      metrics: createMetrics({ defaultMetrics: false }),
      logger: silentLogger,
      fastPath,
    });
    return (await server.listen()).port;
  };
  // The second API server has the fast path off: the same request through Apollo, for reference.
  const ports = {
    bare: (bare.address() as AddressInfo).port,
    api: await start(true),
    apollo: await start(false),
  };
  // Exit normally on Ctrl-C / kill so `--cpu-prof` gets to write its profile.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));
  if (process.send) {
    // The parent asks for CPU time around each measurement.
    process.on('message', () => process.send?.({ cpu: process.cpuUsage() }));
    process.send(ports);
  } else console.log(ports);
}

interface Sample {
  rps: number;
  p99: number;
  errors: number;
  /** Server CPU microseconds (user + system) per request. */
  cpuPerRequest: number;
}

type Child = ReturnType<typeof fork>;

function cpuOf(child: Child): Promise<number> {
  return new Promise((resolve) => {
    child.once('message', (m: { cpu: NodeJS.CpuUsage }) => resolve(m.cpu.user + m.cpu.system));
    child.send('cpu');
  });
}

async function measure(child: Child, opts: autocannon.Options): Promise<Sample> {
  const before = await cpuOf(child);
  const r = await autocannon({ ...opts, duration: DURATION });
  const cpu = (await cpuOf(child)) - before;
  return {
    rps: r.requests.average,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts + r.non2xx,
    cpuPerRequest: cpu / Math.max(1, r.requests.total),
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve', '--users', String(USERS)], {
    execArgv: ['--import', 'tsx'],
  });
  const ports = await new Promise<{ bare: number; api: number; apollo: number }>((resolve) =>
    child.once('message', resolve),
  );
  // Requests are built up front (1000 random ids, cycled) so the client spends the same little work on
  // every target; bare node:http gets the very same requests as the API.
  let n = 0;
  const ids = Array.from({ length: 1000 }, () => String((n = (n * 7919 + 13) % USERS)));
  const query = 'query User($id: ID!) { user(id: $id) { userId username name tweetCount followerCount } }';
  const posts = ids.map((id) => ({
    method: 'POST' as const,
    path: '/graphql',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables: { id } }),
  }));
  const gets = ids.map((id) => ({ method: 'GET' as const, path: `/users/${id}` }));
  const common = { connections: CONNECTIONS, pipelining: 1 };
  const bare = `http://127.0.0.1:${ports.bare}`;
  const api = `http://127.0.0.1:${ports.api}`;
  const targets: [string, autocannon.Options][] = [
    ['bare node:http GET', { ...common, url: bare, requests: gets }],
    ['bare node:http POST', { ...common, url: bare, requests: posts }],
    ['POST /graphql user(id)', { ...common, url: api, requests: posts }],
    ['  same, fast path off', { ...common, url: `http://127.0.0.1:${ports.apollo}`, requests: posts }],
    ['GET /users/:id', { ...common, url: api, requests: gets }],
  ];
  try {
    // Warm-up: let the JIT settle on every path before measuring.
    for (const [, opts] of targets) await autocannon({ ...opts, duration: 2 });
    const samples = targets.map((): Sample[] => []);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, [, opts]] of targets.entries()) samples[i]?.push(await measure(child, opts));
    }
    const rows = targets.map(([name], i) => {
      const s = samples[i] ?? [];
      return {
        name,
        rps: median(s.map((x) => x.rps)),
        p99: median(s.map((x) => x.p99)),
        cpu: median(s.map((x) => x.cpuPerRequest)),
        errors: s.reduce((a, x) => a + x.errors, 0),
      };
    });
    const base = rows[0] ?? { rps: 1, cpu: 1 };
    console.log(`\n${USERS} users, ${CONNECTIONS} connections, ${ROUNDS} rounds x ${DURATION}s, medians\n`);
    console.log('target                       req/s  ratio   p99 ms   server CPU µs/req  ratio  errors');
    for (const row of rows) {
      console.log(
        [
          row.name.padEnd(26),
          row.rps.toFixed(0).padStart(8),
          (row.rps / base.rps).toFixed(2).padStart(6),
          row.p99.toFixed(2).padStart(8),
          row.cpu.toFixed(1).padStart(19),
          (base.cpu / row.cpu).toFixed(2).padStart(6),
          String(row.errors).padStart(7),
        ].join(' '),
      );
    }
    console.log(
      '\nCPU ratio = bare CPU per request / target CPU per request (throughput ratio when CPU-bound).',
    );
  } finally {
    child.kill();
  }
}

if (args.includes('--serve')) await serve();
else await main();
