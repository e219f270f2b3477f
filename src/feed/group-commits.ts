/**
 * Informational offset commits to KAFKA_GROUP_ID. Positions live in the store; the group's offsets only
 * keep lag tools (kafka-consumer-groups, Burrow, managed-cluster consoles) meaningful. matview is no group
 * member: it reads every partition itself, so it commits the way the Java client does after `assign()`
 * + `commitSync()`: an OffsetCommit with generation -1 and an empty member id, which brokers accept for a
 * group without members (Kafka `GroupCoordinator.handleCommitOffsets`, "simple consumer" commits).
 *
 * Two instances given the same group id can no longer split partitions (nobody is assigned anything), but
 * their commits overwrite each other. Every commit carries this instance's id in its metadata; before
 * committing, the group's offsets are read back, and an offset this instance had committed that now names
 * another instance means two instances share the group: a warning names both, once. So does a broker that
 * refuses the commit because the group has members (an older matview, or another consumer, uses it).
 */
import { hostname } from 'node:os';
import { GroupSharedError } from '../errors.js';
import type { Logger } from '../ops/logger.js';
import { describeKafkaError } from './kafka-errors.js';
import type { KafkajsCluster } from './kafkajs-internals.js';

/** What a commit's metadata says (JSON, a few dozen bytes: brokers keep up to 4 KiB, `offset.metadata.max.bytes`). */
export interface CommitMetadata {
  readonly matview: string;
  readonly host: string;
}

export const commitMetadata = (instanceId: string): string =>
  JSON.stringify({ matview: instanceId, host: hostname() } satisfies CommitMetadata);

/** The instance a commit's metadata names, or undefined when it was not written by matview. */
export function parseCommitMetadata(metadata: string | null | undefined): CommitMetadata | undefined {
  if (metadata === null || metadata === undefined || !metadata.startsWith('{')) return undefined;
  try {
    const m = JSON.parse(metadata) as Partial<CommitMetadata>;
    return typeof m.matview === 'string' ? { matview: m.matview, host: String(m.host ?? '?') } : undefined;
  } catch {
    return undefined;
  }
}

/** Protocol errors of a commit that mean the group has members of a group protocol (it is not ours alone). */
const GROUP_IN_USE = new Set(['UNKNOWN_MEMBER_ID', 'ILLEGAL_GENERATION', 'REBALANCE_IN_PROGRESS']);

export interface GroupCommitterOptions {
  readonly cluster: KafkajsCluster;
  readonly groupId: string;
  readonly instanceId: string;
  /** Shortest interval between commits; 0: after every batch. */
  readonly intervalMs: number;
  readonly logger: Logger;
}

interface Position {
  readonly topic: string;
  readonly partition: number;
  readonly next: string;
}

const key = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

export class GroupCommitter {
  private readonly owed = new Map<string, Position>();
  /** What this instance committed last, per partition. */
  private readonly committed = new Map<string, string>();
  private lastCommitAt = 0;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private warned = false;
  private readonly metadata: string;
  private readonly log: Logger;

  constructor(private readonly options: GroupCommitterOptions) {
    this.metadata = commitMetadata(options.instanceId);
    this.log = options.logger.child({ component: 'group-commits', groupId: options.groupId });
  }

