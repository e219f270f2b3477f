/**
 * The registered views. Adding a view is one module under src/views (see types.ts) and one entry here:
 * the store opens its spaces, every commit applies it (after the views it depends on), the live hub and the
 * API reach it by name, `matview verify` recomputes it, and a new or bumped version rebuilds it alone.
 */
import { ROW_FIELDS, TABLES, type FieldsByTable, type Table } from './source.js';
import { topUsers } from './top-users.js';
import { totals } from './totals.js';
import type { ViewModule } from './types.js';
import { userInformation } from './user-information.js';

/** The views `matview serve` maintains. */
export const VIEWS: readonly ViewModule[] = [userInformation, topUsers, totals];

/** A checked set of views: apply order, and the source fields the store must keep. */
export interface Registry {
  /** In apply order: every view after the views it depends on. */
  readonly views: readonly ViewModule[];
  byName(name: string): ViewModule | undefined;
  /** Per table, the fields some view reads, in the table's contract order: the stored row layout. */
  readonly storedFields: Readonly<Record<Table, readonly string[]>>;
}

/**
 * Orders `views` so that each comes after its dependencies, and computes the stored row layout. Throws on
 * a duplicate name, an unknown dependency, a cycle or a field no table has: registration mistakes are bugs.
 */
export function createRegistry(views: readonly ViewModule[] = VIEWS): Registry {
  const byName = new Map<string, ViewModule>();
  for (const v of views) {
    if (!/^[a-z][a-z0-9-]{0,40}$/.test(v.name))
      throw new Error(`view name "${v.name}" is not lowercase-dashed`);
    if (byName.has(v.name)) throw new Error(`two views are named "${v.name}"`);
    if (!Number.isInteger(v.version) || v.version < 1)
      throw new Error(`view ${v.name} has version ${v.version}`);
    byName.set(v.name, v);
  }
  const ordered: ViewModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (v: ViewModule, path: readonly string[]): void => {
    const s = state.get(v.name);
    if (s === 'done') return;
    if (s === 'visiting')
      throw new Error(`views depend on each other in a cycle: ${[...path, v.name].join(' → ')}`);
    state.set(v.name, 'visiting');
    for (const dep of v.dependsOn) {
      const d = byName.get(dep);
      if (d === undefined) throw new Error(`view ${v.name} depends on unknown view "${dep}"`);
      visit(d, [...path, v.name]);
    }
    state.set(v.name, 'done');
    ordered.push(v);
  };
  for (const v of views) visit(v, []);

  const storedFields = {} as Record<Table, readonly string[]>;
  for (const table of TABLES) {
    const wanted = new Set<string>();
    for (const v of views) {
      for (const f of (v.reads as FieldsByTable)[table] ?? []) {
        if (!(ROW_FIELDS[table] as readonly string[]).includes(f))
          throw new Error(`view ${v.name} reads ${table}.${f}, which the contract does not have`);
        wanted.add(f);
      }
    }
    storedFields[table] = ROW_FIELDS[table].filter((f) => wanted.has(f));
  }
  return {
    views: ordered,
    byName: (name) => byName.get(name),
    storedFields,
  };
}
