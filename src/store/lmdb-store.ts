/**
 * The store: one LMDB environment per instance (DATA_DIR), with named sub-databases for source
 * rows, user states, ready-to-send views, consumed offsets and metadata.
 *
 * A batch's row writes, view writes and consumed offsets commit in ONE write transaction, so after
 * a crash at any point the store is exactly some prefix of the feed and restart resumes from the
 * stored offsets. LMDB's copy-on-write B-tree with two meta pages makes a killed process (even
 * mid-commit) reopen at the last committed transaction; we keep lmdb-js's default durable commits
 * (no `noSync`, no `writeMap`), so a commit has reached the OS before its promise resolves.
 * Reads are synchronous `get`s from the memory map.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { StoreWriteError, isMatviewError } from '../errors.js';
import type { PartitionPosition } from '../feed/types.js';
import { materialize, rowKey, type Change, type StateReader } from '../materializer/materialize.js';
import { decodeView, encodeView, restJsonOf } from '../views/codec.js';
import type { StoredRow, Table, UserInformation, UserState } from '../views/user-information.js';
import type { CommitEvent, CommitListener, ViewReader } from './types.js';

export interface StoreOptions {
  readonly path: string;
  /** Initial map size in bytes; lmdb-js grows it when it fills. */
  readonly mapSize?: number;
  /** Version of the view definition; a store holding another version is cleared and rebuilt from the feed. */
  readonly viewVersion: number;
  /** Called when a commit listener throws; the commit itself stands and other listeners still run. */
  readonly onListenerError?: (error: unknown) => void;
}

export interface BatchInput {
  /** Valid changes to materialize, in order. */
  readonly changes: readonly Change[];
  /** New next offset of each partition the batch covered (valid, invalid and skipped records alike). */
  readonly positions: readonly PartitionPosition[];
}

export interface BatchResult {
  readonly sequence: bigint;
  readonly appliedAt: number;
  /** Users whose visible view changed. */
  readonly changed: number;
  readonly noops: number;
}

const offsetKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

export class LmdbStore implements ViewReader {
  readonly instanceId: string;
  /** True when the store was cleared at open because the stored view version differed. */
  readonly rebuilt: boolean;
  private readonly env: RootDatabase;
  private readonly rows: Database<StoredRow, string>;
  private readonly users: Database<UserState, string>;
  private readonly views: Database<Buffer, string>;
  private readonly offsets: Database<string, string>;
  private readonly meta: Database<string, string>;
  private readonly listeners = new Set<CommitListener>();
  private readonly onListenerError: (error: unknown) => void;
  private seq: bigint;
  private closed = false;

  constructor(options: StoreOptions) {
    this.onListenerError = options.onListenerError ?? ((e) => console.error('commit listener failed', e));
    mkdirSync(options.path, { recursive: true });
    this.env = open({ path: options.path, maxDbs: 8, mapSize: options.mapSize ?? 1024 * 1024 * 1024 });
    this.rows = this.env.openDB<StoredRow, string>({ name: 'rows' });
    this.users = this.env.openDB<UserState, string>({ name: 'users' });
    this.views = this.env.openDB<Buffer, string>({ name: 'views', encoding: 'binary' });
    this.offsets = this.env.openDB<string, string>({ name: 'offsets', encoding: 'string' });
    this.meta = this.env.openDB<string, string>({ name: 'meta', encoding: 'string' });

    const stored = this.meta.get('viewVersion');
    this.rebuilt = stored !== undefined && stored !== String(options.viewVersion);
    this.env.transactionSync(() => {
      if (this.rebuilt) {
        // The view's definition changed: start over from the feed (an online shadow rebuild is issue #6).
        for (const db of [this.rows, this.users, this.views, this.offsets]) db.clearSync();
      }
      if (this.meta.get('instanceId') === undefined) this.meta.putSync('instanceId', randomUUID());
      this.meta.putSync('viewVersion', String(options.viewVersion));
    });
    this.instanceId = this.meta.get('instanceId') ?? '';
    this.seq = BigInt(this.meta.get('sequence') ?? '0');
  }

  // ---- reads (ViewReader) ----

