/**
 * A commit says how long it took where it ran (`seconds`, the `matview_store_commit_seconds` metric): from the
 * moment its queue hands it over to the moment its transaction is durable, or its rebuild chunk has it.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { commitOrBuffer, type ShadowChunks } from '../../src/store/shadow-chunks.js';
import type { CommitBody, StoreInput } from '../../src/store/write.js';

const body: CommitBody = {
  sequence: 7n,
  appliedAt: 1_700_000_000_000,
  generation: 1,
  visible: true,
  events: new Map(),
  changed: 0,
  accepted: 3,
  skipped: 0,
  noops: 0,
  batches: 1,
};
const input = {} as StoreInput;

afterEach(() => vi.restoreAllMocks());

describe('commitOrBuffer', () => {
  it('should time a commit from its start to the end of its transaction', async () => {
    const clock = vi.spyOn(performance, 'now').mockReturnValue(1_000);
    const chunks = { buffers: () => false } as unknown as ShadowChunks;
    const written = await commitOrBuffer(
      chunks,
      input,
      'active',
      1,
      () => 0,
      async () => {
        clock.mockReturnValue(1_250); // the transaction took 250 ms
        return body;
      },
    );
    expect(written).toEqual({ ...body, seconds: 0.25 });
  });

  it("should time a rebuild's buffered commit by its chunk's apply", async () => {
    const clock = vi.spyOn(performance, 'now').mockReturnValue(5_000);
    const chunks = {
      buffers: () => true,
      apply: async () => {
        clock.mockReturnValue(5_040);
        return body;
      },
      scheduleIdleWrite: () => undefined,
    } as unknown as ShadowChunks;
    const commit = vi.fn(async () => body);
    const written = await commitOrBuffer(chunks, input, 2, 1, () => 1, commit);
    expect({ written, committed: commit.mock.calls.length }).toEqual({
      written: { ...body, seconds: 0.04 },
      committed: 0,
    });
  });
});
