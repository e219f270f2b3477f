/**
 * What other processes ask of a store (the CLI while a server runs), and what they read of it: a rebuild
 * request, who serves the store, a restored copy's new identity, a consistent copy of the whole store.
 *
 * Only the serving process writes the store while it runs: `matview rebuild` does not write a meta record,
 * it leaves a file next to the store ({@link REBUILD_REQUEST_FILE}), written whole by a rename, which the
 * server notices as it appears (`watchRebuildRequests`) or at its next look, every
 * {@link REBUILD_REQUEST_CHECK_MS}, and removes once a rebuild serves it. Two processes
 * writing one environment lost commits under lmdb-js' overlappingSync (now off: `LMDB_OPEN_OPTIONS`); one
 * writer keeps the server's commits clear of whatever else another process's write transaction can do to
 * them. The CLI opens the store read-only, through the server's open gate (lmdb-open-gate.ts): an LMDB bug
 * makes a process that opens an environment while another commits lose that commit.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Database, RootDatabase } from 'lmdb';
import { processAlive } from '../local-ipc.js';
import { writeTransaction } from './environment.js';

/** The process serving a store (`meta.owner`), so CLI tools can tell whether a server is running. */
export interface StoreOwner {
  readonly pid: number;
  readonly hostname: string;
  readonly startedAt: string;
}

/**
 * What a store holds (`meta.role`): the changelogs materialized here, or the view topic a replica serves
 * (VIEW_TOPIC_IN). Recorded at first start; a store is never switched from one to the other, since its
 * positions and rows belong to the topics it was fed from.
 */
export type StoreRole =
  { readonly kind: 'materializer' } | { readonly kind: 'replica'; readonly topic: string };

export interface RebuildRequest {
  readonly requestedAt: string;
  readonly reason: string;
  /**
   * `matview rebuild --drain`: the server reports not ready (GET /health/ready 503) from when the rebuild
   * starts until its view is swapped in, so that a load balancer sends the reads to other replicas meanwhile
   * (GenerationInfo.drain keeps it across restarts).
   */
  readonly drain: boolean;
}

/** The rebuild request's file, in the store's directory (next to data.mdb). */
export const REBUILD_REQUEST_FILE = 'rebuild-request.json';

/**
 * How often a serving process looks for a rebuild request (ms): the most `matview rebuild` waits before its
 * rebuild starts where the file system does not report the request's file (`watchRebuildRequests`). A look
 * that finds no file costs ~12 µs (a failed read); it was every second, which was up to a second of the
 * command's wait (`matview rebuild --wait` took 4.8-6.0 s over 446k records).
 */
export const REBUILD_REQUEST_CHECK_MS = 100;

/**
 * Calls `onChange` whenever the rebuild request file of the store in directory `dir` is created, replaced or
 * removed, as the file system reports it (inotify on Linux, through `fs.watch`): a server starts a requested
 * rebuild at once rather than at its next look. The looks stay (every REBUILD_REQUEST_CHECK_MS): some file
 * systems report nothing (network ones), and a watch can fail at any time, which ends it quietly. Undefined
 * when the directory cannot be watched. Does not keep the process alive.
 */
export function watchRebuildRequests(dir: string, onChange: () => void): FSWatcher | undefined {
  try {
    const watcher = watch(dir, { persistent: false }, (_event, name) => {
      if (name === REBUILD_REQUEST_FILE) onChange();
    });
    watcher.on('error', () => watcher.close());
    return watcher;
  } catch {
    return undefined;
  }
}

/** Where an earlier matview kept the request: a meta record, still honoured and cleared. */
const LEGACY_REQUEST_KEY = 'rebuildRequested';

export class StoreRequests {
  private readonly requestFile: string;

  constructor(
    private readonly env: RootDatabase,
    private readonly meta: Database<string, string>,
    /** The store's directory. */
    dir: string,
  ) {
    this.requestFile = join(dir, REBUILD_REQUEST_FILE);
  }

  /** Runs one write transaction (environment.ts `writeTransaction`). */
  commit<T>(what: string, action: () => T): Promise<T> {
    return writeTransaction(this.env, what, action);
  }

