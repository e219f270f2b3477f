/**
 * The data directory layout, apart from the server so the CLI tools (verify, snapshot, restore, rebuild)
 * can find the store without loading the API: `DATA_DIR/view` is the view store (an LMDB environment),
 * `DATA_DIR/changelog` the embedded changelog.
 */
import { accessSync, constants, mkdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { DataDirError } from '../errors.js';
import { directorySocketAddress, isSocketFile, listenLocal } from '../local-ipc.js';

/** Where the view store lives inside DATA_DIR. */
export const storePathOf = (dataDir: string): string => join(resolve(dataDir), 'view');

/** Creates the data directory if needed and proves it is writable, with a one-line reason when not. */
export function ensureDataDir(dir: string): string {
  const abs = resolve(dir);
  try {
    mkdirSync(abs, { recursive: true });
    accessSync(abs, constants.W_OK);
  } catch (e) {
    throw new DataDirError(
      abs,
      (e as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (e as Error).message,
      { cause: e },
    );
  }
  return abs;
}

/** What the process holding a DATA_DIR does with it (its claim tells whoever asks). */
export type DataDirRole = 'serve' | 'restore';

/** A DATA_DIR this process holds: no other matview serve or restore of this host starts on it meanwhile. */
export interface DataDirClaim {
  /** Lets the next process claim it (a process that ends, however, releases it too). */
  release(): Promise<void>;
}

/** The file in DATA_DIR naming its claim socket (see {@link claimDataDir}). */
export const DATA_DIR_ID_FILE = 'data-dir.id';

/** How long a claim waits for the holder's answer (and a holder for the asker to hang up). */
const ASK_TIMEOUT_MS = 2_000;
/** How long a claim retries a socket that is taken but refuses connections (its holder ending). */
const CLAIM_RETRY_MS = 2_000;
const CLAIM_PAUSE_MS = 20;

const DOING: Readonly<Record<DataDirRole, string>> = {
  serve: 'writes its view store (another matview serve on this DATA_DIR?)',
  restore: 'is restoring a snapshot into it (matview restore)',
};
const ADVICE: Readonly<Record<DataDirRole, string>> = {
  serve: 'stop it, or give this server a DATA_DIR of its own',
  restore: 'stop it before restoring',
};

/** Why `role` cannot have a DATA_DIR that process `pid` holds as `holder`. */
export const heldBy = (pid: number, holder: DataDirRole, role: DataDirRole): string =>
  `process ${pid} of this host ${DOING[holder]}: ${ADVICE[role]}`;

/** The local socket a claim of `dir` listens on. */
export const claimAddress = (dir: string): string =>
  directorySocketAddress(dir, DATA_DIR_ID_FILE, 'matview-data-dir', { inode: true });

/**
 * Claims the data directory `dir` for this process, or throws {@link DataDirError} naming the process that
 * holds it. One process per DATA_DIR: a second server would write the same LMDB store, and its open alone
 * can make the first lose a commit (src/lmdb-open-gate.ts).
 *
 * The claim is a local socket named after `dir` ({@link claimAddress}: an id kept in `dir/data-dir.id`, the
 * directory's device and inode), listened on for as long as it is held: binding it is atomic, so of two
 * processes started in the same millisecond exactly one gets it; on Linux (an abstract socket) and Windows
 * (a named pipe) the kernel frees it when its process ends, killed or not, so nothing stale is left behind.
 * Its holder answers a connection with its pid and role. A socket that is taken but refuses connections
 * (its holder ending) is tried again for up to 2 s; one that takes the connection but does not answer within
 * 2 s (a busy or a foreign holder) counts as held. Where the socket is a file (macOS, BSD: in the temporary
 * directory, so processes with different TMPDIRs do not see each other's), a file that refuses connections
 * is one a crashed process left: it is removed and claimed, and two processes doing that at once can both
 * win. Abstract sockets are per network namespace: two containers sharing a volume but not a network do not
 * see each other's claim (the open gate's live-writer check, `liveWriterOf`, still sees a server in the same
 * pid namespace).
 */
export async function claimDataDir(dir: string, role: DataDirRole): Promise<DataDirClaim> {
  const address = claimAddress(dir);
  const deadline = Date.now() + CLAIM_RETRY_MS;
  for (;;) {
    const askers = new Set<Socket>();
    const server = createServer((socket) => {
      askers.add(socket);
      socket.on('close', () => askers.delete(socket));
      socket.on('error', () => undefined);
      // An asker that never hangs up is hung up on: it must not hold the release back.
      socket.setTimeout(ASK_TIMEOUT_MS, () => socket.destroy());
      socket.end(`${process.pid}\n${role}\n`);
    });
    let listening: boolean;
    try {
      listening = await listenLocal(server, address);
    } catch (e) {
      throw new DataDirError(dir, `could not claim it (local socket ${address}): ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (listening) {
      // The claim alone never keeps the process running.
      server.unref();
      let released: Promise<void> | undefined;
      return {
        release: () =>
          (released ??= new Promise<void>((resolve) => {
            server.close(() => resolve());
            for (const socket of askers) socket.destroy();
          })),
      };
    }
    const holder = await askHolder(address);
    if (holder === 'silent')
      throw new DataDirError(
        dir,
        `another process of this host holds it, but its claim (local socket ${address}) did not say which within ${ASK_TIMEOUT_MS} ms: ${ADVICE[role]}`,
      );
    if (holder !== 'refused') throw new DataDirError(dir, heldBy(holder.pid, holder.role, role));
    // Taken, yet it refuses connections: its holder is ending, or (a socket file) a crashed process left it.
    if (isSocketFile(address)) rmSync(address, { force: true });
    if (Date.now() >= deadline)
      throw new DataDirError(
        dir,
        `its claim (local socket ${address}) is taken but refuses connections: ${ADVICE[role]}`,
      );
    await new Promise((resolve) => setTimeout(resolve, CLAIM_PAUSE_MS));
  }
}

/**
 * What the holder of the claim at `address` answers: its pid and role; `silent` when it takes the connection
 * but says nothing valid in time; `refused` when nothing accepts the connection.
 */
function askHolder(address: string): Promise<{ pid: number; role: DataDirRole } | 'silent' | 'refused'> {
  return new Promise((resolve) => {
    let text = '';
    let connected = false;
    const socket = createConnection(address, () => (connected = true));
    const done = (answer: { pid: number; role: DataDirRole } | 'silent' | 'refused'): void => {
      socket.destroy();
      clearTimeout(timer);
      resolve(answer);
    };
    const timer = setTimeout(() => done(connected ? 'silent' : 'refused'), ASK_TIMEOUT_MS);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => {
      const [pid, role] = text.split('\n');
      done(
        pid !== undefined && /^\d+$/.test(pid) && (role === 'serve' || role === 'restore')
          ? { pid: Number(pid), role }
          : 'silent',
      );
    });
    socket.on('error', () => done(connected ? 'silent' : 'refused'));
  });
}
