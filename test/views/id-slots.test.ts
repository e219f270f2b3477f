/**
 * IdSlots (src/views/id-slots.ts) holds what a Map of the same ids holds: every id added gives back its
 * integer, every other id none, whether it went by its value (an integer written canonically) or to the Map,
 * through the table's growth; and only canonical integers go by value, so no two ids share one.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { canonicalInteger, IdSlots } from '../../src/views/id-slots.js';

describe('the ids a replay gives integers', () => {
  it('should take as integers only the canonical decimal forms, up to 15 digits', () => {
    const cases: [string, number][] = [
      ['0', 0],
      ['7', 7],
      ['10', 10],
      ['123456789012345', 123456789012345],
      ['999999999999999', 999999999999999],
      ['', -1],
      ['00', -1],
      ['007', -1],
      ['1234567890123456', -1],
      ['9007199254740993', -1],
      ['-1', -1],
      ['+1', -1],
      ['1.0', -1],
      ['1e3', -1],
      [' 1', -1],
      ['1 ', -1],
      ['0x10', -1],
      ['\u0663', -1],
      ['\uff11', -1],
      ['u1', -1],
      ['1/', -1],
      ['1:', -1],
    ];
    expect(cases.map(([id]) => [id, canonicalInteger(id)])).toEqual(cases);
  });

  it('should give back the integer of every id added and none for any other, as a Map does', () => {
    const random = prng(31);
    const forms = [
      (n: number) => String(n),
      (n: number) => `0${n}`,
      (n: number) => `u${n}`,
      (n: number) => String(n * 1_000_003 + 1e14),
      (n: number) => `${n}.0`,
    ];
    const slots = new IdSlots();
    const reference = new Map<string, number>();
    // Past several doublings of the table (1,024 pairs at first).
    for (let i = 0; i < 20_000; i++) {
      const id = forms[Math.floor(random() * forms.length)]!(Math.floor(random() * 30_000));
      if (reference.has(id)) continue;
      slots.add(id, reference.size);
      reference.set(id, reference.size);
      if (i % 1_000 === 0) for (const [known, integer] of reference) expect(slots.get(known)).toBe(integer);
    }
    for (const [id, integer] of reference) expect(slots.get(id)).toBe(integer);
    let absent = 0;
    for (let n = 0; n < 30_000; n++)
      for (const form of forms) {
        const id = form(n);
        if (reference.has(id)) continue;
        expect(slots.get(id)).toBeUndefined();
        absent++;
      }
    expect(absent).toBeGreaterThan(50_000);
  });
});
