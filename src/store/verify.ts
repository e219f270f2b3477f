/**
 * `matview verify`: recomputes every registered view from the stored source rows (the same `apply` each
 * view runs on every commit, fed all rows as inserts, into memory) and compares it with what the store
 * holds, key by key. It catches a corrupted or hand-edited entry, and any view bug that let a value drift
 * from the rows.
 *
 * Reads are synchronous, so the whole check runs in one lmdb-js read snapshot (renewed only between event
 * turns): consistent even while a server commits to the same store.
 */
import { ReplicaBatch } from '../materializer/change-batch.js';
import { commitPlan, heldViews } from '../materializer/commit.js';
import { MemoryState, memorySpaces } from '../materializer/memory-state.js';
import { commitReplica } from '../materializer/replicate.js';
import type { Registry } from '../views/registry.js';
import { TOTALS, TOTALS_KEY, type TotalsValue } from '../views/totals.js';
import { USER_INFORMATION, type UserInformation } from '../views/user-information.js';
import type { Table } from '../views/source.js';
import type { CommitInfo, IndexSpace, KvSpace, Spaces, ViewModule } from '../views/types.js';
import type { Generation } from './generation.js';
import { applyRows, originsOfRows, replayPages } from './view-rebuild.js';

/** What is wrong with one key of one view, one readable line per problem. */
export interface Difference {
  readonly view: string;
  readonly key: string;
  readonly problems: readonly string[];
}

export interface VerifyReport {
  readonly generation: number;
  /** Keys checked per view. */
  readonly keys: Readonly<Record<string, number>>;
  /** Stored rows per table. */
  readonly rows: Readonly<Record<Table, number>>;
  /** Keys whose stored value differs from the rows, by view then key. */
  readonly differences: readonly Difference[];
  /**
   * Registered views the generation does not hold at their version (and those depending on them), not
   * checked: a view its rows lack a field for, which the rebuild from the feed under way adds, or one whose
   * version changed, which the next start rebuilds (commit.ts `heldViews`).
   */
  readonly notHeld: readonly string[];
}

const PAGE = 10_000;

/** Recomputes every view `generation` holds from its rows and reports every difference. */
export function verifyGeneration(registry: Registry, generation: Generation): VerifyReport {
  const { views } = heldViews(commitPlan(registry), generation.info.views);
  // Open every view's databases before reading anything: lmdb-js renews the read snapshot when a database
  // is opened, and rows read before that would not match spaces read after it while a server writes.
  const stored = new Map(views.map((v) => [v.name, generation.spaces(v.name)]));
  const expected = memorySpaces(registry);
  const rows = { users: 0, tweets: 0, follows: 0, likes: 0 } satisfies Record<Table, number>;
  const commit = (page: Parameters<typeof originsOfRows>[0]): CommitInfo => ({
    sequence: 0n,
    sequenceText: '0',
    appliedAt: new Date(0).toISOString(),
    records: originsOfRows(page, (table) => table),
  });
  for (const { page, rows: before } of replayPages(generation.rows, PAGE)) {
    rows[page.table] += page.length;
    applyRows(views, (v) => expected.get(v)!, before, page, commit(page));
  }
  const differences: Difference[] = [];
  const keys: Record<string, number> = {};
  for (const view of views) {
    const found = compareView(view, (v) => expected.get(v)!, stored.get(view.name)!);
    keys[view.name] = found.keys;
    differences.push(...found.differences);
  }
  const notHeld = registry.views.filter((v) => !views.includes(v)).map((v) => v.name);
  return { generation: generation.id, keys, rows, differences, notHeld };
}

/**
 * A replica's generation (VIEW_TOPIC_IN) has no rows: its UserInformation views and totals are the view topic's.
 * What can drift is what it derives from them: the rankings (and its `counts` space, which must stay empty).
 * They are recomputed by replaying the stored views through the replica's own commit body
 * (src/materializer/replicate.ts).
 */
