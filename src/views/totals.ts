/**
 * The Totals view (issue 16): how many rows each table holds right now, `SELECT COUNT(*)` per table over
 * the current rows, plus how many users have a users row. One value, moved by the existence transitions of
 * a commit (a row appearing counts +1, disappearing -1; an update moves nothing), so it is exact at every
 * commit and costs O(transitions), never a scan.
 */
import { InvariantError } from '../errors.js';
import type { Table } from './source.js';
import type { Applied, ApplyInput, KvSpace, Spaces, ValueCodec, ViewModule } from './types.js';
import { versionOf, type ViewVersion } from './user-information.js';

export interface TotalsValue {
  /** Users with a users row. */
  readonly users: number;
  readonly tweets: number;
  readonly follows: number;
  readonly likes: number;
  /** The commit that last changed a total, and the record that did. */
  readonly version: ViewVersion;
}

export const TOTALS = 'totals';
/** The one key of the view (and of its subscriptions). */
export const TOTALS_KEY = 'totals';
export const TOTALS_VERSION = 1;

const json: ValueCodec<TotalsValue> = {
  encode: (v) => Buffer.from(JSON.stringify(v)),
  decode: (b) => JSON.parse(b.toString('utf8')) as TotalsValue,
};

function applyTotals(input: ApplyInput, spaces: Spaces): Applied {
  const space = spaces['totals'] as KvSpace<TotalsValue>;
  const { transitions: tx } = input;
  const delta: Record<Table, number> = { users: 0, tweets: 0, follows: 0, likes: 0 };
  let last = -1;
  for (let i = 0; i < tx.length; i++) {
    const was = tx.before[i] !== null;
    const is = tx.after[i] !== null;
    if (was === is) continue;
    delta[tx.table[i]!] += is ? 1 : -1;
    if (tx.last[i]! > last) last = tx.last[i]!;
  }
  if (last === -1 || (delta.users === 0 && delta.tweets === 0 && delta.follows === 0 && delta.likes === 0))
    return {};
  const old = space.get(TOTALS_KEY);
  const next: TotalsValue = {
    users: (old?.users ?? 0) + delta.users,
    tweets: (old?.tweets ?? 0) + delta.tweets,
    follows: (old?.follows ?? 0) + delta.follows,
    likes: (old?.likes ?? 0) + delta.likes,
    version: versionOf(input.commit, last),
  };
  if (next.users < 0 || next.tweets < 0 || next.follows < 0 || next.likes < 0)
    throw new InvariantError('a total would become negative');
  space.put(TOTALS_KEY, next);
  return { event: new Map([[TOTALS_KEY, next]]) };
}

/** Equal totals, whatever their versions. */
function sameTotals(a: TotalsValue, b: TotalsValue): boolean {
  return a.users === b.users && a.tweets === b.tweets && a.follows === b.follows && a.likes === b.likes;
}

export const totals: ViewModule = {
  name: TOTALS,
  version: TOTALS_VERSION,
  // Existence only: no field of any table.
  reads: {},
  dependsOn: [],
  spaces: { totals: { kind: 'kv', codec: json as ValueCodec<unknown> } },
  apply: applyTotals,
  versioned: { totals: (a, b) => sameTotals(json.decode(a), json.decode(b)) },
  swapEvent(before, after) {
    const t0 = (before['totals'] as KvSpace<TotalsValue>).get(TOTALS_KEY);
    const t1 = (after['totals'] as KvSpace<TotalsValue>).get(TOTALS_KEY);
    if (t1 === undefined) return undefined;
    return t0 !== undefined && sameTotals(t0, t1) ? undefined : new Map([[TOTALS_KEY, t1]]);
  },
};
