/**
 * The read side of the store: synchronous `get`s from the memory map of the ACTIVE generation, through
 * one reader per registered view that the API serves. Readers switch generations between two
 * transactions (a swap), so each read sees one complete generation.
 */
import type { Database } from 'lmdb';
import { restJsonOf, decodeUnversioned, decodeView, versionStart } from '../views/codec.js';
import { TOP_USERS, topOf, type Ranking } from '../views/top-users.js';
import { TOTALS, TOTALS_KEY, totals as totalsView, type TotalsValue } from '../views/totals.js';
import type { IndexSpace, SpaceSpec } from '../views/types.js';
import {
  USER_INFORMATION,
  userInformation,
  type Counts,
  type Profile,
  type UserInformation,
} from '../views/user-information.js';
import type { Generation } from './generation.js';
import { readAcrossSwap } from './versions.js';
import { readFast } from './fast-read.js';

type KvSpec = Extract<SpaceSpec, { kind: 'kv' }>;

/** How a stored version JSON starts (`JSON.stringify(version)`, first key `sequence`; see `sequenceOf`). */
const SEQUENCE_PREFIX = Buffer.from('{"sequence":"', 'latin1');

/** UserInformation as the API reads it (`user`, `users`, REST, the fast path, subscriptions' snapshots). */
export interface UserReader {
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
  /**
   * `retiring`: the generation the last swap replaced, until that swap is reconciled (versions.ts): values
   * written before the swap read as they did there when the swap left them equal.
   */
  constructor(
    private readonly active: () => Generation,
    private readonly retiring: () => Generation | undefined,
  ) {}

  private views(): Database<Buffer, string> {
    return this.active().db(USER_INFORMATION, 'views');
  }

  getUser(userId: string): UserInformation | undefined {
    const bytes = readFast(this.views(), userId);
    return bytes === undefined ? undefined : this.decode(bytes, userId);
  }

  /** A stored view of the active generation as readers see it (a swap's version rule: versions.ts). */
  decode(bytes: Buffer, userId: string): UserInformation {
    return readAcrossSwap(
      this.active(),
      this.retiring(),
      userInformation,
      'views',
      userId,
      bytes,
      decodeView(bytes),
    );
  }

  getUserJson(userId: string): Buffer | undefined {
    const bytes = this.views().getBinary(userId);
    return bytes === undefined ? undefined : restJsonOf(bytes);
  }

  getUserJsonVersioned(userId: string): { readonly json: Buffer; readonly sequence: string } | undefined {
    const bytes = this.views().getBinary(userId);
    if (bytes === undefined) return undefined;
    return { json: restJsonOf(bytes), sequence: this.sequenceOf(bytes, userId) };
  }

  /**
   * The `version.sequence` a stored view reads as: taken from the version JSON's first key without parsing
   * the rest when it is plain digits at or above the swap floor, else from the view decoded as `getUser` does.
   */
  private sequenceOf(bytes: Buffer, userId: string): string {
    const start = versionStart(bytes);
    const at = start + SEQUENCE_PREFIX.length;
    const end = bytes.indexOf(0x22 /* " */, at);
    // A uint64 is at most 20 digits.
    if (
      end !== -1 &&
      end - at <= 20 &&
      bytes.compare(SEQUENCE_PREFIX, 0, SEQUENCE_PREFIX.length, start, at) === 0
    ) {
      const stored = bytes.toString('latin1', at, end);
      const floor = this.active().floor;
      if (/^\d+$/.test(stored) && (floor === undefined || BigInt(stored) >= floor)) return stored;
    }
    return this.decode(bytes, userId).version.sequence;
  }

  getUsers(userIds: readonly string[]): (UserInformation | undefined)[] {
    return userIds.map((id) => this.getUser(id));
  }

  getUsersUnversioned(userIds: readonly string[]): ((Profile & Counts) | undefined)[] {
    const views = this.views();
    return userIds.map((id) => {
      const bytes = readFast(views, id);
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

  /** The totals, with a swap's version rule like a user's view: their sequence never steps back either. */
  totals(): TotalsValue | undefined {
    const bytes = this.active().db(TOTALS, 'totals').getBinary(TOTALS_KEY);
    if (bytes === undefined) return undefined;
    const value = (totalsView.spaces['totals'] as KvSpec).codec.decode(bytes) as TotalsValue;
    return readAcrossSwap(this.active(), this.retiring(), totalsView, 'totals', TOTALS_KEY, bytes, value);
  }
}
