/**
 * Changelog fixtures for tests that feed the materializer or the store directly: users rows and changes at
 * given (or successive) offsets of one partition per table.
 */
import type { Change } from '../../src/materializer/materialize.js';
import type { Profile, Row, UserRow } from '../../src/views/user-information.js';

/** A users row: `username`, every other profile field null unless given. */
export function usersRow(username: string, fields: Partial<Omit<Profile, 'username'>> = {}): UserRow {
  return {
    table: 'users',
    username,
    name: null,
    description: null,
    location: null,
    webPageUrl: null,
    joinedDate: null,
    profileImageUrl: null,
    backgroundImageUrl: null,
    ...fields,
  };
}

/** A change of `table` at `offset` of partition 0 (null row: a tombstone). */
export function changeAt(table: Change['table'], key: string, row: Row | null, offset: number): Change {
  return {
    table,
    key,
    row,
    position: { topic: table, partition: 0, offset: String(offset) },
    timestamp: '1700000000000',
  };
}

/** A factory of changes at successive offsets (0, 1, 2… across tables). */
export function successiveChanges(): (table: Change['table'], key: string, row: Row | null) => Change {
  let offset = 0;
  return (table, key, row) => changeAt(table, key, row, offset++);
}
