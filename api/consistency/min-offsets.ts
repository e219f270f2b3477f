/**
 * Read-your-writes (issue 18, point 3): a request may carry the offsets its writer's producer got back,
 *
 *   "extensions": { "minOffsets": { "<topic>": { "<partition>": "<offset>" } } }
 *
 * and is answered only once the view has applied every one of those records (the stored next offset of the
 * partition is past it), or, after `MIN_OFFSETS_TIMEOUT_MS`, refused with NOT_YET_APPLIED. A kafkajs producer's
 * `send` resolves to `[{ topicName, partition, baseOffset }]`: `baseOffset` is the offset of the first record
 * of that send; pass the offset of the LAST record of the send (`baseOffset + records - 1`) or, simpler, just
 * `baseOffset` of each send when it held one record.
 *
 * Waiting costs nothing while no request waits: the gate listens to store commits only while it has waiters,
 * and each commit checks every waiter against one read of the stored positions (never a polling loop).
 * Positions are read from the same memory map as the data, so once they say applied, so does every read.
 */
import type { PartitionPosition } from '../../src/feed/types.js';
import type { ViewReader } from '../../src/store/types.js';

/** The highest offset that must be applied, per `topic\u0000partition`. */
export type RequiredOffsets = ReadonlyMap<string, bigint>;

/** Something that calls back after each store commit (`LmdbStore.onCommit`); returns the unsubscribe. */
export interface CommitSource {
  onCommit(listener: () => void): () => void;
}

/** Most topic-partitions one request may name: enough for any real write, bounded work per commit. */
export const MAX_MIN_OFFSETS = 1024;

const key = (topic: string, partition: number): string => `${topic}\u0000${partition}`;
const OFFSET = /^\d{1,19}$/;
const PARTITION = /^\d{1,10}$/;

/** What a request waits for, and whether it got it. */
export interface MinOffsetsGate {
  /**
   * `extensions.minOffsets` of a request, checked: the required offsets (undefined when there is no such
   * extension), or a message saying what is wrong with it.
   */
  parse(extensions: unknown): RequiredOffsets | undefined | { readonly error: string };
  /** True when every required record is applied now. */
  applied(required: RequiredOffsets): boolean;
  /** Resolves with true once every required record is applied, false when the timeout passes first. */
  wait(required: RequiredOffsets): Promise<boolean>;
  /** A readable line naming the first partition still behind (for the NOT_YET_APPLIED message). */
  describeBehind(required: RequiredOffsets): string;
  /** The configured timeout, for messages. */
  readonly timeoutMs: number;
  /** Requests waiting right now (tests, diagnostics). */
  pending(): number;
}

export interface MinOffsetsOptions {
  readonly reader: Pick<ViewReader, 'positions'>;
  /** Wakes waiting requests; without it a request waits until its offsets are applied or its timeout. */
  readonly commits: CommitSource | undefined;
  /** Source topics this server consumes: naming another is a mistake reported at once, not a wait. */
  readonly topics: readonly string[];
  /** `MIN_OFFSETS_TIMEOUT_MS`. */
  readonly timeoutMs: number;
}

interface Waiter {
  readonly required: RequiredOffsets;
  readonly resolve: (applied: boolean) => void;
  readonly timer: NodeJS.Timeout;
}

export function createMinOffsetsGate(options: MinOffsetsOptions): MinOffsetsGate {
  const { reader, commits, timeoutMs } = options;
  const topics = new Set(options.topics);
  const waiters = new Set<Waiter>();
  let unsubscribe: (() => void) | undefined;

  const positions = (): Map<string, bigint> => {
    const out = new Map<string, bigint>();
    for (const p of reader.positions() as readonly PartitionPosition[])
      out.set(key(p.topic, p.partition), BigInt(p.next));
    return out;
  };
  const satisfied = (required: RequiredOffsets, at: ReadonlyMap<string, bigint>): boolean => {
    for (const [k, offset] of required) {
      const next = at.get(k);
      if (next === undefined || next <= offset) return false;
    }
    return true;
  };
  const release = (waiter: Waiter, applied: boolean): void => {
    clearTimeout(waiter.timer);
    waiters.delete(waiter);
    if (waiters.size === 0) {
      unsubscribe?.();
      unsubscribe = undefined;
    }
    waiter.resolve(applied);
  };
  const onCommit = (): void => {
    const at = positions();
    for (const waiter of [...waiters]) if (satisfied(waiter.required, at)) release(waiter, true);
  };

  return {
    timeoutMs,
    pending: () => waiters.size,
    parse(extensions) {
      if (typeof extensions !== 'object' || extensions === null) return undefined;
      const value = (extensions as Record<string, unknown>)['minOffsets'];
      if (value === undefined || value === null) return undefined;
      if (typeof value !== 'object' || Array.isArray(value))
        return {
          error: 'extensions.minOffsets must be an object: { "<topic>": { "<partition>": "<offset>" } }.',
        };
      const required = new Map<string, bigint>();
      for (const [topic, partitions] of Object.entries(value as Record<string, unknown>)) {
        if (!topics.has(topic))
          return {
            error: `extensions.minOffsets names topic ${JSON.stringify(topic)}, which this server does not consume (it reads ${[...topics].join(', ')}).`,
          };
        if (typeof partitions !== 'object' || partitions === null || Array.isArray(partitions))
          return {
            error: `extensions.minOffsets.${topic} must be an object: { "<partition>": "<offset>" }.`,
          };
        for (const [partition, offset] of Object.entries(partitions as Record<string, unknown>)) {
          const text = typeof offset === 'number' && Number.isSafeInteger(offset) ? String(offset) : offset;
          if (!PARTITION.test(partition) || typeof text !== 'string' || !OFFSET.test(text))
            return {
              error: `extensions.minOffsets.${topic}: partition ${JSON.stringify(partition)} with offset ${JSON.stringify(offset)} is not a partition number with a non-negative offset (a decimal string).`,
            };
          const k = key(topic, Number(partition));
          const previous = required.get(k);
          const wanted = BigInt(text);
          if (previous === undefined || wanted > previous) required.set(k, wanted);
          if (required.size > MAX_MIN_OFFSETS)
            return { error: `extensions.minOffsets names more than ${MAX_MIN_OFFSETS} partitions.` };
        }
      }
      return required;
    },
    applied: (required) => required.size === 0 || satisfied(required, positions()),
    wait(required) {
      if (required.size === 0 || satisfied(required, positions())) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const waiter: Waiter = {
          required,
          resolve,
          timer: setTimeout(() => release(waiter, false), timeoutMs),
        };
        waiters.add(waiter);
        unsubscribe ??= commits?.onCommit(onCommit);
      });
    },
    describeBehind(required) {
      const at = positions();
      for (const [k, offset] of required) {
        const next = at.get(k);
        if (next !== undefined && next > offset) continue;
        const [topic = '', partition = ''] = k.split('\u0000');
        const where =
          next === undefined
            ? 'nothing of that partition is applied yet'
            : `the next offset to apply is ${next}`;
        return `${topic}/${partition} offset ${offset} is not applied yet (${where})`;
      }
      return 'every offset is applied';
    },
  };
}

/** Merges the requirements of several operations (a batch): the highest offset per partition. */
export function mergeRequired(all: readonly RequiredOffsets[]): RequiredOffsets {
  const out = new Map<string, bigint>();
  for (const required of all)
    for (const [k, offset] of required) {
      const previous = out.get(k);
      if (previous === undefined || offset > previous) out.set(k, offset);
    }
  return out;
}
