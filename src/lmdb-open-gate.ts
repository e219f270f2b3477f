/**
 * Opening an LMDB environment that another process writes, without making that process lose a commit.
 *
 * The LMDB lmdb-js 3.5.6 embeds has the bug upstream fixed as ITS#9496 (LMDB 0.9.29, 2021): `mdb_env_open2`
 * stores the transaction id of the meta page it read into the shared lock region (`mti_txnid`), in every
 * process that opens the environment, read-only ones too. When the writing process commits between that
 * read and that store, the id goes back by one; its next write transaction starts from the meta page before
 * the commit (LMDB picks the current meta page by that id) and overwrites the commit's: a commit the writer
 * reported done is gone, and its later commits build on a state that lacks it. The window is a few
 * microseconds, wider under CPU load: 2 of 3 loaded runs of a writer with 30 processes opening next to it
 * lost one (test/store/other-processes.test.ts). Within one process lmdb-js shares the environment, so only
 * a process's first open of it can do this.
 *
 * So the process that writes an environment serves a gate, and every process opening one that has a gate
 * goes through it:
 *
 * - The writer listens on a local socket (an abstract Unix socket on Linux, a named pipe on Windows, a socket
 *   file in the temporary directory elsewhere: the first two vanish with the process, crashed or not) and
 *   writes its address and a random token to `open-gate` in the environment's directory (mode 0600: the
 *   same user, as for the environment's own files).
 * - An opener that finds the file connects and sends the token; the writer takes LMDB's write lock (a write
 *   transaction that writes nothing, on a thread of its own: the writer's reads and its event loop go on; its
 *   commits wait) and answers `held`; the opener opens, then disconnects, which releases the lock. A writer
 *   that is gone (a stale file: nobody listens) or closes meanwhile lets the opener open directly: nobody
 *   commits then. The writer releases the lock after `maxHoldMs` whatever the opener does.
 * - The opener waits synchronously (opening is synchronous): a worker thread talks to the gate while the
 *   opening thread blocks on an `Atomics.wait`. An opener left waiting longer than `timeoutMs` (the writer
 *   busy with one very long commit, or not answering) fails with {@link OpenGateError}; it never opens
 *   unprotected while a writer is there.
 *
 * A tool that is not matview (mdb_stat, mdb_copy) opening a running matview's environment can still do this.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { OpenGateError } from './errors.js';

/** The gate's file in an environment's directory: `<address>\n<token>\n`. */
export const openGateFileOf = (dir: string): string => join(dir, 'open-gate');

/** How long an opener waits for the writer to let it in (ms), by default. */
export const DEFAULT_OPEN_GATE_TIMEOUT_MS = 60_000;
/** How long a writer holds its write lock for one opener at most (ms), by default. */
export const DEFAULT_OPEN_GATE_MAX_HOLD_MS = 10_000;

/**
 * Directories whose gate this thread serves. An open there is this process's second: lmdb-js finds the
 * environment it has open and does not run LMDB's open (nor could this thread answer its own gate while it
 * waits for it).
 */
const servedHere = new Set<string>();

const addressFor = (id: string, platform: NodeJS.Platform): string => {
  if (platform === 'linux') return `\0matview-open-gate-${id}`;
  if (platform === 'win32') return `\\\\.\\pipe\\matview-open-gate-${id}`;
  return join(tmpdir(), `matview-open-gate-${id}.sock`);
};

export interface OpenGateOptions {
  /** What the writer's lock-holding thread passes to lmdb-js `open` (the writer's own options). */
  readonly openOptions?: Record<string, unknown>;
  /**
   * Instead of LMDB's write lock: stops this process's writes (after the one in progress) until the returned
   * function is called. For openers that open read-write, which takes the write lock itself.
   */
  readonly hold?: () => Promise<() => void>;
  /**
   * How long the lock-holding thread waits for this thread to tell the opener it holds the lock before it
   * gives the lock up and this thread takes it again (ms): this thread may itself be waiting for the lock
   * (lmdb-js' `openDB` takes it, even for a database that exists) and cannot answer meanwhile.
   */
  readonly announceMs?: number;
  readonly maxHoldMs?: number;
  /** Called when holding the lock for an opener fails (the opener then waits for its timeout). */
  readonly onError?: (error: unknown) => void;
}

/** A writer's gate (see the module comment). */
export interface OpenGate {
  /** Stops letting openers in: stops listening, removes the file, releases a lock held now. */
  close(): Promise<void>;
}

/**
 * Starts the gate of the environment at `dir`, which this process writes. Openers that come before it
 * listens open directly, as they did before this process opened the environment.
 */
