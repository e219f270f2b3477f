/**
 * Net row transitions of one commit: each (table, key) the commit's records touch is looked up once (the
 * first touch reads the stored row; later records of the same key only replace the pending "after"), and
 * ends up as at most one transition from the row before the commit to the row after it. Rows equal in every
 * stored field are no transition at all, so a row created and deleted in one commit, or an update of a
 * field no view reads, moves nothing downstream.
 *
 * Pure: the stored rows come through `RowSource`; nothing is written here.
 */
import { TABLES, fieldOf, type Row, type Table } from '../views/source.js';
import type { RowReader, Transitions } from '../views/types.js';
import { TRUNCATE, type ChangeColumns } from './change-batch.js';

/** What resolving needs of the store's rows. */
export interface RowSource extends RowReader {
  /** Keys of every stored row of `table` (a truncate deletes them all). */
  keys(table: Table): Iterable<string>;
}

/** Transitions plus what the commit body needs to write the rows. */
export interface Resolved extends Transitions {
  /** Records that changed nothing: the same row again, or a delete of a row that does not exist. */
  readonly noops: number;
}

/** Compares two rows of one table in the given stored fields. */
export type RowEquality = (a: Row, b: Row) => boolean;

/** One equality per table over the fields the store keeps (registry `storedFields`). */
export function rowEqualities(
  storedFields: Readonly<Record<Table, readonly string[]>>,
): Record<Table, RowEquality> {
  const out = {} as Record<Table, RowEquality>;
  for (const table of TABLES) {
    const fields = storedFields[table];
    out[table] = (a, b) => {
      for (const f of fields) if (fieldOf(a, f) !== fieldOf(b, f)) return false;
      return true;
    };
  }
  return out;
}

/**
 * Resolves the records `accepted` lists (indices into `changes`, in order) against the stored rows.
 * Transitions come out in order of first touch.
 */
export function resolve(
  changes: ChangeColumns,
  accepted: readonly number[],
  rows: RowSource,
  equal: Readonly<Record<Table, RowEquality>>,
): Resolved {
  const slots: Record<Table, Map<string, number>> = {
    users: new Map(),
    tweets: new Map(),
    follows: new Map(),
    likes: new Map(),
  };
  const table: Table[] = [];
  const key: string[] = [];
  const before: (Row | null)[] = [];
  const after: (Row | null)[] = [];
  const last: number[] = [];
  let noops = 0;

  const slotOf = (t: Table, k: string): number => {
    const bySlot = slots[t];
    let s = bySlot.get(k);
    if (s === undefined) {
      s = key.length;
      bySlot.set(k, s);
      const stored = rows.row(t, k) ?? null;
      table.push(t);
      key.push(k);
      before.push(stored);
      after.push(stored);
      last.push(-1);
    }
    return s;
  };

  for (let n = 0; n < accepted.length; n++) {
    const i = accepted[n]!;
    const t = changes.table[i]!;
    const value = changes.row[i]!;
    if (value === TRUNCATE) {
      for (const k of rows.keys(t)) slotOf(t, k);
      for (const s of slots[t].values()) {
        if (after[s] === null) continue;
        after[s] = null;
        last[s] = i;
      }
      continue;
    }
    const s = slotOf(t, changes.key[i]!);
    const current = after[s]!;
    if (value === null ? current === null : current !== null && equal[t](current, value)) {
      noops++;
      continue;
    }
    after[s] = value;
    last[s] = i;
  }

  // Keep the slots whose row really moved; compact the columns in place.
  let n = 0;
  for (let s = 0; s < key.length; s++) {
    const b = before[s]!;
    const a = after[s]!;
    if (last[s] === -1) continue;
    if (b === null ? a === null : a !== null && equal[table[s]!](b, a)) continue;
    table[n] = table[s]!;
    key[n] = key[s]!;
    before[n] = b;
    after[n] = a;
    last[n] = last[s]!;
    n++;
  }
  table.length = key.length = before.length = after.length = last.length = n;
  return { length: n, table, key, before, after, last, noops };
}
