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
 * - The writer writes its socket's address, a random token, its pid and host to `open-gate` in the
 *   environment's directory (mode 0600: the same user, as for the environment's own files) before its first
 *   commit, then listens there: an abstract Unix socket on Linux, a named pipe on Windows (both vanish with
 *   the process, crashed or not), a socket file in the temporary directory elsewhere.
 * - An opener that finds the file connects and sends the token; the writer takes LMDB's write lock (a write
 *   transaction that writes nothing, on a thread of its own: the writer's reads and its event loop go on; its
 *   commits wait) and answers `held` with the name of a done file; the opener opens, writes the done file
 *   and disconnects, either of which releases the lock (the done file without the writer's event loop, which
 *   may itself be waiting for the lock: lmdb-js' `openDB` takes it). A gate whose thread does not claim the
 *   hold within `announceMs` gives the lock up and takes it again, so it never answers `held` for a lock it
 *   gave up. The writer releases it `maxHoldMs` after answering whatever the opener does.
 * - Nobody answers: when the file names a process that is gone (or on another host), the file is stale and
 *   the opener opens directly, as nobody commits; when that process is alive (starting, closing, or its file
 *   just replaced by a later writer's), the opener reads the file again until `timeoutMs`. A writer that
 *   closes answers `closing` to the openers waiting (they read the file again), and one that fails to hold
 *   answers `failed`: the opener fails with {@link OpenGateError} rather than open unprotected.
 * - The opener waits synchronously (opening is synchronous): a worker thread talks to the gate while the
 *   opening thread blocks on an `Atomics.wait`. An opener left waiting longer than `timeoutMs` (the writer
 *   busy with one very long commit, or not answering) fails with {@link OpenGateError}; it never opens
 *   unprotected while a writer is there.
 *
 * A tool that is not matview (mdb_stat, mdb_copy) opening a running matview's environment can still do this.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { OpenGateError } from './errors.js';
import { localSocketAddress, processAlive } from './local-ipc.js';

/** The gate's file in an environment's directory: `<address>\n<token>\n<pid>\n<host>\n`. */
export const openGateFileOf = (dir: string): string => join(dir, 'open-gate');

/** How long an opener waits for the writer to let it in (ms), by default. */
export const DEFAULT_OPEN_GATE_TIMEOUT_MS = 60_000;
/** Pause between two attempts of an opener whose writer did not answer (starting, closing). */
const RETRY_PAUSE_MS = 20;
/** How long a connection may take to send its token. */
const TOKEN_TIMEOUT_MS = 10_000;
/** How long a writer holds its write lock for one opener at most (ms), by default. */
export const DEFAULT_OPEN_GATE_MAX_HOLD_MS = 10_000;

/**
 * Directories whose gate this thread serves. An open there is this process's second: lmdb-js finds the
 * environment it has open and does not run LMDB's open (nor could this thread answer its own gate while it
 * waits for it).
 */
const servedHere = new Map<string, number>();

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
  /**
   * Called on the gate's thread when a lock-holding thread says it holds the lock, before the gate claims the
   * hold; `givenUp` tells whether that thread has given the lock up since (tests: a gate thread kept busy
   * there past `announceMs`).
   */
  readonly onLockHeld?: (givenUp: () => boolean) => void;
  /** Called when holding the lock for an opener fails (the opener is told, and fails), or the socket does. */
  readonly onError?: (error: unknown) => void;
}

/** A writer's gate (see the module comment). */
export interface OpenGate {
  /** Stops letting openers in: stops listening, removes the file, releases a lock held now. */
  close(): Promise<void>;
}

/**
 * Starts the gate of the environment at `dir`, which this process writes: its file is written before this
 * returns, so call it before the first commit.
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
    servedHere.set(this.realDir, (servedHere.get(this.realDir) ?? 0) + 1);
    const address = localSocketAddress(`matview-open-gate-${randomBytes(12).toString('hex')}`);
    // The file before the socket listens, before this process's first commit: an opener that comes before
    // the socket listens finds this process alive and tries again (enterOpenGate).
    const aside = `${this.file}.${process.pid}.tmp`;
    writeFileSync(aside, `${address}\n${this.token}\n${process.pid}\n${hostname()}\n`, { mode: 0o600 });
    renameSync(aside, this.file);
    this.server = createServer((socket) => this.serve(socket));
    this.server.on('error', (error) => o.onError?.(error));
    this.server.listen(address);
    this.server.unref();
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    // A peer that does not send its token soon is not an opener.
    socket.setTimeout(TOKEN_TIMEOUT_MS, () => {
      if (!line.endsWith('\n')) socket.destroy();
    });
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
      if (line.length > 200) return void socket.destroy();
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
        // Whatever the opener does, for maxHoldMs at most (the lock holder has its own limit too).
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          left,
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, this.o.maxHoldMs ?? DEFAULT_OPEN_GATE_MAX_HOLD_MS);
          }),
        ]);
        clearTimeout(timer);
        this.releaseHeld = undefined;
        held.release();
        if (held.doneFile !== undefined) rmSync(join(this.dir, held.doneFile), { force: true });
      });
      this.queue = this.queue.catch((error: unknown) => {
        this.o.onError?.(error);
        // The opener must not take this for a writer that is gone.
        socket.end('failed\n');
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
      this.o.onLockHeld?.(() => Atomics.load(state, 0) === Hold.Abandoned);
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
    const served = (servedHere.get(this.realDir) ?? 1) - 1;
    if (served > 0) servedHere.set(this.realDir, served);
    else servedHere.delete(this.realDir);
    try {
      if (readFileSync(this.file, 'utf8').split('\n')[1] === this.token) rmSync(this.file, { force: true });
    } catch {
      // Not written yet, or replaced by a later writer's: nothing of ours to remove.
    }
    this.releaseHeld?.();
    // Openers waiting read the gate file again: a writer after this one has its own.
    for (const socket of this.sockets) socket.end('closing\n');
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.queue;
  }
}

/** What an opener's worker found (`state[0]`). */
const enum Entry {
  Waiting = 0,
  Held = 1,
  /** Refused or gone before it answered: nobody listens there. */
  NoAnswer = 2,
  Denied = 3,
  Closing = 4,
  Failed = 5,
}

/** Opener's worker: talks to the gate, says what it found in `state[0]` ({@link Entry}). */
const OPENER = `
const { workerData, parentPort } = require('node:worker_threads');
const { createConnection } = require('node:net');
const state = new Int32Array(workerData.state);
const settle = (value) => {
  if (Atomics.load(state, 0) !== ${Entry.Waiting}) return;
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
    settle(${Entry.Held});
  } else if (line === 'denied') settle(${Entry.Denied});
  else if (line === 'closing') settle(${Entry.Closing});
  else settle(${Entry.Failed});
});
socket.on('error', () => settle(${Entry.NoAnswer}));
socket.on('close', () => settle(${Entry.NoAnswer}));
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
  const deadline = Date.now() + timeoutMs;
  const timedOut = () =>
    new OpenGateError(dir, `the process writing it did not let this one open it within ${timeoutMs} ms`);
  for (;;) {
    // No file, or removed since (its writer closed): no gate.
    const gate = readGateFile(dir);
    if (gate === undefined) return undefined;
    const { content, address, token, pid, host } = gate;
    const state = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(OPENER, {
      eval: true,
      workerData: { address, token, dir, state: state.buffer },
    });
    worker.on('error', () => undefined);
    worker.unref();
    const leave = (): void => worker.postMessage('leave');
    const waited = Atomics.wait(state, 0, Entry.Waiting, Math.max(1, deadline - Date.now()));
    const entry = Atomics.load(state, 0) as Entry;
    if (entry === Entry.Held) return leave;
    leave();
    if (waited === 'timed-out') throw timedOut();
    if (entry === Entry.Failed)
      throw new OpenGateError(dir, `the process writing it could not hold its commits for this open`);
    // Nobody answered: a writer that is gone left the file (open directly), or one that is starting or
    // closing (or whose file a later writer replaced) is there: read the file again.
    const unchanged = readFileOr(file) === content;
    if (entry === Entry.NoAnswer && unchanged && !writerAlive(pid, host)) return undefined;
    if (entry === Entry.Denied && unchanged)
      throw new OpenGateError(dir, `the process writing it refused the token in ${file}`);
    if (Date.now() >= deadline) throw timedOut();
    Atomics.wait(state, 0, entry, RETRY_PAUSE_MS);
  }
}

/** Opens the environment at `dir` with `open`, through its writer's gate if one is there ({@link enterOpenGate}). */
export function openThroughGate<T>(dir: string, open: () => T): T {
  const leave = enterOpenGate(dir);
  try {
    return open();
  } finally {
    leave?.();
  }
}

/** How long {@link liveWriterOf} tries to reach a gate whose process is alive but does not listen (yet). */
export const LIVE_WRITER_PROBE_MS = 2_000;

/** The process writing an environment, as {@link liveWriterOf} found it. */
export interface LiveWriter {
  readonly pid: number;
  readonly host: string;
}

/**
 * The other process of this host that writes the environment at `dir` now, if one does: its gate file names
 * a process that is alive and whose gate answers a connection (a pid the kernel reused for another program
 * answers nothing there; a writer that is still starting gets `probeMs` to listen). Undefined when no gate
 * is there, its file is stale, it names this process or another host (which cannot be asked: LMDB is not
 * shared across hosts anyway), or this process serves it. Nothing is opened or held: the connection ends
 * before it sends a token, which the gate takes for a peer that is not an opener.
 */
export async function liveWriterOf(
  dir: string,
  probeMs: number = LIVE_WRITER_PROBE_MS,
): Promise<LiveWriter | undefined> {
  const deadline = Date.now() + probeMs;
  for (;;) {
    const gate = readGateFile(dir);
    if (gate === undefined) return undefined;
    const { address, pid, host } = gate;
    // This process's own pid: a file left by a killed server whose pid this one got (pid 1 in a container).
    if (!writerAlive(pid, host) || Number(pid) === process.pid) return undefined;
    if (await answers(address)) return { pid: Number(pid), host: host! };
    // Alive but not listening: a writer still starting (its file comes before its socket), or the pid is
    // another program's now (then it never answers).
    if (Date.now() >= deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
  }
}

/** A gate file as its writer wrote it (`content`, to tell whether it was replaced since), split. */
interface GateFile {
  readonly content: string;
  readonly address: string;
  readonly token: string;
  readonly pid: string | undefined;
  readonly host: string | undefined;
}

/**
 * The gate file of the environment at `dir`, when there is one this process does not serve itself and it
 * names an address and a token.
 */
function readGateFile(dir: string): GateFile | undefined {
  const content = readFileOr(openGateFileOf(dir));
  if (content === undefined || servedHere.has(realpathSync(dir))) return undefined;
  const [address, token, pid, host] = content.split('\n');
  if (!address || !token) return undefined;
  return { content, address, token, pid, host };
}

/** Whether something listens at the local socket `address` (connects, then hangs up at once). */
function answers(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(address, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** Whether the process a gate file names may still be running (another host's cannot be told: no). */
function writerAlive(pid: string | undefined, host: string | undefined): boolean {
  return pid !== undefined && host === hostname() && /^\d+$/.test(pid) && processAlive(Number(pid));
}

const readFileOr = (file: string): string | undefined => {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new OpenGateError(dirname(file), `cannot read ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  }
};
