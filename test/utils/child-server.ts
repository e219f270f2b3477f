/**
 * Runs `matview serve` as a child process (`node bin/matview.js serve`), exactly as an operator starts
 * it, so fault tests can do to it what happens to real processes: SIGKILL at any instant, SIGTERM, and
 * reading its CPU time and resident memory from /proc (a measurement of the server alone, not of the
 * test process that drives it).
 *
 * The child listens on port 0 (any free port); the port is taken from its own `API listening` log line,
 * so there is no race between picking a free port and binding it. Every child is killed after the test
 * file (afterAll), when the test process exits, and — through a watchdog shell holding a pipe from this
 * process, as in kafka-mock.ts — even when the vitest worker itself is SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';
import type { TestTopics } from './server.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'matview.js');
/** Log lines kept per child (the newest); enough to explain a failure, bounded for long soaks. */
const KEPT_LINES = 2_000;
/** Linux clock ticks per second for /proc/<pid>/stat (`getconf CLK_TCK`; 100 on every Linux we run on). */
const CLK_TCK = 100;

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** One parsed pino line of the child (or `{ msg: <raw line> }` for anything else it printed). */
export type LogEntry = Record<string, unknown> & { readonly msg?: unknown };

export interface ChildServerOptions {
  /** DATA_DIR of the instance (reuse it across restarts to test recovery). */
  readonly dataDir: string;
  /** KAFKA_BROKERS; omitted: the embedded changelog. */
  readonly brokers?: readonly string[];
  readonly topics?: TestTopics;
  /** Any further configuration (README "Configuration"); wins over the defaults below. */
  readonly env?: Readonly<Record<string, string>>;
  /** Node flags before `bin/matview.js` (e.g. `--max-semi-space-size=16`, `--cpu-prof`). */
  readonly nodeArgs?: readonly string[];
}

export interface ChildServer {
  readonly pid: number;
  /** Resolves with the port once the API listens; rejects if the child exits first. */
  readonly listening: Promise<number>;
  /** Resolves when the child has exited, however it ended. */
  readonly exited: Promise<ChildExit>;
  /** `http://127.0.0.1:<port>`; throws before the API listens. */
  url(): string;
  /** The newest log lines, parsed. */
  logs(): readonly LogEntry[];
  /** Resolves with the first log line (already printed or future) matching `match`. */
  waitForLog(match: (entry: LogEntry) => boolean, what: string, timeoutMs?: number): Promise<LogEntry>;
  /** SIGKILL: no handler runs, no transaction finishes, nothing is flushed by the process. */
  kill(): Promise<ChildExit>;
  /** SIGTERM (graceful shutdown); SIGKILL after `timeoutMs` so a hung shutdown cannot hang the test. */
  terminate(timeoutMs?: number): Promise<ChildExit>;
  /** User + system CPU seconds the child has used so far (/proc/<pid>/stat). */
  cpuSeconds(): number;
  /** Resident set size in bytes (/proc/<pid>/status VmRSS). */
  rssBytes(): number;
  /** Whether the process is still running. */
  alive(): boolean;
}

const running = new Set<ChildServer>();
const killAll = (): void => {
  for (const child of running) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
};
process.once('exit', killAll);
afterAll(async () => {
  await Promise.allSettled([...running].map((c) => c.kill()));
});

/**
 * Spawns `matview serve` and returns at once (the caller may kill it before it even listens: that is a
 * crash point too). Defaults: loopback, port 0, production mode, info logs (the port is read from them),
 * no demo generator; `options.env` overrides any of them.
 */
