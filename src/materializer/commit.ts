/**
 * The body of one store commit, over any state (the LMDB transaction in src/store, Maps in tests and
 * benchmarks): which records apply, what they do to the rows, and what every registered view does with
 * that, in one pass.
 *
 * 1. A record applies only when its offset is at or after its partition's stored next offset and after
 *    every record of that partition already accepted in this commit. The positions move in this same
 *    transaction, so replaying any record or any prefix of a partition changes nothing, whatever delivered
 *    it (a redelivered batch, a consumer that kept running across a swap, a duplicate inside one commit).
 * 2. The accepted records resolve into net row transitions (resolve.ts): each row read once.
 * 3. Each view, in dependency order, applies the transitions to its own spaces and says what changed.
 * 4. Rows are written in key order (pages fill together instead of one random page per row), and the
 *    positions move forward (never back).
 *
 * Before any of it, an input that continues a partition from an offset its position has not reached (the
 * batch ahead of it, pipelined by the source, was not applied) is refused whole (`checkContinuity`): its
 * records would otherwise apply past a gap, and the positions would then skip the records of the gap.
 */
import type { Registry } from '../views/registry.js';
import type { Row, Table } from '../views/source.js';
import type { ApplyInput, Spaces, ViewModule } from '../views/types.js';
import { BatchOutOfOrderError, InvariantError } from '../errors.js';
import {
  TRUNCATE,
  offsetBefore,
  originsOf,
  type ChangeColumns,
  type CommitInput,
  type PartitionPosition,
} from './change-batch.js';
import { resolve, rowEqualities, type RowEquality, type RowSource } from './resolve.js';

/** Where a stored row came from: the newest record that set it. */
export interface RowOrigin {
  readonly partition: number;
  readonly offset: string;
  /** ms since the epoch. */
  readonly eventTime: number;
}

export interface RowStore extends RowSource {
  /** Stores `row` with its origin (the partition, offset and event time of the record that set it). */
  put(table: Table, key: string, row: Row, partition: number, offset: string, eventTime: number): void;
  remove(table: Table, key: string): void;
  /**
   * `put` of a row already in the stored form of this store's fields, with its origin (src/store/row-codec.ts),
   * where a store keeps rows that way: a buffer that holds them so writes the bytes as they are.
   */
  putStored?(table: Table, key: string, bytes: Buffer): void;
  /**
   * Steps 2 and 4 in one pass, for a commit that applies no view (`rowsOnly`), where a store can do them
   * cheaper than resolving and then writing the transitions: stores what they would store (each row and its
   * origin) and returns the noops they would count. `accepted` holds no truncate.
   */
  applyRecords?(
    changes: ChangeColumns,
    accepted: readonly number[],
    equal: Readonly<Record<Table, RowEquality>>,
  ): number;
}

/** One generation's state as a commit sees it. */
export interface GenerationState {
  /** Stored next offset of a partition (undefined: nothing of it applied yet). */
  position(topic: string, partition: number): string | undefined;
  setPosition(topic: string, partition: number, next: string): void;
  readonly rows: RowStore;
  /** The spaces of a registered view. */
  spaces(view: string): Spaces;
}

export interface CommitOutcome {
  /** Per view, what subscribers see (views the commit left unchanged are absent). */
  readonly events: Map<string, ReadonlyMap<string, unknown>>;
  /** Records applied (not skipped as already applied). */
  readonly accepted: number;
  /** Records skipped: at or before their partition's position. */
  readonly skipped: number;
  /** Accepted records that changed no row. */
  readonly noops: number;
}

/** What one registry needs prepared for commits (built once). */
export interface CommitPlan {
  readonly registry: Registry;
  readonly equal: Readonly<Record<Table, RowEquality>>;
  /** The views a commit applies, in dependency order: the registry's, or those a generation holds (`heldViews`). */
  readonly views: readonly ViewModule[];
}

export function commitPlan(registry: Registry): CommitPlan {
  return { registry, equal: rowEqualities(registry.storedFields), views: registry.views };
}

