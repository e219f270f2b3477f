/**
 * Load generation for the read targets: autocannon with prebuilt requests (the same for every target), every
 * response time recorded at full precision (autocannon's own histogram has 1 ms resolution), and the server
 * child's CPU time around each measurement.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import autocannon from 'autocannon';
import { distribution, round, ROOT, type Distribution } from './common.js';
import type { ServeOptions, TargetKind } from './serve.js';

export interface TargetProcess {
  readonly kind: TargetKind;
  readonly url: string;
  readonly child: ChildProcess;
  cpu(): Promise<number>;
  rss(): Promise<number>;
  stop(): Promise<void>;
}

interface Usage {
  cpu: NodeJS.CpuUsage;
  rss: number;
}

export async function startTarget(
  kind: TargetKind,
  options: ServeOptions,
  execArgv: readonly string[] = [],
): Promise<TargetProcess> {
  const child = fork(`${ROOT}/bench/lib/serve.ts`, [kind, JSON.stringify(options)], {
    execArgv: ['--max-old-space-size=4096', ...execArgv, '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code) =>
      reject(new Error(`${kind} server exited with ${String(code)} before listening`)),
    );
  });
  const usage = () =>
    new Promise<Usage>((resolve) => {
      child.once('message', (m: Usage) => resolve(m));
      child.send('usage');
    });
  return {
    kind,
    url: `http://127.0.0.1:${port}`,
    child,
    cpu: async () => {
      const u = await usage();
      return u.cpu.user + u.cpu.system;
    },
    rss: async () => (await usage()).rss,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface LoadResult {
  readonly rps: number;
  readonly total: number;
  readonly errors: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  /** Server process CPU µs per request (user + system). */
  readonly cpuPerRequest: number;
}

export type Request = autocannon.Request;

export async function runLoad(
  target: TargetProcess,
  requests: readonly Request[],
  options: { duration: number; connections: number; rate?: number },
): Promise<LoadResult> {
  const latencies: number[] = [];
  const before = await target.cpu();
  // Without a callback autocannon returns the instance (an EventEmitter) that is also a promise of the result.
  const instance = autocannon({
    url: target.url,
    requests: [...requests],
    connections: options.connections,
    pipelining: 1,
    duration: options.duration,
    ...(options.rate === undefined ? {} : { overallRate: options.rate }),
  }) as unknown as Promise<autocannon.Result> & autocannon.Instance;
  instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
    if (latencies.length < 5_000_000) latencies.push(responseTime);
  });
  const r = await instance;
  const cpu = (await target.cpu()) - before;
  const d = distribution(latencies);
  return {
    rps: r.requests.total / options.duration,
    total: r.requests.total,
    errors: r.errors + r.timeouts + r.non2xx,
    p50: d.p50,
    p95: d.p95,
    p99: d.p99,
    max: d.max,
    cpuPerRequest: cpu / Math.max(1, r.requests.total),
  };
}

/** Latencies of an open-loop run, each with its request's due time (performance.now() clock). */
export interface OpenLoopSamples {
  readonly due: Float64Array;
  readonly latencies: Float64Array;
  /** 1 where the request failed or did not answer 200. */
  readonly failed: Uint8Array;
  readonly errors: number;
  readonly seconds: number;
}

/** How long the open-loop client keeps an idle socket: below the server's default keep-alive timeout. */
const IDLE_SOCKET_MS = 4_000;

/**
 * Open-loop load at a fixed rate: request i is due at start + i/rate and its latency counts from that due
 * time (so a stalled server is charged for the requests it delayed: no coordinated omission). Runs until
 * `total` requests were sent or `until()` turns true. Pacing `spin` sends each request on time by spinning
 * the event loop (a core of its own); `timer` sleeps until the next one is due (≈1 ms late, counted in every
 * latency alike), leaving the core to a server that needs it, e.g. while it catches up.
 */
