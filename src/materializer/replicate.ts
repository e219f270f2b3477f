/**
 * The body of a serving replica's commit (VIEW_TOPIC_IN, docs/view-topic.md): the view topic carries the
 * replicated views' values (DESIGN.md "Where the next pieces go": the view is the row), so nothing is
 * materialized from rows. Over any state (the LMDB transaction, Maps in tests), in one pass:
 *
 * 1. Records apply by the same per-partition position rule as changelog records (commit.ts, 1.): a replayed
 *    record or prefix of a view topic partition changes nothing.
 * 2. Per key, the last accepted value wins: a key lives in one partition, and the view topic's per-key order is
 *    its producer's commit order (docs/view-topic.md). A value equal to the one held (a repeat, allowed after
 *    a producer's crash) writes nothing and notifies nobody.
 * 3. UserInformation: the view is stored as it came, `version` included, so every replica reports the
 *    producer's sequences; a tombstone removes it. Its `counts` space stays empty: it holds the counts of
 *    users without a users row, which are not in the topic (a user's counts are in its view).
 * 4. The totals are stored as the status record carries them.
 * 5. Every other registered view derives from these (the rankings from UserInformation's moves, as on the
 *    materializer) and is applied with no row transitions: a view that reads rows cannot run on a replica.
 * 6. Positions move forward in the same transaction.
 * An input past a gap is refused before any of it applies, as on the materializer (commit.ts).
 */
import type { Registry } from '../views/registry.js';
import { TOTALS, TOTALS_KEY, type TotalsValue } from '../views/totals.js';
import type { CommitInfo, KvSpace, RecordOrigins, RowReader, Transitions } from '../views/types.js';
import {
  COUNT_FIELDS,
  countsOf,
  REST_FIELDS,
  USER_INFORMATION,
  type UserInformation,
  type UserMove,
  type ViewVersion,
} from '../views/user-information.js';
import type { ReplicaColumns, ReplicaInput } from './change-batch.js';
import {
  acceptedRecords,
  advancePositions,
  applyViews,
  checkContinuity,
  type CommitOutcome,
  type CommitPlan,
  type GenerationState,
} from './commit.js';

/** The views a replica receives from the view topic; every other registered view derives from them. */
export const REPLICATED_VIEWS: readonly string[] = [USER_INFORMATION, TOTALS];

/**
 * Throws when a registered view could not be kept on a replica: one that reads source rows (a replica has
 * none) and is not itself replicated. A registration mistake, found at start.
 */
export function checkReplicable(registry: Registry): void {
  for (const view of registry.views) {
    if (REPLICATED_VIEWS.includes(view.name)) continue;
    if (Object.values(view.reads).some((fields) => fields !== undefined && fields.length > 0))
      throw new Error(
        `view ${view.name} reads source rows, which a replica does not have: publish it in the view topic or derive it from UserInformation`,
      );
  }
}

/**
 * The sequence of a replica's commit: the next one, or higher when a value it applies carries a higher
 * version. Commit events then never carry a sequence below a stored version, which is what the live hub's
 * no-gap ordering relies on (src/live/hub.ts, 2.).
 */
export function replicaSequence(previous: bigint, columns: ReplicaColumns): bigint {
  let sequence = previous + 1n;
  for (const value of columns.value) {
    if (value === null) continue;
    const v = BigInt(value.version.sequence);
    if (v > sequence) sequence = v;
  }
  return sequence;
}

const NO_TRANSITIONS: Transitions = { length: 0, table: [], key: [], before: [], after: [], last: [] };
const NO_ROWS: RowReader = { row: () => undefined };

export function commitReplica(
  state: GenerationState,
  plan: CommitPlan,
  input: ReplicaInput,
  sequence: bigint,
  appliedAt: number,
): CommitOutcome {
  checkContinuity(state, input.positions);
  const c = input.replica;
  const { accepted, reached } = acceptedRecords(state, c);
  const lastUser = new Map<string, number>();
  let lastTotals = -1;
  for (const i of accepted) {
    if (c.view[i] === TOTALS) lastTotals = i;
    else lastUser.set(c.key[i]!, i);
  }

  const events = new Map<string, ReadonlyMap<string, unknown>>();
  let changed = 0;
  const moves: UserMove[] = [];
  const ui = state.spaces(USER_INFORMATION);
  const views = ui['views'] as KvSpace<UserInformation>;
  const users = new Map<string, UserInformation | null>();
  for (const [userId, i] of lastUser) {
    const next = c.value[i] as UserInformation | null;
    const held = views.get(userId);
    if (next === null) {
      if (held === undefined) continue;
      views.remove(userId);
    } else {
      if (held !== undefined && sameView(held, next)) continue;
      views.put(userId, next);
    }
    users.set(userId, next);
    const before = held === undefined ? null : countsOf(held);
    const after = next === null ? null : countsOf(next);
    if (before === null || after === null || COUNT_FIELDS.some((f) => before[f] !== after[f]))
      moves.push({ userId, before, after });
  }
  if (users.size > 0) events.set(USER_INFORMATION, users);
  changed += users.size;

  if (lastTotals !== -1) {
    const space = state.spaces(TOTALS)['totals'] as KvSpace<TotalsValue>;
    const next = c.value[lastTotals] as TotalsValue;
    if (!sameTotals(space.get(TOTALS_KEY), next)) {
      space.put(TOTALS_KEY, next);
      events.set(TOTALS, new Map([[TOTALS_KEY, next]]));
      changed++;
    }
  }

  const commit: CommitInfo = {
    sequence,
    sequenceText: sequence.toString(),
    appliedAt: new Date(appliedAt).toISOString(),
    records: originsOfReplica(c),
  };
  applyViews(
    plan.registry.views.filter((view) => !REPLICATED_VIEWS.includes(view.name)),
    (view) => state.spaces(view),
    { transitions: NO_TRANSITIONS, commit, rows: NO_ROWS },
    events,
    new Map<string, unknown>(moves.length === 0 ? [] : [[USER_INFORMATION, moves]]),
  );

  advancePositions(state, input.positions);
  advancePositions(state, reached);
  return {
    events,
    accepted: accepted.length,
    skipped: c.key.length - accepted.length,
    noops: accepted.length - changed,
  };
}

const sameVersion = (a: ViewVersion, b: ViewVersion): boolean =>
  a.sequence === b.sequence &&
  a.appliedAt === b.appliedAt &&
  a.eventTime === b.eventTime &&
  a.source.topic === b.source.topic &&
  a.source.partition === b.source.partition &&
  a.source.offset === b.source.offset;

/** Same fields and same version: a repeat of the value held. */
export const sameView = (a: UserInformation, b: UserInformation): boolean =>
  REST_FIELDS.every((f) => a[f] === b[f]) && sameVersion(a.version, b.version);

function sameTotals(a: TotalsValue | undefined, b: TotalsValue): boolean {
  return (
    a !== undefined &&
    a.users === b.users &&
    a.tweets === b.tweets &&
    a.follows === b.follows &&
    a.likes === b.likes &&
    sameVersion(a.version, b.version)
  );
}

/** A replica's records name their place in the view topic; their event time is the view's own. */
function originsOfReplica(c: ReplicaColumns): RecordOrigins {
  return {
    topic: (i) => c.topic[i]!,
    partition: (i) => c.partition[i]!,
    offset: (i) => c.offset[i]!,
    eventTime: (i) => {
      const at = c.value[i]?.version.eventTime;
      return at === undefined || at === null ? Number.NaN : Date.parse(at);
    },
  };
}
