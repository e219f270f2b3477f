/**
 * One partition's fetch-ahead and delivery state (src/feed/partition-feed.ts), without Kafka: a model log,
 * fetches of random sizes, and a handler that accepts or rejects at random, interleaved in random orders.
 * Whatever happens, the records the store applied are the log in order with nothing skipped and nothing
 * applied twice, a batch goes out only while the batches out hold less than the bound, and the records
 * waiting never exceed the bound by more than one fetch.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import {
  MAX_BATCHES_OUT,
  PIPELINE_SHARE,
  PartitionFeed,
  batchBytes,
  fetchedBatch,
  filteredByKafkajs,
  mergeBatches,
  partitionBackoffMs,
  toFeedBatch,
  type FetchTicket,
  type TakenBatch,
} from '../../src/feed/partition-feed.js';
import type { FetchedMessage, FetchedPartition } from '../../src/feed/kafkajs-internals.js';

const message = (offset: number, size = 10): FetchedMessage => ({
  offset: String(offset),
  timestamp: '1700000000000',
  key: Buffer.from(`k${offset}`),
  value: Buffer.alloc(size, 1),
});

/** What a broker holding `length` records answers to a fetch at `from`: at most `count` records. */
function fetchFrom(length: number, from: bigint, count: number) {
  const messages: FetchedMessage[] = [];
  for (let o = Number(from); o < length && messages.length < count; o++) messages.push(message(o));
  return { batch: toFeedBatch('t', 0, messages, String(length)), next: from + BigInt(messages.length) };
}

/** One fetch of `p` answered by a broker holding 100 records (at most `count` of them); endFetch's answer. */
function fetchInto(p: PartitionFeed, count: number): boolean {
  const ticket = p.beginFetch();
  const { batch, next } = fetchFrom(100, ticket.offset, count);
  return p.endFetch(ticket, batch, next);
}

/** Bytes one record of `fetchFrom` counts for (`batchBytes`). */
const ONE_RECORD = batchBytes(fetchFrom(100, 0n, 1).batch);

/** Partition 0 of `t` from offset 0, with a leader, its bound `records` records of `fetchFrom`. */
function feedOf(records: number): PartitionFeed {
  const p = new PartitionFeed('t', 0, 0n, records * ONE_RECORD);
  p.leader = 1;
  return p;
}

