/**
 * Date-time normalization (CONTRACT.md section 1): ISO-8601, or the Twitter API form from seed 002
 * (`Tue Jan 22 15:14:44 +0000 2008`), normalized to ISO-8601 UTC. Anything else is invalid.
 */

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

// 2008-01-22, 2008-01-22T15:14:44, 2008-01-22T15:14:44.123Z, 2008-01-22 15:14:44+01:00 …
const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/;
// Tue Jan 22 15:14:44 +0000 2008
const TWITTER =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{2}) (\d{2}):(\d{2}):(\d{2}) ([+-]\d{4}) (\d{4})$/;

/** The form `normalizeDateTime` returns (`Date#toISOString`), years 1000-9999. */
const CANONICAL = /^[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Returns the ISO-8601 UTC form, or undefined when the string is not a valid date-time. */
export function normalizeDateTime(input: string): string | undefined {
  // Already in the form returned (what matview's own producers and most JSON encoders write): valid exactly
  // when it reads back as itself (Date.parse rolls 2008-02-30 over to March, and 24:00 to the next day), which
  // is when its fields are within the calendar's bounds. No captures, no parts, no Date: this runs for every
  // users row and every createdAt of a catch-up.
  if (input.length === 24 && CANONICAL.test(input)) return inCalendar(input) ? input : undefined;
  return parseDateTime(input);
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** The decimal number written by the digits of `s` from `from` to `to`. */
function digits(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n = n * 10 + s.charCodeAt(i) - 0x30;
  return n;
}

/**
 * Whether a string of the returned form (CANONICAL) names a real instant: a month of the year, a day of that
 * month (proleptic Gregorian leap years, as Date's), an hour below 24, a minute and a second below 60. Exactly
 * when `Date.parse` reads it back as itself (test/views/dates.test.ts), in a twentieth of the time: the Date
 * and its `toISOString` were 0.9 µs of every users row and every createdAt of a catch-up.
 */
function inCalendar(s: string): boolean {
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 7);
  const day = digits(s, 8, 10);
  if (month < 1 || month > 12 || day < 1) return false;
  if (digits(s, 11, 13) > 23 || digits(s, 14, 16) > 59 || digits(s, 17, 19) > 59) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= (month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!);
}

/**
 * The general parse behind `normalizeDateTime`: every accepted form taken apart. Exported so a test can check
 * the shortcut against it.
 */
export function parseDateTime(input: string): string | undefined {
  let y: string, mo: string, d: string, h: string, mi: string, s: string, frac: string, zone: string;
  const iso = ISO.exec(input);
  if (iso) {
    [, y = '', mo = '', d = '', h = '00', mi = '00', s = '00', frac = '', zone = 'Z'] = iso;
    if (zone !== 'Z' && zone.length === 3) zone += ':00';
    else if (zone !== 'Z' && !zone.includes(':')) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
    frac = frac.slice(0, 4); // milliseconds: JS dates have no finer resolution
  } else {
    const tw = TWITTER.exec(input);
    if (!tw) return undefined;
    const [, mon = '', day = '', hh = '', mm = '', ss = '', off = '', year = ''] = tw;
    [y, mo, d, h, mi, s, frac] = [year, MONTHS[mon] ?? '', day, hh, mm, ss, ''];
    zone = `${off.slice(0, 3)}:${off.slice(3)}`;
  }
  const ms = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}${frac}${zone}`);
  if (Number.isNaN(ms)) return undefined;
  // Date.parse rolls 2008-02-30 over to March; a calendar-invalid date is invalid input, not a different day.
  const local = new Date(Date.UTC(+y, +mo - 1, +d));
  if (local.getUTCMonth() !== +mo - 1 || local.getUTCDate() !== +d || +h > 23 || +mi > 59 || +s > 59)
    return undefined;
  return new Date(ms).toISOString();
}

const MS_PER_DAY = 86_400_000;
const TWO_DIGITS = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));
const THREE_DIGITS = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
/** The day `isoOfMs` formatted last (days since the epoch), and its date part with the `T`. */
let lastDay = Number.NaN;
let lastDayPrefix = '';

/**
 * `new Date(ms).toISOString()` for an integer `ms` within ECMAScript's time range (±8.64e15), the date part
 * formatted once per day: a connector's timestamps come day after day, and the Date object and its
 * formatting were most of the cost (0.55 against 0.20 µs per value, written into a buffer).
 */
export function isoOfMs(ms: number): string {
  const day = Math.floor(ms / MS_PER_DAY);
  if (day !== lastDay) {
    const iso = new Date(day * MS_PER_DAY).toISOString();
    lastDayPrefix = iso.slice(0, iso.length - 'HH:MM:SS.mmmZ'.length);
    lastDay = day;
  }
  let t = ms - day * MS_PER_DAY;
  const h = Math.floor(t / 3_600_000);
  t -= h * 3_600_000;
  const m = Math.floor(t / 60_000);
  t -= m * 60_000;
  const sec = Math.floor(t / 1000);
  return `${lastDayPrefix}${TWO_DIGITS[h]}:${TWO_DIGITS[m]}:${TWO_DIGITS[sec]}.${THREE_DIGITS[t - sec * 1000]}Z`;
}
