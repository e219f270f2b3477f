/** Everything a store's active generation holds, as plain data (commit instants blanked): for comparisons. */
import type { LmdbStore } from '../../src/store/lmdb-store.js';
import { TABLES } from '../../src/views/source.js';
import type { IndexSpace, KvSpace, Spaces } from '../../src/views/types.js';
import { countsOf, type Counts, type UserInformation } from '../../src/views/user-information.js';

export function storeState(store: LmdbStore): unknown {
  const generation = store.activeGeneration();
  const views: Record<string, unknown> = {};
  for (const view of store.registry.views) {
    const spaces = generation.spaces(view.name);
    for (const [name, spec] of Object.entries(view.spaces))
      views[`${view.name}/${name}`] =
        spec.kind === 'kv'
          ? [...(spaces[name] as KvSpace<unknown>).entries()]
          : [...(spaces[name] as IndexSpace).all()];
  }
  return JSON.parse(
    JSON.stringify(
      {
        views,
        rows: TABLES.map((t) => [...generation.rows.all(t)]),
        positions: store.positions(),
        sequence: store.sequence(),
      },
      (key, value: unknown) => (key === 'appliedAt' ? '' : typeof value === 'bigint' ? String(value) : value),
    ),
  );
}

const allZero = (c: Counts): boolean =>
  c.tweetCount === 0 && c.followingCount === 0 && c.followerCount === 0 && c.likeCount === 0;

/**
 * The counts UserInformation keeps for `userId` (its spaces: `ui`), wherever it keeps them: in the user's view
 * while it has one, else in `counts`. Undefined when all four are zero, as the `counts` space had it before
 * UserInformation 2 kept every user's counts there.
 */
export function userCounts(ui: Spaces, userId: string): Counts | undefined {
  const view = (ui['views'] as KvSpace<UserInformation>).get(userId);
  if (view !== undefined) return allZero(view) ? undefined : countsOf(view);
  return (ui['counts'] as KvSpace<Counts>).get(userId);
}

/** Every user with a count above zero and its counts (`userCounts` of each), in key order. */
export function allUserCounts(ui: Spaces): Map<string, Counts> {
  const out = new Map<string, Counts>();
  for (const [id, view] of (ui['views'] as KvSpace<UserInformation>).entries())
    if (!allZero(view)) out.set(id, countsOf(view));
  for (const [id, counts] of (ui['counts'] as KvSpace<Counts>).entries()) {
    if (out.has(id)) throw new Error(`user ${id} has counts both in its view and in the counts space`);
    out.set(id, counts);
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