  /**
   * A batch of `topic`/`partition` was applied up to `next`. Commits at once when the last commit is older
   * than the interval, else a timer commits the newest positions when the interval is over.
   */
  offer(topic: string, partition: number, next: string): void {
    if (this.stopped) return;
    this.owed.set(key(topic, partition), { topic, partition, next });
    if (this.running !== undefined || this.timer !== undefined) return;
    const wait = this.lastCommitAt + this.options.intervalMs - Date.now();
    if (wait <= 0) {
      void this.commit();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.commit();
    }, wait);
    this.timer.unref();
  }

  /** Commits what is owed (waiting at most `timeoutMs`) and stops. Never throws: the commits are informational. */
  async flush(timeoutMs: number): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    let timer: NodeJS.Timeout | undefined;
    const done = (async () => {
      await this.running;
      if (this.owed.size > 0) await this.commit();
    })();
    await Promise.race([done, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  private commit(): Promise<void> {
    this.running ??= this.commitOwed().finally(() => {
      this.running = undefined;
      // Batches applied during the commit wait for the next interval.
      if (this.owed.size > 0 && !this.stopped && this.timer === undefined) {
        const wait = Math.max(0, this.lastCommitAt + this.options.intervalMs - Date.now());
        this.timer = setTimeout(() => {
          this.timer = undefined;
          void this.commit();
        }, wait);
        this.timer.unref();
      }
    });
    return this.running;
  }

  private async commitOwed(): Promise<void> {
    const positions = [...this.owed.values()];
    this.owed.clear();
    this.lastCommitAt = Date.now();
    const { groupId } = this.options;
    const byTopic = new Map<string, Position[]>();
    for (const p of positions) {
      let list = byTopic.get(p.topic);
      if (list === undefined) byTopic.set(p.topic, (list = []));
      list.push(p);
    }
    try {
      const coordinator = await this.options.cluster.findGroupCoordinator({ groupId });
      if (!this.warned) await this.checkShared(coordinator, byTopic);
      await coordinator.offsetCommit({
        groupId,
        groupGenerationId: -1,
        memberId: '',
        topics: [...byTopic].map(([topic, list]) => ({
          topic,
          partitions: list.map((p) => ({ partition: p.partition, offset: p.next, metadata: this.metadata })),
        })),
      });
      for (const p of positions) this.committed.set(key(p.topic, p.partition), p.next);
    } catch (error) {
      // Owed again, unless something newer is owed already.
      for (const p of positions) {
        const k = key(p.topic, p.partition);
        if (!this.owed.has(k)) this.owed.set(k, p);
      }
      const type = (error as { type?: unknown }).type;
      if (typeof type === 'string' && GROUP_IN_USE.has(type) && !this.warned) {
        this.warned = true;
        const err = new GroupSharedError(
          `KAFKA_GROUP_ID "${groupId}" has active members (another consumer, or an older matview, uses it as a consumer group), ` +
            `so the broker refuses this instance's informational offset commits (${type}). Nothing is lost or split: ` +
            'positions live in the store. Give every matview instance its own KAFKA_GROUP_ID (the default, matview-<instanceId>, is)',
        );
        this.log.warn({ err, groupId }, err.message);
        return;
      }
      this.log.debug({ err: error, reason: describeKafkaError(error) }, 'informational offset commit failed');
    }
  }

  /** Reads the group's offsets back and warns once if another instance overwrote one of this instance's commits. */
  private async checkShared(
    coordinator: Awaited<ReturnType<KafkajsCluster['findGroupCoordinator']>>,
    byTopic: ReadonlyMap<string, readonly Position[]>,
  ): Promise<void> {
    const mine = [...byTopic].map(([topic, list]) => ({
      topic,
      partitions: list
        .filter((p) => this.committed.has(key(topic, p.partition)))
        .map((p) => ({ partition: p.partition })),
    }));
    const topics = mine.filter((t) => t.partitions.length > 0);
    if (topics.length === 0) return;
    // kafkajs' published type wants offsets in the request; OffsetFetch only takes the partitions.
    const request = { groupId: this.options.groupId, topics } as unknown as Parameters<
      typeof coordinator.offsetFetch
    >[0];
    const { responses } = (await coordinator.offsetFetch(request)) as unknown as {
      responses: { topic: string; partitions: { partition: number; metadata?: string | null }[] }[];
    };
    for (const { topic, partitions } of responses) {
      for (const p of partitions) {
        const other = parseCommitMetadata(p.metadata);
        if (other === undefined || other.matview === this.options.instanceId) continue;
        this.warned = true;
        const err = new GroupSharedError(
          `Another matview instance (${other.matview} on ${other.host}) commits offsets to KAFKA_GROUP_ID "${this.options.groupId}" ` +
            `as this one (${this.options.instanceId} on ${hostname()}) does: it overwrote this instance's offset of ${topic}[${p.partition}]. ` +
            'Each instance reads every partition itself, so nothing is split or lost, but the group offsets that lag tools show ' +
            'flip between the two. Give each instance its own KAFKA_GROUP_ID (or leave it unset: matview-<instanceId>)',
        );
        this.log.warn({ err, groupId: this.options.groupId, other: other.matview }, err.message);
        return;
      }
    }
  }
}
