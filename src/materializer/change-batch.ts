/**
 * The decoded records of one commit, in columns: what the ingest builds from feed batches and the commit
 * body consumes. Columns instead of one object per record keep the hot path free of per-record wrappers
 * (the row itself is the only object a record brings), and the batch crosses to the writer thread as a
 * handful of arrays.
 */
import type { Row, Table } from '../views/source.js';
import type { TotalsValue } from '../views/totals.js';
import type { RecordOrigins } from '../views/types.js';
import type { UserInformation } from '../views/user-information.js';

/**
 * Where a partition stands: `next` is the next offset to read (last applied + 1). The same shape as the
 * feed's `PartitionPosition`, declared here so the pure core imports nothing from an adapter.
 */
export interface PartitionPosition {
  readonly topic: string;
  readonly partition: number;
  readonly next: string;
  /**
   * Where the input continues the partition, when the source handed it out before the input ahead of it was
   * applied (pipelining, src/feed/partition-feed.ts): it applies only once the partition's position reached
   * `from`, else nothing of it does (commit.ts `checkContinuity`). Absent: no such condition.
   */
  readonly from?: string;
}

/** The row value of a truncate record: every row of its table is deleted (Debezium `op: t`). */
export const TRUNCATE = 'truncate' as const;

export interface ChangeColumns {
  readonly table: Table[];
  readonly key: string[];
  /** The row after the record; null: deleted (tombstone); TRUNCATE: the whole table emptied. */
  readonly row: (Row | null | typeof TRUNCATE)[];
  readonly topic: string[];
  readonly partition: number[];
  /** Kafka offset, decimal (no sign, no leading zeros). */
  readonly offset: string[];
  /** When the change happened at the source, ms since the epoch (Kafka timestamp or CDC commit time). */
  readonly eventTime: number[];
}

/** A commit's input: its records in feed order (each partition in offset order) and the positions it reaches. */
export interface CommitInput {
  readonly changes: ChangeColumns;
  /** New next offset of each partition the records came from (valid, invalid and skipped records alike). */
  readonly positions: readonly PartitionPosition[];
}

/**
 * The records of a serving replica's commit (VIEW_TOPIC_IN, docs/view-topic.md), in columns: each is a value
 * of a replicated view as the view topic carries it, already decoded. The view is the row: no materializer.
 */
export interface ReplicaColumns {
  /** The replicated view: `user-information` (key = userId) or `totals` (key = the totals key). */
  readonly view: ReplicaView[];
  readonly key: string[];
  /** The user's view (null: the user is gone), or the totals. */
  readonly value: (UserInformation | TotalsValue | null)[];
  readonly topic: string[];
  readonly partition: number[];
  /** Offset in the view topic, decimal. */
  readonly offset: string[];
}

export type ReplicaView = 'user-information' | 'totals';

/** A replica's commit input: decoded view values and the view topic positions they reach. */
export interface ReplicaInput {
  readonly replica: ReplicaColumns;
  readonly positions: readonly PartitionPosition[];
}

/** What one commit applies: changelog records to materialize, or a replica's view values. */
export type BatchInput = CommitInput | ReplicaInput;

export const isReplicaInput = (input: BatchInput): input is ReplicaInput => 'replica' in input;

/** Records an input carries (the group commit's budget counts them). */
export const recordsOf = (input: BatchInput): number =>
  isReplicaInput(input) ? input.replica.key.length : input.changes.key.length;

export class ReplicaBatch implements ReplicaColumns {
  readonly view: ReplicaView[] = [];
  readonly key: string[] = [];
  readonly value: (UserInformation | TotalsValue | null)[] = [];
  readonly topic: string[] = [];
  readonly partition: number[] = [];
  readonly offset: string[] = [];

  get length(): number {
    return this.key.length;
  }

  push(
    view: ReplicaView,
    key: string,
    value: UserInformation | TotalsValue | null,
    topic: string,
    partition: number,
    offset: string,
  ): void {
    this.view.push(view);
    this.key.push(key);
    this.value.push(value);
    this.topic.push(topic);
    this.partition.push(partition);
    this.offset.push(offset);
  }