/**
 * `plan` for a generation that holds `held` (its views and their versions): the registered views it holds at
 * their registered version, and of those only the ones whose dependencies it keeps too. A generation lacks
 * some while a rebuild from the feed fills a shadow with every view (stored rows that lack a field a view now
 * reads): the active one keeps serving and keeps taking the live commits, which apply what it has, its other
 * views staying as they were until the swap replaces them. A view it holds at another version is left as it
 * is too: the new code must not run over the old stored form (that rebuild, when a release also bumped a
 * view, carries the bumped one). The same plan when it holds them all.
 */
export function heldViews(
  plan: CommitPlan,
  held: Readonly<Record<string, { readonly version: number }>>,
): CommitPlan {
  const kept = new Set<string>();
  for (const view of plan.registry.views)
    if (held[view.name]?.version === view.version && view.dependsOn.every((d) => kept.has(d)))
      kept.add(view.name);
  if (kept.size === plan.views.length && plan.views.every((v) => kept.has(v.name))) return plan;
  return { ...plan, views: plan.registry.views.filter((v) => kept.has(v.name)) };
}

/**
 * Applies `input` to `state` as commit `sequence`. Throws only on a broken invariant (nothing is kept then).
 * `rowsOnly`: steps 1, 2 and 4 only, no view applies (a rebuild's shadow that replays its rows first and
 * builds its views from them afterwards: shadow-chunks.ts); the rows and positions stored are the same.
 * Rows that take a commit's records in one pass (`RowStore.applyRecords`: a rebuild's buffered chunk) do
 * steps 2 and 4 there, but for a commit with a truncate.
 */
export function commitBatch(
  state: GenerationState,
  plan: CommitPlan,
  input: CommitInput,
  sequence: bigint,
  appliedAt: number,
  rowsOnly = false,
): CommitOutcome {
  checkContinuity(state, input.positions);
  const { changes } = input;
  const { accepted, reached } = acceptedRecords(state, changes);
  let events = new Map<string, ReadonlyMap<string, unknown>>();
  let noops: number;
  if (rowsOnly && state.rows.applyRecords !== undefined && !truncates(changes, accepted))
    noops = state.rows.applyRecords(changes, accepted, plan.equal);
  else {
    const tx = resolve(changes, accepted, state.rows, plan.equal);
    if (!rowsOnly)
      events = applyViews(plan.views, (view) => state.spaces(view), {
        transitions: tx,
        rows: state.rows,
        commit: {
          sequence,
          sequenceText: sequence.toString(),
          appliedAt: new Date(appliedAt).toISOString(),
          records: originsOf(changes),
        },
      });
    writeRows(state, tx, changes);
    noops = tx.noops;
  }
  advancePositions(state, input.positions);
  advancePositions(state, reached);
  return { events, accepted: accepted.length, skipped: changes.key.length - accepted.length, noops };
}

/** Whether a truncate is among the `accepted` records. */
function truncates(changes: ChangeColumns, accepted: readonly number[]): boolean {
  for (const i of accepted) if (changes.row[i] === TRUNCATE) return true;
  return false;
}

/**
 * Step 3: each of `views`, in dependency order, applies `input` to its spaces (`spacesOf`); what each changed
 * goes into `events`, per view, and what each passes downstream reaches the views after it (`downstream` may
 * already hold what the caller's own steps passed). Also a replica's commit and a replay of stored rows.
 */
export function applyViews(
  views: readonly ViewModule[],
  spacesOf: (view: string) => Spaces,
  input: Omit<ApplyInput, 'upstream' | 'upstreamSpaces'>,
  events = new Map<string, ReadonlyMap<string, unknown>>(),
  downstream = new Map<string, unknown>(),
): Map<string, ReadonlyMap<string, unknown>> {
  for (const view of views) {
    const upstreamSpaces = (name: string): Spaces => {
      if (!view.dependsOn.includes(name))
        throw new InvariantError(
          `view ${view.name} reads the spaces of ${name}, which it does not depend on`,
        );
      return spacesOf(name);
    };
    const applied = view.apply(
      { ...input, upstream: (name) => downstream.get(name), upstreamSpaces },
      spacesOf(view.name),
    );
    if (applied.event !== undefined && applied.event.size > 0) events.set(view.name, applied.event);
    if (applied.downstream !== undefined) downstream.set(view.name, applied.downstream);
  }
  return events;
}