describe('PartitionFeed', () => {
  it('should hand out everything fetched as one batch, in order, and move the re-read position on acceptance', () => {
    // A bound of 16 records: one record waiting is worth handing out while a batch is out (PIPELINE_SHARE).
    const p = feedOf(16);
    const fetch = (from: number, count: number) => {
      const ticket = p.beginFetch();
      expect(ticket.offset).toBe(BigInt(from));
      const { batch, next } = fetchFrom(100, ticket.offset, count);
      expect(p.endFetch(ticket, batch, next)).toBe(true);
    };
    fetch(0, 3);
    fetch(3, 2);
    // A partition that is behind hands its whole prefetch over at once: the store's commits grow with the lag.
    const first = p.take()!;
    expect(first.batch.records.map((r) => r.offset)).toEqual(['0', '1', '2', '3', '4']);
    expect({
      next: first.next,
      highWatermark: first.batch.highWatermark,
      prefetched: p.prefetchedBytes,
    }).toEqual({ next: 5n, highWatermark: '100', prefetched: 0 });
    expect(first.batch.continuesFrom).toBeUndefined();
    expect(p.take()).toBeUndefined(); // nothing waits
    fetch(5, 2);
    // The next one goes out while the first is applied, and continues where the first ends.
    const second = p.take()!;
    expect({
      offsets: second.batch.records.map((r) => r.offset),
      continuesFrom: second.batch.continuesFrom,
    }).toEqual({ offsets: ['5', '6'], continuesFrom: '5' });
    p.settle(first, true, 0);
    expect(p.applied).toBe(5n);
    fetch(7, 1);
    // Taken once nothing before it is out: no condition.
    p.settle(second, true, 0);
    expect(p.applied).toBe(7n);
    const third = p.take()!;
    expect({
      offsets: third.batch.records.map((r) => r.offset),
      continuesFrom: third.batch.continuesFrom,
    }).toEqual({
      offsets: ['7'],
      continuesFrom: undefined,
    });
    expect(p.handling).toBe(true);
    p.settle(third, true, 0);
    expect(p.handling).toBe(false);
  });

  it('should hand out another batch only while the batches out hold less than the bound', () => {
    const p = feedOf(2);
    const fetch = (count: number) => fetchInto(p, count);
    fetch(1);
    const a = p.take()!; // one record out: under the bound
    fetch(1);
    const b = p.take()!; // two out: at the bound
    fetch(1);
    expect(p.ready()).toBe(false);
    expect(p.take()).toBeUndefined();
    p.settle(a, true, 0);
    const c = p.take()!;
    expect([a, b, c].map((t) => t.batch.continuesFrom)).toEqual([undefined, '1', '2']);
  });

  it('should count a batch whose records were let go by what its handler holds, until it settles', () => {
    const p = feedOf(2);
    const fetch = (count: number) => fetchInto(p, count);
    fetch(2);
    const a = p.take()!; // two records out: at the bound
    fetch(1);
    expect(p.take()).toBeUndefined();
    // Its handler decoded it and holds a tenth of its bytes: the bound has room again.
    expect(p.release(a, Math.floor(ONE_RECORD / 5))).toBe(true);
    expect(p.release(a, 0)).toBe(false); // once
    const b = p.take()!;
    expect(b.batch.continuesFrom).toBe('2');
    fetch(1);
    // a (a fifth of a record) and b (one record) are out: under the bound, one more goes.
    const c = p.take()!;
    fetch(1);
    expect(p.take()).toBeUndefined();
    // Settled, a frees what it held, not its records' bytes: b and c still fill the bound.
    p.settle(a, true, 0);
    expect(p.take()).toBeUndefined();
    expect(p.release(a, 0)).toBe(false); // settled
    p.settle(b, true, 0);
    expect(p.take()!.batch.records.map((r) => r.offset)).toEqual(['4']);
    expect(c.batch.records.map((r) => r.offset)).toEqual(['3']);
  });

  it('should hand out at most MAX_BATCHES_OUT batches at once, whatever they hold', () => {
    const p = feedOf(16); // a share of one record
    const out: TakenBatch[] = [];
    for (let i = 0; i < MAX_BATCHES_OUT + 3; i++) {
      fetchInto(p, 1);
      const taken = p.take();
      if (taken === undefined) break;
      p.release(taken, 0);
      out.push(taken);
    }
    expect(out).toHaveLength(MAX_BATCHES_OUT);
    p.settle(out[0]!, true, 0);
    expect(p.take()).toBeDefined();
  });

  it('should keep small fetches waiting while a batch is out, and hand them out together after it', () => {
    const p = feedOf(64); // a share of 4 records
    const fetch = (count: number) => fetchInto(p, count);
    fetch(1);
    const first = p.take()!;
    fetch(1);
    fetch(2);
    expect({ ready: p.ready(), taken: p.take() }).toEqual({ ready: false, taken: undefined });
    fetch(1); // 4 records wait: a share of the bound
    const second = p.take()!;
    expect({
      offsets: second.batch.records.map((r) => r.offset),
      continuesFrom: second.batch.continuesFrom,
    }).toEqual({ offsets: ['1', '2', '3', '4'], continuesFrom: '1' });
    fetch(1);
    expect(p.take()).toBeUndefined();
    p.settle(first, true, 0);
    p.settle(second, true, 0);
    // Nothing out: whatever waits goes.
    expect(p.take()!.batch.records.map((r) => r.offset)).toEqual(['5']);
  });

  it('should forget the batches out after a rejected one: the next one taken continues from nothing', () => {
    const p = feedOf(16);
    const fetch = (count: number) => fetchInto(p, count);
    fetch(2);
    const a = p.take()!;
    fetch(2);
    const b = p.take()!;
    expect(b.batch.continuesFrom).toBe('2');
    // `a` fails (early: before the store saw it); `b`, handed out after it, is refused by the store.
    p.settle(a, false, 0);
    expect({ fetchOffset: p.fetchOffset, applied: p.applied, handling: p.handling }).toEqual({
      fetchOffset: 0n,
      applied: 0n,
      handling: true, // `b` is still out
    });
    p.settle(b, false, 0);
    expect(p.handling).toBe(false);
    const retry = p.retryAt;
    fetchInto(p, 4);
    expect(p.retryAt).toBe(retry); // `b`'s refusal added no backoff of its own
    const again = p.take()!;
    expect({
      offsets: again.batch.records.map((r) => r.offset),
      continuesFrom: again.batch.continuesFrom,
    }).toEqual({ offsets: ['0', '1', '2', '3'], continuesFrom: undefined });
  });

  it('should merge fetched batches with the high watermark and the skipped offsets of the last one', () => {
    const records = (from: number, count: number) =>
      Array.from({ length: count }, (_, i) => message(from + i)).map(
        (m) => toFeedBatch('t', 0, [m], '0').records[0]!,
      );
    const merged = mergeBatches([
      // 2..3 skipped by the source (a transaction marker): passed by the next batch's records.
      { topic: 't', partition: 0, records: records(0, 2), highWatermark: '10', nextOffset: '4' },
      { topic: 't', partition: 0, records: records(4, 2), highWatermark: '12' },
      // Only a skip at the end: the merged batch says so.
      { topic: 't', partition: 0, records: [], highWatermark: '14', nextOffset: '8' },
    ]);
    expect({ ...merged, records: merged.records.map((r) => r.offset) }).toEqual({
      topic: 't',
      partition: 0,
      records: ['0', '1', '4', '5'],
      highWatermark: '14',
      nextOffset: '8',
    });
    const plain = mergeBatches([
      { topic: 't', partition: 0, records: records(0, 1), highWatermark: '10', nextOffset: '3' },
      { topic: 't', partition: 0, records: records(3, 1), highWatermark: '11' },
    ]);
    expect(plain.nextOffset).toBeUndefined();
    expect(plain.records.map((r) => r.offset)).toEqual(['0', '3']);
  });

  it('should fetch ahead while a batch is out, up to the bound, not counting the batch being applied', () => {
    const big = batchBytes(fetchFrom(100, 0n, 1).batch);
    const p = new PartitionFeed('t', 0, 0n, 2 * big);
    p.leader = 1;
    const fetch = () => fetchInto(p, 1);
    fetch();
    fetch();
    fetch();
    const out = p.take()!; // three records out: over the bound, so nothing more goes out
    expect(p.fetchable(0)).toBe(true); // the batch being applied does not count
    fetch();
    expect(p.fetchable(0)).toBe(true);
    fetch();
    expect(p.prefetchedBytes).toBe(2 * big);
    expect(p.fetchable(0)).toBe(false); // full
    expect(p.take()).toBeUndefined();
    p.settle(out, true, 0);
    p.take();
    expect(p.fetchable(0)).toBe(true); // room again once a batch left
  });

  it('should drop what was fetched after a rejected batch and fetch again from the last accepted one after a backoff', () => {
    const p = new PartitionFeed('t', 0, 5n, 1_000_000);
    p.leader = 1;
    const t1 = p.beginFetch();
    p.endFetch(t1, fetchFrom(100, t1.offset, 3).batch, 8n);
    const t2 = p.beginFetch();
    p.endFetch(t2, fetchFrom(100, t2.offset, 3).batch, 11n);
    const taken = p.take()!;
    const inFlight = p.beginFetch(); // a fetch of 11.. is on the wire when the handler rejects
    p.settle(taken, false, 1_000);
    expect({ fetchOffset: p.fetchOffset, prefetched: p.prefetchedBytes, ready: p.ready() }).toEqual({
      fetchOffset: 5n,
      prefetched: 0,
      ready: false,
    });
    // The fetch that left before the reset comes back: its records are dropped.
    expect(p.endFetch(inFlight, fetchFrom(100, 11n, 3).batch, 14n)).toBe(false);
    expect(p.fetchOffset).toBe(5n);
    expect(p.fetchable(1_000)).toBe(false);
    expect(p.fetchable(1_000 + partitionBackoffMs(1))).toBe(true);
  });

  it('should forget a batch taken before an offset reset', () => {
    const p = new PartitionFeed('t', 0, 50n, 1_000_000);
    p.leader = 1;
    const t = p.beginFetch();
    p.endFetch(t, fetchFrom(100, t.offset, 2).batch, 52n);
    const taken = p.take()!;
    p.resetting = true;
    p.resetTo(10n);
    p.settle(taken, true, 0);
    expect({ applied: p.applied, fetchOffset: p.fetchOffset, resetting: p.resetting }).toEqual({
      applied: 10n,
      fetchOffset: 10n,
      resetting: false,
    });
  });

  it('should never skip or apply twice, under random fetch sizes, failures and interleavings (300 runs)', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = prng(seed);
      const length = 1 + Math.floor(rnd() * 60);
      // A bound of 1 to 48 records: a share of it (PIPELINE_SHARE) is 0.06 to 3 records.
      const bound = batchBytes(fetchFrom(length, 0n, 1).batch) * (1 + Math.floor(rnd() * 48));
      const p = new PartitionFeed('t', 0, 0n, bound);
      p.leader = 1;
      // The store, as the handler and the commit body treat it: batches reach it in the order they went out
      // (batch-steps.ts, 4.); one that continues from past its position is refused (checkContinuity); one
      // that commits applies its records from the position on (the replay guard) and moves the position.
      let position = 0n;
      const applied: string[] = [];
      let inFlight: FetchTicket | undefined;
      const out: TakenBatch[] = [];
      /** What each batch out counts for (its records' bytes, or what its handler held once released). */
      const counted = new Map<TakenBatch, number>();
      const released = new Set<TakenBatch>();
      let outBytes = 0;
      let now = 0;
      for (let step = 0; step < 3_000 && applied.length < length; step++) {
        now += 50;
        const roll = rnd();
        if (roll < 0.3 && inFlight === undefined && p.fetchable(now)) {
          inFlight = p.beginFetch();
        } else if (roll < 0.55 && inFlight !== undefined) {
          const { batch, next } = fetchFrom(length, inFlight.offset, 1 + Math.floor(rnd() * 5));
          p.endFetch(inFlight, batch, next);
          inFlight = undefined;
          // One fetch's worth over the bound at most.
          expect(p.prefetchedBytes).toBeLessThanOrEqual(bound + batchBytes(batch));
        } else if (roll < 0.75) {
          const before = outBytes;
          const waiting = p.prefetchedBytes;
          const taken = p.take();
          if (taken === undefined) continue;
          // Another goes out only while those out hold less than the bound, and once a share of it waits, and
          // while fewer than MAX_BATCHES_OUT are out.
          if (out.length > 0) {
            expect(before).toBeLessThan(bound);
            expect(waiting).toBeGreaterThanOrEqual(bound * PIPELINE_SHARE);
            expect(out.length).toBeLessThan(MAX_BATCHES_OUT);
          }
          out.push(taken);
          counted.set(taken, taken.bytes);
          outBytes += taken.bytes;
          expect(p.take()).toBeUndefined(); // it took everything waiting
        } else if (roll < 0.82 && out.length > 0) {
          // A handler decoded its batch and lets its records go, holding less (FeedHandler's `decoded`).
          const taken = out[Math.floor(rnd() * out.length)]!;
          const held = Math.floor(rnd() * taken.bytes);
          const first = !released.has(taken);
          expect(p.release(taken, held)).toBe(first);
          if (first) {
            released.add(taken);
            outBytes += held - counted.get(taken)!;
            counted.set(taken, held);
          }
        } else if (roll < 0.95 && out.length > 0) {
          // The store commits the oldest batch out, or fails it.
          const taken = out.shift()!;
          outBytes -= counted.get(taken)!;
          const from = taken.batch.continuesFrom;
          const ok = (from === undefined || position >= BigInt(from)) && rnd() < 0.8;
          if (ok) {
            for (const r of taken.batch.records) if (BigInt(r.offset) >= position) applied.push(r.offset);
            if (taken.next > position) position = taken.next;
          }
          p.settle(taken, ok, now);
        } else if (out.length > 0) {
          // A batch fails before it reaches the store (its decoding did), whichever is out.
          const [taken] = out.splice(Math.floor(rnd() * out.length), 1);
          outBytes -= counted.get(taken!)!;
          p.settle(taken!, false, now);
        }
      }
      expect(applied, `seed ${seed}`).toEqual(Array.from({ length }, (_, i) => String(i)));
    }
  });

  it('should move a transactional partition past its markers and aborted records, and say so to the store', () => {
    // Offsets 0-1: committed transaction of producer 7, 2: its commit marker; 3-4: a transaction of producer
    // 8 that was aborted, 5: its abort marker (kafkajs' Batch drops both, `filterAbortedMessages.js`).
    const txn = (producerId: string) => ({ batchContext: { producerId, inTransaction: true } });
    const marker = (offset: number, producerId: string): FetchedMessage =>
      ({
        ...message(offset),
        key: Buffer.from([0, 0, 0, 0]),
        isControlRecord: true,
        ...txn(producerId),
      }) as FetchedMessage;
    const data = (
      messages: FetchedMessage[],
      aborted: { producerId: string; firstOffset: string }[] = [],
    ): FetchedPartition => ({
      partition: 0,
      errorCode: 0,
      highWatermark: '6',
      abortedTransactions: aborted,
      messages,
    });
    const committed = fetchedBatch(
      't',
      0n,
      data([
        { ...message(0), ...txn('7') },
        { ...message(1), ...txn('7') },
        marker(2, '7'),
      ] as FetchedMessage[]),
    );
    expect({
      offsets: committed.batch.records.map((r) => r.offset),
      next: committed.next,
      nextOffset: committed.batch.nextOffset,
    }).toEqual({
      offsets: ['0', '1'],
      next: 3n,
      nextOffset: '3',
    });
    const aborted = fetchedBatch(
      't',
      3n,
      data(
        [{ ...message(3), ...txn('8') }, { ...message(4), ...txn('8') }, marker(5, '8')] as FetchedMessage[],
        [{ producerId: '8', firstOffset: '3' }],
      ),
    );
    expect({
      offsets: aborted.batch.records.map((r) => r.offset),
      next: aborted.next,
      nextOffset: aborted.batch.nextOffset,
    }).toEqual({
      offsets: [],
      next: 6n,
      nextOffset: '6',
    });
    // A position-only batch is still handed over (the store moves its position), a plain empty fetch is not.
    const p = new PartitionFeed('t', 0, 3n, 1_000_000);
    p.leader = 1;
    const ticket = p.beginFetch();
    p.endFetch(ticket, aborted.batch, aborted.next);
    expect(p.take()?.batch.nextOffset).toBe('6');
    const plain = fetchedBatch('t', 6n, data([]));
    expect({ records: plain.batch.records, next: plain.next, nextOffset: plain.batch.nextOffset }).toEqual({
      records: [],
      next: 6n,
      nextOffset: undefined,
    });
  });
});

