/**
 * What `topUsers` and `totals` answer, shared by the query resolvers, the subscriptions and the fast path
 * (api/fast-path/), so the three cannot drift apart: the `limit` rule and the totals before the first row.
 */
import type { DashboardReader, UserReader } from '../../src/store/types.js';
import { MAX_TOP_LIMIT, type Ranking } from '../../src/views/top-users.js';
import type { TotalsValue } from '../../src/views/totals.js';
import type { UserInformation } from '../../src/views/user-information.js';
import { ApiErrorCode } from '../codes.js';
import { apiError } from '../errors.js';

/** `limit` when the client gives none (the SDL's `limit: Int = 10`). */
export const DEFAULT_TOP_LIMIT = 10;

/** True for a `limit` the rankings serve: an integer in 1..MAX_TOP_LIMIT. */
export const isTopLimit = (limit: unknown): limit is number =>
  typeof limit === 'number' && Number.isInteger(limit) && limit >= 1 && limit <= MAX_TOP_LIMIT;

/**
 * The `limit` argument, or LIMIT_OUT_OF_RANGE. Checked in the resolver rather than by a validation rule: a
 * variable, a default and an explicit `null` all reach it the same way, over HTTP and WebSocket alike.
 */
export function checkedLimit(limit: number | null | undefined): number {
  if (isTopLimit(limit)) return limit;
  throw apiError(
    ApiErrorCode.LimitOutOfRange,
    `limit must be between 1 and ${MAX_TOP_LIMIT}; got ${limit === undefined ? 'nothing' : String(limit)}.`,
    { status: 400 },
  );
}

/**
 * The first `limit` users of a ranking, in rank order. The ids and the views are read in one synchronous
 * block (one LMDB read snapshot), so every ranked id has its view; the filter only keeps the type honest.
 */
export function readTopUsers(
  reader: DashboardReader & Pick<UserReader, 'getUsers'>,
  by: Ranking,
  limit: number,
): UserInformation[] {
  const users = reader.getUsers(reader.topUserIds(by, limit));
  return users.filter((u): u is UserInformation => u !== undefined);
}

/**
 * The totals before the first row was ever counted: zeros, changed by no commit and no record. Sequence 0
 * sorts before every commit (the store's first commit is 1, `feedStatus.sequence` is "0" before it), the
 * epoch is the earliest `appliedAt`, and partition -1 / offset -1 are Kafka's "none" (librdkafka
 * RD_KAFKA_PARTITION_UA, OffsetFetch's "no offset"). Constant, so a client comparing versions sees no
 * change until a real one.
 */
export const EMPTY_TOTALS: TotalsValue = Object.freeze({
  users: 0,
  tweets: 0,
  follows: 0,
  likes: 0,
  version: Object.freeze({
    sequence: '0',
    appliedAt: '1970-01-01T00:00:00.000Z',
    eventTime: null,
    source: Object.freeze({ topic: '', partition: -1, offset: '-1' }),
  }),
});

/** The totals as served: the stored value, or {@link EMPTY_TOTALS} before the first row. */
export const totalsOrEmpty = (totals: TotalsValue | null | undefined): TotalsValue => totals ?? EMPTY_TOTALS;
