/**
 * What the read side (api, live) may use of the store: synchronous reads from the memory map.
 */
import type { PartitionPosition } from '../feed/types.js';
import type { Counts, Profile, UserInformation } from '../views/user-information.js';

export interface ViewReader {
  /** The view of one user, or undefined when there is no users row. */
  getUser(userId: string): UserInformation | undefined;
  /** Seed 002's JSON object for `GET /users/:id`, ready to send (UTF-8 bytes), or undefined. */
  getUserJson(userId: string): Buffer | undefined;
  /**
   * `getUserJson` plus the view's `version.sequence` as `getUser` reports it (what the REST route's ETag is
   * made of), without decoding the rest of the version.
   */
  getUserJsonVersioned(userId: string): { readonly json: Buffer; readonly sequence: string } | undefined;
  /** One batched read for many ids; same order, undefined for unknown ids. */
  getUsers(userIds: readonly string[]): (UserInformation | undefined)[];
  /**
   * Like `getUsers` without the `version` (about half the decoding): for selections that do not ask for it
   * (the fast path's compiled plans).
   */
  getUsersUnversioned(userIds: readonly string[]): ((Profile & Counts) | undefined)[];
  /** Stored next offset of every partition applied so far. */
  positions(): PartitionPosition[];
  /** Sequence of the last commit (0 before the first). */
  sequence(): bigint;
}

/** Published right after each store commit, in commit order. */
export interface CommitEvent {
  readonly sequence: bigint;
  /** Users whose visible view changed in this commit, with the new view (null: users row deleted). */
  readonly changes: ReadonlyMap<string, UserInformation | null>;
}

export type CommitListener = (event: CommitEvent) => void;
