/**
 * A generation: one complete copy of the materialized state (source rows, user states, views and the
 * offsets they reflect) in its own named sub-databases of the store's LMDB environment.
 *
 * Two generations exist at most: the active one (what readers see) and, during a rebuild, a shadow one
 * being filled from the feed. Generation 0 uses the unsuffixed names a store had before generations
 * existed (`rows`, `users`, `views`, `offsets`), so old data directories open unchanged; generation N > 0
 * uses `rows@N`… Ids only grow and are never reused, so a dropped generation's names are never reopened.
 */
import type { Database, RootDatabase } from 'lmdb';
import type { StoredRow, UserState } from '../views/user-information.js';

/** The four sub-databases of a generation, by their base name. */
export const GENERATION_DBS = ['rows', 'users', 'views', 'offsets'] as const;
export type GenerationDb = (typeof GENERATION_DBS)[number];

/** The LMDB sub-database name of `base` in generation `id` (generation 0 keeps the historical names). */
export const dbName = (base: GenerationDb, id: number): string => (id === 0 ? base : `${base}@${id}`);

/** Parses a sub-database name back into its generation, or undefined when it is not a generation db. */
export function generationOfDb(name: string): number | undefined {
  const m = /^(rows|users|views|offsets)(?:@(\d+))?$/.exec(name);
  if (m === null) return undefined;
  return m[2] === undefined ? 0 : Number(m[2]);
}

/** What the store's meta records about a generation (`generation:<id>`, JSON). */
export interface GenerationInfo {
  readonly id: number;
  /** Version of the view definition this generation was (or is being) built with. */
  readonly viewVersion: number;
  /** `retiring`: the generation a swap replaced, kept until the swap is reconciled (LmdbStore). */
  readonly state: 'active' | 'building' | 'retiring';
  /** ISO-8601 time the generation was created. */
  readonly createdAt: string;
  /** Why it was created: `initial`, `view-version`, `requested`, `offset-out-of-range`… */
  readonly reason: string;
  /** Sequence of the commit that swapped it in (absent for a store's first generation). */
  readonly activatedSequence?: string;
  /** ISO-8601 time of that commit. */
  readonly activatedAt?: string;
  /**
   * Set once every view written before the swap has been given its final version (the replaced generation's
   * for an unchanged view, the swap's for a changed one): from then on views read as stored, no floor.
   */
  readonly reconciled?: boolean;
}

/** Open handles onto one generation's sub-databases. */
export class Generation {
  readonly rows: Database<StoredRow, string>;
  readonly users: Database<UserState, string>;
  readonly views: Database<Buffer, string>;
  readonly offsets: Database<string, string>;

  private current!: GenerationInfo;
  private floorSequence: bigint | undefined;

  constructor(env: RootDatabase, info: GenerationInfo) {
    this.info = info;
    this.rows = env.openDB<StoredRow, string>({ name: dbName('rows', info.id) });
    this.users = env.openDB<UserState, string>({ name: dbName('users', info.id) });
    this.views = env.openDB<Buffer, string>({ name: dbName('views', info.id), encoding: 'binary' });
    this.offsets = env.openDB<string, string>({ name: dbName('offsets', info.id), encoding: 'string' });
  }

  /** Replaced (not mutated) when the generation becomes active. */
  get info(): GenerationInfo {
    return this.current;
  }

  set info(info: GenerationInfo) {
    this.current = info;
    this.floorSequence = info.activatedSequence === undefined ? undefined : BigInt(info.activatedSequence);
  }

  get id(): number {
    return this.info.id;
  }

  get viewVersion(): number {
    return this.info.viewVersion;
  }

  /**
   * The swap commit's sequence, while the swap is not reconciled: a view written before it that the swap
   * changed reads as changed by it (see LmdbStore.getUser), so a user's `version.sequence` never steps back
   * across a swap even when the shadow applied a record before the old generation did; one the swap did not
   * change reads as it did before. Undefined for a first generation and once reconciled.
   */
  get floor(): bigint | undefined {
    return this.info.reconciled === true ? undefined : this.floorSequence;
  }

  /** Deletes the generation's sub-databases (asynchronously, in lmdb-js' write queue). */
  async drop(): Promise<void> {
    await Promise.all([this.rows.drop(), this.users.drop(), this.views.drop(), this.offsets.drop()]);
  }
}
