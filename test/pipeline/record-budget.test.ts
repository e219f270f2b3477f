import { describe, expect, it } from 'vitest';
import { RecordBudget } from '../../src/pipeline/record-budget.js';

describe('RecordBudget', () => {
  it('should grant at once what fits and make the rest wait, in order, until records are given back', async () => {
    const budget = new RecordBudget(10);
    expect(budget.chunk).toBe(5);
    const order: string[] = [];
    await budget.take(6);
    const b = budget.take(5).then(() => order.push('b'));
    const c = budget.take(1).then(() => order.push('c')); // fits, but waits behind b
    await Promise.resolve();
    expect(order).toEqual([]);
    budget.give(6);
    await Promise.all([b, c]);
    expect(order).toEqual(['b', 'c']);
    const d = budget.take(5).then(() => order.push('d'));
    await Promise.resolve();
    expect(order).toEqual(['b', 'c']);
    budget.give(1);
    await d;
    expect(order).toEqual(['b', 'c', 'd']);
  });

  it('should refuse a take bigger than the whole budget and a limit below 1', async () => {
    await expect(new RecordBudget(3).take(4)).rejects.toThrow(RangeError);
    expect(() => new RecordBudget(0)).toThrow(RangeError);
    expect(new RecordBudget(1).chunk).toBe(1);
  });
});
