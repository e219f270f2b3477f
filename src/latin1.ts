/**
 * Buffer's own Latin-1 copy methods, where the runtime has them: what `write(s, at, 'latin1')` and
 * `toString('latin1', start, end)` call after dispatching on the encoding's name, which costs more than the
 * copy for the short strings of a record (an id, a field name).
 */
type Latin1 = {
  latin1Write?: (s: string, at: number) => number;
  latin1Slice?: (start: number, end: number) => string;
};
const proto = Buffer.prototype as unknown as Latin1;

/** Writes `s` (Latin-1) into `b` at `at`; returns the bytes written. */
export const latin1Write: (b: Buffer, s: string, at: number) => number =
  typeof proto.latin1Write === 'function'
    ? (b, s, at) => (b as unknown as Required<Latin1>).latin1Write(s, at)
    : (b, s, at) => b.write(s, at, 'latin1');

/** Bytes `start` to `end` of `b` as a Latin-1 string. */
export const latin1Slice: (b: Buffer, start: number, end: number) => string =
  typeof proto.latin1Slice === 'function'
    ? (b, start, end) => (b as unknown as Required<Latin1>).latin1Slice(start, end)
    : (b, start, end) => b.toString('latin1', start, end);
