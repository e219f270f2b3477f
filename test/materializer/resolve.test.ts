/**
 * `resolve` (src/materializer/resolve.ts) reads each stored row a commit touches once, in key order, and its
 * transitions are those of applying the records one by one: checked against a sequential model over random
 * commits with updates, deletes, no-ops, rows of several tables with equal keys, and truncates anywhere.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { ChangeBatch, TRUNCATE } from '../../src/materializer/change-batch.js';
import { resolve, rowEqualities, type RowSource } from '../../src/materializer/resolve.js';
import { ROW_FIELDS, TABLES, type Row, type Table } from '../../src/views/source.js';
import { follow, like, profile, tweet } from '../utils/changes.js';

const equal = rowEqualities(ROW_FIELDS);

/** Stored rows, recording every read. */
function store(rows: Map<string, Row>): RowSource & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    row(table: Table, key: string) {
      reads.push(`${table}\u0000${key}`);
      return rows.get(`${table}\u0000${key}`);
    },
    keys(table: Table) {
      return [...rows.keys()]
        .filter((k) => k.startsWith(`${table}\u0000`))
        .map((k) => k.slice(table.length + 1));
    },
  };
}

const rowOf = (table: Table, v: number): Row =>
  table === 'users'
    ? profile(`n${v}`)
    : table === 'follows'
      ? follow(`u${v}`, 'u0')
      : table === 'tweets'
        ? tweet(`u${v}`)
        : like(`u${v}`, 't0');

/** The transitions of applying the records one by one, in key order (a truncate touches its table's stored keys). */
function sequentialModel(
  stored: Map<string, Row>,
  records: { table: Table; key: string; row: Row | null | typeof TRUNCATE }[],
) {
  const current = new Map<string, Row | null>();
  const touched: string[] = [];
  const last = new Map<string, number>();
  let noops = 0;
  const touch = (id: string) => {
    if (current.has(id)) return;
    current.set(id, stored.get(id) ?? null);
    touched.push(id);
  };
  records.forEach((r, i) => {
    if (r.row === TRUNCATE) {
      for (const id of stored.keys()) if (id.startsWith(`${r.table}\u0000`)) touch(id);
      for (const id of touched)
        if (id.startsWith(`${r.table}\u0000`) && current.get(id) !== null) {
          current.set(id, null);
          last.set(id, i);
        }
      return;
    }
    const id = `${r.table}\u0000${r.key}`;
    touch(id);
    const now = current.get(id)!;
    if (r.row === null ? now === null : now !== null && equal[r.table](now, r.row)) {
      noops++;
      return;
    }
    current.set(id, r.row);
    last.set(id, i);
  });
  // In key order: by table, then key (no table's name starts another's, so the ids sort that way).
  const transitions = [...touched].sort().flatMap((id) => {
    const table = id.slice(0, id.indexOf('\u0000')) as Table;
    const before = stored.get(id) ?? null;
    const after = current.get(id)!;
    if (!last.has(id)) return [];
    if (before === null ? after === null : after !== null && equal[table](before, after)) return [];
    return [{ table, key: id.slice(table.length + 1), before, after, last: last.get(id)! }];
  });
  return { transitions, noops };
}

describe('resolve', () => {
  it('should read each touched stored row once, in key order, and give the transitions of the records in key order', () => {
    const next = prng(11);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
    for (let round = 0; round < 300; round++) {
      const stored = new Map<string, Row>();
      for (let k = 0; k < 12; k++) {
        const table = pick(TABLES);
        if (next() < 0.6)
          stored.set(`${table}\u0000k${Math.floor(next() * 12)}`, rowOf(table, Math.floor(next() * 3)));
      }
      const records = Array.from({ length: 1 + Math.floor(next() * 30) }, () => {
        const table = pick(TABLES);
        const r = next();
        const row = r < 0.05 ? TRUNCATE : r < 0.3 ? null : rowOf(table, Math.floor(next() * 3));
        return { table, key: row === TRUNCATE ? '' : `k${Math.floor(next() * 12)}`, row };
      });
      const batch = new ChangeBatch();
      records.forEach((r, i) => batch.push(r.table, r.key, r.row, r.table, 0, String(i), 0));
      const rows = store(stored);
      const got = resolve(
        batch.columns(),
        records.map((_, i) => i),
        rows,
        equal,
      );

      const model = sequentialModel(stored, records);
      expect({
        transitions: Array.from({ length: got.length }, (_, s) => ({
          table: got.table[s],
          key: got.key[s],
          before: got.before[s],
          after: got.after[s],
          last: got.last[s],
        })),
        noops: got.noops,
      }).toEqual(model);
      // Each row once, in key order (table, then key).
      expect(new Set(rows.reads).size).toBe(rows.reads.length);
      expect(rows.reads).toEqual([...rows.reads].sort());
    }
  });
});
