/** An in-memory StateReader that applies materializer Writes: the materializer's test double for the store. */
import { rowKey, truncationKey, type StateReader, type Writes } from '../../src/materializer/materialize.js';
import type {
  RowOrigin,
  StoredRow,
  Table,
  UserInformation,
  UserState,
} from '../../src/views/user-information.js';

export class MemoryState implements StateReader {
  readonly rows = new Map<string, StoredRow>();
  readonly users = new Map<string, UserState>();
  readonly views = new Map<string, UserInformation>();

  row(table: Table, key: string): StoredRow | undefined {
    return this.rows.get(rowKey(table, key));
  }

  user(userId: string): UserState | undefined {
    return this.users.get(userId);
  }

  *keys(table: Table): Iterable<string> {
    const prefix = rowKey(table, '');
    for (const k of this.rows.keys()) if (k.startsWith(prefix)) yield k.slice(prefix.length);
  }

  truncation(table: Table, partition: number): RowOrigin | undefined {
    return this.rows.get(truncationKey(table, partition))?.origin;
  }

  apply(writes: Writes): void {
    for (const w of writes.rows) this.rows.set(rowKey(w.table, w.key), w.stored);
    for (const t of writes.truncations)
      this.rows.set(truncationKey(t.table, t.origin.partition), { row: null, origin: t.origin });
    for (const [id, s] of writes.users) this.users.set(id, s);
    for (const [id, v] of writes.views) {
      if (v === null) this.views.delete(id);
      else this.views.set(id, v);
    }
  }
}