export function spawnChildServer(options: ChildServerOptions): ChildServer {
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? '/tmp',
    ...(process.env['TMPDIR'] === undefined ? {} : { TMPDIR: process.env['TMPDIR'] }),
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    DEMO: 'false',
    DATA_DIR: options.dataDir,
    ...(options.brokers === undefined ? {} : { KAFKA_BROKERS: options.brokers.join(',') }),
    ...(options.topics === undefined
      ? {}
      : {
          TOPIC_USERS: options.topics.users,
          TOPIC_TWEETS: options.topics.tweets,
          TOPIC_FOLLOWS: options.topics.follows,
          TOPIC_LIKES: options.topics.likes,
        }),
    ...options.env,
  };
  const args = [...(options.nodeArgs ?? []), BIN, 'serve'];
  const proc = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = proc.pid;
  if (pid === undefined) throw new Error('could not spawn matview serve');
  const watchdog = spawn('sh', ['-c', 'read _; kill -9 "$1" 2>/dev/null', 'sh', String(pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });

  const lines: LogEntry[] = [];
  const waiters = new Set<(entry: LogEntry) => void>();
  let exit: ChildExit | undefined;
  const exited = new Promise<ChildExit>((resolve) =>
    proc.once('exit', (code, signal) => {
      exit = { code, signal };
      watchdog.stdin?.end();
      running.delete(child);
      resolve(exit);
    }),
  );
  collectLines(proc, (line) => {
    let entry: LogEntry;
    try {
      const parsed: unknown = JSON.parse(line);
      entry = typeof parsed === 'object' && parsed !== null ? (parsed as LogEntry) : { msg: line };
    } catch {
      entry = { msg: line };
    }
    lines.push(entry);
    if (lines.length > KEPT_LINES) lines.splice(0, lines.length - KEPT_LINES);
    for (const w of waiters) w(entry);
  });

  const waitForLog = (match: (e: LogEntry) => boolean, what: string, timeoutMs = 60_000): Promise<LogEntry> =>
    new Promise((resolve, reject) => {
      const found = lines.find(match);
      if (found !== undefined) return resolve(found);
      const done = (f: () => void): void => {
        clearTimeout(timer);
        waiters.delete(onLine);
        f();
      };
      const onLine = (entry: LogEntry): void => {
        if (match(entry)) done(() => resolve(entry));
      };
      const timer = setTimeout(
        () =>
          done(() =>
            reject(new Error(`no log line "${what}" within ${timeoutMs} ms; last lines:\n${tail()}`)),
          ),
        timeoutMs,
      );
      waiters.add(onLine);
      void exited.then((e) =>
        done(() =>
          reject(new Error(`matview exited (${describeExit(e)}) before "${what}"; last lines:\n${tail()}`)),
        ),
      );
    });
  const tail = (): string =>
    lines
      .slice(-30)
      .map((l) => JSON.stringify(l))
      .join('\n');

  let port: number | undefined;
  const listening = waitForLog(
    (e) => e.msg === 'API listening' && typeof e['port'] === 'number',
    'API listening',
  ).then((e) => (port = e['port'] as number));
  listening.catch(() => undefined); // a child killed before it listens is a normal crash point

  const signal = async (sig: NodeJS.Signals, timeoutMs: number): Promise<ChildExit> => {
    if (exit !== undefined) return exit;
    proc.kill(sig);
    if (sig === 'SIGKILL') return exited;
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  const child: ChildServer = {
    pid,
    listening,
    exited,
    url() {
      if (port === undefined) throw new Error('matview is not listening yet');
      return `http://127.0.0.1:${port}`;
    },
    logs: () => lines,
    waitForLog,
    kill: () => signal('SIGKILL', 0),
    terminate: (timeoutMs = 20_000) => signal('SIGTERM', timeoutMs),
    cpuSeconds() {
      // Fields after the parenthesised command name: state is field 3, utime 14, stime 15 (proc(5)).
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    },
    rssBytes() {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m?.[1] === undefined ? 0 : Number(m[1]) * 1024;
    },
    alive: () => exit === undefined,
  };
  running.add(child);
  return child;
}

/** Spawns `matview serve` and waits until its API listens. */
export async function startChildServer(options: ChildServerOptions): Promise<ChildServer> {
  const child = spawnChildServer(options);
  await child.listening;
  return child;
}

/** `GET /health/ready` answers 200. */
export async function isReady(child: ChildServer): Promise<boolean> {
  try {
    const res = await fetch(`${child.url()}/health/ready`);
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

export function describeExit(e: ChildExit): string {
  return e.signal === null ? `code ${String(e.code)}` : `signal ${e.signal}`;
}

/** Calls `onLine` for every line of the child's stdout and stderr. */
function collectLines(proc: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [proc.stdout, proc.stderr]) {
    if (stream === null) continue;
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      rest += chunk;
      let nl: number;
      while ((nl = rest.indexOf('\n')) !== -1) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (line.trim() !== '') onLine(line);
      }
    });
  }
}
