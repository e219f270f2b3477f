/**
 * The `json` format's plain records read from their bytes (src/formats/json-scan.ts, packed by
 * `ChangesPacker.pushScanned`) against the decoder (`decodeRecord`, then `ChangesPacker.push`): over random
 * records of every table, valid and not (escapes, non-ASCII and invalid UTF-8, control characters, numbers,
 * literals, nested values, repeated and unknown members, odd whitespace, broken JSON, dates of every form,
 * ids at and past the length bound, keys of every kind), whatever the scan accepts the decoder accepts, and
 * both pack the same bytes; and every record built from plain parts only that the decoder accepts, the scan
 * accepts too.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { JsonRowScan } from '../../src/formats/json-scan.js';
import { PLAIN_FORM } from '../../src/views/scanned-row.js';
import {
  ALL_FIELDS,
  ChangesPacker,
  PackingChangeBatch,
  type CrossingFields,
} from '../../src/store/packed-changes.js';
import { decodeRecord, MAX_KEY_BYTES } from '../../src/views/decode.js';
import { KEY_FIELD, REQUIRED_FIELDS, ROW_FIELDS, TABLES, type Table } from '../../src/views/source.js';

/** What the store packs when every built-in view reads what it reads today (no text, tweetId or createdAt). */
const VIEW_FIELDS: CrossingFields = {
  users: ROW_FIELDS.users,
  tweets: ['userId'],
  follows: ['followerId', 'followeeId'],
  likes: ['userId'],
};

const TOPIC = 'changelog';
const TIME = Date.UTC(2026, 11, 5);

interface Verdict {
  /** The decoder's result packed, or undefined when it refused the record. */
  readonly slow: Buffer | undefined;
  /** The scan's, or undefined when it left the record to the decoder. */
  readonly fast: Buffer | undefined;
  /** The scan's packing read a crossing field's string on its own (escapes or non-ASCII: `text`). */
  readonly readText?: boolean;
}

function packed(packer: ChangesPacker): Buffer {
  const p = packer.finish();
  expect(p.table.length).toBe(1);
  expect([...p.topic, ...p.partition, ...p.eventTime, ...p.topics]).toEqual([0, 3, TIME, TOPIC]);
  return Buffer.concat([Buffer.from(p.table), Buffer.from(p.bytes)]);
}

function both(table: Table, key: Buffer | null, value: Buffer | null, crossing: CrossingFields): Verdict {
  const decoded = decodeRecord(table, key, value);
  const slowPacker = new ChangesPacker(0, crossing);
  const slow =
    decoded.ok && slowPacker.push(table, decoded.key, decoded.row, TOPIC, 3, '42', TIME)
      ? packed(slowPacker)
      : undefined;
  const fastPacker = new ChangesPacker(0, crossing);
  const scan = new JsonRowScan(table);
  const row = value === null || value.length === 0 ? null : value;
  const fast =
    key !== null && scan.scan(key, row) && fastPacker.pushScanned(scan, key, row, TOPIC, 3, '42', TIME)
      ? packed(fastPacker)
      : undefined;
  const fields: readonly string[] = ROW_FIELDS[table];
  const readText =
    fast !== undefined &&
    row !== null &&
    fields.some(
      (f, i) =>
        crossing[table].includes(f) &&
        scan.start[i]! >= 0 &&
        scan.dates[i] === undefined &&
        scan.form[i] !== PLAIN_FORM,
    );
  return { slow, fast, readText };
}

const ASCII = 'abcXYZ019 -_.:/@#~!$%&*()+=?';
const WIDE = ['é', 'ü', '日本', '😀', '\u2028', '\uFEFF'];