  /**
   * Records a request to rebuild the view (`matview rebuild`); the serving process picks it up. Writes a
   * file, not the store (see the module comment): a temporary file renamed over the request, so a reader
   * sees a whole request or none.
   */
  requestRebuild(reason: string, drain = false): RebuildRequest {
    const request: RebuildRequest = { requestedAt: new Date().toISOString(), reason, drain };
    const temporary = `${this.requestFile}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify(request));
    renameSync(temporary, this.requestFile);
    return request;
  }

  /** Drops a pending rebuild request (one already under way serves it). */
  async clearRebuildRequest(): Promise<void> {
    rmSync(this.requestFile, { force: true });
    if (this.meta.get(LEGACY_REQUEST_KEY) !== undefined)
      await this.commit('clear the rebuild request', () => this.clearLegacyRequestIn());
  }

  /** Inside a transaction the caller runs: drops a request an earlier matview recorded in the meta records. */
  clearLegacyRequestIn(): void {
    void this.meta.remove(LEGACY_REQUEST_KEY);
  }

  /**
   * The pending rebuild request, if any (made by any process). Never throws (the server asks every
   * REBUILD_REQUEST_CHECK_MS): a request file that cannot be read or parsed is still a request, its reason
   * saying so.
   */
  rebuildRequest(): RebuildRequest | undefined {
    let raw: string;
    try {
      raw = readFileSync(this.requestFile, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        const legacy = this.meta.get(LEGACY_REQUEST_KEY);
        return legacy === undefined ? undefined : parseRequest(legacy);
      }
      return unreadableRequest((error as Error).message);
    }
    return parseRequest(raw);
  }

  /** Marks this process as the one serving the store. */
  async claimOwner(): Promise<void> {
    const owner: StoreOwner = { pid: process.pid, hostname: hostname(), startedAt: new Date().toISOString() };
    await this.commit('record the owner', () => void this.meta.put('owner', JSON.stringify(owner)));
  }

  async releaseOwner(): Promise<void> {
    const raw = this.meta.get('owner');
    if (raw !== undefined && (JSON.parse(raw) as StoreOwner).pid === process.pid)
      await this.commit('release the owner', () => void this.meta.remove('owner'));
  }

  /** The serving process recorded in the store, if it is still alive on this host. */
  liveOwner(): StoreOwner | undefined {
    const raw = this.meta.get('owner');
    if (raw === undefined) return undefined;
    const owner = JSON.parse(raw) as StoreOwner;
    return owner.hostname !== hostname() || processAlive(owner.pid) ? owner : undefined;
  }

  /**
   * The store's role. A store from before roles were recorded that has committed anything is a
   * materializer's (replicas did not exist then); an empty one has none yet.
   */
  role(): StoreRole | undefined {
    const raw = this.meta.get('role');
    if (raw !== undefined) return JSON.parse(raw) as StoreRole;
    return (this.meta.get('sequence') ?? '0') === '0' ? undefined : { kind: 'materializer' };
  }

  async recordRole(role: StoreRole): Promise<void> {
    await this.commit('record the role', () => void this.meta.put('role', JSON.stringify(role)));
  }

  /** Gives a restored copy its own identity (so it commits offsets as its own group) and no owner. */
  async resetIdentity(): Promise<string> {
    const id = randomUUID();
    await this.commit('reset the identity', () => {
      this.meta.put('instanceId', id);
      this.meta.remove('owner');
    });
    return id;
  }

  /**
   * Writes a consistent, compacted copy of the whole environment (every generation, offsets and meta)
   * into directory `dir` as `dir/data.mdb` (LMDB `mdb_env_copy2` with `MDB_CP_COMPACT`, in a read
   * transaction: safe while another process writes).
   */
  async backup(dir: string): Promise<void> {
    // The environment is a directory, so LMDB appends `/data.mdb` to the target itself.
    mkdirSync(dir, { recursive: true });
    await this.env.backup(dir, true);
  }
}

function parseRequest(raw: string): RebuildRequest {
  try {
    const parsed = JSON.parse(raw) as Partial<RebuildRequest> | null;
    if (typeof parsed?.requestedAt === 'string' && typeof parsed.reason === 'string')
      // A request an earlier matview wrote has no `drain`: it did not ask for one.
      return { requestedAt: parsed.requestedAt, reason: parsed.reason, drain: parsed.drain === true };
    return unreadableRequest('not a rebuild request');
  } catch (error) {
    return unreadableRequest((error as Error).message);
  }
}

const unreadableRequest = (why: string): RebuildRequest => ({
  requestedAt: new Date().toISOString(),
  reason: `${REBUILD_REQUEST_FILE} (unreadable: ${why})`,
  drain: false,
});
