/**
 * Issue 19, the replica's commit body (src/materializer/replicate.ts): a materializer's commit events,
 * written as view topic records (src/views/view-record.ts) and read back, rebuild on a replica exactly what the
 * materializer serves: every user's view with its version (and in it the user's counts), the rankings and
 * the totals, whatever the delivery does (partitions interleaved, batches merged, records delivered
 * twice, values repeated after a producer's crash).
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { ReplicaBatch, type ReplicaInput } from '../../src/materializer/change-batch.js';
import { commitBatch, commitPlan } from '../../src/materializer/commit.js';
import { MemoryState } from '../../src/materializer/memory-state.js';
import { checkReplicable, commitReplica, replicaSequence } from '../../src/materializer/replicate.js';
import { decodeRecord } from '../../src/views/decode.js';
import { createRegistry } from '../../src/views/registry.js';
import { TOTALS, TOTALS_KEY, type TotalsValue } from '../../src/views/totals.js';
import type { IndexSpace, ViewModule } from '../../src/views/types.js';
import {
  USER_INFORMATION,
  ZERO_COUNTS,
  type Counts,
  type UserInformation,
} from '../../src/views/user-information.js';
import {
  STATUS_VIEW,
  VIEW_HEADER,
  decodeViewRecord,
  encodeStatusValue,
  encodeUserValue,
} from '../../src/views/view-record.js';
import { changeStream } from '../faults/support/workload.js';
import { makeUser } from '../utils/testkit.js';
import { commitInput, type TestRecord } from '../utils/changes.js';

const registry = createRegistry();
const plan = commitPlan(registry);
const TOPIC = 'user-information';
const PARTITIONS = 3;

interface TopicRecord {
  key: Buffer;
  value: Buffer | null;
  headers: Record<string, Buffer>;
  partition: number;
  offset: number;
}

/** Materializes a random changelog commit by commit and writes every change as a view topic record. */
function materializeAndPublish(seed: number): { source: MemoryState; topic: TopicRecord[] } {
  const random = prng(seed);
  const next = changeStream(seed, 6 + Math.floor(random() * 10));
  const source = new MemoryState(registry);
  const topic: TopicRecord[] = [];
  const offsets = [0, 0, 0];
  const emit = (key: string, value: string | null, headers: Record<string, Buffer> = {}) => {
    const partition = key === '' ? 0 : [...key].reduce((h, ch) => h * 31 + ch.charCodeAt(0), 7) % PARTITIONS;
    topic.push({
      key: Buffer.from(key),
      value: value === null ? null : Buffer.from(value),
      headers,
      partition,
      offset: offsets[partition]!++,
    });
  };
  let offset = 0;
  let sequence = 0n;
  const commits = 10 + Math.floor(random() * 30);
  for (let c = 0; c < commits; c++) {
    const records: TestRecord[] = [];
    for (let n = 1 + Math.floor(random() * 12); n > 0; n--) {
      const r = next();
      const decoded = decodeRecord(
        r.table,
        Buffer.from(r.key),
        r.value === null ? null : Buffer.from(r.value),
      );
      if (!decoded.ok) throw new Error(decoded.message);
      records.push({ table: r.table, key: r.key, row: decoded.row, topic: r.table, offset: offset++ });
    }
    sequence++;
    const outcome = commitBatch(source, plan, commitInput(records), sequence, 1_700_000_000_000 + c);
    const users = outcome.events.get(USER_INFORMATION) as Map<string, UserInformation | null> | undefined;
    for (const [userId, view] of users ?? []) emit(userId, view === null ? null : encodeUserValue(view));
    const totals = outcome.events.get(TOTALS)?.get(TOTALS_KEY) as TotalsValue | undefined;
    if (totals !== undefined)
      emit(
        '',
        encodeStatusValue({
          producer: {
            id: 'p',
            at: new Date().toISOString(),
            ready: true,
            lag: '0',
            sequence: String(sequence),
          },
          totals,
        }),
        { [VIEW_HEADER]: Buffer.from(STATUS_VIEW) },
      );
    // After a producer's crash it repeats values it may have published already.
    if (random() < 0.2 && topic.length > 0) {
      const again = topic[Math.floor(random() * topic.length)]!;
      const latest = [...topic].reverse().find((t) => t.key.equals(again.key))!;
      emit(latest.key.toString(), latest.value?.toString() ?? null, latest.headers);
    }
  }
  return { source, topic };
}

