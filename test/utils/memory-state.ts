/** An in-memory StateReader that applies materializer Writes: the materializer's test double for the store. */
import { rowKey, type StateReader, type Writes } from '../../src/materializer/materialize.js';
import type { StoredRow, Table, UserInformation, UserState } from '../../src/views/user-information.js';

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

  apply(writes: Writes): void {
    for (const w of writes.rows) this.rows.set(rowKey(w.table, w.key), w.stored);
    for (const [id, s] of writes.users) this.users.set(id, s);
    for (const [id, v] of writes.views) {
      if (v === null) this.views.delete(id);
      else this.views.set(id, v);
    }
  }
}
