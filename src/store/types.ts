/**
 * What the read side (api, live) may use of the store: synchronous reads from the memory map, and the
 * commit events.
 */
import type { PartitionPosition } from '../feed/types.js';
import { USER_INFORMATION, type UserInformation } from '../views/user-information.js';
import type { DashboardReader, UserReader } from './reads.js';

export type { DashboardReader, UserReader } from './reads.js';

/** The reads the API serves: every registered view's reader, plus where the feed stands. */
export interface ViewReader extends UserReader, DashboardReader {
  /** Stored next offset of every partition applied so far. */
  positions(): PartitionPosition[];
  /** Sequence of the last commit this process published (0 before the first). */
  sequence(): bigint;
  /**
   * Sequence of the commit the reads see right now, read from the same snapshot: exact for the data read in
   * the same synchronous stretch. At least `sequence()`: a commit is readable before its reply is handled,
   * and another process (`matview rebuild`) may commit too.
   */
  readSequence(): bigint;
}

/** Published right after each store commit that readers can see, in commit order. */
export interface CommitEvent {
  readonly sequence: bigint;
  /**
   * Per view (registry name), the keys whose value changed in this commit: key → new value (null: gone).
   * A swap's and a view rebuild's UserInformation part is read lazily from the builds it compares
   * (generation-diff.ts), which are dropped after the listeners ran: read it inside the listener, do not keep it.
   */
  readonly views: ReadonlyMap<string, ReadonlyMap<string, unknown>>;
}

export type CommitListener = (event: CommitEvent) => void;

const NONE: ReadonlyMap<string, UserInformation | null> = new Map<string, UserInformation | null>();

/** UserInformation's part of a commit event: userId → new view (null: users row deleted). */
export const userChanges = (event: CommitEvent): ReadonlyMap<string, UserInformation | null> =>
  (event.views.get(USER_INFORMATION) as ReadonlyMap<string, UserInformation | null> | undefined) ?? NONE;