export function serveOpenGate(dir: string, options: OpenGateOptions): OpenGate {
  return new Gate(dir, options);
}

/** How long the lock-holding thread waits for the gate's thread to answer the opener (ms), by default. */
export const DEFAULT_OPEN_GATE_ANNOUNCE_MS = 1_000;

/** `state[0]` of a hold: the holder waits, the gate's thread answered the opener, gave up, released. */
const enum Hold {
  Waiting = 0,
  Announced = 1,
  Abandoned = 2,
  Released = 3,
}

/**
 * Worker of the writer: holds a write transaction open. Until the gate's thread has told the opener (or for
 * \`announceMs\`: then it gives up, so a gate thread that waits for the lock itself is not stalled for
 * long), then until released, the opener's done file appears (written without the gate's thread, which may
 * be busy), or \`maxHoldMs\` passed.
 */
const HOLDER = `
const { workerData, parentPort } = require('node:worker_threads');
const { existsSync, rmSync } = require('node:fs');
const { open } = require(workerData.lmdb);
const env = open({ ...workerData.openOptions, path: workerData.path });
const state = new Int32Array(workerData.state);
try {
  env.transactionSync(() => {
    parentPort.postMessage('held');
    const start = Date.now();
    while (Atomics.load(state, 0) === ${Hold.Waiting}) {
      if (Date.now() - start < workerData.announceMs) Atomics.wait(state, 0, ${Hold.Waiting}, 20);
      else if (Atomics.compareExchange(state, 0, ${Hold.Waiting}, ${Hold.Abandoned}) === ${Hold.Waiting}) return;
    }
    const announced = Date.now();
    while (
      Atomics.load(state, 0) === ${Hold.Announced} &&
      Date.now() - announced < workerData.maxHoldMs &&
      !existsSync(workerData.doneFile)
    )
      Atomics.wait(state, 0, ${Hold.Announced}, 2);
  });
} finally {
  rmSync(workerData.doneFile, { force: true });
  Promise.resolve(env.close()).finally(() => parentPort.close());
}
`;

/** A hold of the gate: what the opener is told, and what ends it. */
interface Held {
  /** The file (in the environment's directory) the opener writes once it has opened, if the hold reads it. */
  readonly doneFile?: string;
  release(): void;
}

class Gate implements OpenGate {
  private readonly file: string;
  private readonly token = randomBytes(16).toString('hex');
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /** Openers in arrival order; the first one holds the lock. */
  private queue: Promise<void> = Promise.resolve();
  private releaseHeld: (() => void) | undefined;
  private closed = false;
  private readonly realDir: string;

