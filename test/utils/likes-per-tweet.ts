/**
 * A view that exists only in the tests (likes per tweet): registered beside VIEWS, it reads a field no
 * shipped view reads (likes.tweetId), so a store filled without it must be rebuilt from the feed.
 */
import { VIEWS } from '../../src/views/registry.js';
import type { LikeRow } from '../../src/views/source.js';
import type { KvSpace, ValueCodec, ViewModule } from '../../src/views/types.js';

const number: ValueCodec<number> = {
  encode: (n) => Buffer.from(String(n)),
  decode: (b) => Number(b.toString()),
};

/** `SELECT tweetId, COUNT(*) FROM likes GROUP BY tweetId`. */
export const likesPerTweet: ViewModule = {
  name: 'likes-per-tweet',
  version: 1,
  reads: { likes: ['tweetId'] },
  dependsOn: [],
  spaces: { count: { kind: 'kv', codec: number as ValueCodec<unknown> } },
  apply({ transitions: tx }, spaces) {
    const count = spaces['count'] as KvSpace<number>;
    const event = new Map<string, number | null>();
    const move = (tweetId: string | undefined, by: number) => {
      if (tweetId === undefined) return;
      const n = (count.get(tweetId) ?? 0) + by;
      if (n === 0) count.remove(tweetId);
      else count.put(tweetId, n);
      event.set(tweetId, n === 0 ? null : n);
    };
    for (let i = 0; i < tx.length; i++) {
      if (tx.table[i] !== 'likes') continue;
      const from = (tx.before[i] as LikeRow | null)?.tweetId;
      const to = (tx.after[i] as LikeRow | null)?.tweetId;
      if (from === to) continue;
      move(from, -1);
      move(to, +1);
    }
    return event.size === 0 ? {} : { event };
  },
};

/**
 * What a test server needs to serve VIEWS and likes-per-tweet: the views, and commits on the event loop (the
 * writer thread registers VIEWS alone).
 */
export const WITH_LIKES_PER_TWEET = {
  env: { WRITER_THREAD: 'false' },
  views: [...VIEWS, likesPerTweet],
} as const;
