/**
 * Acceptance (issue 3, point 1; issue 16): on hundreds of random changelogs the commit body (resolve + every
 * registered view) agrees with the reference model (test/utils/reference.ts): CONTRACT.md section 2's SQL
 * over the latest row per key, the rankings and the totals, exact after every delivery, with duplicates,
 * moves, tombstones, deletes that carry only the key, and truncates.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { commitBatch, commitPlan } from '../../src/materializer/commit.js';
import { MemoryState, compareCodePoints } from '../../src/materializer/memory-state.js';
import { BufferedGeneration } from '../../src/store/buffered-generation.js';
import { RowKeyFilter } from '../../src/store/row-key-filter.js';
import type { GenerationState } from '../../src/materializer/commit.js';
import { createDecoders } from '../../src/formats/index.js';
import { parseSources } from '../../src/formats/sources.js';
import { decodeRecord } from '../../src/views/decode.js';
import { createRegistry } from '../../src/views/registry.js';
import { TABLES, type Table } from '../../src/views/source.js';
import { RANKINGS, topOf } from '../../src/views/top-users.js';
import type { TotalsValue } from '../../src/views/totals.js';
import type { IndexSpace, KvSpace } from '../../src/views/types.js';
import { commitInput, storedForm, type TestRecord } from '../utils/changes.js';
import { computeReference, type RefRecord } from '../utils/reference.js';

const PARTITIONS = 3;

interface Rec {
  table: Table;
  key: string;
  value: Record<string, unknown> | null | 'truncate';
  partition: number;
  offset: number;
}

/** One random changelog: per topic a stream of inserts, owner-changing updates, tombstones (known and unknown keys). */
function randomChangelog(seed: number): { records: Rec[]; deliveries: Rec[] } {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const userIds = Array.from({ length: 2 + Math.floor(rnd() * 6) }, (_, i) => `u${i}`);
  const offsets = new Map<string, number>();
  const records: Rec[] = [];
  const keysOf: Record<Table, string[]> = { users: [], tweets: [], follows: [], likes: [] };
  const partitionOf = (key: string) => [...key].reduce((h, c) => h * 31 + c.charCodeAt(0), 7) % PARTITIONS;
  const emit = (table: Table, key: string, value: Record<string, unknown> | null | 'truncate') => {
    const partition = value === 'truncate' ? 0 : partitionOf(key);
    const pos = `${table}/${partition}`;
    const offset = offsets.get(pos) ?? 0;
    offsets.set(pos, offset + 1);
    records.push({ table, key, value, partition, offset });
    if (value !== 'truncate' && !keysOf[table].includes(key)) keysOf[table].push(key);
  };
  const rowFor = (table: Table, key: string): Record<string, unknown> => {
    switch (table) {
      case 'users':
        return {
          userId: key,
          username: `name-${Math.floor(rnd() * 3)}`,
          location: rnd() < 0.5 ? null : 'Chicago, IL',
          joinedDate: rnd() < 0.5 ? undefined : 'Tue Jan 22 15:14:44 +0000 2008',
        };
      case 'tweets':
        return { tweetId: key, userId: pick(userIds), text: `t${Math.floor(rnd() * 2)}` };
      case 'follows':
        return {
          followId: key,
          followerId: pick(userIds),
          followeeId: pick(userIds),
          createdAt: '2020-01-01T00:00:00Z',
        };
      case 'likes':
        return { likeId: key, userId: pick(userIds), tweetId: `t${Math.floor(rnd() * 5)}` };
    }
  };
  const n = 20 + Math.floor(rnd() * 150);
  for (let i = 0; i < n; i++) {
    const table = pick(['users', 'tweets', 'tweets', 'follows', 'follows', 'likes'] as const);
    const r = rnd();
    const known = keysOf[table];
    if (table === 'users') {
      const key = pick(userIds);
      emit(table, key, r < 0.2 ? null : rowFor(table, key));
    } else if (r < 0.01) {
      // Debezium `op: t`: the whole table emptied.
      emit(table, '', 'truncate');
    } else if (r < 0.15) {
      // tombstone of a known key, or of a key never seen
      emit(table, known.length > 0 && rnd() < 0.7 ? pick(known) : `${table}-unknown-${i}`, null);
    } else if (r < 0.45 && known.length > 0) {
      const key = pick(known);
      emit(table, key, rowFor(table, key)); // update, often changing the owner
    } else {
      emit(table, `${table}-${i}`, rowFor(table, `${table}-${i}`));
    }
  }
  // Deliveries: topics interleaved at random but each partition in order, plus duplicates of earlier records.
  const queues = new Map<string, Rec[]>();
  for (const rec of records) {
    const q = `${rec.table}/${rec.partition}`;
    queues.set(q, [...(queues.get(q) ?? []), rec]);
  }
  const deliveries: Rec[] = [];
  while (queues.size > 0) {
    const q = pick([...queues.keys()]);
    const queue = queues.get(q)!;
    deliveries.push(queue.shift()!);
    if (queue.length === 0) queues.delete(q);
    if (rnd() < 0.15) deliveries.push(pick(deliveries)); // duplicate delivery of anything seen so far
  }
  return { records, deliveries };
}

