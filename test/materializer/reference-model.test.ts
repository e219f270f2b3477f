/**
 * Acceptance (issue 3, point 1): on hundreds of random changelogs the materializer agrees with a
 * reference model that evaluates CONTRACT.md section 2's SQL over the latest row per key.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { materialize, type Change } from '../../src/materializer/materialize.js';
import { createDecoders } from '../../src/formats/index.js';
import { parseSources } from '../../src/formats/sources.js';
import { decodeRecord } from '../../src/views/decode.js';
import type { Counts, Profile, Table } from '../../src/views/user-information.js';
import { MemoryState } from '../utils/memory-state.js';

const PARTITIONS = 3;

interface Rec {
  table: Table;
  key: string;
  value: Record<string, unknown> | null;
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
  const emit = (table: Table, key: string, value: Record<string, unknown> | null) => {
    const partition = partitionOf(key);
    const pos = `${table}/${partition}`;
    const offset = offsets.get(pos) ?? 0;
    offsets.set(pos, offset + 1);
    records.push({ table, key, value, partition, offset });
    if (!keysOf[table].includes(key)) keysOf[table].push(key);
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
  return { records, deliveries: deliver(records, rnd) };
}

/** Deliveries: topics interleaved at random but each partition in order, plus duplicates of earlier records. */
function deliver<R extends { table: Table; partition: number }>(
  records: readonly R[],
  rnd: () => number,
): R[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const queues = new Map<string, R[]>();
  for (const rec of records) {
    const q = `${rec.table}/${rec.partition}`;
    queues.set(q, [...(queues.get(q) ?? []), rec]);
  }
  const deliveries: R[] = [];
  while (queues.size > 0) {
    const q = pick([...queues.keys()]);
    const queue = queues.get(q)!;
    deliveries.push(queue.shift()!);
    if (queue.length === 0) queues.delete(q);
    if (rnd() < 0.15) deliveries.push(pick(deliveries)); // duplicate delivery of anything seen so far
  }
  return deliveries;
}

/** The reference: latest row per key, then the contract's SQL. */
function reference(records: Rec[]): Map<string, (Profile & Counts) | null> {
  const latest = new Map<string, Rec>();
  for (const r of records) latest.set(`${r.table}/${r.key}`, r); // records are in per-partition order per key
  return sqlOver(latest, records);
}

/** The contract's SQL over the latest row per key (`latest`), for every id any record named. */
function sqlOver(
  latest: ReadonlyMap<string, Pick<Rec, 'table' | 'value'>>,
  records: readonly Pick<Rec, 'value'>[],
): Map<string, (Profile & Counts) | null> {
  const rows = (t: Table) =>
    [...latest.values()].filter((r) => r.table === t && r.value !== null).map((r) => r.value!);
  const count = (t: Table, field: string, id: string) => rows(t).filter((v) => v[field] === id).length;
  const ids = new Set<string>();
  for (const r of records) {
    if (r.value === null) continue;
    for (const f of ['userId', 'followerId', 'followeeId'])
      if (typeof r.value[f] === 'string') ids.add(r.value[f] as string);
  }
  const out = new Map<string, (Profile & Counts) | null>();
  for (const id of ids) {
    const user = latest.get(`users/${id}`)?.value;
    out.set(
      id,
      user
        ? {
            username: user['username'] as string,
            name: null,
            description: null,
            location: (user['location'] as string | null) ?? null,
            webPageUrl: null,
            joinedDate: user['joinedDate'] ? '2008-01-22T15:14:44.000Z' : null,
            profileImageUrl: null,
            backgroundImageUrl: null,
            tweetCount: count('tweets', 'userId', id),
            followingCount: count('follows', 'followerId', id),
            followerCount: count('follows', 'followeeId', id),
            likeCount: count('likes', 'userId', id),
          }
        : null,
    );
  }
  return out;
}

function toChange(r: Rec): Change {
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
    position: { topic: r.table, partition: r.partition, offset: String(r.offset) },
    timestamp: String(1_700_000_000_000 + r.offset),
  };
}

function run(state: MemoryState, deliveries: Rec[], rnd: () => number, firstSequence: bigint): bigint {
  let sequence = firstSequence;
  for (let i = 0; i < deliveries.length;) {
    const size = 1 + Math.floor(rnd() * 12);
    const batch = deliveries.slice(i, i + size).map(toChange);
    i += size;
    sequence++;
    state.apply(materialize(state, batch, { sequence, appliedAt: new Date(0).toISOString() }));
  }
  return sequence;
}

function viewOf(state: MemoryState, id: string) {
  const v = state.views.get(id);
  if (!v) return null;
  const { userId: _u, version: _v, ...rest } = v;
  return rest;
}

