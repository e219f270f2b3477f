/**
 * A users row's value is checked field by field in one order, and the first invalid field is the error the
 * dead letter names (CONTRACT.md section 1): username, then name, description, location, webPageUrl,
 * profileImageUrl, backgroundImageUrl, then joinedDate.
 */
import { describe, expect, it } from 'vitest';
import { decodeRecord } from '../../src/views/decode.js';

const ORDER = [
  'username',
  'name',
  'description',
  'location',
  'webPageUrl',
  'profileImageUrl',
  'backgroundImageUrl',
  'joinedDate',
] as const;

const decode = (value: object) => decodeRecord('users', Buffer.from('7'), Buffer.from(JSON.stringify(value)));

describe('decodeRecord, users rows', () => {
  it('should name the first invalid field, in the contract order', () => {
    for (let first = 0; first < ORDER.length; first++) {
      // Every field from `first` on is invalid (a number where a string belongs).
      const value: Record<string, unknown> = { userId: '7' };
      ORDER.forEach(
        (f, i) => (value[f] = i >= first ? 42 : f === 'joinedDate' ? '2008-01-22T15:14:44.000Z' : 'x'),
      );
      const d = decodeRecord('users', Buffer.from('7'), Buffer.from(JSON.stringify(value)));
      expect(d.ok ? undefined : d.message).toContain(`"${ORDER[first]}"`);
    }
  });

  it('should give every profile field, absent ones null, and the date in ISO-8601 UTC', () => {
    const d = decode({
      userId: '7',
      username: 'u',
      location: 'here',
      joinedDate: 'Tue Jan 22 15:14:44 +0000 2008',
    });
    expect(d).toEqual({
      ok: true,
      key: '7',
      row: {
        table: 'users',
        username: 'u',
        name: null,
        description: null,
        location: 'here',
        webPageUrl: null,
        profileImageUrl: null,
        backgroundImageUrl: null,
        joinedDate: '2008-01-22T15:14:44.000Z',
      },
    });
    expect(Object.keys(d.ok ? d.row! : {})).toEqual(['table', ...ORDER]);
  });
});
