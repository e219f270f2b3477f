/**
 * Issue 16, point 1: a new view is one module plus registration. This view exists only in the tests (likes
 * per tweet, test/utils/likes-per-tweet.ts); nothing in matview knows it. Registered, it is committed with
 * every batch, kept exact, verified, and published in the commit events the live hub indexes by (view, key),
 * with no other change anywhere.
 */
import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/lmdb-store.js';
import type { CommitEvent } from '../../src/store/types.js';
import { verifyGeneration } from '../../src/store/verify.js';
import { VIEWS } from '../../src/views/registry.js';
import type { KvSpace } from '../../src/views/types.js';
import { commitInput, like, profile, sequential } from '../utils/changes.js';
import { likesPerTweet } from '../utils/likes-per-tweet.js';
import { tempDir } from '../utils/tmp.js';

describe('a view registered through the registry alone', () => {
  it('should be committed, kept exact, verified and published with every batch', async () => {
    const store = openStore({ path: tempDir(), views: [...VIEWS, likesPerTweet] });
    const events: CommitEvent[] = [];
    store.onCommit((e) => events.push(e));
    await store.applyBatch(
      commitInput(
        sequential([
          ['users', 'u1', profile('one')],
          ['likes', 'l1', like('u1', 'tA')],
          ['likes', 'l2', like('u1', 'tA')],
          ['likes', 'l3', like('u1', 'tB')],
        ]),
      ),
    );
    await store.applyBatch(
      commitInput(
        sequential(
          [
            ['likes', 'l2', like('u1', 'tB')],
            ['likes', 'l3', null],
          ],
          4,
        ),
      ),
    );
    const count = store.activeGeneration().spaces('likes-per-tweet')['count'] as KvSpace<number>;
    expect([...count.entries()]).toEqual([
      ['tA', 1],
      ['tB', 1],
    ]);
    expect(events.map((e) => [e.sequence, [...(e.views.get('likes-per-tweet') ?? [])]])).toEqual([
      [
        1n,
        [
          ['tA', 2],
          ['tB', 1],
        ],
      ],
      [
        2n,
        [
          ['tA', 1],
          ['tB', 1],
        ],
      ],
    ]);
    expect(verifyGeneration(store.registry, store.activeGeneration()).differences).toEqual([]);
    // A corrupted entry is named by verify.
    await store.activeGeneration().rows.db.transaction(() => count.put('tA', 7));
    expect(verifyGeneration(store.registry, store.activeGeneration()).differences).toEqual([
      { view: 'likes-per-tweet', key: 'tA', problems: ['count is 7, rows say 1'] },
    ]);
    await store.close();
  });

  it('should make the store rebuild from the feed when its rows lack a field the new view reads', async () => {
    const path = tempDir();
    const before = openStore({ path });
    await before.applyBatch(commitInput(sequential([['likes', 'l1', like('u1', 'tA')]])));
    await before.close();
    // likes.tweetId was not stored (no registered view read it): the rows cannot give it.
    const after = openStore({ path, views: [...VIEWS, likesPerTweet] });
    expect({ full: after.fullRebuildReason(), stale: after.staleViews() }).toEqual({
      full: 'source-fields',
      stale: ['likes-per-tweet'],
    });
    // Meanwhile `matview verify` checks what the active generation holds and names what it does not.
    const report = verifyGeneration(after.registry, after.activeGeneration());
    expect({
      differences: report.differences,
      notHeld: report.notHeld,
      views: Object.keys(report.keys),
    }).toEqual({
      differences: [],
      notHeld: ['likes-per-tweet'],
      views: ['user-information', 'top-users', 'totals'],
    });
    const { generation } = await after.beginShadow('source-fields');
    expect(generation.info.rowFields.likes).toEqual(['userId', 'tweetId']);
    await after.close();
  });
});