describe('materializer against the reference model', () => {
  it('should agree with the SQL definition on 300 random changelogs with duplicates, moves and tombstones', () => {
    let checkedUsers = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const { records, deliveries } = randomChangelog(seed);
      const state = new MemoryState();
      run(state, deliveries, prng(seed * 7919), 0n);
      const expected = reference(records);
      for (const [id, want] of expected) {
        expect({ seed, id, view: viewOf(state, id) }).toEqual({ seed, id, view: want });
        if (want === null) {
          const counts = state.users.get(id)?.counts;
          if (counts) for (const c of Object.values(counts)) expect(c).toBeGreaterThanOrEqual(0);
        }
        checkedUsers++;
      }
      // No view for an id the reference does not know.
      for (const id of state.views.keys()) expect(expected.has(id)).toBe(true);
    }
    expect(checkedUsers).toBeGreaterThan(1000);
  });

  it('should change nothing when any prefix of a partition is replayed into the final state', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const { records, deliveries } = randomChangelog(seed);
      const state = new MemoryState();
      const rnd = prng(seed);
      const sequence = run(state, deliveries, rnd, 0n);
      const before = structuredClone([...state.views]);
      const partition = records.filter(
        (r) => r.table === records[0]!.table && r.partition === records[0]!.partition,
      );
      const prefix = partition.slice(0, 1 + Math.floor(rnd() * partition.length));
      const writes = materialize(state, prefix.map(toChange), {
        sequence: sequence + 1n,
        appliedAt: new Date(1).toISOString(),
      });
      expect({ rows: writes.rows.length, users: writes.users.size, views: writes.views.size }).toEqual({
        rows: 0,
        users: 0,
        views: 0,
      });
      expect(writes.noops).toBe(prefix.length);
      expect([...state.views]).toEqual(before);
    }
  });
});

describe('materializer semantics', () => {
  const at = (offset: number, partition = 0) => ({ partition, offset: String(offset) });
  const change = (
    table: Table,
    key: string,
    value: Record<string, unknown> | null,
    pos: { partition: number; offset: string },
  ): Change => toChange({ table, key, value, partition: pos.partition, offset: Number(pos.offset) });
  const apply = (state: MemoryState, seq: bigint, ...changes: Change[]) => {
    const w = materialize(state, changes, { sequence: seq, appliedAt: '2026-01-01T00:00:00.000Z' });
    state.apply(w);
    return w;
  };

  it('should count before the users row exists and show the user with those counts when it arrives', () => {
    const s = new MemoryState();
    const w1 = apply(
      s,
      1n,
      change('tweets', 't1', { userId: 'u1' }, at(0)),
      change('likes', 'l1', { userId: 'u1', tweetId: 't9' }, at(0)),
    );
    expect(w1.views.size).toBe(0);
    expect(s.views.get('u1')).toBeUndefined();
    const w2 = apply(s, 2n, change('users', 'u1', { userId: 'u1', username: 'zcox' }, at(0)));
    expect([...w2.views.keys()]).toEqual(['u1']);
    expect(s.views.get('u1')).toMatchObject({
      userId: 'u1',
      username: 'zcox',
      tweetCount: 1,
      likeCount: 1,
      version: { sequence: '2', source: { topic: 'users', partition: 0, offset: '0' } },
    });
  });

  it('should hide a deleted user but keep the counts for when the user comes back', () => {
    const s = new MemoryState();
    apply(
      s,
      1n,
      change('users', 'u1', { username: 'a' }, at(0)),
      change('tweets', 't1', { userId: 'u1' }, at(0)),
    );
    const w = apply(s, 2n, change('users', 'u1', null, at(1)));
    expect(w.views.get('u1')).toBeNull();
    expect(s.views.has('u1')).toBe(false);
    apply(s, 3n, change('users', 'u1', { username: 'b' }, at(2)));
    expect(s.views.get('u1')).toMatchObject({ username: 'b', tweetCount: 1 });
  });

  it('should move a follow between users on update and decrement exactly once on repeated tombstones', () => {
    const s = new MemoryState();
    for (const u of ['a', 'b', 'c']) apply(s, 1n, change('users', u, { username: u }, at(u.charCodeAt(0))));
    apply(s, 2n, change('follows', 'f1', { followerId: 'a', followeeId: 'b' }, at(0)));
    apply(s, 3n, change('follows', 'f1', { followerId: 'a', followeeId: 'c' }, at(1)));
    expect([
      s.views.get('b')!.followerCount,
      s.views.get('c')!.followerCount,
      s.views.get('a')!.followingCount,
    ]).toEqual([0, 1, 1]);
    apply(s, 4n, change('follows', 'f1', null, at(2)));
    const second = apply(s, 5n, change('follows', 'f1', null, at(3)));
    expect(second.views.size).toBe(0);
    expect([s.views.get('c')!.followerCount, s.views.get('a')!.followingCount]).toEqual([0, 0]);
  });

  it('should not publish a change for an update that leaves the view as it was', () => {
    const s = new MemoryState();
    apply(
      s,
      1n,
      change('users', 'u1', { username: 'a' }, at(0)),
      change('tweets', 't1', { userId: 'u1', text: 'x' }, at(0)),
    );
    const w = apply(
      s,
      2n,
      change('tweets', 't1', { userId: 'u1', text: 'edited' }, at(1)),
      change('tweets', 'nope', null, at(2)),
    );
    expect({ views: w.views.size, users: w.users.size }).toEqual({ views: 0, users: 0 });
  });
});

