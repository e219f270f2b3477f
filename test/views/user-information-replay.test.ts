/**
 * UserInformation's replay path (RowReplay: a view rebuilt from the stored rows, store/view-rebuild.ts)
 * against its `apply`, the reference: the same stored rows replayed as inserts, page after page, through
 * each. Every page must return the same event and pass the same moves downstream, in the same order (the
 * rankings and the totals are fed from them), leave what a dependent view reads of UserInformation's spaces
 * the same (its views, which hold the counts: TopUsers' refill), and once the replay has finished every space
 * of every view must hold the same entries. The rows are replayed in the store's order (the users rows last,
 * pages of one table) and in random orders (users rows early, pages mixing tables), where a page moves the
 * counts of users that already have a view.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { applyViews } from '../../src/materializer/commit.js';
import { memorySpaces } from '../../src/materializer/memory-state.js';
import { REPLAY_ORDER } from '../../src/store/view-rebuild.js';
import { createRegistry } from '../../src/views/registry.js';
import type { Row, Table } from '../../src/views/source.js';
import type {
  Applied,
  CommitInfo,
  IndexSpace,
  KvSpace,
  RowReader,
  Spaces,
  Transitions,
  ViewModule,
} from '../../src/views/types.js';
import { USER_INFORMATION, userInformation } from '../../src/views/user-information.js';
import { follow, like, profile, tweet } from '../utils/changes.js';

type Insert = readonly [Table, string, Row];

/**
 * User `u`'s id, in one of the forms the replay keeps apart (id-slots.ts): users 3k, 3k + 1 and 3k + 2 are
 * "k" (an integer written canonically), "0k" (the same digits after a zero) and "uk" (any other string).
 */
const userId = (u: number): string => {
  const k = Math.floor(u / 3);
  return [String(k), `0${k}`, `u${k}`][u % 3]!;
};

/**
 * Stored rows: users rows for some of up to `maxUsers` ids, rows of the other tables naming those ids and ids
 * with no users row.
 */
function storedRows(seed: number, maxUsers = 30): Insert[] {
  const random = prng(seed);
  const users = 1 + Math.floor(random() * maxUsers);
  const id = () => userId(Math.floor(random() * users * 1.3));
  const rows: Insert[] = [];
  for (let u = 0; u < users; u++)
    if (random() < 0.8) rows.push(['users', userId(u), profile(`name${u}`, { location: `l${seed}` })]);
  const n = Math.floor(random() * 10 * maxUsers);
  for (let i = 0; i < n; i++) {
    const r = random();
    if (r < 0.35) rows.push(['tweets', `t${i}`, tweet(id())]);
    else if (r < 0.7) rows.push(['follows', `f${i}`, random() < 0.1 ? follow('0', '0') : follow(id(), id())]);
    else rows.push(['likes', `l${i}`, like(id())]);
  }
  return rows;
}

/** The rows as pages: the store's order (one table a page, the users rows last) or a random one. */
function pagesOf(rows: readonly Insert[], seed: number, storeOrder: boolean): Insert[][] {
  const random = prng(seed * 7 + 1);
  const ordered = storeOrder
    ? REPLAY_ORDER.flatMap((t) => rows.filter(([table]) => table === t))
    : [...rows].sort(() => random() - 0.5);
  const pages: Insert[][] = [];
  for (let at = 0; at < ordered.length;) {
    const size = 1 + Math.floor(random() * 40);
    let page = ordered.slice(at, at + size);
    // In the store's order a page holds one table's rows.
    if (storeOrder) page = page.filter(([t]) => t === page[0]![0]);
    pages.push(page);
    at += page.length;
  }
  return pages;
}

/** The rows replayed before the current page. */
class Replayed implements RowReader {
  private readonly rows = new Map<string, Row>();
  row(table: Table, key: string): Row | undefined {
    return this.rows.get(`${table}\u0000${key}`);
  }
  add(page: readonly Insert[]): void {
    for (const [table, key, row] of page) this.rows.set(`${table}\u0000${key}`, row);
  }
}

function commitOf(page: readonly Insert[], n: number): { transitions: Transitions; commit: CommitInfo } {
  return {
    transitions: {
      length: page.length,
      table: page.map(([t]) => t),
      key: page.map(([, k]) => k),
      before: page.map(() => null),
      after: page.map(([, , row]) => row),
      last: page.map((_, i) => i),
    },
    commit: {
      sequence: BigInt(n),
      sequenceText: String(n),
      appliedAt: new Date(n * 1000).toISOString(),
      records: {
        topic: (i) => `${page[i]![0]}-topic`,
        partition: (i) => i % 3,
        offset: (i) => String(n * 100 + i),
        eventTime: (i) => n * 1000 + i,
      },
    },
  };
}