/** A record value built from parts. */
class Json {
  parts: Buffer[] = [];
  text(s: string): this {
    this.parts.push(Buffer.from(s, 'utf8'));
    return this;
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function generator(seed: number) {
  const next = prng(seed);
  const int = (n: number): number => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const asciiString = (max = 10): string => {
    let s = '';
    for (let i = int(max + 1); i > 0; i--) s += ASCII[int(ASCII.length)]!;
    return s;
  };
  /** The record being built has valid strings of every form (and plain parts otherwise). */
  let validText = false;
  const space = (j: Json, plainOnly: boolean): void => {
    const r = next();
    if (r < 0.6) return;
    if (r < 0.97 || plainOnly) j.text(pick([' ', '\n', '\t', '\r\n  ', '   ']));
    else {
      j.text(pick(['\f', '\v', '\u00a0']));
    }
  };
  /** A JSON string literal; `plainOnly`: ASCII without escapes. */
  const stringLiteral = (j: Json, s: string, plainOnly: boolean, text = false): void => {
    let r = next();
    // A record of valid text of every form: a text string is plain, or one of the valid others.
    if (validText && text) r = r < 0.5 ? 0 : 0.75 + (r - 0.5) * 0.3;
    else if (plainOnly) r = 0;
    if (r < 0.75) {
      j.text(`"${s.replace(/["\\]/g, '')}"`);
      return;
    }
    if (r < 0.8) j.text(JSON.stringify(s + pick(['"', '\\', '\n', '\u0001', '/'])));
    else if (r < 0.84) j.text(`"${s}\\u${pick(['00e9', 'D83D', 'dc00', '0041', '00E9'])}"`);
    else if (r < 0.9) j.text(`"${s}${pick(WIDE)}"`);
    else if (r < 0.93)
      j.text(`"${s}\\${pick(['x', 'u12', 'U0041', "'"])}"`); // invalid escapes
    else if (r < 0.96)
      j.text(`"${s}${pick(['\u0001', '\n', '\t', '\u001f'])}"`); // raw control characters
    else if (r < 0.985)
      j.text(`"${s}`)
        .raw(Buffer.from(pick([[0xc3, 0x28], [0xff], [0xed, 0xa0, 0x80], [0xe2, 0x82]])))
        .text('"');
    else j.text(`"${s}\u007f"`); // DEL is a plain character
  };
  const dateString = (): string =>
    pick([
      '2008-01-22T15:14:44.000Z',
      '2026-12-05T21:41:42.123Z',
      '2008-01-22',
      '2008-01-22T15:14:44Z',
      '2008-01-22 15:14:44+01:00',
      'Tue Jan 22 15:14:44 +0000 2008',
      '2008-02-30T00:00:00.000Z',
      '2008-01-22T24:00:00.000Z',
      'yesterday',
      '',
      '0999-01-01T00:00:00.000Z',
    ]);
  /** A member's value for contract field `field` of `table` (or an unknown member when field is undefined). */
  const memberValue = (
    j: Json,
    table: Table,
    field: string | undefined,
    key: string,
    plainOnly: boolean,
  ): void => {
    const r = next();
    if (r < 0.08) return void j.text('null');
    if (r < 0.095 && !plainOnly) {
      // a contract field must be a string; an unknown one may be anything
      j.text(pick(['1', '-0.5e3', 'true', 'false', '{}', '[]', '{"a":[1,{"b":null}]}', '[1,"x"]']));
      return;
    }
    if (r < 0.105 && !plainOnly) {
      j.text(pick(['nul', 'tru', 'fals', '01', '1.', '-', '.5', '1e', '+1', 'NaN', 'undefined']));
      return;
    }
    if (field === undefined) {
      if (r < 0.3)
        return void j.text(
          pick([
            '0',
            '-1',
            '1.5',
            '1e3',
            '-0.0e-1',
            '123456789012345678901234567890',
            '2E+2',
            'true',
            'false',
          ]),
        );
      if (r < 0.33 && !plainOnly) {
        j.text(pick(['{}', '[]', '{"a":1}', '[1,2]']));
        return;
      }
      return stringLiteral(j, asciiString(), plainOnly, true);
    }
    if (field === KEY_FIELD[table]) {
      if (r < 0.95) return stringLiteral(j, key, plainOnly);
      return stringLiteral(j, `${key}x`, plainOnly);
    }
    if (field === 'joinedDate' || field === 'createdAt')
      return stringLiteral(j, r < 0.6 ? '2026-12-05T21:41:42.123Z' : dateString(), plainOnly);
    if (r < 0.2) return stringLiteral(j, '', plainOnly);
    if (r < 0.23) return stringLiteral(j, 'x'.repeat(MAX_KEY_BYTES + int(2)), plainOnly);
    if (r < 0.25 && field === 'text') return stringLiteral(j, 'y'.repeat(2000), plainOnly);
    // Text: a users row's fields, a tweet's text (not the ids).
    const text = !REQUIRED_FIELDS[table].includes(field as never) || field === 'username';
    stringLiteral(j, `${field[0]}${asciiString(6)}`, plainOnly, text);
  };

  return (table: Table, plainOnly: boolean): { key: Buffer | null; value: Buffer | null } => {
    // Most records of a random run are built from plain parts too (every part of a record with 10 members has
    // to be valid for the record to be), the rest from any.
    plainOnly ||= next() < 0.6;
    validText = !plainOnly && next() < 0.5;
    plainOnly ||= validText;
    // The key.
    let keyText = `${table[0]}${int(1000)}`;
    let key: Buffer | null = Buffer.from(keyText);
    const k = next();
    if (!plainOnly && k < 0.06) {
      const kind = int(5);
      if (kind === 0) key = null;
      else if (kind === 1) key = Buffer.alloc(0);
      else if (kind === 2) key = Buffer.from((keyText = `${keyText}${pick(WIDE)}`));
      else if (kind === 3) key = Buffer.from([0x75, 0xc3, 0x28]);
      else key = Buffer.from((keyText = 'k'.repeat(MAX_KEY_BYTES + int(2))));
    } else if (k < 0.09) key = Buffer.from((keyText = 'k'.repeat(MAX_KEY_BYTES)));
    // The value.
    const v = next();
    if (v < 0.06) return { key, value: null };
    if (v < 0.08) return { key, value: Buffer.alloc(0) };
    const j = new Json();
    if (!plainOnly && v < 0.12) {
      j.text(
        pick(['[]', '"x"', '1', 'null', 'true', '', ' ', '{', '}', '{"a":1,}', '{,}', '{"a" 1}', "{'a':1}"]),
      );
      return { key, value: j.bytes() };
    }
    if (!plainOnly && v < 0.14) {
      j.raw(Buffer.from([0xef, 0xbb, 0xbf])); // a BOM, which the decoder's TextDecoder drops
    }
    space(j, plainOnly);
    j.text('{');
    const names: (string | undefined)[] = [...ROW_FIELDS[table], KEY_FIELD[table], undefined, undefined];
    const members: (string | undefined)[] = names.filter(() => next() < 0.85);
    if (!plainOnly && next() < 0.05) {
      members.push(pick(names) ?? 'userId'); // a repeated member
    }
    for (let i = members.length - 1; i > 0; i--) {
      const x = int(i + 1);
      [members[i], members[x]] = [members[x], members[i]];
    }
    members.forEach((field, m) => {
      if (m > 0) {
        space(j, plainOnly);
        j.text(',');
      }
      space(j, plainOnly);
      const name = field ?? pick(['extra', '__proto__', 'x y', 'constructor', 'userid', '']);
      const n = next();
      if (!plainOnly && n < 0.03) {
        j.text(
          `"${name.slice(0, 1)}\\u00${name.charCodeAt(1)?.toString(16).padStart(2, '0') ?? '41'}${name.slice(2)}"`,
        );
      } else if (!plainOnly && n < 0.05) {
        j.text(`"${name}ü"`);
      } else j.text(`"${name}"`);
      space(j, plainOnly);
      j.text(':');
      space(j, plainOnly);
      memberValue(j, table, field, keyText, plainOnly);
    });
    space(j, plainOnly);
    j.text('}');
    space(j, plainOnly);
    if (!plainOnly && next() < 0.04) {
      j.text(pick(['x', '}', ',', '{}']));
    }
    let value = j.bytes();
    if (!plainOnly && next() < 0.03) {
      value = value.subarray(0, int(value.length));
    }
    return { key, value };
  };
}

describe('json-scan: plain records read from their bytes', () => {
  for (const [name, crossing] of [
    ['every field crossing', ALL_FIELDS],
    ['the fields the views read crossing', VIEW_FIELDS],
  ] as const) {
    it(`packs what the decoder packs, random records of every kind (${name})`, () => {
      for (const table of TABLES) {
        const record = generator(17 + TABLES.indexOf(table));
        let fast = 0;
        /** Taken by the scan with a crossing string that has escapes or non-ASCII characters (read on its own). */
        let fastRead = 0;
        let slowOnly = 0;
        let refused = 0;
        for (let i = 0; i < 4_000; i++) {
          const { key, value } = record(table, false);
          const v = both(table, key, value, crossing);
          if (v.fast !== undefined) {
            fast++;
            if (v.readText === true) fastRead++;
            expect(v.slow, `${key?.toString()} ${value?.toString()}`).toBeDefined();
            expect(v.fast.equals(v.slow!), `${key?.toString()} ${value?.toString()}`).toBe(true);
          } else if (v.slow !== undefined) slowOnly++;
          else refused++;
        }
        // Each kind is well represented, so the comparison above is over all three.
        expect(fast).toBeGreaterThan(400);
        // Crossing free text (the users row's profile, a tweet's text with every field) is read in every form.
        if (table === 'users' || (table === 'tweets' && crossing === ALL_FIELDS))
          expect(fastRead).toBeGreaterThan(50);
        expect(slowOnly).toBeGreaterThan(10);
        expect(refused).toBeGreaterThan(400);
      }
    });

    it(`takes every plain record the decoder accepts (${name})`, () => {
      for (const table of TABLES) {
        const record = generator(101 + TABLES.indexOf(table));
        let accepted = 0;
        for (let i = 0; i < 3_000; i++) {
          const { key, value } = record(table, true);
          const v = both(table, key, value, crossing);
          if (v.slow === undefined) {
            expect(v.fast).toBeUndefined();
            continue;
          }
          accepted++;
          expect(v.fast, `${key?.toString()} ${value?.toString()}`).toBeDefined();
          expect(v.fast!.equals(v.slow)).toBe(true);
        }
        expect(accepted).toBeGreaterThan(1_000);
      }
    });
  }

  it('reads a string with escapes or non-ASCII characters on its own, where it is not an id, a date or the key', () => {
    const key = Buffer.from('t1');
    const text = 'caf\u00e9 "quoted"\n😀 \ud800';
    for (const crossing of [VIEW_FIELDS, ALL_FIELDS]) {
      const v = both(
        'tweets',
        key,
        Buffer.from(JSON.stringify({ tweetId: 't1', userId: 'u1', text })),
        crossing,
      );
      expect(v.fast).toBeDefined();
      expect(v.fast!.equals(v.slow!)).toBe(true);
    }
    const id = both('tweets', key, Buffer.from(JSON.stringify({ userId: 'caf\u00e9' })), ALL_FIELDS);
    expect(id.slow).toBeDefined();
    expect(id.fast).toBeUndefined();
  });

  it('packs a run of records into one batch as the ingest does: one scanner and one batch for all of them', () => {
    // The ingest keeps a scanner per table and packs a batch's records one after another, falling back to the
    // decoder record by record; a partition that is not an int32 turns the batch into plain columns.
    const next = prng(29);
    const records = generator(31);
    for (let round = 0; round < 20; round++) {
      const scans = new Map(TABLES.map((t) => [t, new JsonRowScan(t)]));
      const viaScan = new PackingChangeBatch(VIEW_FIELDS);
      const viaDecoder = new PackingChangeBatch(VIEW_FIELDS);
      let scanned = 0;
      for (let i = 0; i < 500; i++) {
        const table = TABLES[Math.floor(next() * TABLES.length)]!;
        const { key, value } = records(table, false);
        const partition = next() < 0.002 ? 2 ** 31 : Math.floor(next() * 16);
        const offset = String(round * 1000 + i);
        const time = TIME + i;
        const decoded = decodeRecord(table, key, value);
        if (decoded.ok) viaDecoder.push(table, decoded.key, decoded.row, TOPIC, partition, offset, time);
        const row = value === null || value.length === 0 ? null : value;
        const scan = scans.get(table)!;
        if (
          key !== null &&
          scan.scan(key, row) &&
          viaScan.pushScanned(scan, key, row, TOPIC, partition, offset, time)
        )
          scanned++;
        else if (decoded.ok) viaScan.push(table, decoded.key, decoded.row, TOPIC, partition, offset, time);
      }
      expect(scanned).toBeGreaterThan(0);
      const a = viaScan.input([]);
      const b = viaDecoder.input([]);
      if ('packed' in a && 'packed' in b) {
        expect(Buffer.from(a.packed.bytes).equals(Buffer.from(b.packed.bytes))).toBe(true);
        expect(a.packed).toEqual(b.packed);
      } else expect(a).toEqual(b);
    }
  });

  it.each([
    [
      'a users row with every field',
      'users',
      'u1',
      '{"userId":"u1","username":"ann","name":"Ann","description":null,"joinedDate":"Tue Jan 22 15:14:44 +0000 2008"}',
      'fast',
    ],
    [
      'a tweet with unknown members of every kind',
      'tweets',
      't1',
      ' {"n": -1.5e+3, "b": true, "z": null, "userId" : "u1", "s": "x"}\n',
      'fast',
    ],
    ['a delete', 'likes', 'l1', '', 'fast'],
    [
      'a like whose tweetId is 512 bytes',
      'likes',
      'l1',
      `{"userId":"u1","tweetId":"${'t'.repeat(512)}"}`,
      'fast',
    ],
    [
      'a like whose tweetId is 513 bytes',
      'likes',
      'l1',
      `{"userId":"u1","tweetId":"${'t'.repeat(513)}"}`,
      'invalid',
    ],
    ['an empty id', 'follows', 'f1', '{"followerId":"","followeeId":"u2"}', 'invalid'],
    [
      'a key field that is not the key',
      'follows',
      'f1',
      '{"followId":"f2","followerId":"u1","followeeId":"u2"}',
      'invalid',
    ],
    [
      'a key field that is null',
      'follows',
      'f1',
      '{"followId":null,"followerId":"u1","followeeId":"u2"}',
      'fast',
    ],
    [
      'a repeated member (JSON.parse keeps the last)',
      'tweets',
      't1',
      '{"userId":"u1","userId":"u2"}',
      'slow',
    ],
    ['an escaped member name', 'tweets', 't1', '{"user\\u0049d":"u1"}', 'slow'],
    ['a nested unknown member', 'tweets', 't1', '{"userId":"u1","meta":{"a":[1]}}', 'slow'],
    ['a BOM first', 'tweets', 't1', '\ufeff{"userId":"u1"}', 'slow'],
    ['a number where an id goes', 'tweets', 't1', '{"userId":1}', 'invalid'],
    [
      'a calendar date that does not exist',
      'tweets',
      't1',
      '{"userId":"u1","createdAt":"2008-02-30"}',
      'invalid',
    ],
    ['a leading zero', 'tweets', 't1', '{"userId":"u1","n":01}', 'invalid'],
    ['trailing bytes', 'tweets', 't1', '{"userId":"u1"} x', 'invalid'],
  ] as const)('%s', (_, table, key, json, expected) => {
    const v = both(table, Buffer.from(key), Buffer.from(json), ALL_FIELDS);
    if (expected === 'invalid')
      expect({ slow: v.slow, fast: v.fast }).toEqual({ slow: undefined, fast: undefined });
    else if (expected === 'slow') {
      expect(v.slow).toBeDefined();
      expect(v.fast).toBeUndefined();
    } else {
      expect(v.fast).toBeDefined();
      expect(v.fast!.equals(v.slow!)).toBe(true);
    }
  });
});