/**
 * Issue 15: the same property with Debezium's change events: a delete is an envelope whose `before` holds
 * only the key (Postgres' default replica identity) followed by its tombstone, and truncates of any table
 * land on random partitions (Kafka Connect writes them without a key). Truncates are ordered only by
 * delivery, so the reference replays the first delivery of each record in delivery order: a truncate
 * empties its table at the point it was delivered.
 */
describe('materializer against the reference model, Debezium deletes and truncates', () => {
  interface Event {
    table: Table;
    partition: number;
    offset: number;
    key: string | null;
    value: string | null;
    /** What the event means to the reference: a row (upsert), null (delete by key), or 'truncate'. */
    effect: Record<string, unknown> | null | 'truncate';
  }
  const KEY_FIELD: Record<Table, string> = {
    users: 'userId',
    tweets: 'tweetId',
    follows: 'followId',
    likes: 'likeId',
  };
  const sources = parseSources('reference', { format: 'debezium-json', topics: {} });
  const decoders = createDecoders(sources, {
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
    const emit = (
      table: Table,
      partition: number,
      key: string | null,
      value: string | null,
      effect: Event['effect'],
    ) => {
      const at = `${table}/${partition}`;
      const offset = offsets.get(at) ?? 0;
      offsets.set(at, offset + 1);
      out.push({ table, partition, offset, key, value, effect });
    };
    for (const r of records) {
      const key = JSON.stringify({ [KEY_FIELD[r.table]]: r.key });
      const source = { connector: 'postgresql', ts_ms: 1_700_000_000_000 + out.length };
      if (r.value !== null) {
        const after = { [KEY_FIELD[r.table]]: r.key, ...r.value };
        emit(r.table, r.partition, key, JSON.stringify({ before: null, after, source, op: 'c' }), r.value);
      } else {
        const before = { [KEY_FIELD[r.table]]: r.key };
        emit(r.table, r.partition, key, JSON.stringify({ before, after: null, source, op: 'd' }), null);
        emit(r.table, r.partition, key, null, null); // the tombstone after it
      }
      if (rnd() < 0.04) {
        const table = r.table === 'users' && rnd() < 0.5 ? 'users' : r.table;
        emit(table, Math.floor(rnd() * PARTITIONS), null, JSON.stringify({ source, op: 't' }), 'truncate');
      }
    }
    return out;
  }

  function toChangeOf(e: Event): Change {
    const record = {
      topic: e.table,
      partition: e.partition,
      offset: String(e.offset),
      timestamp: '1700000000000',
      key: e.key === null ? null : Buffer.from(e.key),
      value: e.value === null ? null : Buffer.from(e.value),
      headers: {},
    };
    const d = decoders.get(e.table)!.decode(record);
    if (!d.ok) throw new Error(`generator produced an invalid event: ${d.message}`);
    const position = { topic: e.table, partition: e.partition, offset: record.offset };
    return 'truncate' in d
      ? { table: e.table, truncate: true, position, timestamp: String(d.eventTime) }
      : { table: e.table, key: d.key, row: d.row, position, timestamp: String(d.eventTime ?? 0) };
  }

  it('should agree with the SQL definition on 300 random changelogs with key-only deletes, tombstones and truncates', () => {
    let truncates = 0;
    let checked = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const events = debeziumChangelog(seed);
      const rnd = prng(seed * 7919);
      const deliveries = deliver(events, rnd);
      const state = new MemoryState();
      let sequence = 0n;
      for (let i = 0; i < deliveries.length;) {
        const size = 1 + Math.floor(rnd() * 12);
        const batch = deliveries.slice(i, i + size).map(toChangeOf);
        i += size;
        state.apply(
          materialize(state, batch, { sequence: ++sequence, appliedAt: new Date(0).toISOString() }),
        );
      }
      // The reference: first deliveries in delivery order; a truncate empties its table where it was delivered.
      const seen = new Set<Event>();
      const latest = new Map<string, { table: Table; value: Record<string, unknown> | null }>();
      for (const e of deliveries) {
        if (seen.has(e)) continue;
        seen.add(e);
        if (e.effect === 'truncate') {
          truncates++;
          for (const [k, row] of latest)
            if (row.table === e.table) latest.set(k, { table: e.table, value: null });
        } else {
          const key = (JSON.parse(e.key!) as Record<string, string>)[KEY_FIELD[e.table]]!;
          latest.set(`${e.table}/${key}`, { table: e.table, value: e.effect });
        }
      }
      const expected = sqlOver(
        latest,
        events.map((e) => ({ value: e.effect === 'truncate' ? null : e.effect })),
      );
      for (const [id, want] of expected) {
        expect({ seed, id, view: viewOf(state, id) }).toEqual({ seed, id, view: want });
        checked++;
      }
      for (const id of state.views.keys()) expect(expected.has(id)).toBe(true);
    }
    expect({ enoughUsers: checked > 1000, enoughTruncates: truncates > 100 }).toEqual({
      enoughUsers: true,
      enoughTruncates: true,
    });
  });
});
