/**
 * Date-time normalization (src/views/dates.ts, CONTRACT.md section 1). A string already in the form returned
 * takes a shortcut; it must answer exactly what the general parse answers (kept here as it was before the
 * shortcut), for valid and invalid dates alike: every field at and past its limits, leap days, 24:00.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { normalizeDateTime } from '../../src/views/dates.js';

const MONTHS: Record<string, string> = {
  Jan: '01',
  Feb: '02',
  Mar: '03',
  Apr: '04',
  May: '05',
  Jun: '06',
  Jul: '07',
  Aug: '08',
  Sep: '09',
  Oct: '10',
  Nov: '11',
  Dec: '12',
};
const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/;
const TWITTER =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{2}) (\d{2}):(\d{2}):(\d{2}) ([+-]\d{4}) (\d{4})$/;

/** The general parse, as it was before the shortcut. */
function reference(input: string): string | undefined {
  let y: string, mo: string, d: string, h: string, mi: string, s: string, frac: string, zone: string;
  const iso = ISO.exec(input);
  if (iso) {
    [, y = '', mo = '', d = '', h = '00', mi = '00', s = '00', frac = '', zone = 'Z'] = iso;
    if (zone !== 'Z' && zone.length === 3) zone += ':00';
    else if (zone !== 'Z' && !zone.includes(':')) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
    frac = frac.slice(0, 4);
  } else {
    const tw = TWITTER.exec(input);
    if (!tw) return undefined;
    const [, mon = '', day = '', hh = '', mm = '', ss = '', off = '', year = ''] = tw;
    [y, mo, d, h, mi, s, frac] = [year, MONTHS[mon] ?? '', day, hh, mm, ss, ''];
    zone = `${off.slice(0, 3)}:${off.slice(3)}`;
  }
  const ms = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}${frac}${zone}`);
  if (Number.isNaN(ms)) return undefined;
  const local = new Date(Date.UTC(+y, +mo - 1, +d));
  if (local.getUTCMonth() !== +mo - 1 || local.getUTCDate() !== +d || +h > 23 || +mi > 59 || +s > 59)
    return undefined;
  return new Date(ms).toISOString();
}

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
    for (const input of [
      '2008-01-22',
      '2008-01-22T15:14:44',
      '2008-01-22T15:14:44.123456789Z',
      '2008-01-22 15:14:44+01:00',
      '2008-01-22T15:14:44.123+0530',
      '2008-01-22T15:14:44.123-08',
      '2008-02-29T00:00:00.000+00:00',
      '2007-02-29T00:00:00.000+00:00',
      '0000-02-29T00:00:00.000Z',
      '0050-06-01T12:00:00.000Z',
      'Tue Jan 22 15:14:44 +0000 2008',
      'Tue Feb 30 15:14:44 +0000 2008',
      '2008-01-22T15:14:44.123z',
      ' 2008-01-22T15:14:44.123Z',
      'yesterday',
      '',
    ])
      expect({ input, got: normalizeDateTime(input) }).toEqual({ input, got: reference(input) });
  });
});
