/**
 * Issue 19, the view topic's record format (docs/view-topic.md, src/views/view-record.ts): what the publisher
 * writes reads back as the same view; what another engine may leave out gets the documented defaults; every
 * record a replica cannot serve is an invalid verdict with the contract's error codes (it goes to the DLQ).
 */
import { describe, expect, it } from 'vitest';
import { RecordErrorCode } from '../../src/errors.js';
import { REST_FIELDS, type UserInformation } from '../../src/views/user-information.js';
import {
  STATUS_VIEW,
  VIEW_HEADER,
  decodeViewRecord,
  encodeStatusValue,
  encodeUserValue,
  type DecodedViewRecord,
} from '../../src/views/view-record.js';
import { makeUser, seededRandom } from '../utils/testkit.js';

const origin = { topic: 'user-information', partition: 2, offset: '41', timestamp: Date.UTC(2025, 0, 2) };
const decode = (
  key: string | Buffer | null,
  value: string | Buffer | null,
  headers: Record<string, string> = {},
): DecodedViewRecord =>
  decodeViewRecord(
    typeof key === 'string' ? Buffer.from(key) : key,
    typeof value === 'string' ? Buffer.from(value) : value,
    Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Buffer.from(v)])),
    origin,
  );
const status = { [VIEW_HEADER]: STATUS_VIEW };

describe('the view topic record format', () => {
  it('should read back every view the publisher writes, escapes and nulls included', () => {
    const random = seededRandom(19);
    for (let n = 0; n < 200; n++) {
      const user = makeUser(n, random);
      expect(decode(user.userId, encodeUserValue(user))).toEqual({
        ok: true,
        kind: 'user',
        userId: user.userId,
        view: user,
      });
    }
  });

  it('should write seed 002 fields in their order, then the version', () => {
    const user = makeUser(1);
    expect(Object.keys(JSON.parse(encodeUserValue(user)) as object)).toEqual([...REST_FIELDS, 'version']);
  });

  it('should read a tombstone as the user gone, with or without the header', () => {
    expect(decode('u1', null)).toEqual({ ok: true, kind: 'user', userId: 'u1', view: null });
    expect(decode('u1', '', { [VIEW_HEADER]: 'user-information' })).toEqual({
      ok: true,
      kind: 'user',
      userId: 'u1',
      view: null,
    });
  });

  it('should fill what another engine cannot say: appliedAt, eventTime and source from the record itself', () => {
    const value = {
      username: 'zcox',
      tweetCount: 1,
      followingCount: 2,
      followerCount: 3,
      likeCount: 4,
      joinedDate: 'Tue Jan 22 15:14:44 +0000 2008',
      version: { sequence: 1736000000000 },
    };
    const d = decode('42', JSON.stringify(value));
    expect(d).toMatchObject({ ok: true, kind: 'user', userId: '42' });
    const view = (d as { view: UserInformation }).view;
    expect(view).toMatchObject({ name: null, location: null, joinedDate: '2008-01-22T15:14:44.000Z' });
    expect(view.version).toEqual({
      sequence: '1736000000000',
      appliedAt: '2025-01-02T00:00:00.000Z',
      eventTime: null,
      source: { topic: 'user-information', partition: 2, offset: '41' },
    });
  });

  it('should read the status record: the producer heartbeat and the totals', () => {
    const value = {
      producer: { id: 'abc', at: '2025-01-02T03:04:05.000Z', ready: false, lag: '12', sequence: '99' },
      totals: {
        users: 3,
        tweets: 5_000_000_000,
        follows: 1,
        likes: 0,
        version: makeUser(1).version,
      },
    };
    expect(decode('', encodeStatusValue(value), status)).toEqual({ ok: true, kind: 'status', status: value });
    const heartbeatOnly = { producer: { id: 'abc', at: '2025-01-02T03:04:05Z', ready: true } };
    expect(decode(Buffer.alloc(0), JSON.stringify(heartbeatOnly), status)).toEqual({
      ok: true,
      kind: 'status',
      status: {
        producer: { id: 'abc', at: '2025-01-02T03:04:05.000Z', ready: true, lag: null, sequence: null },
        totals: null,
      },
    });
  });

  it('should skip records of views it does not serve (a newer producer may publish more)', () => {
    expect(decode('FOLLOWERS', '["a"]', { [VIEW_HEADER]: 'top-users' })).toEqual({
      ok: true,
      kind: 'other',
      view: 'top-users',
    });
  });

  const good = JSON.parse(encodeUserValue(makeUser(7))) as Record<string, unknown>;
  const without = (field: string) => JSON.stringify({ ...good, [field]: undefined });
  const withField = (field: string, v: unknown) => JSON.stringify({ ...good, [field]: v });
  const withVersion = (v: Record<string, unknown>) =>
    JSON.stringify({ ...good, version: { ...(good['version'] as object), ...v } });

  it.each([
    [
      'an empty key without the status header',
      '',
      encodeUserValue(makeUser(7)),
      {},
      RecordErrorCode.KeyInvalid,
    ],
    ['no key', null, encodeUserValue(makeUser(7)), {}, RecordErrorCode.KeyInvalid],
    ['a key longer than 512 bytes', 'x'.repeat(513), 'null', {}, RecordErrorCode.KeyInvalid],
    ['a value that is not JSON', '7', '{', {}, RecordErrorCode.JsonInvalid],
    ['a value that is not an object', '7', '[1]', {}, RecordErrorCode.NotObject],
    ['a userId that is not the key', '8', encodeUserValue(makeUser(7)), {}, RecordErrorCode.KeyMismatch],
    ['no username', '7', without('username'), {}, RecordErrorCode.FieldMissing],
    ['no tweetCount', '7', without('tweetCount'), {}, RecordErrorCode.FieldMissing],
    ['a negative count', '7', withField('likeCount', -1), {}, RecordErrorCode.FieldType],
    ['a count past uint32', '7', withField('likeCount', 2 ** 32), {}, RecordErrorCode.FieldType],
    ['a bad joinedDate', '7', withField('joinedDate', 'yesterday'), {}, RecordErrorCode.DateInvalid],
    ['no version', '7', without('version'), {}, RecordErrorCode.FieldMissing],
    [
      'a version without sequence',
      '7',
      withVersion({ sequence: undefined }),
      {},
      RecordErrorCode.FieldMissing,
    ],
    [
      'a sequence past uint64',
      '7',
      withVersion({ sequence: '18446744073709551616' }),
      {},
      RecordErrorCode.FieldType,
    ],
    [
      'a source without topic',
      '7',
      withVersion({ source: { partition: 0, offset: '1' } }),
      {},
      RecordErrorCode.FieldType,
    ],
    ['a status record with a key', 'k', '{}', status, RecordErrorCode.KeyInvalid],
    ['a status record without producer', '', '{"totals":null}', status, RecordErrorCode.FieldMissing],
    ['a status tombstone', '', null, status, RecordErrorCode.FieldMissing],
    [
      'a status record with a bad time',
      '',
      '{"producer":{"id":"p","at":"soon","ready":true}}',
      status,
      RecordErrorCode.DateInvalid,
    ],
  ])('should refuse %s', (_what, key, value, headers, code) => {
    const d = decode(key, value, headers);
    expect(d).toMatchObject({ ok: false, code });
  });
});
