/**
 * A rebuild's periodic check may find its shadow at its targets while the rebuild's start still waits for its
 * consumer to start: the check then builds the shadow's views from its rows. The start settling afterwards
 * must not make the rebuild look idle while those views are built (a `matview rebuild` request would then
 * begin another). Reproduced deterministically: a consumer whose start waits for its stop, and whose stop
 * waits for the test.
 */
import { describe, expect, it } from 'vitest';
import type { FeedSource } from '../../src/feed/types.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { quietSource, tweetsRebuild } from '../utils/rebuild-controller.js';
import { eventually } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';

/**
 * A source with no records whose `start` returns once it is stopped, and whose `stop` returns once `held` is
 * released.
 */
function heldSource(held: Promise<void>): FeedSource {
  let stopped: () => void = () => undefined;
  const stop = new Promise<void>((resolve) => (stopped = resolve));
  return {
    kind: 'embedded',
    start: () => stop,
    endOffsets: () => Promise.resolve([]),
    status: () => ({ state: 'running' }) as ReturnType<FeedSource['status']>,
    stop: () => {
      stopped();
      return held;
    },
  };
}

describe('a rebuild whose shadow is at its targets before its consumer started', () => {
  it('should not look idle while it builds the views its check began', async () => {
    const store = openStore({ path: tempDir(), writerThread: false });
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const sources = [heldSource(held), quietSource];
    const fatal: Error[] = [];
    const controller = tweetsRebuild(store, {
      openSource: () =>
        Promise.resolve({ source: sources.shift() ?? quietSource, close: () => Promise.resolve() }),
      // Empty topics: a new shadow is at its targets from the start.
      endOffsets: () => Promise.resolve([]),
      checkIntervalMs: 5,
      // What the race needs: a shadow whose views are built from its rows (an empty store's rebuild applies
      // views commit by commit by default).
      rowsFirst: true,
      onFatal: (e) => fatal.push(e),
    });
    const before = store.activeGeneration().id;
    // Settles once the first consumer's start returns: after a check found the shadow at its targets, began
    // building its views and stopped that consumer, whose stop waits for `release`.
    await controller.start('requested');
    expect(controller.state()).toBe('building');
    release();
    await eventually(
      () => Promise.resolve(store.activeGeneration().id !== before ? true : undefined),
      5_000,
      'the shadow to be swapped in',
    );
    await eventually(
      () => Promise.resolve(controller.state() === 'idle' ? true : undefined),
      5_000,
      'the rebuild to end',
    );
    expect(fatal).toEqual([]);
    await controller.stop();
    await store.close();
  });
});