export function verifyReplicaGeneration(registry: Registry, generation: Generation): VerifyReport {
  const stored = new Map(registry.views.map((v) => [v.name, generation.spaces(v.name)]));
  const expected = new MemoryState(registry);
  const plan = commitPlan(registry);
  const views = stored.get(USER_INFORMATION)!['views'] as KvSpace<UserInformation>;
  let offset = 0;
  let page = new ReplicaBatch();
  const flush = (): void => {
    if (page.length === 0) return;
    commitReplica(expected, plan, { replica: page.columns(), positions: [] }, 1n, 0);
    page = new ReplicaBatch();
  };
  for (const [userId, view] of views.entries()) {
    page.push('user-information', userId, view, 'verify', 0, String(offset++));
    if (page.length >= PAGE) flush();
  }
  const totals = (stored.get(TOTALS)!['totals'] as KvSpace<TotalsValue>).get(TOTALS_KEY);
  if (totals !== undefined) page.push('totals', TOTALS_KEY, totals, 'verify', 0, String(offset));
  flush();
  const differences: Difference[] = [];
  const keys: Record<string, number> = {};
  for (const view of registry.views) {
    const found = compareView(view, (v) => expected.spaces(v), stored.get(view.name)!);
    keys[view.name] = found.keys;
    differences.push(...found.differences);
  }
  return {
    generation: generation.id,
    keys,
    rows: { users: 0, tweets: 0, follows: 0, likes: 0 },
    differences,
    notHeld: [],
  };
}

/** `expected`: every view's recomputed spaces (a view's own, and those of the views it depends on). */
function compareView(
  view: ViewModule,
  expected: (view: string) => Spaces,
  stored: Spaces,
): { keys: number; differences: Difference[] } {
  const byKey = new Map<string, string[]>();
  const note = (key: string, problems: readonly string[]) => {
    if (problems.length === 0) return;
    byKey.set(key, [...(byKey.get(key) ?? []), ...problems]);
  };
  const own = expected(view.name);
  const keys = view.compareSpaces?.(own, stored, note, expected) ?? compareKeyByKey(view, own, stored, note);
  const differences = [...byKey.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, problems]) => ({ view: view.name, key, problems }));
  return { keys, differences };
}

/** Compares every space of `view` key by key, `note`s what differs; returns the keys checked. */
function compareKeyByKey(
  view: ViewModule,
  expected: Spaces,
  stored: Spaces,
  note: (key: string, problems: readonly string[]) => void,
): number {
  const seen = new Set<string>();
  for (const [name, spec] of Object.entries(view.spaces)) {
    if (spec.kind === 'index') {
      const want = new Set((expected[name] as IndexSpace).all());
      const have = new Set((stored[name] as IndexSpace).all());
      for (const k of have) if (!want.has(k)) note(k, [`${name}: stored entry the rows do not give`]);
      for (const k of want) if (!have.has(k)) note(k, [`${name}: entry missing`]);
      for (const k of [...want, ...have]) seen.add(k);
      continue;
    }
    const want = expected[name] as KvSpace<unknown>;
    const have = stored[name] as KvSpace<unknown>;
    const ids = new Set<string>();
    for (const [k] of want.entries()) ids.add(k);
    for (const [k] of have.entries()) ids.add(k);
    for (const key of ids) {
      seen.add(key);
      const e = want.get(key);
      const a = have.get(key);
      note(key, view.differences?.(name, e, a) ?? genericDifferences(name, e, a));
    }
  }
  return seen.size;
}

function genericDifferences(space: string, expected: unknown, actual: unknown): string[] {
  const strip = (v: unknown): string =>
    JSON.stringify(v, (k, x: unknown) => (k === 'version' ? undefined : x)) ?? 'nothing';
  const e = strip(expected);
  const a = strip(actual);
  return e === a ? [] : [`${space} is ${a}, rows say ${e}`];
}