  getUser(userId: string): UserInformation | undefined {
    const bytes = this.views.getBinaryFast(userId);
    return bytes === undefined ? undefined : decodeView(bytes);
  }

  getUserJson(userId: string): Buffer | undefined {
    const bytes = this.views.getBinary(userId);
    return bytes === undefined ? undefined : restJsonOf(bytes);
  }

  getUsers(userIds: readonly string[]): (UserInformation | undefined)[] {
    return userIds.map((id) => this.getUser(id));
  }

  /** Stored view bytes (rest JSON + version), for callers that serialize themselves. */
  getViewBytes(userId: string): Buffer | undefined {
    return this.views.getBinary(userId);
  }

  positions(): PartitionPosition[] {
    const out: PartitionPosition[] = [];
    for (const { key, value } of this.offsets.getRange()) {
      const [topic = '', partition = '0'] = key.split('\u0000');
      out.push({ topic, partition: Number(partition), next: value });
    }
    return out;
  }

  /** Next offset to read for a partition, or undefined when nothing of it was applied yet. */
  position(topic: string, partition: number): string | undefined {
    return this.offsets.get(offsetKey(topic, partition));
  }

  sequence(): bigint {
    return this.seq;
  }

  /**
   * Forgets the stored position of a partition, so the next start reads it again from the earliest
   * offset. Safe at any time: rows remember their origin, so re-read records are no-ops.
   */
  async forgetPosition(topic: string, partition: number): Promise<void> {
    await this.offsets.remove(offsetKey(topic, partition));
  }

  /** Raw state for verification tools and tests. */
  stateReader(): StateReader {
    return { row: (t: Table, k: string) => this.rows.get(rowKey(t, k)), user: (id: string) => this.users.get(id) };
  }

  /** Every user state, for verification (`matview verify`) and tests. */
  *allUserStates(): Generator<[string, UserState]> {
    for (const { key, value } of this.users.getRange()) yield [key, value];
  }

  /** Every stored row of a table, for verification. */
  *allRows(table: Table): Generator<[string, StoredRow]> {
    const prefix = rowKey(table, '');
    for (const { key, value } of this.rows.getRange({ start: prefix })) {
      if (!key.startsWith(prefix)) break;
      yield [key.slice(prefix.length), value];
    }
  }

  // ---- writes ----

  /**
   * Materializes a batch and commits rows, user states, views, offsets and the new sequence in one
   * write transaction, then notifies commit listeners (in commit order).
   */
  async applyBatch(input: BatchInput): Promise<BatchResult> {
    const sequence = this.seq + 1n;
    const appliedAt = Date.now();
    let result: { changed: number; noops: number; event: CommitEvent } | undefined;
    try {
      await this.env.transaction(() => {
        const writes = materialize(this.stateReader(), input.changes, {
          sequence,
          appliedAt: new Date(appliedAt).toISOString(),
        });
        for (const [k, w] of writes.rows) this.rows.put(k, w.stored);
        for (const [id, s] of writes.users) this.users.put(id, s);
        for (const [id, v] of writes.views) {
          if (v === null) this.views.remove(id);
          else this.views.put(id, encodeView(v));
        }
        for (const p of input.positions) this.offsets.put(offsetKey(p.topic, p.partition), p.next);
        this.meta.put('sequence', sequence.toString());
        result = { changed: writes.views.size, noops: writes.noops, event: { sequence, changes: writes.views } };
      });
    } catch (e) {
      if (isMatviewError(e)) throw e;
      throw new StoreWriteError(`LMDB write failed, nothing of the batch was applied: ${(e as Error).message}`, { cause: e });
    }
    if (result === undefined) throw new StoreWriteError('LMDB transaction did not run');
    this.seq = sequence;
    for (const listener of this.listeners) {
      try {
        listener(result.event);
      } catch (e) {
        this.onListenerError(e);
      }
    }
    return { sequence, appliedAt, changed: result.changed, noops: result.noops };
  }

  /** Listen to commits: called synchronously after each commit, in commit order. Returns an unsubscribe. */
  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.env.close();
  }
}

export function openStore(options: StoreOptions): LmdbStore {
  return new LmdbStore(options);
}
