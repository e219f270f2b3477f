/**
 * `BatchHistogram.observeAll` (src/ops/metrics.ts) writes into prom-client's internal state of a histogram:
 * it must leave the histogram exactly as one `observe` per value would, which the exposition text shows
 * (buckets, sum in the same order of additions, count). A prom-client upgrade that changes that state fails
 * here.
 */
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BatchHistogram } from '../../src/ops/metrics.js';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

function pair(): { one: Histogram; all: BatchHistogram; text: () => Promise<[string, string]> } {
  const a = new Registry();
  const b = new Registry();
  const one = new Histogram({ name: 'age_seconds', help: 'h', buckets: BUCKETS, registers: [a] });
  const all = new BatchHistogram({ name: 'age_seconds', help: 'h', buckets: BUCKETS, registers: [b] });
  return { one, all, text: async () => [await a.metrics(), await b.metrics()] };
}

/** Deterministic values: on bucket bounds, between them, 0, above the last bound, fractions that round. */
function values(seed: number, n: number): number[] {
  let x = seed;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const pick = x % 4;
    out.push(
      pick === 0
        ? BUCKETS[x % BUCKETS.length]!
        : pick === 1
          ? 0
          : pick === 2
            ? (x % 100_000) / 1000
            : 60 + (x % 1000) / 7,
    );
  }
  return out;
}

describe('BatchHistogram.observeAll', () => {
  it('should leave the same exposition as one observe per value, over batches of every size', async () => {
    const { one, all, text } = pair();
    for (let batch = 0; batch < 50; batch++) {
      const vs = values(batch + 1, batch * 7);
      for (const v of vs) one.observe(v);
      all.observeAll(vs);
    }
    const [expected, actual] = await text();
    expect(expected).toContain('age_seconds_count 8575');
    expect(actual).toBe(expected);
  });

  it('should start again from nothing after a reset, as observe does', async () => {
    const { one, all, text } = pair();
    const vs = values(7, 30);
    for (const v of vs) one.observe(v);
    all.observeAll(vs);
    one.reset();
    all.reset();
    all.observeAll([]);
    const ws = values(8, 20);
    for (const v of ws) one.observe(v);
    all.observeAll(ws);
    const [expected, actual] = await text();
    expect(expected).toContain('age_seconds_count 20');
    expect(actual).toBe(expected);
  });

  it('should refuse a batch with a value that is not finite, observing none of it', async () => {
    const { one, all, text } = pair();
    one.observe(1);
    all.observeAll([1]);
    expect(() => all.observeAll([2, Number.NaN])).toThrow(TypeError);
    expect(() => all.observeAll([Number.POSITIVE_INFINITY])).toThrow(TypeError);
    const [expected, actual] = await text();
    expect(actual).toBe(expected);
  });
});
