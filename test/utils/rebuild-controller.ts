/**
 * A RebuildController for tests that drive one with sources of their own: the `tweets` topic into the
 * `tweets` table, silent logs, metrics of its own, a handoff gate nobody else holds.
 */
import type { FeedSource } from '../../src/feed/types.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { silentLogger } from '../../src/ops/logger.js';
import type { LmdbStore } from '../../src/store/lmdb-store.js';
import { HandoffGate } from '../../src/wiring/handoff-gate.js';
import { RebuildController, type RebuildControllerOptions } from '../../src/wiring/rebuild.js';

export function tweetsRebuild(
  store: LmdbStore,
  options: Pick<RebuildControllerOptions, 'openSource' | 'endOffsets' | 'onFatal'> &
    Partial<Pick<RebuildControllerOptions, 'checkIntervalMs' | 'rowsFirst' | 'maxRecordsPerCommit'>>,
): RebuildController {
  return new RebuildController({
    store,
    topics: ['tweets'],
    tables: new Map([['tweets', 'tweets']]),
    metrics: createMetrics({ defaultMetrics: false }),
    logger: silentLogger,
    gate: new HandoffGate(),
    ...options,
  });
}

/** A source with no records that starts and stops at once. */
export const quietSource: FeedSource = {
  kind: 'embedded',
  start: () => Promise.resolve(),
  endOffsets: () => Promise.resolve([]),
  status: () => ({ state: 'running' }) as ReturnType<FeedSource['status']>,
  stop: () => Promise.resolve(),
};
