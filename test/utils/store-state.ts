/** Everything a store's active generation holds, as plain data (commit instants blanked): for comparisons. */
import type { LmdbStore } from '../../src/store/lmdb-store.js';
import { TABLES } from '../../src/views/source.js';
import type { IndexSpace, KvSpace } from '../../src/views/types.js';

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
