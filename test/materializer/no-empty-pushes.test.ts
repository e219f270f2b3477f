/**
 * Issue 18, point 4: a batch that leaves a user's view as it was (a follow created and deleted in the same
 * batch, a tweet moved away and back, a profile renamed and renamed back) neither advances that user's
 * version nor reports the user as changed, so no commit event is published for it. The rows are still
 * written: their origins are what keeps later replays no-ops.
 *
 * These tests are the spec: the last one checks, on random batches, that `views` names exactly the users
 * whose profile or counts differ after the batch, and that every other user keeps its stored state.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { materialize, type Change, type Writes } from '../../src/materializer/materialize.js';
import type { Row, UserInformation } from '../../src/views/user-information.js';
import { MemoryState } from '../utils/memory-state.js';
import { successiveChanges, usersRow } from '../utils/rows.js';

const change = successiveChanges();
const profile = (username: string, name: string | null = null): Row => usersRow(username, { name });
const follow = (key: string, followerId: string, followeeId: string) =>
  change('follows', key, { table: 'follows', followerId, followeeId });
const tweet = (key: string, userId: string) => change('tweets', key, { table: 'tweets', userId });

let sequence = 0n;
function apply(state: MemoryState, changes: Change[]): Writes {
  sequence++;
  const writes = materialize(state, changes, { sequence, appliedAt: new Date(0).toISOString() });
  state.apply(writes);
  return writes;
}

/** A state with users a and b (sequence 1): a follows nobody, b has one tweet. */
function seeded(): MemoryState {
  const state = new MemoryState();
  apply(state, [
    change('users', 'a', profile('ada')),
    change('users', 'b', profile('bob')),
    tweet('t0', 'b'),
  ]);
  return state;
}

const summary = (w: Writes) => ({
  users: [...w.users.keys()].sort(),
  views: [...w.views.keys()].sort(),
  rows: w.rows.map((r) => `${r.table}/${r.key}`).sort(),
});

describe('no empty pushes', () => {
  it('should report nobody when a follow is created and deleted in one batch, and still store the tombstone', () => {
    const state = seeded();
    const before = structuredClone([...state.views]);
    const writes = apply(state, [follow('f1', 'a', 'b'), change('follows', 'f1', null)]);
    expect(summary(writes)).toEqual({ users: [], views: [], rows: ['follows/f1'] });
    expect([...state.views]).toEqual(before);
    // The stored tombstone makes a replay of the creation a no-op, as for any other row.
    const replay = materialize(
      state,
      [{ ...follow('f1', 'a', 'b'), position: { topic: 'follows', partition: 0, offset: '0' } }],
      {
        sequence: 99n,
        appliedAt: new Date(0).toISOString(),
      },
    );
    expect(replay.noops).toBe(1);
  });

  it('should report nobody when a tweet moves to another user and back, or a profile is renamed and renamed back', () => {
    const state = seeded();
    const writes = apply(state, [
      change('tweets', 't0', { table: 'tweets', userId: 'a' }),
      change('tweets', 't0', { table: 'tweets', userId: 'b' }),
      change('users', 'a', profile('ada', 'Ada')),
      change('users', 'a', profile('ada')),
    ]);
    expect(summary(writes)).toEqual({ users: [], views: [], rows: ['tweets/t0', 'users/a'] });
    expect(state.views.get('a')!.version.sequence).toBe(String(sequence - 1n));
    expect(state.views.get('b')!.version.sequence).toBe(String(sequence - 1n));
  });

  it('should report only the users whose view moved when one batch cancels out for some and not for others', () => {
    const state = seeded();
    const writes = apply(state, [follow('f1', 'a', 'b'), change('follows', 'f1', null), tweet('t1', 'a')]);
    expect(summary(writes)).toEqual({ users: ['a'], views: ['a'], rows: ['follows/f1', 'tweets/t1'] });
    expect(state.views.get('a')).toMatchObject({ tweetCount: 1, version: { sequence: String(sequence) } });
    expect(state.views.get('b')!.version.sequence).toBe(String(sequence - 1n));
  });

  it('should still report each of two batches when a follow is created in one and deleted in the next', () => {
    const state = seeded();
    expect(summary(apply(state, [follow('f1', 'a', 'b')])).views).toEqual(['a', 'b']);
    expect(summary(apply(state, [change('follows', 'f1', null)])).views).toEqual(['a', 'b']);
  });

  it('should leave no state behind for a user without a users row whose counts go up and down in one batch', () => {
    const state = seeded();
    const writes = apply(state, [tweet('t1', 'ghost'), change('tweets', 't1', null)]);
    expect(summary(writes)).toEqual({ users: [], views: [], rows: ['tweets/t1'] });
    expect(state.users.has('ghost')).toBe(false);
  });

  it('should name exactly the users whose profile or counts differ after a batch, on 200 random batch sequences', () => {
    const visible = (v: UserInformation | undefined) => {
      if (v === undefined) return null;
      const { version: _version, ...rest } = v;
      return rest;
    };
    let cancelled = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const random = prng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
      const ids = ['a', 'b', 'c'];
      const keys = ['k0', 'k1', 'k2'];
      const state = new MemoryState();
      for (let batch = 0; batch < 15; batch++) {
        const changes: Change[] = [];
        for (let i = 0; i < 1 + Math.floor(random() * 6); i++) {
          const r = random();
          if (r < 0.2)
            changes.push(change('users', pick(ids), random() < 0.2 ? null : profile(pick(['x', 'y']))));
          else if (r < 0.5)
            changes.push(
              random() < 0.3 ? change('follows', pick(keys), null) : follow(pick(keys), pick(ids), pick(ids)),
            );
          else if (r < 0.8)
            changes.push(random() < 0.3 ? change('tweets', pick(keys), null) : tweet(pick(keys), pick(ids)));
          else
            changes.push(
              random() < 0.3
                ? change('likes', pick(keys), null)
                : change('likes', pick(keys), { table: 'likes', userId: pick(ids) }),
            );
        }
        const viewsBefore = new Map(ids.map((id) => [id, visible(state.views.get(id))]));
        const statesBefore = new Map(ids.map((id) => [id, structuredClone(state.users.get(id))]));
        const writes = apply(state, changes);
        for (const id of ids) {
          const moved = JSON.stringify(visible(state.views.get(id))) !== JSON.stringify(viewsBefore.get(id));
          const countsMoved =
            JSON.stringify(state.users.get(id)?.counts) !== JSON.stringify(statesBefore.get(id)?.counts);
          expect({ seed, batch, id, reported: writes.views.has(id) }).toEqual({
            seed,
            batch,
            id,
            reported: moved,
          });
          if (!moved && !countsMoved) {
            // Untouched in effect: the stored state (and its version) is the one from before the batch.
            expect(state.users.get(id)).toEqual(statesBefore.get(id));
            if (changes.length > 0) cancelled++;
          }
        }
      }
    }
    expect(cancelled).toBeGreaterThan(100);
  });
});