/** The columns that say where a commit's records are (changelog records and a replica's view values alike). */
export interface PositionedColumns {
  readonly key: readonly string[];
  readonly topic: readonly string[];
  readonly partition: readonly number[];
  readonly offset: readonly string[];
}

/**
 * Indices of the records that apply (see the module comment, 1.), and the next offset each partition
 * reaches through them (positions never fall behind an applied record, whatever the caller says).
 */
export function acceptedRecords(
  state: Pick<GenerationState, 'position'>,
  changes: PositionedColumns,
): { accepted: number[]; reached: PartitionPosition[] } {
  const accepted: number[] = [];
  /** Per partition: the stored next offset, and the last offset accepted in this commit. */
  const marks = new Map<string, Map<number, { stored: string | undefined; last: string | undefined }>>();
  let topic = '';
  let partition = -1;
  let mark: { stored: string | undefined; last: string | undefined } | undefined;
  for (let i = 0; i < changes.key.length; i++) {
    const t = changes.topic[i]!;
    const p = changes.partition[i]!;
    if (mark === undefined || t !== topic || p !== partition) {
      topic = t;
      partition = p;
      let byPartition = marks.get(t);
      if (byPartition === undefined) marks.set(t, (byPartition = new Map()));
      mark = byPartition.get(p);
      if (mark === undefined) byPartition.set(p, (mark = { stored: state.position(t, p), last: undefined }));
    }
    const offset = changes.offset[i]!;
    if (mark.stored !== undefined && offsetBefore(offset, mark.stored)) continue;
    if (mark.last !== undefined && !offsetBefore(mark.last, offset)) continue;
    mark.last = offset;
    accepted.push(i);
  }
  const reached: PartitionPosition[] = [];
  for (const [t, byPartition] of marks)
    for (const [p, m] of byPartition)
      if (m.last !== undefined)
        reached.push({ topic: t, partition: p, next: (BigInt(m.last) + 1n).toString() });
  return { accepted, reached };
}

/** Step 4's rows, in the transitions' order: key order (resolve.ts). */
function writeRows(
  state: GenerationState,
  tx: ReturnType<typeof resolve>,
  changes: CommitInput['changes'],
): void {
  for (let i = 0; i < tx.length; i++) {
    const row = tx.after[i]!;
    if (row === null) {
      state.rows.remove(tx.table[i]!, tx.key[i]!);
      continue;
    }
    const r = tx.last[i]!;
    state.rows.put(
      tx.table[i]!,
      tx.key[i]!,
      row,
      changes.partition[r]!,
      changes.offset[r]!,
      changes.eventTime[r]!,
    );
  }
}

/**
 * Throws BatchOutOfOrderError, before anything is applied, when one of the inputs merged into `positions`
 * (in input order) continues its partition from an offset (`from`) that the partition's position (stored, or
 * reached by the inputs before it in this commit) has not reached. A merged commit that throws is retried
 * input by input (commit-queue.ts), so only the inputs past the gap are refused.
 */
export function checkContinuity(
  state: Pick<GenerationState, 'position'>,
  positions: readonly PartitionPosition[],
): void {
  let reached: Map<string, Map<number, string | undefined>> | undefined;
  for (const p of positions) {
    let byPartition = reached?.get(p.topic);
    const at = byPartition?.has(p.partition)
      ? byPartition.get(p.partition)
      : state.position(p.topic, p.partition);
    if (p.from !== undefined && (at === undefined || offsetBefore(at, p.from)))
      throw new BatchOutOfOrderError(p.topic, p.partition, p.from, at);
    if (byPartition === undefined) (reached ??= new Map()).set(p.topic, (byPartition = new Map()));
    byPartition.set(p.partition, at === undefined || offsetBefore(at, p.next) ? p.next : at);
  }
}

/** Positions only move forward: a late batch cannot move a partition back. */
export function advancePositions(state: GenerationState, positions: readonly PartitionPosition[]): void {
  for (const p of positions) {
    const stored = state.position(p.topic, p.partition);
    if (stored === undefined || offsetBefore(stored, p.next)) state.setPosition(p.topic, p.partition, p.next);
  }
}