interface Outcome {
  /**
   * Per page: UserInformation's event and moves, every view's events, and what a dependent view reads of
   * UserInformation's spaces after it.
   */
  readonly pages: {
    applied: Applied;
    events: Map<string, ReadonlyMap<string, unknown>>;
    upstream: [string, unknown][];
  }[];
  /** Every space of every view, as entries in key order. */
  readonly spaces: Record<string, unknown[]>;
}

/** `dependents`: note after each page what a dependent view reads (a scan of the views: small sets only). */
function replay(pages: readonly Insert[][], replayed: boolean, dependents = true): Outcome {
  const registry = createRegistry();
  const spaces = memorySpaces(registry);
  const path = replayed ? userInformation.replay!() : undefined;
  const out: Outcome['pages'] = [];
  let applied: Applied = {};
  const views = registry.views.map((v): ViewModule =>
    v.name !== USER_INFORMATION
      ? v
      : {
          ...v,
          apply: (input, s) => (applied = path === undefined ? v.apply(input, s) : path.apply(input, s)),
        },
  );
  const rows = new Replayed();
  pages.forEach((page, n) => {
    applied = {};
    const events = applyViews(views, (v) => spaces.get(v)!, { ...commitOf(page, n + 1), rows });
    const upstream = dependents ? readByDependents(spaces.get(USER_INFORMATION)!) : [];
    out.push({ applied, events, upstream });
    rows.add(page);
  });
  path?.finish(spaces.get(USER_INFORMATION)!);
  return { pages: out, spaces: dump(spaces) };
}

/** What TopUsers reads of UserInformation's spaces (its refill): every user with a view, and the view. */
function readByDependents(spaces: Spaces): [string, unknown][] {
  const views = spaces['views'] as KvSpace<unknown>;
  return [...views.keys()].sort().map((u) => [u, views.get(u)]);
}

function dump(spaces: ReadonlyMap<string, Spaces>): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const [view, of] of spaces)
    for (const [name, space] of Object.entries(of))
      out[`${view}/${name}`] =
        'put' in space ? [...(space as KvSpace<unknown>).entries()] : [...(space as IndexSpace).all()];
  return out;
}

describe("UserInformation's replay of the stored rows against its apply", () => {
  it.each([true, false])(
    'should return the same event and moves for every page and leave every view the same, on 200 random row sets (store order: %s)',
    (storeOrder) => {
      let moved = 0;
      let movedWithView = 0;
      for (let seed = 1; seed <= 200; seed++) {
        const pages = pagesOf(storedRows(seed), seed, storeOrder);
        const reference = replay(pages, false);
        const fast = replay(pages, true);
        expect(fast.pages.length).toBe(reference.pages.length);
        fast.pages.forEach((page, i) => expect([seed, i, page]).toEqual([seed, i, reference.pages[i]]));
        expect([seed, fast.spaces]).toEqual([seed, reference.spaces]);
        for (const { applied } of reference.pages) {
          const moves = (applied.downstream ?? []) as { before: unknown }[];
          moved += moves.length;
          movedWithView += moves.filter((m) => m.before !== null).length;
        }
      }
      // Every user with a users row is moved once, when it gets its view; in a random order, users that
      // already have one are moved again by later rows.
      expect(moved).toBeGreaterThan(2_000);
      if (storeOrder) expect(movedWithView).toBe(0);
      else expect(movedWithView).toBeGreaterThan(2_000);
    },
  );

  it.each([true, false])(
    'should return the same as apply for users past the records it starts with (store order: %s)',
    (storeOrder) => {
      // More users than the replay's arrays start with room for (1,024): they grow, each to twice its size.
      for (let seed = 1; seed <= 3; seed++) {
        const rows = storedRows(seed, 5_000);
        expect(new Set(rows.filter(([t]) => t === 'users').map(([, key]) => key)).size).toBeGreaterThan(
          1_024,
        );
        const pages = pagesOf(rows, seed, storeOrder);
        const reference = replay(pages, false, false);
        const fast = replay(pages, true, false);
        expect([seed, fast.pages]).toEqual([seed, reference.pages]);
        expect([seed, fast.spaces]).toEqual([seed, reference.spaces]);
      }
    },
  );

  it('should refuse a transition that is not an insert', () => {
    const registry = createRegistry();
    const spaces = memorySpaces(registry).get(USER_INFORMATION)!;
    const { transitions, commit } = commitOf([['tweets', 't1', tweet('u1')]], 1);
    const update = { ...transitions, before: [tweet('u2')] };
    expect(() =>
      userInformation.replay!().apply(
        {
          transitions: update,
          commit,
          rows: new Replayed(),
          upstream: () => undefined,
          upstreamSpaces: () => ({}),
        },
        spaces,
      ),
    ).toThrow('a replay of the stored rows inserts each row once');
  });
});