describe('fetchedBatch without aborted transactions', () => {
  /** Random offsets from `base` (a number or a 19-digit one), increasing with gaps, some control records. */
  function randomFetch(next: () => number, base: bigint): FetchedPartition {
    const messages: FetchedMessage[] = [];
    let offset = base;
    const n = next() < 0.15 ? 0 : Math.floor(next() * 12);
    for (let i = 0; i < n; i++) {
      offset += BigInt(next() < 0.3 ? Math.floor(next() * 4) : 0) + (i === 0 ? 0n : 1n);
      messages.push({
        ...message(0),
        offset: offset.toString(),
        ...(next() < 0.2 ? { isControlRecord: true } : next() < 0.5 ? { isControlRecord: false } : {}),
      });
    }
    return {
      partition: 2,
      errorCode: 0,
      highWatermark: (offset + 5n).toString(),
      ...(next() < 0.5 ? { abortedTransactions: [] } : {}),
      messages,
    };
  }

  it("delivers kafkajs' Batch's records and continues where it does, over random fetches", () => {
    const next = prng(17);
    // Offsets whose decimal length changes (9 → 10 → 11 digits), beyond 2^53, and below zero (corrupt, but
    // kafkajs compares them as numbers).
    const bases = [0n, 999_999_995n, 9_999_999_990n, 2n ** 63n - 40n, -6n];
    let delivered = 0;
    for (let i = 0; i < 3_000; i++) {
      const base = bases[i % bases.length]!;
      const data = randomFetch(next, base);
      const fetchedOffset = base + BigInt(Math.floor(next() * 20)) - 4n;
      const ours = fetchedBatch('t', fetchedOffset, data);
      const theirs = filteredByKafkajs('t', fetchedOffset, data);
      expect(ours.batch.records).toStrictEqual(theirs.records);
      expect(ours.next).toBe(theirs.next);
      delivered += ours.batch.records.length;
    }
    // Not vacuous: records delivered, and some fetches filtered to nothing.
    expect(delivered).toBeGreaterThan(5_000);
  });
});

