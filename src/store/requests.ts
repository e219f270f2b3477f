/**
 * What other processes ask of a store through its meta records (the CLI while a server runs): a rebuild
 * request, who serves the store, a restored copy's new identity, a consistent copy of the whole store.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Database, RootDatabase } from 'lmdb';
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
}

export class StoreRequests {
  constructor(
    private readonly env: RootDatabase,
    private readonly meta: Database<string, string>,
  ) {}

  /** Runs one write transaction (environment.ts `writeTransaction`). */
  commit<T>(what: string, action: () => T): Promise<T> {
    return writeTransaction(this.env, what, action);
  }

  /** Records a request to rebuild the view (`matview rebuild`); the serving process picks it up. */
  async requestRebuild(reason: string): Promise<RebuildRequest> {
    const request: RebuildRequest = { requestedAt: new Date().toISOString(), reason };
    await this.commit('record the rebuild request', () => {
      void this.meta.put('rebuildRequested', JSON.stringify(request));
    });
    return request;
  }

  /** Drops a pending rebuild request (one already under way serves it). */
  async clearRebuildRequest(): Promise<void> {
    await this.commit('clear the rebuild request', () => this.clearRebuildRequestIn());
  }

  /** The same, inside a transaction the caller runs. */
  clearRebuildRequestIn(): void {
    void this.meta.remove('rebuildRequested');
  }

  /** The pending rebuild request, if any (reads the latest committed state, from any process). */
  rebuildRequest(): RebuildRequest | undefined {
    // Written by another process (`matview rebuild`): read what is committed now, not this thread's
    // snapshot (lmdb-js renews it only when this thread commits or resets it; with the writer thread on,
    // this thread rarely commits).
    this.env.resetReadTxn();
    const raw = this.meta.get('rebuildRequested');
    return raw === undefined ? undefined : (JSON.parse(raw) as RebuildRequest);
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
    if (owner.hostname !== hostname()) return owner;
    try {
      process.kill(owner.pid, 0);
      return owner;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM' ? owner : undefined;
    }
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