/** Decodes topic records into a replica's commit input (positions: each partition past its last record). */
function replicaInput(records: readonly TopicRecord[]): ReplicaInput {
  const batch = new ReplicaBatch();
  const reached = new Map<number, number>();
  for (const r of records) {
    const d = decodeViewRecord(r.key, r.value, r.headers, {
      topic: TOPIC,
      partition: r.partition,
      offset: String(r.offset),
      timestamp: 0,
    });
    if (!d.ok) throw new Error(d.message);
    if (d.kind === 'user')
      batch.push('user-information', d.userId, d.view, TOPIC, r.partition, String(r.offset));
    else if (d.kind === 'status' && d.status.totals !== null)
      batch.push('totals', TOTALS_KEY, d.status.totals, TOPIC, r.partition, String(r.offset));
    reached.set(r.partition, Math.max(reached.get(r.partition) ?? 0, r.offset + 1));
  }
  return {
    replica: batch.columns(),
    positions: [...reached].map(([partition, next]) => ({ topic: TOPIC, partition, next: String(next) })),
  };
}

/** Deliveries: partitions interleaved at random, each in order, in random-size batches, some delivered twice. */
function deliveries(topic: readonly TopicRecord[], random: () => number): TopicRecord[][] {
  const queues = [0, 1, 2].map((p) => topic.filter((t) => t.partition === p));
  const batches: TopicRecord[][] = [];
  while (queues.some((q) => q.length > 0)) {
    const q = queues.filter((x) => x.length > 0)[
      Math.floor(random() * queues.filter((x) => x.length > 0).length)
    ]!;
    const batch = q.splice(0, 1 + Math.floor(random() * 4));
    batches.push(batch);
    if (random() < 0.2) batches.push(batches[Math.floor(random() * batches.length)]!);
  }
  return batches;
}

const sorted = <V>(m: Map<string, V>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));

