/**
 * The commit queue's idle signal (src/store/commit-queue.ts `idle`): what a shadow's views built on the writer
 * thread wait for between their pages, so that a live commit that arrived during a page goes through first.
 */
import { describe, expect, it } from 'vitest';
import { concatInputs, type BatchInput } from '../../src/materializer/change-batch.js';
import { CommitQueue } from '../../src/store/commit-queue.js';
import { commitInput, tweetRecord } from '../utils/changes.js';

const input = (i: number): BatchInput => commitInput([tweetRecord(`t${i}`, 'u1', i)]);

describe('commit queue idle', () => {
  it('should resolve at once when idle, and only after the commit in flight and the ones waiting behind it', async () => {
    const order: string[] = [];
    const releases: (() => void)[] = [];
    const queue = new CommitQueue<number>(
      (_input, _target, ids) =>
        new Promise<number>((resolve) => {
          order.push(`write ${ids.join(',')}`);
          releases.push(() => resolve(ids[0]!));
        }),
      1,
      concatInputs,
    );
    await queue.idle();
    order.push('idle at first');
    const first = queue.submit({ input: input(0), target: 'active', id: 0 });
    const second = queue.submit({ input: input(1), target: 'active', id: 1 });
    const idle = queue.idle().then(() => order.push('idle'));
    await Promise.resolve();
    releases.shift()!();
    expect(await first).toBe(0);
    // The second was waiting behind the first: not idle yet.
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['idle at first', 'write 0', 'write 1']);
    releases.shift()!();
    expect(await second).toBe(1);
    await idle;
    expect(order).toEqual(['idle at first', 'write 0', 'write 1', 'idle']);
  });
});
