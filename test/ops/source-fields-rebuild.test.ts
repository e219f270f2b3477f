/**
 * A view deployed that reads a field the stored rows lack (likes.tweetId, read by the tests' likes-per-tweet
 * view): the next start rebuilds the store from the feed in a shadow generation, which gets every view, while
 * the active generation, which lacks the new view, keeps serving and keeps taking the live feed's commits
 * (they apply the views it holds) until the swap; then the new view holds what the feed says. The swap hook
 * holds the complete shadow, so "during the rebuild" is a state the test controls. On the embedded changelog.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { KvSpace } from '../../src/views/types.js';
import { WITH_LIKES_PER_TWEET } from '../utils/likes-per-tweet.js';
import { releaseHeldSwaps, startAtHeldSwap } from '../utils/swap-hold.js';
import { eventually, freshTopics, graphql } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';
import { scrape, startOpsServer, type OpsServer } from './helpers.js';

const servers: OpsServer[] = [];
afterAll(async () => {
  releaseHeldSwaps();
  for (const s of servers) await s.close();
});

const QUERY = `query($ids: [ID!]!) { users(ids: $ids) { userId likeCount } }`;
type LikeCount = { userId: string; likeCount: number };
const likeCounts = async (url: string) =>
  (await graphql<{ users: (LikeCount | null)[] }>(url, QUERY, { ids: ['a', 'b'] })).data?.users;

/** Waits until users a and b have `expected`'s like counts. */
const untilLikeCounts = (url: string, expected: readonly LikeCount[], what: string) =>
  eventually(
    async () => (JSON.stringify(await likeCounts(url)) === JSON.stringify(expected) ? true : undefined),
    30_000,
    what,
  );

describe('a view that reads a field the stored rows lack', () => {
  it('should rebuild from the feed while the active generation keeps serving and taking the live commits', async () => {
    const options = { topics: freshTopics(), dataDir: tempDir() };
    const { topics } = options;
    const first = await startOpsServer(options);
    servers.push(first);
    await first.running.writer.send(topics.users, [
      { key: 'a', value: JSON.stringify({ username: 'a' }) },
      { key: 'b', value: JSON.stringify({ username: 'b' }) },
    ]);
    await first.running.writer.send(topics.likes, [
      { key: 'l1', value: JSON.stringify({ userId: 'a', tweetId: 'tA' }) },
      { key: 'l2', value: JSON.stringify({ userId: 'b', tweetId: 'tA' }) },
      { key: 'l3', value: JSON.stringify({ userId: 'a', tweetId: 'tB' }) },
    ]);
    const applied = [
      { userId: 'a', likeCount: 2 },
      { userId: 'b', likeCount: 1 },
    ];
    await untilLikeCounts(first.url, applied, 'the first server applied the likes');
    await first.close();

    const { server, release } = await startAtHeldSwap(
      { ...options, env: WITH_LIKES_PER_TWEET.env },
      { views: WITH_LIKES_PER_TWEET.views },
      (s) => servers.push(s),
    );
    // During the rebuild: the live feed's records reach the active generation, which serves them.
    await server.running.writer.send(topics.likes, [
      { key: 'l4', value: JSON.stringify({ userId: 'b', tweetId: 'tB' }) },
    ]);
    const during = [
      { userId: 'a', likeCount: 2 },
      { userId: 'b', likeCount: 2 },
    ];
    await untilLikeCounts(
      server.url,
      during,
      'a live record applied to the active generation during the rebuild',
    );
    const { store } = server.running;
    expect({
      generation: store.activeGeneration().id,
      views: Object.keys(store.activeGeneration().info.views).sort(),
      ready: (await fetch(`${server.url}/health/ready`)).status,
    }).toEqual({ generation: 1, views: ['top-users', 'totals', 'user-information'], ready: 200 });

    release();
    await eventually(
      async () => (store.activeGeneration().id === 2 ? true : undefined),
      30_000,
      'the rebuilt generation swapped in',
    );
    // The record the rebuild's consumer had not read when the swap came is the live feed's, in the new generation.
    await untilLikeCounts(server.url, during, 'the counts after the swap');
    const count = store.activeGeneration().spaces('likes-per-tweet')['count'] as KvSpace<number>;
    await eventually(
      async () => (count.get('tB') === 2 ? true : undefined),
      30_000,
      'the new view caught up',
    );
    expect({
      tA: count.get('tA'),
      tB: count.get('tB'),
      swaps: (await scrape(server.url)).sum('matview_view_swaps_total', { reason: 'source-fields' }),
      rebuild: server.running.rebuild.state(),
    }).toEqual({ tA: 2, tB: 2, swaps: 1, rebuild: 'idle' });
  });
});
