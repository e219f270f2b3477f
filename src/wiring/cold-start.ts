/**
 * A cold start as a bulk load (COLD_START_BULK_LOAD, issue 17): a materializer whose store never applied a
 * record, facing a long history, loads it the way `matview rebuild` does instead of catching up commit by
 * commit into the generation it serves. Its rebuild fills a shadow generation in chunks (rows first when the
 * view will be large, then each user's view once from the rows: src/wiring/rebuild.ts), and the live feed
 * starts only once that shadow has swapped in, from where it stands.
 *
 * Why: a commit rewrites a page of the views' B-tree for every user it touches. While the store is small a
 * commit of a catch-up rewrites most of its pages anyway, but as it grows past ~100k users the pages a
 * commit touches are spread over all of it, and the catch-up slows down with every user it adds. Measured
 * on the bench box (the rebuild scenario's workload: users first, then tweets, follows, likes and profile
 * edits; batches of 10k records, 16 in flight, the writer thread; the store alone, a scratch driver with the
 * rebuild scenario's feed loop), into the served generation against the bulk load's shadow, swap included:
 *
 * | records over users | served generation | bulk load |
 * | --- | --- | --- |
 * | 446k over 22.3k | 69k records/s | 116k records/s |
 * | 1M over 50k | 57k records/s | 143k records/s |
 * | 2M over 100k | 30k records/s | 155k records/s |
 * | 10M over 1M | 38k records/s for the first 800k records, then 7-8k (stopped after 1.76M, 116 s) | 94k records/s (10M in 107 s) |
 *
 * End to end (the catch-up bench, a fresh `matview serve` from spawn to ready, every user checked): 446k
 * records over 22.3k users at 91.6k against 75.1k records/s (medians of 6 runs), 2M over 100k users (gzip)
 * 140.3k and 145.4k against 70.1k and 64.1k.
 *
 * Meanwhile the instance serves nothing (every user null), where a catch-up commit by commit served what
 * it had applied so far; neither is ready until done (readiness gives the load as its reason). A crash
 * resumes the shadow from the positions of its last written chunk, as any rebuild. What differs from a
 * rebuild: the load routes its invalid records to the dead-letter topic (no live feed reads them), and
 * `/health/live` does not count the waiting records as a stall until it swaps in
 * (FeedTracker.blockForBulkLoad).
 */
import type { OffsetRange } from './offset-ranges.js';
import type { BulkLoad } from './rebuild.js';

export interface ColdStartInput {
  /** COLD_START_BULK_LOAD. */
  readonly setting: boolean | 'auto';
  /** Positions the store's active generation holds: none when it never applied a record. */
  readonly storedPositions: number;
  /**
   * The offsets each partition read holds now, [low, high): read only when the setting and the stored
   * positions leave the choice to them (a round trip to the cluster).
   */
  readonly ranges: () => Promise<readonly OffsetRange[]>;
  /** The topic of the users table (its records estimate the view's entries). */
  readonly usersTopic: string;
  /** MAX_RECORDS_PER_COMMIT: with `auto`, a history of at least this many records is loaded in bulk. */
  readonly maxRecordsPerCommit: number;
}

/** The bulk load a cold start makes, or undefined when it catches up commit by commit (ColdStartInput). */
export async function coldStartBulkLoad(input: ColdStartInput): Promise<BulkLoad | undefined> {
  if (input.setting === false || input.storedPositions > 0) return undefined;
  let records = 0n;
  let users = 0n;
  for (const r of await input.ranges()) {
    const held = BigInt(r.high) - BigInt(r.low);
    if (held <= 0n) continue;
    records += held;
    if (r.topic === input.usersTopic) users += held;
  }
  if (records === 0n) return undefined;
  if (input.setting === 'auto' && records < BigInt(input.maxRecordsPerCommit)) return undefined;
  // An upper bound of the users with a row (a user's every edit is a record of its own).
  return { expectedViewEntries: Number(users), records: Number(records) };
}
