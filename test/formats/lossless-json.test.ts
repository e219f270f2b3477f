/** Lossless JSON: the same values as JSON.parse, except integers beyond 2^53, which stay exact as bigint. */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { parseLosslessJson } from '../../src/formats/lossless-json.js';

/** A random JSON text, with long digit runs so most texts take the parser rather than JSON.parse. */
function randomJson(rnd: () => number, depth = 0): string {
  const r = rnd();
  if (depth < 4 && r < 0.2)
    return `{${Array.from({ length: Math.floor(rnd() * 4) }, (_, i) => `${JSON.stringify(`k${i}\u00e9"\\`)} : ${randomJson(rnd, depth + 1)}`).join(' ,')}}`;
  if (depth < 4 && r < 0.35)
    return `[ ${Array.from({ length: Math.floor(rnd() * 4) }, () => randomJson(rnd, depth + 1)).join(',')}]`;
  if (r < 0.5) return JSON.stringify(`s\n\t\u0001${Math.floor(rnd() * 1e6)}\ud83d\ude00`);
  if (r < 0.6) return ['true', 'false', 'null'][Math.floor(rnd() * 3)]!;
  if (r < 0.7) return String(Math.floor(rnd() * 2 ** 53) * (rnd() < 0.5 ? -1 : 1));
  if (r < 0.8)
    return `${Math.floor(rnd() * 1e9)}.${'1234567890123456789'.slice(0, 1 + Math.floor(rnd() * 19))}e${Math.floor(rnd() * 20) - 10}`;
  return '1234567890123456'.slice(0, 1 + Math.floor(rnd() * 16));
}

describe('parseLosslessJson', () => {
  it('should equal JSON.parse on 2,000 random texts without unsafe integers', () => {
    const rnd = prng(15);
    for (let i = 0; i < 2_000; i++) {
      const text = randomJson(rnd); // mostly JSON.parse's own path
      expect(parseLosslessJson(text)).toEqual(JSON.parse(text));
      // An unsafe integer: the marker path; with a \u0000 escape too: the parser path.
      for (const padded of [
        `{"big":9999999999999999,"v":${text}}`,
        `{"big":9999999999999999,"nul":"\\u0000","v":${text}}`,
      ]) {
        const want = JSON.parse(padded.replace('9999999999999999', '"big"')) as Record<string, unknown>;
        expect(parseLosslessJson(padded)).toEqual({ ...want, big: 9999999999999999n });
      }
    }
  });

  it('should keep integers beyond 2^53 exact, signed, at any depth', () => {
    expect(
      parseLosslessJson(
        '{"id":1234567890123456789,"a":[-9223372036854775808,9007199254740993,9007199254740991]}',
      ),
    ).toEqual({
      id: 1234567890123456789n,
      a: [-9223372036854775808n, 9007199254740993n, 9007199254740991],
    });
    // What it protects against: JSON.parse rounds.
    expect(String(JSON.parse('1234567890123456789'))).toBe('1234567890123456800');
    // Non-integers stay doubles, as with JSON.parse.
    expect(parseLosslessJson('12345678901234567.5')).toBe(JSON.parse('12345678901234567.5'));
  });

  it('should find an unsafe integer wherever its digit run stands among shorter ones', () => {
    // The pre-scan looks for digit runs of 16 or more from their first digit: runs just below, a run inside a
    // fraction, a run of exactly 16 on either side of 2^53 - 1, and the unsafe one last or first.
    for (const [big, want] of [
      ['9007199254740993', 9007199254740993n],
      ['12345678901234567890', 12345678901234567890n],
      ['-9223372036854775808', -9223372036854775808n],
    ] as const) {
      const text = `{"ts":1700000000123,"lsn":123456789012345,"f":0.12345678901234567,"safe":9007199254740991,"id":${big}}`;
      expect(parseLosslessJson(text)).toEqual({
        ts: 1700000000123,
        lsn: 123456789012345,
        f: Number('0.12345678901234567'),
        safe: 9007199254740991,
        id: want,
      });
      expect(parseLosslessJson(`[${big},1234567890123456,12345]`)).toEqual([want, 1234567890123456, 12345]);
    }
  });

  it.each([
    '{12345678901234567890:1}',
    '[-01234567890123456789]',
    '{"a":1,}',
    '[1,]',
    '01234567890123456789',
    '1.',
    '.5',
    '+1',
    '"\u0001"',
    '"\\x"',
    '"\\u12G4"',
    '{"a" 1}',
    '[1 2]',
    '"abc',
    'tru',
    '[] x',
    '{a:1}',
    '',
  ])('should reject %j as JSON.parse does', (text) => {
    // The marker path, then the parser path (a \u0000 escape in the text).
    for (const long of [`[9999999999999999,${text}]`, `["\\u0000",9999999999999999,${text}]`]) {
      expect(() => JSON.parse(long)).toThrow(SyntaxError);
      expect(() => parseLosslessJson(long)).toThrow(SyntaxError);
    }
  });

  it('should keep "__proto__" as data, like JSON.parse, on every path', () => {
    for (const extra of ['', ',"nul":"\\u0000"']) {
      const v = parseLosslessJson(`{"__proto__":{"x":1},"n":1234567890123456789${extra}}`) as Record<
        string,
        unknown
      >;
      expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
      expect(Object.keys(v).slice(0, 2)).toEqual(['__proto__', 'n']);
    }
  });
});