describe('toFeedBatch', () => {
  it('gives a header sent without a value (null) as present and undefined, and a repeated one its last value', () => {
    const headers = {
      none: null,
      repeated: [Buffer.from('a'), Buffer.from('b')],
      lastNone: [Buffer.from('a'), null],
      one: Buffer.from('x'),
    };
    const batch = toFeedBatch('t', 0, [{ ...message(0), headers }], '1');
    const got = batch.records[0]!.headers;
    expect(Object.keys(got).sort()).toEqual(['lastNone', 'none', 'one', 'repeated']);
    expect(got['none']).toBeUndefined();
    expect(got['lastNone']).toBeUndefined();
    expect(got['repeated']).toEqual(Buffer.from('b'));
    expect(got['one']).toEqual(Buffer.from('x'));
  });

  it("keeps a header named __proto__ as a header, not as the headers' prototype", () => {
    const headers = {};
    Object.defineProperty(headers, '__proto__', { value: Buffer.from('p'), enumerable: true });
    const got = toFeedBatch('t', 0, [{ ...message(0), headers }, message(1)], '2').records;
    expect(Object.getPrototypeOf(got[0]!.headers)).toBe(Object.prototype);
    expect(Object.keys(got[0]!.headers)).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(got[0]!.headers, '__proto__')?.value).toEqual(Buffer.from('p'));
    expect(got[1]!.headers).toEqual({});
  });
});
