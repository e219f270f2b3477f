/**
 * Issue 8.6, load soak: the last part of `npm test` (alone: `npm run test:soak`); it saturates a 2-core
 * machine for a minute, so it runs after the other suites, by itself.
 *
 * A real `matview serve` consumes the mock cluster while, for SOAK_SECONDS (default 60, after a warm-up of
 * SOAK_WARMUP_SECONDS at the same load, default 5):
 * - autocannon sends mixed reads at SOAK_RATE req/s (default 2,000) over SOAK_CONNECTIONS (default 50):
 *   `user(id)` with every field, `users(ids)` of 20 ids, `GET /users/:id`, `feedStatus`;
 * - a producer writes SOAK_INGEST records/s (default 5,000) to the four topics;
 * - 1,000 subscriptions (`userChanged`, 10 per WebSocket over 100 sockets) are open and read, by a raw
 *   graphql-transport-ws client (test/utils/live-socket.ts) that leaves the CPU to the server.
 *
 * Asserted: zero HTTP errors (non-2xx, socket errors, timeouts; warm-up included), zero subscription errors, the server's
 * heap does not trend upwards (the last samples' median stays within SOAK_HEAP_SLACK_MB of the first
 * samples'), and afterwards the view equals the reference read back from the topics and every
 * subscription's last event equals the final view of its user (slow readers may skip states, never the
 * last one). Throughput is reported, never asserted: on a loaded 2-core machine the rates are targets.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { afterAll, describe, expect, it } from 'vitest';
import { isReady, startChildServer, type ChildServer } from '../../utils/child-server.js';
import { LiveSocket } from '../../utils/live-socket.js';
import { produce, useKafka } from '../../utils/kafka-mock.js';
import { eventually, freshTopics } from '../../utils/server.js';
import { tempDir } from '../../utils/tmp.js';
import {
  computeReference,
  expectServedViewEquals,
  feedStatus,
  readTopics,
  waitCaughtUp,
} from '../support/reference.js';
import { changeStream, produceContinuously } from '../support/workload.js';

const SECONDS = Number(process.env['SOAK_SECONDS'] ?? 60);
/**
 * Reads and ingest at the full rates before the measured SECONDS (errors count all the same): a server that
 * just started serves its first seconds of load from cold code (JIT), and autocannon opens its connections;
 * measured, those seconds answered about 1,500 of the first 4,000 reads offered.
 */
const WARMUP_SECONDS = Number(process.env['SOAK_WARMUP_SECONDS'] ?? 5);
const RATE = Number(process.env['SOAK_RATE'] ?? 2_000);
const INGEST = Number(process.env['SOAK_INGEST'] ?? 5_000);
/** autocannon connections: with each waiting for its answer, the rate offered is at most CONNECTIONS / latency. */
const CONNECTIONS = Number(process.env['SOAK_CONNECTIONS'] ?? 50);
const HEAP_SLACK_MB = Number(process.env['SOAK_HEAP_SLACK_MB'] ?? 64);
const USERS = 100;
const SUBSCRIPTIONS = 1_000;
const PER_SOCKET = 10;

