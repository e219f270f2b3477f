/**
 * Characters from every range string encodings treat apart: ASCII (with JSON's escapes, NUL and DEL), Latin-1,
 * wider BMP characters, an astral pair, and lone surrogates of both halves.
 */
export const ALPHABET: readonly string[] = [
  'a',
  'Z',
  '0',
  ' ',
  '"',
  '\\',
  '\u0000',
  '\u007f',
  'é',
  '\u00ff',
  'ż',
  '€',
  '中',
  '\ud83d\ude00',
  '\ud800',
  '\udfff',
];
