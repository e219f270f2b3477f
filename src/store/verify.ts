/**
 * `matview verify`: recomputes every user's view from the stored source rows (the SQL of CONTRACT.md §2
 * over the latest row per key) and compares it with the stored user states and views. It catches a
 * corrupted or hand-edited entry and any materializer bug that let counts drift from the rows.
 *
 * Reads are synchronous, so the whole check runs in one lmdb-js read snapshot (renewed only between event
 * turns): consistent even while a server commits to the same store.
 */
import { profileOf } from '../materializer/materialize.js';
import {
  COUNT_FIELDS,
  PROFILE_FIELDS,
  TABLES,
  ZERO_COUNTS,
  type Counts,
  type Profile,
  type Table,
} from '../views/user-information.js';
import type { Generation } from './generation.js';
import type { LmdbStore } from './lmdb-store.js';

/** What is wrong with one user, one readable line per field. */
export interface UserDifference {
  readonly userId: string;
  readonly problems: readonly string[];
}

export interface VerifyReport {
  readonly generation: number;
  readonly viewVersion: number;
  /** Users checked (with a row, a state or a view). */
  readonly users: number;
  /** Live (non-deleted) rows per table. */
  readonly rows: Readonly<Record<Table, number>>;
  /** Users whose state or view differs from the rows, sorted by id. */
  readonly differences: readonly UserDifference[];
}

/** Recomputes the view of `generation` (default: the active one) from its rows and reports every difference. */
export function verifyStore(
  store: LmdbStore,
  generation: Generation = store.activeGeneration(),
): VerifyReport {
  const rows = { users: 0, tweets: 0, follows: 0, likes: 0 } satisfies Record<Table, number>;
  const profiles = new Map<string, Profile>();
  const counts = new Map<string, Counts>();
  const bump = (userId: string, field: keyof Counts) => {
    const c = counts.get(userId) ?? ZERO_COUNTS;
    counts.set(userId, { ...c, [field]: c[field] + 1 });
  };
  for (const table of TABLES) {
    for (const [key, stored] of store.allRows(table, generation)) {
      const row = stored.row;
      if (row === null) continue;
      rows[table]++;
      if (row.table === 'users') {
        const profile = profileOf(row);
        if (profile !== null) profiles.set(key, profile);
      } else if (row.table === 'tweets') bump(row.userId, 'tweetCount');
      else if (row.table === 'likes') bump(row.userId, 'likeCount');
      else {
        bump(row.followerId, 'followingCount');
        bump(row.followeeId, 'followerCount');
      }
    }
  }
  const states = new Map(store.allUserStates(generation));
  const views = new Map(store.allViews(generation));
  const ids = new Set([...profiles.keys(), ...counts.keys(), ...states.keys(), ...views.keys()]);

  const differences: UserDifference[] = [];
  for (const userId of [...ids].sort()) {
    const problems: string[] = [];
    const want = counts.get(userId) ?? ZERO_COUNTS;
    const state = states.get(userId);
    const profile = profiles.get(userId);
    const view = views.get(userId);
    if (state === undefined) {
      if (profile !== undefined || COUNT_FIELDS.some((f) => want[f] !== 0))
        problems.push('no stored user state');
    } else {
      for (const f of COUNT_FIELDS) {
        if (state.counts[f] !== want[f])
          problems.push(`state ${f} is ${state.counts[f]}, rows say ${want[f]}`);
      }
    }
    if (profile === undefined) {
      if (view !== undefined) problems.push('has a view but no users row');
    } else if (view === undefined) {
      problems.push('has a users row but no view');
    } else {
      if (view.userId !== userId) problems.push(`view userId is ${JSON.stringify(view.userId)}`);
      for (const f of COUNT_FIELDS)
        if (view[f] !== want[f]) problems.push(`view ${f} is ${view[f]}, rows say ${want[f]}`);
      for (const f of PROFILE_FIELDS) {
        if (view[f] !== profile[f])
          problems.push(
            `view ${f} is ${JSON.stringify(view[f])}, users row says ${JSON.stringify(profile[f])}`,
          );
      }
    }
    if (problems.length > 0) differences.push({ userId, problems });
  }
  return {
    generation: generation.id,
    viewVersion: generation.viewVersion,
    users: ids.size,
    rows,
    differences,
  };
}
