/**
 * Leaf serializers of the fast path: each returns the JSON text graphql-js + Apollo would produce for a
 * value of that scalar (graphql-js `type/scalars.ts`, graphql-scalars `DateTime`), or undefined when the
 * value is anything unusual — the request then goes through Apollo, which produces the exact error.
 */
import { GraphQLDateTime } from 'graphql-scalars';

/** JSON text of a leaf value, or undefined to give up on the fast path. */
export type LeafWriter = (value: unknown) => string | undefined;

const MAX_INT = 2147483647;
const MIN_INT = -2147483648;

/** `String` and `ID` from strings (ID also accepts integers: left to Apollo). */
export const writeString: LeafWriter = (v) => (typeof v === 'string' ? JSON.stringify(v) : undefined);

/** `Int`: 32-bit integers only, like graphql-js' GraphQLInt.serialize. */
export const writeInt: LeafWriter = (v) =>
  typeof v === 'number' && Number.isInteger(v) && v <= MAX_INT && v >= MIN_INT ? String(v) : undefined;

/** `Float`: finite numbers. */
export const writeFloat: LeafWriter = (v) =>
  typeof v === 'number' && Number.isFinite(v) ? JSON.stringify(v) : undefined;

/** `Boolean`. */
export const writeBoolean: LeafWriter = (v) => (typeof v === 'boolean' ? (v ? 'true' : 'false') : undefined);

/**
 * `DateTime` (graphql-scalars): serialize parses the string into a Date, and JSON.stringify prints it as
 * `toISOString()`. The store keeps exactly that form, so a canonical string is its own output; any other
 * string takes the scalar's own path so the bytes stay identical.
 */
export const writeDateTime: LeafWriter = (v) => {
  if (typeof v !== 'string') return undefined;
  if (isCanonicalIso(v)) return `"${v}"`;
  try {
    return JSON.stringify(GraphQLDateTime.serialize(v));
  } catch {
    return undefined;
  }
};

const DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function digits(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** `YYYY-MM-DDTHH:mm:ss.sssZ` naming a real instant: what `Date.prototype.toISOString` prints. */
export function isCanonicalIso(s: string): boolean {
  if (s.length !== 24 || s[4] !== '-' || s[7] !== '-' || s[10] !== 'T' || s[13] !== ':' || s[16] !== ':')
    return false;
  if (s[19] !== '.' || s[23] !== 'Z') return false;
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 7);
  const day = digits(s, 8, 10);
  const hour = digits(s, 11, 13);
  const minute = digits(s, 14, 16);
  const second = digits(s, 17, 19);
  const millis = digits(s, 20, 23);
  if (year < 0 || millis < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23) return false;
  if (minute < 0 || minute > 59 || second < 0 || second > 59) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const maxDay = month === 2 && !leap ? 28 : (DAYS[month - 1] ?? 0);
  return day <= maxDay;
}