  /** Plain columns (structured-cloneable). */
  columns(): ReplicaColumns {
    return {
      view: this.view,
      key: this.key,
      value: this.value,
      topic: this.topic,
      partition: this.partition,
      offset: this.offset,
    };
  }
}

export class ChangeBatch implements ChangeColumns {
  readonly table: Table[];
  readonly key: string[];
  readonly row: (Row | null | typeof TRUNCATE)[];
  readonly topic: string[];
  readonly partition: number[];
  readonly offset: string[];
  readonly eventTime: number[];

  /** Empty, or going on from `from`'s records (its column arrays are taken over, not copied). */
  constructor(from?: ChangeColumns) {
    this.table = from?.table ?? [];
    this.key = from?.key ?? [];
    this.row = from?.row ?? [];
    this.topic = from?.topic ?? [];
    this.partition = from?.partition ?? [];
    this.offset = from?.offset ?? [];
    this.eventTime = from?.eventTime ?? [];
  }

  get length(): number {
    return this.key.length;
  }

  push(
    table: Table,
    key: string,
    row: Row | null | typeof TRUNCATE,
    topic: string,
    partition: number,
    offset: string,
    eventTime: number,
  ): void {
    this.table.push(table);
    this.key.push(key);
    this.row.push(row);
    this.topic.push(topic);
    this.partition.push(partition);
    this.offset.push(offset);
    this.eventTime.push(eventTime);
  }

  /** The commit input of these records, reaching `positions`. */
  input(positions: readonly PartitionPosition[]): CommitInput {
    return { changes: this.columns(), positions };
  }

  /** Plain columns (structured-cloneable). */
  columns(): ChangeColumns {
    return {
      table: this.table,
      key: this.key,
      row: this.row,
      topic: this.topic,
      partition: this.partition,
      offset: this.offset,
      eventTime: this.eventTime,
    };
  }
}

/**
 * Concatenates commit inputs in order (the group commit of several feed batches). A store is fed either
 * changelog records or view values, never both.
 */
export function concatInputs(inputs: readonly BatchInput[]): BatchInput {
  if (inputs.length === 1) return inputs[0]!;
  if (inputs.every(isReplicaInput)) return concatReplicaInputs(inputs);
  return concatChangeInputs(
    inputs.map((input) => {
      if (isReplicaInput(input)) throw new Error('a commit cannot mix changelog records and view values');
      return input;
    }),
  );
}

function concatReplicaInputs(inputs: readonly ReplicaInput[]): ReplicaInput {
  const out = new ReplicaBatch();
  const positions: PartitionPosition[] = [];
  for (const input of inputs) {
    const c = input.replica;
    for (let i = 0; i < c.key.length; i++)
      out.push(c.view[i]!, c.key[i]!, c.value[i]!, c.topic[i]!, c.partition[i]!, c.offset[i]!);
    positions.push(...input.positions);
  }
  return { replica: out.columns(), positions };
}

function concatChangeInputs(inputs: readonly CommitInput[]): CommitInput {
  if (inputs.length === 1) return inputs[0]!;
  // Column by column (Array#concat copies each whole array at once): a catch-up merges hundreds of batches
  // into one commit; 200 batches of 1,250 records took 44-91 ms so, 310-490 ms pushed record by record.
  const column = <K extends keyof ChangeColumns>(k: K): ChangeColumns[K] =>
    ([] as unknown[]).concat(...inputs.map((input) => input.changes[k])) as ChangeColumns[K];
  return {
    changes: {
      table: column('table'),
      key: column('key'),
      row: column('row'),
      topic: column('topic'),
      partition: column('partition'),
      offset: column('offset'),
      eventTime: column('eventTime'),
    },
    positions: inputs.flatMap((input) => input.positions),
  };
}

/**
 * `a < b` for Kafka offsets as decimal strings (no sign, no leading zeros): a shorter string is smaller,
 * equal lengths compare like text. No BigInt per record.
 */
export function offsetBefore(a: string, b: string): boolean {
  return a.length !== b.length ? a.length < b.length : a < b;
}

/** The origins view of plain columns. */
export function originsOf(c: ChangeColumns): RecordOrigins {
  return {
    topic: (i) => c.topic[i]!,
    partition: (i) => c.partition[i]!,
    offset: (i) => c.offset[i]!,
    eventTime: (i) => c.eventTime[i]!,
  };
}
