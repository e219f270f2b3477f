/**
 * The write side shared by both threads: the body of a commit's LMDB transaction, and the store's meta
 * records it reads there (the sequence, the active generation, each generation's info).
 *
 * Meta keys: `instanceId`, `sequence` (commit counter shared by all generations, so it only grows across
 * swaps), `activeGeneration`, `shadowGeneration`, `retiringGeneration` (the generation a swap replaced, until
 * the swap is reconciled: versions.ts), `nextGeneration`, `generation:<id>` (GenerationInfo),
 * `owner` (the serving process); `rebuildRequested` only in stores where an earlier `matview rebuild` set it
 * (requests.ts: a file now).
 */
import type { Database, RootDatabase } from 'lmdb';
import { StoreWriteError } from '../errors.js';
import { batchError } from './environment.js';
import { concatInputs, isReplicaInput, recordsOf, type BatchInput } from '../materializer/change-batch.js';
import { commitBatch, heldViews, type CommitPlan } from '../materializer/commit.js';
import { commitReplica, replicaSequence } from '../materializer/replicate.js';
import type { Registry } from '../views/registry.js';
import { USER_INFORMATION } from '../views/user-information.js';
import { Generation, type GenerationInfo } from './generation.js';
import { writeOutbox, type Outbox, type OutboxEntry } from './outbox.js';
import { writeViewOutbox, type ViewOutbox } from './published.js';
import { mergePackedChanges, sameFields, unpackChanges, type PackedCommitInput } from './packed-changes.js';
import type { UserInformation } from '../views/user-information.js';
import { atomicTransaction } from '../lmdb-transaction.js';
import { withKnownRows, type KnownRows } from './row-key-filter.js';

/**
 * What the store commits: changelog records (or a replica's view values) with their positions, and the dead
 * letters of the invalid records passed.
 */
export type StoreInput = BatchInput & {
  /**
   * DLQ copies of the invalid records before the input's new positions: stored in the outbox in the same
   * transaction as those positions (outbox.ts).
   */
  readonly deadLetters?: readonly OutboxEntry[];
};

/** A changelog input with its records packed (packed-changes.ts), as it crosses to the writer thread. */
export type PackedStoreInput = PackedCommitInput & Pick<StoreInput, 'deadLetters'>;

/** An input as the caller built it: a packed one's records unpacked, any other as it is. */
export function plainStoreInput(input: StoreInput | PackedStoreInput): StoreInput {
  if (!('packed' in input)) return input;
  const { packed, ...rest } = input;
  return { ...rest, changes: unpackChanges(packed) };
}

/**
 * Several inputs as one, in order (the group commit), packed when every one of them is, with the same fields
 * (packed-changes.ts `mergePackedChanges`: the merged records are unpacked once, by the commit), else as
 * plain columns.
 */
export function mergeMaybePacked(
  inputs: readonly (StoreInput | PackedStoreInput)[],
): StoreInput | PackedStoreInput {
  const first = inputs[0];
  const packedAlike = (i: StoreInput | PackedStoreInput): i is PackedStoreInput =>
    'packed' in i && first !== undefined && 'packed' in first && sameFields(i.packed, first.packed);
  if (!inputs.every(packedAlike)) return mergeInputs(inputs.map(plainStoreInput));
  const deadLetters = inputs.flatMap((i) => i.deadLetters ?? []);
  const merged: PackedStoreInput = {
    packed: mergePackedChanges(inputs.map((i) => i.packed)),
    positions: inputs.flatMap((i) => i.positions),
  };
  return deadLetters.length === 0 ? merged : { ...merged, deadLetters };
}

/** Several inputs as one, in order (the group commit). A store is fed one kind of input, never both. */
export function mergeInputs(inputs: readonly StoreInput[]): StoreInput {
  const merged = concatInputs(inputs);
  const deadLetters = inputs.flatMap((i) => i.deadLetters ?? []);
  return deadLetters.length === 0 ? merged : { ...merged, deadLetters };
}

export const genKey = (id: number): string => `generation:${id}`;

