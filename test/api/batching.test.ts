/**
 * DataLoader per request: `users(ids)` and `_entities` turn into ONE `reader.getUsers` call per request
 * tick, keep the order of ids and answer null for unknown ones — on the fast path and through Apollo. (The
 * fast path reads with `getUsersUnversioned` when the selection has no `version`: still one read.)
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { asOfOf, gql, makeUser, useTestApi } from '../utils/testkit.js';

const users = Array.from({ length: 150 }, (_, i) => makeUser(i + 1));
// 200 ids: 150 known in shuffled order, 50 unknown interleaved.
const ids = Array.from({ length: 200 }, (_, i) =>
  i % 4 === 3 ? `missing-${i}` : String(((i * 37) % 150) + 1),
);

describe.each([
  ['fast path', true],
  ['Apollo', false],
])('users(ids) via %s', (_name, fastPath) => {
  const t = useTestApi({ users, fastPath, env: { MAX_IDS: '500' } });
  beforeEach(() => t.reader.resetCalls());
  /** Batch reads made, whichever of the two (the selections below have no `version`). */
  const batchReads = () => t.reader.calls.getUsers + t.reader.calls.getUsersUnversioned;

  it('reads 200 ids with exactly one batch read, in order, null for unknown', async () => {
    const res = await gql(t.url, {
      query: 'query Many($ids: [ID!]!) { users(ids: $ids) { userId username } }',
      variables: { ids },
    });
    expect(res.status).toBe(200);
    const data = res.json<{ data: { users: ({ userId: string } | null)[] } }>().data;
    expect(data.users.map((u) => u?.userId ?? null)).toEqual(
      ids.map((id) => (id.startsWith('missing') ? null : id)),
    );
    expect(batchReads()).toBe(1);
    expect(t.reader.calls.getUser).toBe(0);
  });

  it('batches every user read of one request into one read', async () => {
    const res = await gql(t.url, {
      query:
        '{ a: users(ids: ["1", "2"]) { userId } b: users(ids: ["3", "nope"]) { userId } c: user(id: "4") { userId } }',
    });
    expect(res.json()).toEqual({
      data: { a: [{ userId: '1' }, { userId: '2' }], b: [{ userId: '3' }, null], c: { userId: '4' } },
      extensions: asOfOf(t),
    });
    expect(batchReads()).toBe(1);
  });
});

describe('_entities', () => {
  const t = useTestApi({ users });
  beforeEach(() => t.reader.resetCalls());

  it('resolves every representation through one batch read', async () => {
    const representations = ['5', 'nope', '7', '5'].map((userId) => ({ __typename: 'User', userId }));
    const res = await gql(t.url, {
      query: 'query($r: [_Any!]!) { _entities(representations: $r) { ... on User { userId tweetCount } } }',
      variables: { r: representations },
    });
    expect(res.json()).toEqual({
      data: {
        _entities: [
          { userId: '5', tweetCount: 5 },
          null,
          { userId: '7', tweetCount: 7 },
          { userId: '5', tweetCount: 5 },
        ],
      },
      extensions: asOfOf(t),
    });
    expect(t.reader.calls.getUsers).toBe(1);
    expect(t.reader.calls.getUsersIds[0]).toEqual(['5', 'nope', '7']);
  });

  it('never shares a loader between requests', async () => {
    await gql(t.url, { query: '{ users(ids: ["1"]) { userId } }' });
    t.reader.put(makeUser(1, undefined, { username: 'renamed' }));
    const res = await gql(t.url, {
      query:
        '{ _entities(representations: [{__typename: "User", userId: "1"}]) { ... on User { username } } }',
    });
    expect(res.json()).toEqual({ data: { _entities: [{ username: 'renamed' }] }, extensions: asOfOf(t) });
  });
});
