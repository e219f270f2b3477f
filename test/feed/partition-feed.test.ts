/**
 * One partition's fetch-ahead and delivery state (src/feed/partition-feed.ts), without Kafka: a model log,
 * fetches of random sizes, and a handler that accepts or rejects at random, interleaved in random orders.
 * Whatever happens, the batches the handler accepted are the log in order with nothing skipped and
 * nothing accepted twice, at most one batch (everything fetched so far, merged) is out at a time, and the records waiting never exceed the
 * bound by more than one fetch.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import {
  PartitionFeed,
  batchBytes,
  fetchedBatch,
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

describe('PartitionFeed', () => {
  it('should hand out everything fetched as one batch, in order, one at a time, and move the re-read position on acceptance', () => {
    const p = new PartitionFeed('t', 0, 0n, 1_000_000);
    p.leader = 1;
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
    fetch(5, 2);
    expect(p.take()).toBeUndefined(); // one out at a time
    p.settle(first, true, 0);
    expect(p.applied).toBe(5n);
    expect(p.take()!.batch.records.map((r) => r.offset)).toEqual(['5', '6']);
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
    const fetch = () => {
      const ticket = p.beginFetch();
      const { batch, next } = fetchFrom(100, ticket.offset, 1);
      p.endFetch(ticket, batch, next);
    };
    fetch();
    const out = p.take()!;
    expect(p.fetchable(0)).toBe(true); // the batch being applied does not count
    fetch();
    expect(p.fetchable(0)).toBe(true);
    fetch();
    expect(p.prefetchedBytes).toBe(2 * big);
    expect(p.fetchable(0)).toBe(false); // full
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

  it('should never skip or accept twice, under random fetch sizes, rejections and interleavings (300 runs)', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = prng(seed);
      const length = 1 + Math.floor(rnd() * 60);
      const bound = batchBytes(fetchFrom(length, 0n, 1).batch) * (1 + Math.floor(rnd() * 4));
      const p = new PartitionFeed('t', 0, 0n, bound);
      p.leader = 1;
      const accepted: string[] = [];
      let inFlight: FetchTicket | undefined;
      let out: TakenBatch | undefined;
      let now = 0;
      for (let step = 0; step < 2_000 && accepted.length < length; step++) {
        now += 50;
        const roll = rnd();
        if (roll < 0.35 && inFlight === undefined && p.fetchable(now)) {
          inFlight = p.beginFetch();
        } else if (roll < 0.6 && inFlight !== undefined) {
          const { batch, next } = fetchFrom(length, inFlight.offset, 1 + Math.floor(rnd() * 5));
          p.endFetch(inFlight, batch, next);
          inFlight = undefined;
          // One fetch's worth over the bound at most.
          expect(p.prefetchedBytes).toBeLessThanOrEqual(bound + batchBytes(batch));
        } else if (roll < 0.8 && out === undefined) {
          out = p.take();
          if (out !== undefined) expect(p.take()).toBeUndefined();
        } else if (out !== undefined) {
          const ok = rnd() < 0.8;
          if (ok) accepted.push(...out.batch.records.map((r) => r.offset));
          p.settle(out, ok, now);
          out = undefined;
        }
      }
      expect(accepted, `seed ${seed}`).toEqual(Array.from({ length }, (_, i) => String(i)));
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
