/**
 * A commit's user views as they cross from the writer thread (src/store/packed-views.ts): packed, moved
 * through a MessageChannel with its buffers transferred, and read back as the commit event's map. Whatever
 * is asked and in whichever order, the map answers what the original did: same keys in the same order,
 * equal values (decoded from the stored form), null for a user gone.
 */
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { PackedViewMap, packViews, transferablesOf, type PackedViews } from '../../src/store/packed-views.js';
import type { UserInformation } from '../../src/views/user-information.js';

const view = (i: number): UserInformation => ({
  userId: `u-ü${i}`,
  username: `zoë${i}`,
  name: i % 3 === 0 ? null : `Zoë "Z" Ünal ${i}`,
  description: 'línea\nnueva 🚀',
  location: null,
  webPageUrl: 'https://example.com/zoë',
  joinedDate: '2020-01-02T03:04:05.000Z',
  profileImageUrl: null,
  backgroundImageUrl: null,
  tweetCount: i,
  followingCount: 0,
  followerCount: 1_000_000 + i,
  likeCount: 7,
  version: {
    sequence: String(100 + i),
    appliedAt: '2026-01-01T00:00:00.000Z',
    eventTime: i % 2 === 0 ? null : '2025-12-31T23:59:59.999Z',
    source: { topic: 'tweets', partition: 3, offset: String(i) },
  },
});

/** Through a real port, transferring the buffers as the writer thread does. */
async function across(packed: PackedViews): Promise<PackedViews> {
  const { port1, port2 } = new MessageChannel();
  try {
    const received = new Promise<PackedViews>((resolve) => port2.once('message', resolve));
    port1.postMessage(packed, transferablesOf(packed));
    return await received;
  } finally {
    port1.close();
  }
}

describe('packed views', () => {
  it('should read back every view, gone users as null, in the original order, and moved rather than copied', async () => {
    const original = new Map<string, UserInformation | null>();
    for (let i = 0; i < 50; i++) original.set(`u-ü${i}`, i % 7 === 3 ? null : view(i));
    const packed = packViews(original);
    const map = new PackedViewMap(await across(packed));
    expect(packed.bytes.byteLength).toBe(0); // transferred: detached on the sending side
    // Point lookups first (in another order), then iteration, each way.
    expect(map.get('u-ü42')).toEqual(view(42));
    expect(map.get('u-ü3')).toBeNull();
    expect([map.has('u-ü3'), map.has('nobody'), map.get('nobody')]).toEqual([true, false, undefined]);
    expect(map.size).toBe(original.size);
    expect([...map]).toEqual([...original]);
    expect([...map.entries()]).toEqual([...original.entries()]);
    expect([...map.keys()]).toEqual([...original.keys()]);
    expect([...map.values()]).toEqual([...original.values()]);
    const viaForEach: [string, UserInformation | null][] = [];
    map.forEach((v, k) => viaForEach.push([k, v]));
    expect(viaForEach).toEqual([...original]);
    // A value is decoded once and then kept: the same object every time it is asked for.
    expect(map.get('u-ü42')).toBe(map.get('u-ü42'));
  });

  it('should pack no views as empty buffers', async () => {
    const map = new PackedViewMap(await across(packViews(new Map())));
    expect([map.size, [...map], map.get('u1')]).toEqual([0, [], undefined]);
  });
});
