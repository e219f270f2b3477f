/**
 * Fuzzed changelog records for the poison tests: valid rows and tombstones mixed with random bytes,
 * truncated JSON, wrong types, key mismatches, bad keys, bad dates and values over 1 MB. Every record
 * carries a `fuzz-id` header, so whatever matview does with it (apply it, or copy it to the DLQ with its
 * headers) can be traced back to how it was generated. Validity is decided here, by construction, from
 * CONTRACT.md §1 — not by asking matview's decoder.
 */
import { RecordErrorCode } from '../../../src/errors.js';
import type { Table } from '../../../src/views/source.js';
import { prng } from './workload.js';

export const FUZZ_ID = 'fuzz-id';

export interface FuzzRecord {
  readonly id: string;
  readonly table: Table;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** undefined: valid (applied); else the error codes matview may give it (CONTRACT.md §1). */
  readonly invalid: readonly RecordErrorCode[] | undefined;
  readonly kind: string;
}

const KEY_FIELD: Record<Table, string> = {
  users: 'userId',
  tweets: 'tweetId',
  follows: 'followId',
  likes: 'likeId',
};
const TABLES: readonly Table[] = ['users', 'tweets', 'follows', 'likes'];

/** `count` records, about half of them invalid, plus `huge` valid and `huge` invalid values of 1.2 MB. */
export function fuzzRecords(seed: number, count: number, huge: number): FuzzRecord[] {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(list: readonly T[]): T => list[int(list.length)]!;
  const users = Array.from({ length: 40 }, (_, i) => `u${i}`);
  const keys: Record<Table, string[]> = { users: [], tweets: [], follows: [], likes: [] };
  const out: FuzzRecord[] = [];
  let n = 0;
  const push = (r: Omit<FuzzRecord, 'id'>) => out.push({ ...r, id: String(n++) });
  const buf = (s: string) => Buffer.from(s, 'utf8');

  const validRow = (table: Table, key: string): Record<string, unknown> => {
    switch (table) {
      case 'users':
        return {
          userId: key,
          username: `name-${int(1000)}`,
          name: random() < 0.3 ? null : `N ${int(99)}`,
          location: 'Chicago, IL',
        };
      case 'tweets':
        return { tweetId: key, userId: pick(users), text: 'hi', createdAt: '2021-03-04T05:06:07.000Z' };
      case 'follows':
        return { followId: key, followerId: pick(users), followeeId: pick(users) };
      case 'likes':
        return { likeId: key, userId: pick(users), tweetId: `t${int(100)}` };
    }
  };
  /** A key: usually a fresh one, sometimes one already used (so invalid records hit existing rows). */
  const keyFor = (table: Table): string => {
    if (table === 'users') return pick(users);
    if (keys[table].length > 0 && random() < 0.4) return pick(keys[table]);
    return `${table[0]}${n}`;
  };
  const requiredIdField = (table: Table): string =>
    table === 'users' ? 'username' : table === 'follows' ? pick(['followerId', 'followeeId']) : 'userId';

  for (let i = 0; i < count; i++) {
    const table = pick(TABLES);
    const key = keyFor(table);
    const row = validRow(table, key);
    const r = random();
    if (r < 0.42) {
      keys[table].push(key);
      push({ table, key: buf(key), value: buf(JSON.stringify(row)), invalid: undefined, kind: 'valid' });
    } else if (r < 0.5) {
      push({
        table,
        key: buf(random() < 0.5 ? key : `${table}-never-${n}`),
        value: null,
        invalid: undefined,
        kind: 'tombstone',
      });
    } else if (r < 0.58) {
      // Random bytes, never empty (an empty value is a tombstone).
      const bytes = Buffer.alloc(1 + int(300));
      for (let b = 0; b < bytes.length; b++) bytes[b] = int(256);
      push({
        table,
        key: buf(key),
        value: bytes,
        invalid: [
          RecordErrorCode.JsonInvalid,
          RecordErrorCode.NotObject,
          RecordErrorCode.FieldMissing,
          RecordErrorCode.FieldType,
        ],
        kind: 'random bytes',
      });
    } else if (r < 0.66) {
      const text = JSON.stringify(row);
      push({
        table,
        key: buf(key),
        value: buf(text.slice(0, 1 + int(text.length - 1))),
        invalid: [RecordErrorCode.JsonInvalid],
        kind: 'truncated json',
      });
    } else if (r < 0.72) {
      const value = pick(['[1,2]', '"text"', '42', 'true', 'null']);
      push({
        table,
        key: buf(key),
        value: buf(value),
        invalid: [RecordErrorCode.NotObject],
        kind: 'not an object',
      });
    } else if (r < 0.8) {
      const field = requiredIdField(table);
      const wrong = pick([7, true, [], {}, '' as unknown]);
      const code = wrong === '' && table === 'users' ? undefined : RecordErrorCode.FieldType;
      if (code === undefined) continue; // an empty username is allowed
      push({
        table,
        key: buf(key),
        value: buf(JSON.stringify({ ...row, [field]: wrong })),
        invalid: [code],
        kind: 'wrong type',
      });
    } else if (r < 0.84) {
      const field = requiredIdField(table);
      const { [field]: _dropped, ...rest } = row;
      push({
        table,
        key: buf(key),
        value: buf(JSON.stringify(random() < 0.5 ? rest : { ...rest, [field]: null })),
        invalid: [RecordErrorCode.FieldMissing],
        kind: 'missing field',
      });
    } else if (r < 0.9) {
      push({
        table,
        key: buf(key),
        value: buf(JSON.stringify({ ...row, [KEY_FIELD[table]]: `${key}-other` })),
        invalid: [RecordErrorCode.KeyMismatch],
        kind: 'key mismatch',
      });
    } else if (r < 0.95) {
      const bad = pick([
        null,
        Buffer.alloc(0),
        Buffer.from('k'.repeat(513)),
        Buffer.from([0xff, 0xfe, 0x41]),
      ]);
      push({
        table,
        key: bad,
        value: buf(JSON.stringify(row)),
        invalid: [RecordErrorCode.KeyInvalid],
        kind: 'bad key',
      });
    } else if (table !== 'users') {
      push({
        table,
        key: buf(key),
        value: buf(JSON.stringify({ ...row, createdAt: pick(['yesterday', '2021-02-30', '22/01/2008']) })),
        invalid: [RecordErrorCode.DateInvalid],
        kind: 'bad date',
      });
    } else {
      push({
        table,
        key: buf(key),
        value: buf(JSON.stringify({ ...row, joinedDate: 'Tue Jan 32 15:14:44 +0000 2008' })),
        invalid: [RecordErrorCode.DateInvalid],
        kind: 'bad date',
      });
    }
  }
  for (let h = 0; h < huge; h++) {
    const userId = pick(users);
    // 1.2 MB: over the 1 MiB a Kafka fetch returns per partition by default, under the mock's limits.
    const description = 'x'.repeat(1_200_000);
    push({
      table: 'users',
      key: buf(userId),
      value: buf(JSON.stringify({ userId, username: `huge-${h}`, description })),
      invalid: undefined,
      kind: 'huge valid',
    });
    push({
      table: 'tweets',
      key: buf(`huge-${h}`),
      value: buf(`{"tweetId":"huge-${h}","userId":${'9'.repeat(1_200_000)}`),
      invalid: [RecordErrorCode.JsonInvalid],
      kind: 'huge invalid',
    });
  }
  return out;
}