/** The deliveries without duplicates, in delivery order: what the reference evaluates. */
function firstDeliveries(deliveries: readonly Rec[]): RefRecord[] {
  const seen = new Set<string>();
  const out: RefRecord[] = [];
  for (const r of deliveries) {
    const id = `${r.table}/${r.partition}/${r.offset}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push({ table: r.table, key: r.key, value: r.value });
  }
  return out;
}

function toRecord(r: Rec): TestRecord {
  if (r.value === 'truncate')
    return { table: r.table, key: '', row: 'truncate', partition: r.partition, offset: r.offset };
  const decoded = decodeRecord(
    r.table,
    Buffer.from(r.key),
    r.value === null ? null : Buffer.from(JSON.stringify(r.value)),
  );
  if (!decoded.ok) throw new Error(`generator produced an invalid record: ${decoded.message}`);
  return {
    table: r.table,
    key: decoded.key,
    row: decoded.row,
    partition: r.partition,
    offset: r.offset,
    eventTime: 1_700_000_000_000 + r.offset,
  };
}

const registry = createRegistry();
const plan = commitPlan(registry);

/** Delivers in random batches; returns the last sequence and, per batch, what the reference said after it. */
function run(
  state: MemoryState,
  deliveries: readonly Rec[],
  rnd: () => number,
  firstSequence: bigint,
  check?: (delivered: readonly Rec[]) => void,
): bigint {
  let sequence = firstSequence;
  for (let i = 0; i < deliveries.length;) {
    const size = 1 + Math.floor(rnd() * 12);
    const batch = deliveries.slice(i, i + size);
    i += size;
    sequence++;
    commitBatch(state, plan, commitInput(batch.map(toRecord)), sequence, 0);
    check?.(deliveries.slice(0, i));
  }
  return sequence;
}

function viewOf(state: MemoryState, id: string) {
  const v = state.kv<Record<string, unknown>>('user-information', 'views').get(id);
  if (!v) return null;
  const { version: _v, ...rest } = v;
  return rest;
}

/** Everything the state serves, in the reference's terms. */
function served(state: MemoryState, ids: readonly string[]) {
  const rank = state.spaces('top-users')['rank'] as IndexSpace;
  const totals = state.kv<TotalsValue>('totals', 'totals').get('totals');
  return {
    users: Object.fromEntries(ids.map((id) => [id, viewOf(state, id)])),
    top: Object.fromEntries(RANKINGS.map((r) => [r, topOf(rank, r, 100)])),
    totals:
      totals === undefined
        ? { users: 0, tweets: 0, follows: 0, likes: 0 }
        : { users: totals.users, tweets: totals.tweets, follows: totals.follows, likes: totals.likes },
  };
}

function expected(delivered: readonly Rec[]) {
  const ref = computeReference(firstDeliveries(delivered));
  return {
    ids: ref.userIds,
    view: {
      users: Object.fromEntries(ref.userIds.map((id) => [id, ref.users.get(id) ?? null])),
      top: Object.fromEntries(RANKINGS.map((r) => [r, ref.top(r, 100)])),
      totals: ref.totals,
    },
  };
}

describe('commit body against the reference model', () => {
  it('should agree with the SQL definition after every batch of 300 random changelogs with duplicates, moves, tombstones and truncates', () => {
    let checks = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const { deliveries } = randomChangelog(seed);
      const state = new MemoryState(registry);
      run(state, deliveries, prng(seed * 7919), 0n, (delivered) => {
        const want = expected(delivered);
        expect({ seed, at: delivered.length, ...served(state, want.ids) }).toEqual({
          seed,
          at: delivered.length,
          ...want.view,
        });
        checks++;
      });
      // No view for an id the reference does not know, and no count below zero.
      const known = new Set(expected(deliveries).ids);
      for (const id of state.kv('user-information', 'views').keys()) expect(known.has(id)).toBe(true);
      for (const c of state.kv<Record<string, number>>('user-information', 'counts').values())
        for (const n of Object.values(c)) expect(n).toBeGreaterThanOrEqual(0);
    }
    expect(checks).toBeGreaterThan(3000);
  });

  it('should name in each commit event exactly the users whose view changed, and leave the others as they were, version included', () => {
    // No empty pushes: a batch that cancels out for a user (a follow created and deleted, a row moved away
    // and back, a rename undone) neither names it in the event nor advances its version.
    let untouched = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const { deliveries } = randomChangelog(seed);
      const ids = expected(deliveries).ids;
      const state = new MemoryState(registry);
      const views = state.kv<Record<string, unknown>>('user-information', 'views');
      const rnd = prng(seed * 104_729);
      let sequence = 0n;
      for (let i = 0; i < deliveries.length;) {
        const batch = deliveries.slice(i, i + 1 + Math.floor(rnd() * 12));
        i += batch.length;
        const before = new Map(ids.map((id) => [id, structuredClone(views.get(id))]));
        const shown = new Map(ids.map((id) => [id, JSON.stringify(viewOf(state, id))]));
        sequence++;
        const outcome = commitBatch(state, plan, commitInput(batch.map(toRecord)), sequence, 0);
        const event = outcome.events.get('user-information') ?? new Map<string, unknown>();
        for (const id of ids) {
          const moved = JSON.stringify(viewOf(state, id)) !== shown.get(id);
          expect({ seed, sequence, id, named: event.has(id) }).toEqual({ seed, sequence, id, named: moved });
          if (!moved) {
            expect(views.get(id)).toEqual(before.get(id));
            if (batch.some((r) => r.value !== 'truncate' && JSON.stringify(r.value ?? '').includes(id)))
              untouched++;
          }
        }
      }
    }
    expect(untouched).toBeGreaterThan(1000);
  });

  it('should change nothing when any prefix of a partition is replayed into the final state', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const { records, deliveries } = randomChangelog(seed);
      const state = new MemoryState(registry);
      const rnd = prng(seed);
      const sequence = run(state, deliveries, rnd, 0n);
      const before = structuredClone([...state.views].map(([v, spaces]) => [v, Object.keys(spaces)]));
      const snapshot = JSON.stringify(served(state, expected(deliveries).ids));
      const partition = records.filter(
        (r) => r.table === records[0]!.table && r.partition === records[0]!.partition,
      );
      const prefix = partition.slice(0, 1 + Math.floor(rnd() * partition.length));
      const outcome = commitBatch(state, plan, commitInput(prefix.map(toRecord), []), sequence + 1n, 1);
      expect({ accepted: outcome.accepted, events: outcome.events.size }).toEqual({ accepted: 0, events: 0 });
      expect(outcome.skipped).toBe(prefix.length);
      expect(JSON.stringify(served(state, expected(deliveries).ids))).toBe(snapshot);
      expect([...state.views].map(([v, spaces]) => [v, Object.keys(spaces)])).toEqual(before);
    }
  });
});

describe('a rebuild chunk (src/store/buffered-generation.ts) against committing batch by batch', () => {
  /** Every entry of a state: rows, positions, each view's spaces (KV values, index keys), in key order. */
  function contents(state: MemoryState) {
    const views = [...state.views].map(([view, spaces]) => [
      view,
      Object.fromEntries(
        Object.entries(spaces).map(([name, space]) => [
          name,
          'put' in space ? [...space.entries()] : [...space.all()],
        ]),
      ),
    ]);
    // Each row as a store keeps it: its stored fields (a chunk's buffer holds rows in that form).
    const rows = TABLES.map((t) => [
      t,
      [...state.rows.tables[t]]
        .map(([key, row]) => [key, storedForm(registry.storedFields, row)] as const)
        .sort(([a], [b]) => compareCodePoints(a, b)),
    ]);
    return { rows, positions: [...state.positions].sort(), views };
  }

  /** What readers are served, read through any state's spaces (the chunk's reads go through its buffer). */
  function readThrough(state: GenerationState, ids: readonly string[]) {
    const views = state.spaces('user-information')['views'] as KvSpace<Record<string, unknown>>;
    const rank = state.spaces('top-users')['rank'] as IndexSpace;
    return {
      users: Object.fromEntries(ids.map((id) => [id, views.get(id) ?? null])),
      top: Object.fromEntries(RANKINGS.map((r) => [r, topOf(rank, r, 1 + (ids.length >> 1))])),
      totals: (state.spaces('totals')['totals'] as KvSpace<unknown>).get('totals') ?? null,
    };
  }

  /** Rows of `state` looked up in it (not in a chunk's buffer). */
  function countingLookups(state: MemoryState): { lookups: number } {
    const counter = { lookups: 0 };
    const row = state.rows.row.bind(state.rows);
    state.rows.row = (table, key) => {
      counter.lookups++;
      return row(table, key);
    };
    return counter;
  }

  it('should serve through the chunk, report, and store exactly what committing batch by batch does, however the chunks are cut and whether they write their views', () => {
    let writes = 0;
    let rowWrites = 0;
    let lookups = 0;
    let ruledOut = 0;
    let grown = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const { deliveries } = randomChangelog(seed);
      const ids = expected(deliveries).ids;
      const direct = new MemoryState(registry);
      const stored = new MemoryState(registry);
      const counter = countingLookups(stored);
      // As a shadow's chunks (shadow-chunks.ts): one filter of the stored row keys, from no stored row on.
      // Small segments, so that it grows within a changelog.
      const known = new RowKeyFilter(64);
      const mayHold = known.mayHold.bind(known);
      known.mayHold = (table, key) => {
        const may = mayHold(table, key);
        if (!may) ruledOut++;
        return may;
      };
      let chunk = new BufferedGeneration(stored, 1, registry.storedFields, undefined, known);
      const rnd = prng(seed * 31);
      let sequence = 0n;
      for (let i = 0; i < deliveries.length;) {
        const batch = deliveries.slice(i, i + 1 + Math.floor(rnd() * 12));
        i += batch.length;
        sequence++;
        const input = commitInput(batch.map(toRecord));
        const want = commitBatch(direct, plan, input, sequence, 0);
        const got = commitBatch(chunk, plan, input, sequence, 0);
        expect({ seed, sequence, ...got }).toEqual({ seed, sequence, ...want });
        expect({ seed, sequence, ...readThrough(chunk, ids) }).toEqual({
          seed,
          sequence,
          ...readThrough(direct, ids),
        });
        const cut = rnd();
        if (cut < 0.2) {
          chunk.writeTo();
          chunk = new BufferedGeneration(stored, 1, registry.storedFields, undefined, known);
          writes++;
        } else if (cut < 0.4) {
          // A rebuild's chunk: rows and positions written, the views carried on to the next chunk.
          chunk.writeRowsTo();
          chunk = new BufferedGeneration(stored, 1, registry.storedFields, chunk.views, known);
          rowWrites++;
        }
      }
      chunk.writeTo();
      expect({ seed, ...contents(stored) }).toEqual({ seed, ...contents(direct) });
      lookups += counter.lookups;
      // Past its first segment's 64 keys, it grew a second.
      if (known.added > 64) grown++;
    }
    expect(writes).toBeGreaterThan(1000);
    expect(rowWrites).toBeGreaterThan(1000);
    // The filter ruled rows out (new keys) and let the others be looked up (rows stored by earlier chunks,
    // and the few it cannot tell from them).
    expect(ruledOut).toBeGreaterThan(10_000);
    expect(lookups).toBeGreaterThan(1_000);
    expect(grown).toBeGreaterThan(100);
  });
});

describe('commit semantics', () => {
  const rec = (
    table: Table,
    key: string,
    value: Record<string, unknown> | null,
    offset: number,
    partition = 0,
  ): Rec => ({ table, key, value, partition, offset });
  const apply = (state: MemoryState, seq: bigint, ...records: Rec[]) =>
    commitBatch(state, plan, commitInput(records.map(toRecord)), seq, 0).events.get('user-information') ??
    new Map<string, unknown>();

  it('should count before the users row exists and show the user with those counts when it arrives', () => {
    const s = new MemoryState(registry);
    const e1 = apply(
      s,
      1n,
      rec('tweets', 't1', { userId: 'u1' }, 0),
      rec('likes', 'l1', { userId: 'u1', tweetId: 't9' }, 0),
    );
    expect(e1.size).toBe(0);
    expect(viewOf(s, 'u1')).toBeNull();
    const e2 = apply(s, 2n, rec('users', 'u1', { userId: 'u1', username: 'zcox' }, 0));
    expect([...e2.keys()]).toEqual(['u1']);
    expect(s.kv('user-information', 'views').get('u1')).toMatchObject({
      userId: 'u1',
      username: 'zcox',
      tweetCount: 1,
      likeCount: 1,
      version: { sequence: '2', source: { topic: 'users', partition: 0, offset: '0' } },
    });
  });

  it('should publish nothing and keep the versions when one batch creates and deletes a follow, or moves a tweet away and back', () => {
    const s = new MemoryState(registry);
    apply(
      s,
      1n,
      rec('users', 'a', { username: 'a' }, 0),
      rec('users', 'b', { username: 'b' }, 1),
      rec('tweets', 't1', { userId: 'b' }, 0),
    );
    const views = s.kv<Record<string, unknown>>('user-information', 'views');
    const before = structuredClone([views.get('a'), views.get('b')]);
    const e = apply(
      s,
      2n,
      rec('follows', 'f1', { followerId: 'a', followeeId: 'b' }, 0),
      rec('follows', 'f1', null, 1),
      rec('tweets', 't1', { userId: 'a' }, 1),
      rec('tweets', 't1', { userId: 'b' }, 2),
      rec('users', 'a', { username: 'renamed' }, 2),
      rec('users', 'a', { username: 'a' }, 3),
    );
    expect([...e.keys()]).toEqual([]);
    expect([views.get('a'), views.get('b')]).toEqual(before);
  });

  it('should hide a deleted user but keep the counts for when the user comes back', () => {
    const s = new MemoryState(registry);
    apply(s, 1n, rec('users', 'u1', { username: 'a' }, 0), rec('tweets', 't1', { userId: 'u1' }, 0));
    const e = apply(s, 2n, rec('users', 'u1', null, 1));
    expect(e.get('u1')).toBeNull();
    expect(viewOf(s, 'u1')).toBeNull();
    apply(s, 3n, rec('users', 'u1', { username: 'b' }, 2));
    expect(viewOf(s, 'u1')).toMatchObject({ username: 'b', tweetCount: 1 });
  });

  it('should move a follow between users on update and decrement exactly once on repeated deletes', () => {
    const s = new MemoryState(registry);
    apply(
      s,
      1n,
      rec('users', 'a', { username: 'a' }, 0),
      rec('users', 'b', { username: 'b' }, 1),
      rec('users', 'c', { username: 'c' }, 2),
    );
    apply(s, 2n, rec('follows', 'f1', { followerId: 'a', followeeId: 'b' }, 0));
    apply(s, 3n, rec('follows', 'f1', { followerId: 'a', followeeId: 'c' }, 1));
    const counts = () => [
      viewOf(s, 'b')!['followerCount'],
      viewOf(s, 'c')!['followerCount'],
      viewOf(s, 'a')!['followingCount'],
    ];
    expect(counts()).toEqual([0, 1, 1]);
    apply(s, 4n, rec('follows', 'f1', null, 2));
    const second = apply(s, 5n, rec('follows', 'f1', null, 3));
    expect(second.size).toBe(0);
    expect(counts()).toEqual([0, 0, 0]);
  });

  it('should neither write nor publish a user whose view a commit leaves as it was', () => {
    const s = new MemoryState(registry);
    apply(
      s,
      1n,
      rec('users', 'u1', { username: 'a' }, 0),
      rec('users', 'u2', { username: 'b' }, 1),
      rec('tweets', 't1', { userId: 'u1', text: 'x' }, 0),
    );
    const before = structuredClone(s.kv('user-information', 'views').get('u1'));
    // An edit of a field no view reads, a delete of an unknown row, a follow created and deleted, and a
    // tweet moved away while another moves in: nothing visible changes for anyone.
    const e = apply(
      s,
      2n,
      rec('tweets', 't1', { userId: 'u1', text: 'edited' }, 1),
      rec('tweets', 'nope', null, 2),
      rec('follows', 'f9', { followerId: 'u1', followeeId: 'u2' }, 0),
      rec('follows', 'f9', null, 1),
      rec('tweets', 't1', { userId: 'u2' }, 3),
      rec('tweets', 't2', { userId: 'u1' }, 4),
    );
    expect([...e.keys()]).toEqual(['u2']);
    expect(s.kv('user-information', 'views').get('u1')).toEqual(before);
  });

  it('should empty a table on truncate, so the counts it fed fall to zero, and apply later records of the same commit', () => {
    const s = new MemoryState(registry);
    apply(
      s,
      1n,
      rec('users', 'u1', { username: 'a' }, 0),
      rec('tweets', 't1', { userId: 'u1' }, 0),
      rec('tweets', 't2', { userId: 'u1' }, 1),
    );
    const e = commitBatch(
      s,
      plan,
      commitInput([
        { table: 'tweets', key: '', row: 'truncate', partition: 1, offset: 0 },
        { table: 'tweets', key: 't3', row: { table: 'tweets', userId: 'u1' }, partition: 1, offset: 1 },
      ]),
      2n,
      0,
    );
    expect(viewOf(s, 'u1')).toMatchObject({ tweetCount: 1 });
    expect([...s.rows.tables.tweets.keys()]).toEqual(['t3']);
    expect(s.kv<TotalsValue>('totals', 'totals').get('totals')).toMatchObject({ users: 1, tweets: 1 });
    expect(e.events.get('user-information')?.has('u1')).toBe(true);
  });
});

/**
 * Issue 15: the same property with Debezium's change events decoded by the debezium-json format: a delete
 * is an envelope whose `before` holds only the key (Postgres' default replica identity) followed by its
 * tombstone, and truncates of a table land on random partitions (Kafka Connect writes them without a key).
 * Truncates are ordered only by delivery, so the reference replays the first delivery of each record in
 * delivery order.
 */
describe('commit body against the reference model, Debezium deletes and truncates', () => {
  interface Event {
    table: Table;
    partition: number;
    offset: number;
    key: string | null;
    value: string | null;
    /** What the event means to the reference: a row (upsert), null (delete by key), or 'truncate'. */
    effect: Record<string, unknown> | null | 'truncate';
    /** The record key as the contract names it (the reference's key). */
    id: string;
  }
  const KEY_FIELD: Record<Table, string> = {
    users: 'userId',
    tweets: 'tweetId',
    follows: 'followId',
    likes: 'likeId',
  };
  const decoders = createDecoders(parseSources('reference', { format: 'debezium-json', topics: {} }), {
    users: 'users',
    tweets: 'tweets',
    follows: 'follows',
    likes: 'likes',
  });

  /** The records of `randomChangelog` as Debezium writes them, plus random truncates. */
  function debeziumChangelog(seed: number): Event[] {
    const rnd = prng(seed * 31);
    const { records } = randomChangelog(seed);
    const offsets = new Map<string, number>();
    const out: Event[] = [];
    const emit = (e: Omit<Event, 'offset'>) => {
      const at = `${e.table}/${e.partition}`;
      const offset = offsets.get(at) ?? 0;
      offsets.set(at, offset + 1);
      out.push({ ...e, offset });
    };
    for (const r of records) {
      if (r.value === 'truncate') continue;
      const key = JSON.stringify({ [KEY_FIELD[r.table]]: r.key });
      const source = { connector: 'postgresql', ts_ms: 1_700_000_000_000 + out.length };
      const common = { table: r.table, partition: r.partition, key, id: r.key };
      if (r.value !== null) {
        const after = { [KEY_FIELD[r.table]]: r.key, ...r.value };
        emit({ ...common, value: JSON.stringify({ before: null, after, source, op: 'c' }), effect: r.value });
      } else {
        const before = { [KEY_FIELD[r.table]]: r.key };
        emit({ ...common, value: JSON.stringify({ before, after: null, source, op: 'd' }), effect: null });
        emit({ ...common, value: null, effect: null }); // the tombstone after it
      }
      if (rnd() < 0.04) {
        const partition = Math.floor(rnd() * PARTITIONS);
        emit({
          table: r.table,
          partition,
          key: null,
          value: JSON.stringify({ source, op: 't' }),
          effect: 'truncate',
          id: '',
        });
      }
    }
    return out;
  }

  function decoded(e: Event): TestRecord {
    const d = decoders.get(e.table)!.decode({
      topic: e.table,
      partition: e.partition,
      offset: String(e.offset),
      timestamp: '1700000000000',
      key: e.key === null ? null : Buffer.from(e.key),
      value: e.value === null ? null : Buffer.from(e.value),
      headers: {},
    });
    if (!d.ok) throw new Error(`generator produced an invalid event: ${d.message}`);
    const at = {
      partition: e.partition,
      offset: e.offset,
      ...(d.eventTime === undefined ? {} : { eventTime: d.eventTime }),
    };
    return 'truncate' in d
      ? { table: e.table, key: '', row: 'truncate', ...at }
      : { table: e.table, key: d.key, row: d.row, ...at };
  }

  /** Deliveries: topics interleaved at random but each partition in order, plus duplicates of earlier events. */
  function deliver(events: readonly Event[], rnd: () => number): Event[] {
    const queues = new Map<string, Event[]>();
    for (const e of events)
      queues.set(`${e.table}/${e.partition}`, [...(queues.get(`${e.table}/${e.partition}`) ?? []), e]);
    const out: Event[] = [];
    while (queues.size > 0) {
      const names = [...queues.keys()];
      const q = names[Math.floor(rnd() * names.length)]!;
      const queue = queues.get(q)!;
      out.push(queue.shift()!);
      if (queue.length === 0) queues.delete(q);
      if (rnd() < 0.15) out.push(out[Math.floor(rnd() * out.length)]!);
    }
    return out;
  }

  it('should agree with the reference on 300 random changelogs with key-only deletes, tombstones and truncates', () => {
    let truncates = 0;
    let checked = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = prng(seed * 7919);
      const deliveries = deliver(debeziumChangelog(seed), rnd);
      const state = new MemoryState(registry);
      let sequence = 0n;
      for (let i = 0; i < deliveries.length;) {
        const size = 1 + Math.floor(rnd() * 12);
        commitBatch(state, plan, commitInput(deliveries.slice(i, i + size).map(decoded)), ++sequence, 0);
        i += size;
      }
      const seen = new Set<Event>();
      const first: RefRecord[] = [];
      for (const e of deliveries) {
        if (seen.has(e)) continue;
        seen.add(e);
        if (e.effect === 'truncate') truncates++;
        first.push({ table: e.table, key: e.id, value: e.effect });
      }
      const ref = computeReference(first);
      const want = {
        users: Object.fromEntries(ref.userIds.map((id) => [id, ref.users.get(id) ?? null])),
        top: Object.fromEntries(RANKINGS.map((r) => [r, ref.top(r, 100)])),
        totals: ref.totals,
      };
      expect({ seed, ...served(state, ref.userIds) }).toEqual({ seed, ...want });
      checked += ref.userIds.length;
    }
    expect({ enoughUsers: checked > 1000, enoughTruncates: truncates > 100 }).toEqual({
      enoughUsers: true,
      enoughTruncates: true,
    });
  });
});
