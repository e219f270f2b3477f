/**
 * Date-time normalization (src/views/dates.ts, CONTRACT.md section 1). A string already in the form returned
 * takes a shortcut; it must answer exactly what the general parse (`parseDateTime`) answers, for valid and
 * invalid dates alike: every field at and past its limits, leap days, 24:00.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { isoOfMs, normalizeDateTime, parseDateTime as reference } from '../../src/views/dates.js';

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

describe('normalizeDateTime', () => {
  it('should answer what the general parse answers for strings in the returned form, valid or not', () => {
    const next = prng(3);
    const pick = (values: readonly number[]): number => values[Math.floor(next() * values.length)]!;
    let valid = 0;
    for (let i = 0; i < 20_000; i++) {
      const year = pick([1000, 1582, 1900, 1999, 2000, 2004, 2008, 2023, 2100, 2400, 9999, 999, 10]);
      const month = pick([0, 1, 2, 6, 9, 11, 12, 13, 99]);
      const day = pick([0, 1, 15, 28, 29, 30, 31, 32, 99]);
      const hour = pick([0, 1, 12, 23, 24, 25, 99]);
      const minute = pick([0, 30, 59, 60, 99]);
      const second = pick([0, 30, 59, 60, 99]);
      const milli = pick([0, 1, 500, 999]);
      const input = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}.${pad(milli, 3)}Z`;
      const want = reference(input);
      if (want !== undefined) valid++;
      expect({ input, got: normalizeDateTime(input) }).toEqual({ input, got: want });
    }
    // Both kinds were drawn, in numbers.
    expect(valid).toBeGreaterThan(1_000);
    expect(valid).toBeLessThan(19_000);
  });

  it('should normalize the other accepted forms as before', () => {
    // What the parse answered before the shortcut; year 0000 stays on the general path (its Date.UTC reads
    // 0000-0099 as 1900-1999, so 0000-02-29 is refused there).
    const cases: [string, string | undefined][] = [
      ['2008-01-22', '2008-01-22T00:00:00.000Z'],
      ['2008-01-22T15:14:44', '2008-01-22T15:14:44.000Z'],
      ['2008-01-22T15:14:44.123456789Z', '2008-01-22T15:14:44.123Z'],
      ['2008-01-22 15:14:44+01:00', '2008-01-22T14:14:44.000Z'],
      ['2008-01-22T15:14:44.123+0530', '2008-01-22T09:44:44.123Z'],
      ['2008-01-22T15:14:44.123-08', '2008-01-22T23:14:44.123Z'],
      ['2008-02-29T00:00:00.000+00:00', '2008-02-29T00:00:00.000Z'],
      ['2007-02-29T00:00:00.000+00:00', undefined],
      ['0000-02-29T00:00:00.000Z', undefined],
      ['0050-06-01T12:00:00.000Z', '0050-06-01T12:00:00.000Z'],
      ['Tue Jan 22 15:14:44 +0000 2008', '2008-01-22T15:14:44.000Z'],
      ['Tue Feb 30 15:14:44 +0000 2008', undefined],
      ['2008-01-22T15:14:44.123z', undefined],
      [' 2008-01-22T15:14:44.123Z', undefined],
      ['yesterday', undefined],
      ['', undefined],
    ];
    for (const [input, want] of cases)
      expect({ input, got: normalizeDateTime(input) }).toEqual({ input, got: want });
  });
});

describe('isoOfMs', () => {
  it('should format as Date#toISOString across the time range, around day boundaries and in runs of one day', () => {
    const random = prng(29);
    const day = 86_400_000;
    const values = [
      0,
      -0,
      -1,
      1,
      day - 1,
      day,
      -day,
      -day - 1,
      8.64e15,
      -8.64e15,
      253402300799999,
      253402300800000,
    ];
    for (let i = 0; i < 20_000; i++) {
      const ms = Math.floor((random() * 2 - 1) * 8.64e15);
      // A random instant, then instants of its own day and the next (the cached date part reused, then not).
      values.push(ms, ms + Math.floor(random() * 1000), Math.floor(ms / day) * day + day - 1, ms + day);
    }
    for (const ms of values) expect(isoOfMs(ms), String(ms)).toBe(new Date(ms).toISOString());
  });
});