  constructor(
    private readonly dir: string,
    private readonly o: OpenGateOptions,
  ) {
    this.file = openGateFileOf(dir);
    this.realDir = realpathSync(dir);
    servedHere.add(this.realDir);
    const address = addressFor(randomBytes(12).toString('hex'), process.platform);
    this.server = createServer((socket) => this.serve(socket));
    this.server.on('error', (error) => o.onError?.(error));
    this.server.listen(address, () => {
      if (this.closed) return;
      const aside = `${this.file}.${process.pid}.tmp`;
      try {
        writeFileSync(aside, `${address}\n${this.token}\n`, { mode: 0o600 });
        renameSync(aside, this.file);
      } catch (error) {
        o.onError?.(error);
      }
    });
    this.server.unref();
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    let line = '';
    let gone = false;
    let onGone = (): void => undefined;
    const left = new Promise<void>((resolve) => (onGone = resolve));
    socket.on('close', () => {
      gone = true;
      this.sockets.delete(socket);
      onGone();
    });
    socket.on('error', () => socket.destroy());
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (line.endsWith('\n')) return;
      line += chunk;
      if (!line.endsWith('\n')) return;
      if (line.trim() !== this.token) {
        socket.end('denied\n');
        return;
      }
      this.queue = this.queue.then(async () => {
        if (gone || this.closed) return;
        const held: Held =
          this.o.hold === undefined ? await this.holdWriteLock() : { release: await this.o.hold() };
        if (gone || this.closed) return held.release();
        socket.write(held.doneFile === undefined ? 'held\n' : `held ${held.doneFile}\n`);
        this.releaseHeld = () => held.release();
        await left;
        this.releaseHeld = undefined;
        held.release();
      });
      this.queue = this.queue.catch((error: unknown) => {
        this.o.onError?.(error);
        socket.destroy();
      });
    });
  }

  /**
   * Takes the environment's write lock on a thread of its own; resolves once this thread may tell the opener
   * (the holder has not given the lock up meanwhile: else it takes it again).
   */
  private async holdWriteLock(): Promise<Held> {
    for (;;) {
      const state = new Int32Array(new SharedArrayBuffer(4));
      const doneFile = `open-gate.${randomBytes(8).toString('hex')}.done`;
      const worker = new Worker(HOLDER, {
        eval: true,
        workerData: {
          lmdb: createRequire(import.meta.url).resolve('lmdb'),
          path: this.dir,
          openOptions: this.o.openOptions,
          state: state.buffer,
          doneFile: join(this.dir, doneFile),
          announceMs: this.o.announceMs ?? DEFAULT_OPEN_GATE_ANNOUNCE_MS,
          maxHoldMs: this.o.maxHoldMs ?? DEFAULT_OPEN_GATE_MAX_HOLD_MS,
        },
      });
      await new Promise<void>((resolve, reject) => {
        worker.once('message', () => resolve());
        worker.once('error', reject);
        worker.once('exit', () =>
          reject(new Error('the open gate lock thread ended before it held the lock')),
        );
      });
      if (Atomics.compareExchange(state, 0, Hold.Waiting, Hold.Announced) === Hold.Waiting) {
        return {
          doneFile,
          release: () => {
            Atomics.store(state, 0, Hold.Released);
            Atomics.notify(state, 0);
          },
        };
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    servedHere.delete(this.realDir);
    try {
      if (readFileSync(this.file, 'utf8').split('\n')[1] === this.token) rmSync(this.file, { force: true });
    } catch {
      // Not written yet, or replaced by a later writer's: nothing of ours to remove.
    }
    this.releaseHeld?.();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.queue;
  }
}

/** Opener's worker: talks to the gate; `state[0]`: 0 waiting, 1 held, 2 no writer, 3 denied. */
const OPENER = `
const { workerData, parentPort } = require('node:worker_threads');
const { createConnection } = require('node:net');
const state = new Int32Array(workerData.state);
const settle = (value) => {
  if (Atomics.load(state, 0) !== 0) return;
  Atomics.store(state, 0, value);
  Atomics.notify(state, 0);
};
const socket = createConnection(workerData.address, () => socket.write(workerData.token + '\\n'));
let reply = '';
socket.setEncoding('utf8');
let doneFile;
socket.on('data', (chunk) => {
  reply += chunk;
  if (!reply.includes('\\n')) return;
  const line = reply.slice(0, reply.indexOf('\\n'));
  if (line === 'held' || line.startsWith('held ')) {
    const name = line.slice(5);
    if (/^open-gate\\.[0-9a-f]{16}\\.done$/.test(name)) doneFile = require('node:path').join(workerData.dir, name);
    settle(1);
  } else if (line === 'denied') settle(3);
});
// Refused or gone before it answered: no writer is there (a stale file, a writer that closed).
socket.on('error', () => settle(2));
socket.on('close', () => settle(2));
// Left: the done file tells the writer's lock-holding thread directly (its gate thread may be busy).
parentPort.on('message', () => {
  if (doneFile !== undefined) {
    try {
      require('node:fs').writeFileSync(doneFile, '');
    } catch {}
  }
  socket.destroy();
  parentPort.close();
});
`;

/**
 * Lets this process open the environment at `dir` (see the module comment): returns what to call once it is
 * open (or failed to open), or undefined when no gate is there. Blocks the calling thread meanwhile.
 */
export function enterOpenGate(
  dir: string,
  timeoutMs: number = DEFAULT_OPEN_GATE_TIMEOUT_MS,
): (() => void) | undefined {
  const file = openGateFileOf(dir);
  if (!existsSync(file) || servedHere.has(realpathSync(dir))) return undefined;
  let address: string | undefined;
  let token: string | undefined;
  try {
    [address, token] = readFileSync(file, 'utf8').split('\n');
  } catch (error) {
    // Removed since (its writer closed): no gate.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new OpenGateError(dir, `cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  if (address === undefined || token === undefined || address === '' || token === '') return undefined;
  const state = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(OPENER, { eval: true, workerData: { address, token, dir, state: state.buffer } });
  worker.unref();
  const leave = (): void => worker.postMessage('leave');
  if (Atomics.wait(state, 0, 0, timeoutMs) === 'timed-out') {
    leave();
    throw new OpenGateError(
      dir,
      `the process writing it did not let this one open it within ${timeoutMs} ms`,
    );
  }
  const outcome = Atomics.load(state, 0);
  if (outcome === 3) {
    leave();
    throw new OpenGateError(dir, `the process writing it refused the token in ${file}`);
  }
  if (outcome === 2) {
    leave();
    return undefined;
  }
  return leave;
}
