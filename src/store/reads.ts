/**
 * The read side of the store: synchronous `get`s from the memory map of the ACTIVE generation, through
 * one reader per registered view that the API serves. Readers switch generations between two
 * transactions (a swap), so each read sees one complete generation.
 */
import type { Database } from 'lmdb';
import { restJsonOf, decodeUnversioned, decodeView } from '../views/codec.js';
import { topOf, type Ranking } from '../views/top-users.js';
import { TOTALS, TOTALS_KEY, type TotalsValue } from '../views/totals.js';
import type { IndexSpace, KvSpace } from '../views/types.js';
import {
  USER_INFORMATION,
  type Counts,
  type Profile,
  type UserInformation,
} from '../views/user-information.js';
import type { Generation } from './generation.js';
import { TOP_USERS } from '../views/top-users.js';

/** UserInformation as the API reads it (`user`, `users`, REST, the fast path, subscriptions' snapshots). */
export interface UserReader {
  /** The view of one user, or undefined when there is no users row. */
  getUser(userId: string): UserInformation | undefined;
  /** Seed 002's JSON object for `GET /users/:id`, ready to send (UTF-8 bytes), or undefined. */
  getUserJson(userId: string): Buffer | undefined;
  /** One batched read for many ids; same order, undefined for unknown ids. */
  getUsers(userIds: readonly string[]): (UserInformation | undefined)[];
  /** Like `getUsers` without the `version` (about half the decoding): for selections that do not ask for it. */
  getUsersUnversioned(userIds: readonly string[]): ((Profile & Counts) | undefined)[];
  /** The stored bytes (REST JSON + version), for callers that serialize themselves. */
  getViewBytes(userId: string): Buffer | undefined;
}

/** The dashboard views as the API reads them. */
export interface DashboardReader {
  /** The first `limit` userIds of a ranking (O(limit)). */
  topUserIds(ranking: Ranking, limit: number): string[];
  /** The totals, or undefined before the first row arrived. */
  totals(): TotalsValue | undefined;
}

/** Up to `limit` keys of `db` after `after` (exclusive; undefined: from the first), read completely. */
export function keysAfter(db: Database<Buffer, string>, after: string | undefined, limit: number): string[] {
  const out: string[] = [];
  for (const key of db.getKeys({ ...(after === undefined ? {} : { start: after }), limit: limit + 1 })) {
    if (key === after) continue;
    out.push(key);
    if (out.length >= limit) break;
  }
  return out;
}

export class StoreReads implements UserReader, DashboardReader {
  constructor(private readonly active: () => Generation) {}

  private views(): Database<Buffer, string> {
    return this.active().db(USER_INFORMATION, 'views');
  }

  getUser(userId: string): UserInformation | undefined {
    const bytes = this.views().getBinaryFast(userId);
    return bytes === undefined ? undefined : this.decode(bytes);
  }

  /**
   * A view of the active generation. A view last written before the generation was swapped in reports the
   * swap commit as its version: that commit is what made it visible, and it keeps every user's
   * `version.sequence` increasing across a swap (the sequence subscriptions order events by).
   */
  decode(bytes: Buffer): UserInformation {
    const view = decodeView(bytes);
    const generation = this.active();
    const floor = generation.floor;
    if (floor === undefined || BigInt(view.version.sequence) >= floor) return view;
    return {
      ...view,
      version: {
        ...view.version,
        sequence: floor.toString(),
        appliedAt: generation.info.activatedAt ?? view.version.appliedAt,
      },
    };
  }

  getUserJson(userId: string): Buffer | undefined {
    const bytes = this.views().getBinary(userId);
    return bytes === undefined ? undefined : restJsonOf(bytes);
  }

  getUsers(userIds: readonly string[]): (UserInformation | undefined)[] {
    return userIds.map((id) => this.getUser(id));
  }

  getUsersUnversioned(userIds: readonly string[]): ((Profile & Counts) | undefined)[] {
    const views = this.views();
    return userIds.map((id) => {
      const bytes = views.getBinaryFast(id);
      return bytes === undefined ? undefined : decodeUnversioned(bytes);
    });
  }

  getViewBytes(userId: string): Buffer | undefined {
    return this.views().getBinary(userId);
  }

  /** Up to `limit` userIds with a view after `after` (exclusive), in key order, read completely. */
  userIdsPage(after: string | undefined, limit: number): string[] {
    return keysAfter(this.views(), after, limit);
  }

  topUserIds(ranking: Ranking, limit: number): string[] {
    return topOf(this.active().spaces(TOP_USERS)['rank'] as IndexSpace, ranking, limit);
  }

  totals(): TotalsValue | undefined {
    return (this.active().spaces(TOTALS)['totals'] as KvSpace<TotalsValue>).get(TOTALS_KEY);
  }
}