/**
 * Meta key: the last commit that may have removed a user's view from what readers see (a users row deleted, a
 * replica's tombstone, a swap, a view rebuild). A user without a view has been without it since that commit
 * at the latest, which is what resuming a subscription with `after` needs (src/live/hub.ts, point 5): the
 * store keeps no per-user trace of a view that went away.
 */
export const USER_VIEWS_REMOVED_KEY = 'userViewsRemoved';

/** A generation's record in meta, or undefined when there is none (or it is from another store format). */
export function readGenerationInfo(meta: Database<string, string>, id: number): GenerationInfo | undefined {
  const raw = meta.get(genKey(id));
  return raw === undefined ? undefined : (JSON.parse(raw) as GenerationInfo);
}

/** The id of the generation readers see, as committed (read inside a write transaction: where swaps serialize). */
export const committedActiveGeneration = (meta: Database<string, string>): number =>
  Number(meta.get('activeGeneration') ?? '0');

/** What one commit wrote, as the caller publishes it. Structured-cloneable (it crosses from the writer thread). */
export interface WrittenCommit {
  readonly sequence: bigint;
  /** ms since the epoch. */
  readonly appliedAt: number;
  /** The generation written to. */
  readonly generation: number;
  /** True when that generation was the active one (readers and subscribers see the commit). */
  readonly visible: boolean;
  /**
   * Per view, what changed (the commit event). From the writer thread, only for a visible commit (nothing
   * publishes the others), with the user views packed (packed-views.ts).
   */
  readonly events: Map<string, ReadonlyMap<string, unknown>>;
  /** Users whose view changed. */
  readonly changed: number;
  /** Records applied, skipped as already applied, and applied without changing a row. */
  readonly accepted: number;
  readonly skipped: number;
  readonly noops: number;
  /** Feed batches merged into this commit. */
  readonly batches: number;
  /**
   * How long the commit took where it ran (the writer thread, or the event loop with it off), from its start
   * to durable: waiting for LMDB's write lock, the commit body, and LMDB's own commit. A rebuild's buffered
   * commit: waiting for a write of its chunk in progress, and applying it to the chunk (shadow-chunks.ts),
   * which is written later.
   */
  readonly seconds: number;
}

/** A commit as its body reports it: `commitOrBuffer` (shadow-chunks.ts) times it. */
export type CommitBody = Omit<WrittenCommit, 'seconds'>;

/** The store's two outboxes: dead letters (outbox.ts) and, while it publishes a view topic, view changes. */
export interface Outboxes {
  readonly deadLetters: Outbox;
  readonly views: ViewOutbox;
}

/** What commits write through: the writer thread and the store (its writer thread off) each hold one. */
export interface CommitContext {
  readonly env: RootDatabase;
  readonly meta: Database<string, string>;
  readonly outboxes: Outboxes;
  readonly handles: GenerationHandles;
  readonly plan: CommitPlan;
  /** The filters of the row keys its generations hold, where they are known (row-key-filter.ts). */
  readonly knownRows: KnownRows;
}

/**
 * One commit (`writeCommit`) in its own write transaction. Rejects with `batchError`'s error, read here: a
 * failed merged commit is retried batch by batch, and every failed attempt's failure must be read.
 */
export async function commitInTransaction(
  c: CommitContext,
  input: StoreInput,
  target: 'active' | number,
  batches: number,
): Promise<CommitBody> {
  let result: CommitBody | undefined;
  try {
    await atomicTransaction(c.env, () => {
      result = writeCommit(c.meta, c.outboxes, c.handles, c.plan, input, target, batches, c.knownRows);
    });
  } catch (e) {
    throw await batchError(e);
  }
  if (result === undefined) throw new StoreWriteError('LMDB transaction did not run');
  return result;
}

/**
 * The body of a commit's write transaction: the commit body on `generation` (changelog records through the
 * materializer, or a replica's view values as they are), the dead letters into their outbox, the changed
 * users into the view outbox when the store publishes a view topic (published.ts), then the next
 * sequence. A replica's commit takes a sequence at least as high as every view version it applies
 * (replicate.ts), so the live hub's ordering by commit sequence holds with the materializer's versions.
 * `target` is resolved here, inside the transaction, where commits serialize with a swap on the main thread:
 * a rebuild's commit into a generation that is active by now writes nothing (`lateRebuildCommit`).
 * `knownRows`: the committing context's filters of its generations' row keys; rows a filter rules out are
 * not looked up.
 */