describe('the replica commit body', () => {
  it('should serve what the materializer serves after every delivery of its view topic (200 seeds)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const { source, topic } = materializeAndPublish(seed);
      const replica = new MemoryState(registry);
      const random = prng(seed * 7);
      let sequence = 0n;
      for (const batch of deliveries(topic, random)) {
        const input = replicaInput(batch);
        sequence = replicaSequence(sequence, input.replica);
        commitReplica(replica, plan, input, sequence, 1_700_000_000_000);
      }
      const at = `seed ${seed}`;
      expect(sorted(replica.kv(USER_INFORMATION, 'views')), at).toEqual(
        sorted(source.kv(USER_INFORMATION, 'views')),
      );
      // The counts space holds those of users without a users row, which are not in the topic: a replica
      // holds none (the others are in the views).
      expect(replica.kv(USER_INFORMATION, 'counts').size, at).toBe(0);
      expect([...(replica.views.get('top-users')!['rank'] as IndexSpace).all()], at).toEqual([
        ...(source.views.get('top-users')!['rank'] as IndexSpace).all(),
      ]);
      expect(replica.kv(TOTALS, 'totals').get(TOTALS_KEY), at).toEqual(
        source.kv(TOTALS, 'totals').get(TOTALS_KEY),
      );
    }
  });

  /** User `userId` (a number) with the given sequence and counts (zero unless given). */
  const user = (userId: string, sequence: number, counts: Partial<Counts> = {}): UserInformation => {
    const base = makeUser(Number(userId), undefined, { ...ZERO_COUNTS, ...counts });
    return { ...base, version: { ...base.version, sequence: String(sequence) } };
  };
  const input = (entries: [string, UserInformation | null][], first: number, partition = 0): ReplicaInput => {
    const batch = new ReplicaBatch();
    entries.forEach(([id, v], i) =>
      batch.push('user-information', id, v, TOPIC, partition, String(first + i)),
    );
    return {
      replica: batch.columns(),
      positions: [{ topic: TOPIC, partition, next: String(first + entries.length) }],
    };
  };

  it('should store the view with the version it came with, and tell subscribers and the rankings', () => {
    const state = new MemoryState(registry);
    const out = commitReplica(state, plan, input([['1', user('1', 500, { followerCount: 3 })]], 0), 501n, 0);
    expect(state.kv<UserInformation>(USER_INFORMATION, 'views').get('1')?.version.sequence).toBe('500');
    expect(state.kv<UserInformation>(USER_INFORMATION, 'views').get('1')?.followerCount).toBe(3);
    expect(state.kv(USER_INFORMATION, 'counts').size).toBe(0);
    expect([...out.events.keys()]).toEqual([USER_INFORMATION, 'top-users']);
    expect(out.events.get('top-users')?.get('FOLLOWERS')).toEqual(['1']);
  });

  it('should write nothing and notify nobody for a repeated value, and apply a tombstone once', () => {
    const state = new MemoryState(registry);
    commitReplica(state, plan, input([['1', user('1', 7)]], 0), 7n, 0);
    const repeat = commitReplica(state, plan, input([['1', user('1', 7)]], 1), 8n, 0);
    expect({ events: repeat.events.size, noops: repeat.noops }).toEqual({ events: 0, noops: 1 });
    const gone = commitReplica(state, plan, input([['1', null]], 2), 9n, 0);
    expect(gone.events.get(USER_INFORMATION)).toEqual(new Map([['1', null]]));
    expect(state.kv(USER_INFORMATION, 'views').has('1')).toBe(false);
    expect(state.kv(USER_INFORMATION, 'counts').has('1')).toBe(false);
    const again = commitReplica(state, plan, input([['1', null]], 3), 10n, 0);
    expect(again.events.size).toBe(0);
  });

  it('should skip records at or below the stored position of their partition', () => {
    const state = new MemoryState(registry);
    commitReplica(
      state,
      plan,
      input(
        [
          ['1', user('1', 1)],
          ['2', user('2', 2)],
        ],
        0,
      ),
      2n,
      0,
    );
    const replay = commitReplica(
      state,
      plan,
      input(
        [
          ['1', null],
          ['3', user('3', 3)],
        ],
        1,
      ),
      3n,
      0,
    );
    expect({ accepted: replay.accepted, skipped: replay.skipped }).toEqual({ accepted: 1, skipped: 1 });
    expect(state.kv(USER_INFORMATION, 'views').has('1')).toBe(true);
    expect(state.position(TOPIC, 0)).toBe('3');
  });

  it('should take a commit sequence at least as high as every version it applies', () => {
    const columns = input(
      [
        ['1', user('1', 90)],
        ['2', null],
        ['3', user('3', 40)],
      ],
      0,
    ).replica;
    expect(replicaSequence(10n, columns)).toBe(90n);
    expect(replicaSequence(100n, columns)).toBe(101n);
  });

  it('should refuse a registered view that reads source rows, which a replica does not have', () => {
    const reader: ViewModule = {
      name: 'reads-rows',
      version: 1,
      reads: { tweets: ['userId'] },
      dependsOn: [],
      spaces: {},
      apply: () => ({}),
    };
    expect(() => checkReplicable(createRegistry([...registry.views, reader]))).toThrow(
      'view reads-rows reads source rows, which a replica does not have',
    );
    expect(() => checkReplicable(registry)).not.toThrow();
  });
});