export async function runOpenLoop(
  url: string,
  requests: readonly Request[],
  options: {
    rate: number;
    total?: number;
    until?: () => boolean;
    pacing: 'spin' | 'timer';
    sockets?: number;
  },
): Promise<OpenLoopSamples> {
  // Idle sockets are closed here before the server closes them (HTTP_KEEP_ALIVE_TIMEOUT_MS, 5 s by default):
  // at the same timeout on both ends, a request sent on a socket the server is closing came back ECONNRESET
  // (2 and 7 of ~3,100 reads during served rebuilds, whose stalls fire the server's timers late). A load
  // balancer in front of matview needs the same order (README "Operations").
  const agent = new Agent({ keepAlive: true, maxSockets: options.sockets ?? 64, timeout: IDLE_SOCKET_MS });
  const target = new URL(url);
  const total = options.total ?? Number.MAX_SAFE_INTEGER;
  let due = new Float64Array(Math.min(total, 1 << 16));
  let latencies = new Float64Array(due.length);
  let failed = new Uint8Array(due.length);
  let errors = 0;
  const start = performance.now();
  const dueAt = (i: number) => start + (i * 1000) / options.rate;
  const send = (i: number) =>
    new Promise<void>((resolve) => {
      const r = requests[i % requests.length]!;
      const fail = () => {
        errors++;
        failed[i] = 1;
      };
      const finish = () => {
        latencies[i] = performance.now() - dueAt(i);
        resolve();
      };
      const req = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          agent,
          method: r.method ?? 'GET',
          path: r.path ?? '/',
          headers: r.headers ?? {},
        },
        (res) => {
          if (res.statusCode !== 200) fail();
          res.on('data', () => undefined);
          res.on('end', finish);
        },
      );
      req.on('error', () => {
        fail();
        finish();
      });
      req.end(r.body);
    });
  const inflight: Promise<void>[] = [];
  let next = 0;
  while (next < total && options.until?.() !== true) {
    const now = performance.now();
    while (next < total && dueAt(next) <= now) {
      if (next === due.length) {
        // Grow both (latencies are written as answers arrive, so copy what is there).
        const grownDue = new Float64Array(due.length * 2);
        grownDue.set(due);
        due = grownDue;
        const grownLatencies = new Float64Array(due.length);
        grownLatencies.set(latencies);
        latencies = grownLatencies;
        const grownFailed = new Uint8Array(due.length);
        grownFailed.set(failed);
        failed = grownFailed;
      }
      due[next] = dueAt(next);
      inflight.push(send(next));
      next++;
    }
    if (options.pacing === 'spin') await new Promise((r) => setImmediate(r));
    else await new Promise((r) => setTimeout(r, Math.max(0, dueAt(next) - performance.now())));
  }
  await Promise.all(inflight);
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  return {
    due: due.subarray(0, next),
    latencies: latencies.subarray(0, next),
    failed: failed.subarray(0, next),
    errors,
    seconds,
  };
}

/** An open-loop run's requests due in one window of time: their latencies, and how many failed. */
export interface WindowReads {
  readonly d: Distribution;
  readonly errors: number;
}

/** The requests of `samples` due in [from, to) (performance.now() clock, ms). */
export function dueBetween(samples: OpenLoopSamples, from: number, to: number): WindowReads {
  const latencies: number[] = [];
  let errors = 0;
  samples.due.forEach((due, i) => {
    if (due < from || due >= to) return;
    latencies.push(samples.latencies[i]!);
    errors += samples.failed[i]!;
  });
  return { d: distribution(latencies), errors };
}

/** A window's reads as the fields of a results row. */
export const latencyFields = ({ d, errors }: WindowReads): Record<string, number> => ({
  reads: d.count,
  'p50 ms': round(d.p50, 2),
  'p95 ms': round(d.p95, 2),
  'p99 ms': round(d.p99, 2),
  'max ms': round(d.max, 2),
  errors,
});

/** {@link runOpenLoop} for `duration` seconds, spinning, with the target's CPU per request. */
export async function runFixedRate(
  target: TargetProcess,
  requests: readonly Request[],
  options: { duration: number; rate: number; sockets?: number },
): Promise<LoadResult> {
  const before = await target.cpu();
  const run = await runOpenLoop(target.url, requests, {
    rate: options.rate,
    total: Math.round(options.duration * options.rate),
    pacing: 'spin',
    ...(options.sockets === undefined ? {} : { sockets: options.sockets }),
  });
  const cpu = (await target.cpu()) - before;
  const done = run.latencies.length;
  const d = distribution(run.latencies);
  return {
    rps: done / run.seconds,
    total: done,
    errors: run.errors,
    p50: d.p50,
    p95: d.p95,
    p99: d.p99,
    max: d.max,
    cpuPerRequest: cpu / Math.max(1, done),
  };
}