export function writeCommit(
  meta: Database<string, string>,
  outboxes: Outboxes,
  handles: GenerationHandles,
  plan: CommitPlan,
  input: StoreInput,
  target: 'active' | number,
  batches: number,
  knownRows?: KnownRows,
): CommitBody {
  const active = committedActiveGeneration(meta);
  const into = target === 'active' ? active : target;
  if (target !== 'active' && into === active) return lateRebuildCommit(meta, into, input, batches);
  const generation = handles.get(into);
  const visible = into === active;
  const appliedAt = Date.now();
  const previous = BigInt(meta.get('sequence') ?? '0');
  let sequence: bigint;
  let outcome: ReturnType<typeof commitBatch>;
  if (isReplicaInput(input)) {
    sequence = replicaSequence(previous, input.replica);
    outcome = commitReplica(generation, plan, input, sequence, appliedAt);
  } else {
    sequence = previous + 1n;
    const known = knownRows?.of(generation.id, generation.rows);
    const state = known === undefined ? generation : withKnownRows(generation, known);
    outcome = commitBatch(state, heldViews(plan, generation.info.views), input, sequence, appliedAt);
  }
  if (input.deadLetters !== undefined && input.deadLetters.length > 0)
    writeOutbox(outboxes.deadLetters, sequence, input.deadLetters);
  if (visible)
    writeViewOutbox(
      meta,
      outboxes.views,
      sequence,
      outcome.events.get(USER_INFORMATION) as ReadonlyMap<string, UserInformation | null> | undefined,
    );
  meta.put('sequence', sequence.toString());
  if (visible && removesUserView(outcome.events)) meta.put(USER_VIEWS_REMOVED_KEY, sequence.toString());
  return {
    sequence,
    appliedAt,
    generation: generation.id,
    visible,
    events: outcome.events,
    changed: outcome.events.get(USER_INFORMATION)?.size ?? 0,
    accepted: outcome.accepted,
    skipped: outcome.skipped,
    noops: outcome.noops,
    batches,
  };
}

/**
 * What a commit for generation `into` writes when its rebuild asked for it (the target named `into`) but `into`
 * is the active generation by now: nothing. The swap came while the batch was on its way; the live feed
 * applies those records (they are past `into`'s stored positions, which the swap left where the rebuild had
 * them). So between a swap and the release of the live feed, which the swap holds, nothing commits at all:
 * what the view topic's capture reads there is exactly the view the swap made (src/sink/view-topic-out.ts).
 */
export function lateRebuildCommit(
  meta: Database<string, string>,
  into: number,
  input: StoreInput,
  batches: number,
): CommitBody {
  return {
    sequence: BigInt(meta.get('sequence') ?? '0'),
    appliedAt: Date.now(),
    generation: into,
    visible: false,
    events: new Map(),
    changed: 0,
    accepted: 0,
    skipped: recordsOf(input),
    noops: 0,
    batches,
  };
}

/** Whether a commit's events take any user's view away (null: gone). */
function removesUserView(events: ReadonlyMap<string, ReadonlyMap<string, unknown>>): boolean {
  const users = events.get(USER_INFORMATION);
  if (users === undefined) return false;
  for (const value of users.values()) if (value === null) return true;
  return false;
}

/** Generation handles by id, opened on first use (ids are never reused, so a handle never goes stale). */
export class GenerationHandles {
  private readonly open = new Map<number, Generation>();
  constructor(
    private readonly env: RootDatabase,
    private readonly meta: Database<string, string>,
    private readonly registry: Registry,
  ) {}

  get(id: number): Generation {
    let g = this.open.get(id);
    const info = readGenerationInfo(this.meta, id);
    if (info === undefined) throw new Error(`the store has no generation ${id}`);
    if (g === undefined) this.open.set(id, (g = new Generation(this.env, info, this.registry)));
    // A view rebuilt (or a swap) since it was opened: the record in meta is the truth.
    else g.info = info;
    return g;
  }
}
