/**
 * Net row transitions of one commit: each (table, key) the commit's records touch is looked up once (all of
 * them read in key order before any record applies; the records then only replace the pending "after"), and
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

/** Whether two rows of one table (or their absence, null) are the same row in every stored field. */
export const sameRow = (equal: RowEquality, a: Row | null, b: Row | null): boolean =>
  a === null ? b === null : b !== null && equal(a, b);

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
 * Transitions come out in key order: by table, then by key (UTF-16 order, which is LMDB's UTF-8 byte order
 * but for keys with characters past U+FFFF, where only the locality of the writes depends on it).
 *
 * Three passes: each record's slot (a (table, key) in order of first touch), then the stored row of every
 * slot, read in key order, then the records applied in order. Read in order of first touch, a catch-up
 * commit's 100k+ rows each went to a random page of the rows' B-tree.
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
  const slotOf = (t: Table, k: string): number => {
    const bySlot = slots[t];
    let s = bySlot.get(k);
    if (s === undefined) {
      s = key.length;
      bySlot.set(k, s);
      table.push(t);
      key.push(k);
    }
    return s;
  };

  // 1. Each record's slot (-1: a truncate, which gives its table's stored keys their slots where it stands).
  const slotAt = new Array<number>(accepted.length);
  for (let n = 0; n < accepted.length; n++) {
    const i = accepted[n]!;
    const t = changes.table[i]!;
    if (changes.row[i] === TRUNCATE) {
      for (const k of rows.keys(t)) slotOf(t, k);
      slotAt[n] = -1;
    } else slotAt[n] = slotOf(t, changes.key[i]!);
  }

  // 2. The stored rows, in key order.
  const count = key.length;
  const order = Array.from({ length: count }, (_, s) => s);
  if (count > 1)
    order.sort((a, b) => {
      const ta = table[a]!;
      const tb = table[b]!;
      if (ta !== tb) return ta < tb ? -1 : 1;
      return key[a]! < key[b]! ? -1 : 1;
    });
  const before = new Array<Row | null>(count);
  for (const s of order) before[s] = rows.row(table[s]!, key[s]!) ?? null;
  const after = before.slice();
  const last = new Array<number>(count).fill(-1);

  // 3. The records, in order.
  let noops = 0;
  for (let n = 0; n < accepted.length; n++) {
    const i = accepted[n]!;
    const s = slotAt[n]!;
    if (s < 0) {
      // Every slot of its table: those first touched after it are no stored row (the stored ones got their
      // slots at the truncate) and no record before it touched them, so they are empty here and stay alone.
      for (const x of slots[changes.table[i]!].values()) {
        if (after[x] === null) continue;
        after[x] = null;
        last[x] = i;
      }
      continue;
    }
    const value = changes.row[i] as Row | null;
    const current = after[s]!;
    if (sameRow(equal[table[s]!], value, current)) {
      noops++;
      continue;
    }
    after[s] = value;
    last[s] = i;
  }

  // Keep the slots whose row really moved, in key order (the order the commit writes them in).
  const tx = {
    table: [] as Table[],
    key: [] as string[],
    before: [] as (Row | null)[],
    after: [] as (Row | null)[],
    last: [] as number[],
  };
  for (const s of order) {
    const b = before[s]!;
    const a = after[s]!;
    if (last[s] === -1) continue;
    if (sameRow(equal[table[s]!], b, a)) continue;
    tx.table.push(table[s]!);
    tx.key.push(key[s]!);
    tx.before.push(b);
    tx.after.push(a);
    tx.last.push(last[s]!);
  }
  return { length: tx.last.length, ...tx, noops };
}