const kafka = useKafka();
let child: ChildServer | undefined;
const sockets: LiveSocket[] = [];
afterAll(async () => {
  for (const s of sockets) s.close();
  // SIGTERM: a graceful stop after the load (and what lets `--cpu-prof` write its profile).
  await child?.terminate();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (b: number) => Math.round(b / 1024 / 1024);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** The server's heap in use and its event loop delay (p99 and max since the previous scrape), from /metrics. */
async function sample(url: string): Promise<{ heap: number; lagP99: number; lagMax: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    heap: gauge('matview_process_nodejs_heap_size_used_bytes'),
    lagP99: gauge('matview_process_nodejs_eventloop_lag_p99_seconds'),
    lagMax: gauge('matview_process_nodejs_eventloop_lag_max_seconds'),
  };
}

interface Latest {
  tweetCount: number;
  followingCount: number;
  followerCount: number;
  likeCount: number;
}

describe('load soak', () => {
  it(`should serve ${RATE} req/s of reads and ${SUBSCRIPTIONS} subscriptions while ingesting ${INGEST} records/s for ${SECONDS} s, without an error`, async () => {
    const topics = freshTopics();
    const ids = Array.from({ length: USERS }, (_, i) => `u${i}`);
    // Every users row exists before the load, and none is deleted: GET /users/:id must answer 200.
    await produce(
      kafka.brokers,
      topics.users,
      ids.map((id) => ({ key: id, value: JSON.stringify({ userId: id, username: id }) })),
    );
    child = await startChildServer({
      dataDir: tempDir(),
      brokers: kafka.brokers,
      topics,
      env: {
        KAFKA_FETCH_MAX_WAIT_MS: '50',
        LOG_LEVEL: 'info',
        // e.g. SOAK_SERVER_ENV="MAX_RECORDS_PER_COMMIT=500" to compare server settings under the same load.
        ...Object.fromEntries(
          (process.env['SOAK_SERVER_ENV'] ?? '')
            .split(' ')
            .filter(Boolean)
            .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
        ),
      },
      // The flags matview ships with (npm start, Docker), plus e.g. "--cpu-prof --cpu-prof-dir=…" to profile.
      nodeArgs: [
        '--max-semi-space-size=16',
        ...(process.env['SOAK_SERVER_NODE_ARGS'] ?? '').split(' ').filter(Boolean),
      ],
    });
    const url = child.url();
    await eventually(() => isReady(child!).then((ok) => ok || undefined), 60_000, 'ready');

    // 1,000 subscriptions, each remembering the last message it was sent (parsed at the end: the raw
    // client keeps this process's share of the 2 cores small, see test/utils/live-socket.ts).
    const latest = new Map<string, string>();
    const subscriptionErrors: string[] = [];
    let events = 0;
    const query = `subscription($id: ID!) { userChanged(id: $id) { kind user { tweetCount followingCount followerCount likeCount } } }`;
    for (let s = 0; s < SUBSCRIPTIONS / PER_SOCKET; s++) {
      const keys: string[] = [];
      const socket = await LiveSocket.open(
        url,
        (a) => {
          events++;
          if (a.data.includes('"errors"')) subscriptionErrors.push(a.data);
          latest.set(keys[a.subscription]!, a.data);
        },
        (problem) => subscriptionErrors.push(`socket ${s}: ${problem}`),
      );
      sockets.push(socket);
      for (let k = 0; k < PER_SOCKET; k++) {
        const n = s * PER_SOCKET + k;
        const id = ids[n % USERS]!;
        keys[socket.subscribe(query, { id })] = `${n}/${id}`;
      }
    }
    await eventually(
      () => (latest.size === SUBSCRIPTIONS ? true : undefined),
      60_000,
      'every subscription snapshot',
    );

    const heap: number[] = [];
    const lagP99: number[] = [];
    const lagMax: number[] = [];
    const rss: number[] = [];
    const sampler = setInterval(() => {
      void sample(url).then(
        (m) => {
          heap.push(m.heap);
          lagP99.push(m.lagP99);
          lagMax.push(m.lagMax);
        },
        () => undefined,
      );
      rss.push(child!.rssBytes());
    }, 2_000);
    const body = (query: string, variables?: object) => JSON.stringify({ query, variables });
    const post = (b: string) => ({
      method: 'POST' as const,
      path: '/graphql',
      headers: { 'content-type': 'application/json' },
      body: b,
    });
    const requests: autocannon.Request[] = [];
    for (let i = 0; i < 20; i++) {
      const id = ids[(i * 7) % USERS]!;
      requests.push(
        post(
          body(
            `{ user(id: "${id}") { userId username name description location webPageUrl joinedDate profileImageUrl backgroundImageUrl tweetCount followingCount followerCount likeCount version { sequence appliedAt eventTime source { topic partition offset } } } }`,
          ),
        ),
      );
      requests.push(
        post(
          body('query($ids: [ID!]!) { users(ids: $ids) { userId tweetCount followerCount } }', {
            ids: ids.slice(i * 5, i * 5 + 20),
          }),
        ),
      );
      requests.push({ method: 'GET', path: `/users/${id}` });
      if (i % 5 === 0)
        requests.push(post(body('{ feedStatus { ready state sequence newestEventAgeSeconds } }')));
    }

    const positions = async () => (await feedStatus(url)).partitions.reduce((n, p) => n + Number(p.next), 0);
    const producing = produceContinuously(
      kafka.brokers,
      topics,
      changeStream(8_6, USERS, { deleteUsers: false }),
      {
        perChunk: Math.max(1, Math.round(INGEST / 4)),
        pauseMs: 250,
        fixedRate: true,
        maxRecords: INGEST * (SECONDS + WARMUP_SECONDS) * 2,
        maxMs: (SECONDS + WARMUP_SECONDS) * 1000,
      },
    );
    const load = { url, requests, connections: CONNECTIONS, overallRate: RATE, timeout: 30 };
    const warmup =
      WARMUP_SECONDS > 0
        ? await (autocannon({ ...load, duration: WARMUP_SECONDS }) as unknown as Promise<autocannon.Result>)
        : undefined;
    const appliedBefore = await positions();
    const producedBefore = producing.produced();
    // The heap trend is the measured run's: samples from the warm-up are dropped.
    for (const samples of [heap, lagP99, lagMax, rss]) samples.length = 0;
    const started = Date.now();
    // This process's own event-loop delay: autocannon, the producer and the 100 sockets share it, so a
    // delay here is time the load generator itself was late.
    const ownLoop = monitorEventLoopDelay({ resolution: 10 });
    ownLoop.enable();
    const serverCpuBefore = child.cpuSeconds();
    const ownCpuBefore = process.cpuUsage();
    let result: autocannon.Result;
    /** Requests answered in each second of the run, in order (autocannon's ticks). */
    const perSecond: number[] = [];
    try {
      const run = autocannon({
        ...load,
        duration: SECONDS,
        // Without a callback autocannon returns its event emitter, made thenable (lib/init.js).
      }) as unknown as autocannon.Instance & PromiseLike<autocannon.Result>;
      // 'tick': once a second, with the requests answered in it (not in @types/autocannon).
      (run as NodeJS.EventEmitter).on('tick', (t: { counter: number }) => perSecond.push(t.counter));
      result = await run;
    } finally {
      ownLoop.disable();
      await producing.stop();
      clearInterval(sampler);
    }
    const elapsed = (Date.now() - started) / 1000;
    const serverCores = (child.cpuSeconds() - serverCpuBefore) / elapsed;
    const ownCpu = process.cpuUsage(ownCpuBefore);
    const loadCores = (ownCpu.user + ownCpu.system) / 1e6 / elapsed;
    const appliedDuring = (await positions()) - appliedBefore;
    await waitCaughtUp(url, kafka.brokers, topics, 300_000);
    const caughtUpAfter = (Date.now() - started) / 1000;

    const report = {
      seconds: Math.round(elapsed),
      readsPerSecond: Math.round(result.requests.total / elapsed),
      readTarget: RATE,
      // Answered of the RATE × SECONDS that autocannon offers (it waits for each answer on a connection).
      readsServedOfOffered: Math.round((result.requests.total / (RATE * SECONDS)) * 1000) / 1000,
      p99Ms: result.latency.p99,
      meanLatencyMs: Math.round(result.latency.mean * 10) / 10,
      // Requests answered per second of the run (autocannon samples each second): a second below RATE is
      // one where the connections could not send their share (each waits for its answer).
      answeredPerSecond: {
        median: result.requests.p50,
        // The seconds below 95% of RATE, as "second: requests": where the shortfall is.
        short: perSecond.flatMap((n, i) => (n < RATE * 0.95 ? [`${i + 1}s: ${n}`] : [])).join(', '),
      },
      producedPerSecond: Math.round((producing.produced() - producedBefore) / elapsed),
      appliedPerSecondDuringLoad: Math.round(appliedDuring / elapsed),
      ingestTarget: INGEST,
      caughtUpAfterSeconds: Math.round(caughtUpAfter),
      subscriptionEvents: events,
      // Cores used during the load: the server, and this process (autocannon, producer, 100 WebSocket
      // clients). On a 2-core machine they compete; the rates above are then the box's, not the server's.
      cores: {
        server: Math.round(serverCores * 100) / 100,
        loadGenerators: Math.round(loadCores * 100) / 100,
      },
      // Event-loop delay of the server (ms): what a request waits before the server even reads it.
      serverLoopDelayMs: {
        p99Median: Math.round(median(lagP99) * 1000),
        max: Math.round(Math.max(...lagMax) * 1000),
      },
      loadGeneratorLoopDelayMs: {
        p99: Math.round(ownLoop.percentile(99) / 1e6),
        max: Math.round(ownLoop.max / 1e6),
      },
      heapMb: { first: heap.slice(0, 3).map(mb), last: heap.slice(-3).map(mb) },
      rssMb: { first: mb(rss[0] ?? 0), peak: mb(Math.max(...rss)), last: mb(rss[rss.length - 1] ?? 0) },
    };
    console.log('load soak:', report);

    for (const run of [warmup, result]) {
      if (run === undefined) continue;
      expect({ errors: run.errors, timeouts: run.timeouts, non2xx: run.non2xx }).toEqual({
        errors: 0,
        timeouts: 0,
        non2xx: 0,
      });
    }
    expect(subscriptionErrors).toEqual([]);
    const third = Math.max(1, Math.floor(heap.length / 3));
    expect(median(heap.slice(-third)) - median(heap.slice(0, third))).toBeLessThan(
      HEAP_SLACK_MB * 1024 * 1024,
    );

    const reference = computeReference(await readTopics(kafka.brokers, topics));
    await expectServedViewEquals(url, reference);
    // Every subscription ends on its user's final state.
    await eventually(
      () => {
        for (const [key, got] of latest) {
          const want = reference.users.get(key.split('/')[1]!);
          const counts =
            want === null || want === undefined
              ? null
              : {
                  tweetCount: want.tweetCount,
                  followingCount: want.followingCount,
                  followerCount: want.followerCount,
                  likeCount: want.likeCount,
                };
          const user = (JSON.parse(got) as { payload: { data: { userChanged: { user: Latest | null } } } })
            .payload.data.userChanged.user;
          if (JSON.stringify(user) !== JSON.stringify(counts)) return undefined;
        }
        return true;
      },
      60_000,
      'every subscription to end on the final view',
    );
    await sleep(0);
  }, 600_000);
});
