/**
 * Debezium envelopes read from their bytes (src/formats/debezium-scan.ts): whenever the scan takes a text, it
 * is JSON, and what it gives is what `decodeChange` reads of the parsed value (`op`, `before`, `after`, the
 * source's `ts_ms`, the wanted columns), value for value; `decodeChange` of the two then decides the same.
 * Random payloads, valid and broken, and the documented envelopes of every table, op and connector.
 */
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { decodeChange } from '../../src/formats/change.js';
import { ConverterSchemas } from '../../src/formats/converter-wrapper.js';
import { DebeziumScan } from '../../src/formats/debezium-scan.js';
import { keyOfText } from '../../src/formats/keys.js';
import { isEnvelope, isObject } from '../../src/formats/envelope.js';
import { parseLosslessJson } from '../../src/formats/lossless-json.js';
import { tableMapping } from '../../src/formats/mapping.js';
import type { Table } from '../../src/views/source.js';
import { event, toJson, type Connector } from './fixtures/debezium.js';
import { BROKEN_JSON_KINDS, brokenJson, deploySources } from './helpers.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const TWEETS = tableMapping('tweets', { tweetId: 'id', userId: 'user_id', createdAt: 'created_at' });
const COLUMNS = TWEETS.fields.map((f) => f.column);
const ctx = { table: 'tweets' as Table, mapping: TWEETS, envelopes: true };

/** What `decodeChange` reads of a parsed payload, as the scan gives it. */
function reducedOf(parsed: Record<string, unknown>): Record<string, unknown> {
  const pick = (v: unknown, names: readonly string[]): unknown => {
    if (!isObject(v)) return v;
    return Object.fromEntries(names.filter((n) => Object.hasOwn(v, n)).map((n) => [n, v[n]]));
  };
  const out: Record<string, unknown> = { op: parsed['op'] };
  for (const name of ['before', 'after'])
    if (Object.hasOwn(parsed, name)) out[name] = pick(parsed[name], COLUMNS);
  if (Object.hasOwn(parsed, 'source')) out['source'] = pick(parsed['source'], ['ts_ms']);
  return out;
}

const parsedOf = (bytes: Buffer): unknown => {
  try {
    return parseLosslessJson(utf8.decode(bytes));
  } catch {
    return undefined;
  }
};

/** Random JSON pieces, with what makes a scan hard: escapes, non-ASCII, big and odd numbers, nesting, spaces. */
function generator(random: () => number) {
  const n = (k: number): number => Math.floor(random() * k);
  const pickOne = <T>(xs: readonly T[]): T => xs[n(xs.length)]!;
  const space = (): string => (random() < 0.15 ? pickOne([' ', '\n', '\t ', '\r\n  ']) : '');
  const scalar = (): string =>
    pickOne([
      () =>
        JSON.stringify(pickOne(['plain', 'q"uote', 'back\\slash', 'ünï', '😀', '', 'tab\there', '\u0000'])),
      () => '"\\u00e9\\ud83d\\ude00\\/"',
      () => String(n(1000) - 500),
      () => pickOne(['9007199254740991', '9007199254740993', '-9223372036854775808', '12345678901234567890']),
      () => pickOne(['1.5', '-0', '0', '1e3', '2.5E-3', '-1.25e+2', '0.12345678901234567']),
      () => pickOne(['true', 'false', 'null']),
    ])();
  const value = (depth: number): string =>
    depth < 3 && random() < 0.15
      ? random() < 0.5
        ? `[${space()}${Array.from({ length: n(3) }, () => value(depth + 1)).join(`${space()},${space()}`)}]`
        : object(Array.from({ length: n(3) }, (_, i) => [`k${i}`, value(depth + 1)]))
      : scalar();
  const object = (members: readonly (readonly [string, string])[]): string =>
    `{${space()}${members.map(([k, v]) => `${JSON.stringify(k)}${space()}:${space()}${v}`).join(`${space()},${space()}`)}${space()}}`;
  const row = (): string => {
    const members: [string, string][] = [];
    for (const c of ['id', 'user_id', 'text', 'created_at', 'extra', 'nested'])
      if (random() < 0.85) members.push([c, c === 'nested' ? value(0) : scalar()]);
    if (random() < 0.05) members.push([pickOne(COLUMNS), scalar()]); // given twice
    if (random() < 0.05) members.push(['ün', scalar()]); // a name beyond ASCII
    if (random() < 0.05) members.push(['i\\u0064', scalar()]); // an escaped name ("id")
    return object(members.sort(() => random() - 0.5));
  };
  const envelope = (): string => {
    const members: [string, string][] = [];
    if (random() < 0.9)
      members.push([
        'op',
        random() < 0.9 ? JSON.stringify(pickOne(['c', 'u', 'r', 'd', 't', 'x'])) : scalar(),
      ]);
    for (const name of ['before', 'after'])
      if (random() < 0.9) members.push([name, random() < 0.3 ? 'null' : random() < 0.05 ? scalar() : row()]);
    if (random() < 0.9)
      members.push([
        'source',
        random() < 0.1
          ? pickOne(['null', scalar()])
          : object([
              ['version', '"2.5.0.Final"'],
              ['ts_ms', random() < 0.8 ? String(1_700_000_000_000 + n(1000)) : scalar()],
              ['sequence', '"[\\"24023928\\",\\"24023928\\"]"'],
              ['lsn', value(0)],
            ]),
      ]);
    if (random() < 0.5) members.push(['ts_ms', scalar()]);
    if (random() < 0.5) members.push(['transaction', value(0)]);
    if (random() < 0.05) members.push([pickOne(['op', 'after', 'source']), scalar()]); // given twice
    return object(members.sort(() => random() - 0.5));
  };
  return { envelope, scalar };
}

describe('DebeziumScan', () => {
  it('should give what decodeChange reads of the parsed payload, or leave the text to the general path', () => {
    const random = prng(41);
    const { envelope } = generator(random);
    const scan = new DebeziumScan(COLUMNS);
    let texts = 0;
    let taken = 0;
    for (let i = 0; i < 6_000; i++) {
      const text = envelope();
      for (const bytes of [
        Buffer.from(text),
        brokenJson(text, Math.floor(random() * BROKEN_JSON_KINDS), random),
      ]) {
        texts++;
        const reduced = scan.envelope(bytes, 0, bytes.length);
        if (reduced === undefined) continue;
        taken++;
        const parsed = parsedOf(bytes);
        expect(isObject(parsed) && isEnvelope(parsed), bytes.toString()).toBe(true);
        const value = parsed as Record<string, unknown>;
        expect(reduced, bytes.toString()).toEqual(reducedOf(value));
        for (const key of [undefined, { ok: true as const, key: '7' }])
          expect(decodeChange(ctx, key, reduced, undefined, undefined)).toEqual(
            decodeChange(ctx, key, value, undefined, undefined),
          );
      }
    }
    // It does take most of them (the rest: broken, or a shape it leaves to the parse).
    expect(taken).toBeGreaterThan(texts / 4);
  });

  it('should read a region of the bytes, as a converter wrapper holds the payload', () => {
    const scan = new DebeziumScan(COLUMNS);
    const payload = '{"before":null,"after":{"id":7,"user_id":12345678901234567890,"text":"x"},"op":"c"}';
    const wrapped = Buffer.from(`{"schema":{},"payload": ${payload} }`);
    const from = wrapped.indexOf('"payload":') + '"payload":'.length;
    const to = wrapped.length - 1;
    expect(scan.envelope(wrapped, from, to)).toEqual({
      before: null,
      after: { id: 7, user_id: 12345678901234567890n, text: 'x' },
      op: 'c',
    });
    // Past the region: not the payload's.
    expect(scan.envelope(wrapped, from, to + 1)).toBeUndefined();
  });

  it.each(
    (['postgresql', 'mysql'] as const).flatMap((connector: Connector) =>
      (['users', 'tweets', 'follows', 'likes'] as const).flatMap((table) =>
        (['c', 'u', 'r', 'd'] as const).map((op) => ({ connector, table, op })),
      ),
    ),
  )('should take the documented envelope: $connector $table $op', ({ connector, table, op }) => {
    const mapping = deploySources().topics[table].mapping;
    const scan = new DebeziumScan(mapping.fields.map((f) => f.column));
    const id = 9007199254740993n;
    const at = 1_700_000_000_000_000;
    const row = {
      users: { id, username: 'ünï "q"', name: null, url: 'https://x', created_at: '2020-01-01T00:00:00Z' },
      tweets: { id, user_id: 5, text: 'ünï "q"', created_at: at },
      follows: { id, follower_id: 5, followee_id: 6, created_at: at },
      likes: { id, user_id: 5, tweet_id: 6, created_at: at },
    }[table];
    const m = event(table, op, op === 'd' ? { id: row.id } : null, op === 'd' ? null : row, {
      connector,
      schemas: false,
      tsMs: 1_700_000_000_000,
    });
    const bytes = Buffer.from(m.value!);
    const parsed = parseLosslessJson(m.value!) as Record<string, unknown>;
    const reduced = scan.envelope(bytes, 0, bytes.length);
    expect(reduced).toBeDefined();
    const columns = mapping.fields.map((f) => f.column);
    const pick = (v: unknown) =>
      isObject(v) ? Object.fromEntries(columns.filter((c) => Object.hasOwn(v, c)).map((c) => [c, v[c]])) : v;
    expect(reduced).toEqual({
      op,
      before: pick(parsed['before']),
      after: pick(parsed['after']),
      source: { ts_ms: 1_700_000_000_000 },
    });
    expect(toJson(reduced)).toContain('9007199254740993');
  });

  it('should read a key struct holding the key column', () => {
    const scan = new DebeziumScan(['id']);
    const key = (text: string) => scan.row(Buffer.from(text), 0, text.length);
    expect(key('{"id":1004}')).toEqual({ id: 1004 });
    expect(key(' { "id" : "u-42" , "tenant": [1, {"a": null}] } ')).toEqual({ id: 'u-42' });
    expect(key('{"id":9223372036854775807}')).toEqual({ id: 9223372036854775807n });
    expect(key('{"other":1}')).toEqual({});
    for (const text of ['1004', '"u-42"', '{"id":1,"id":2}', '{"id":{"a":1}}', '{"id":1', '{"id":01}'])
      expect(key(text), text).toBeUndefined();
  });

  it('should read a key as keyOfText reads its parsed text, with or without the converter wrapper', () => {
    const random = prng(43);
    const { scalar } = generator(random);
    const pickOne = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const struct = (): string =>
      pickOne([
        () => `{"id":${scalar()}}`,
        () => ` { "id" : ${scalar()} , "tenant": [1, {"a": null}] } `,
        () => `{"id":${scalar()},"id":${scalar()}}`,
        () => `{"other":${scalar()}}`,
        () => `{"schema":{"type":"int64"},"payload":${scalar()}}`,
        () => `{"i\\u0064":${scalar()}}`,
        () => `{"id":{"a":1}}`,
      ])();
    const schemas = new ConverterSchemas();
    const scan = new DebeziumScan(['id']);
    let structs = 0;
    for (let i = 0; i < 4_000; i++) {
      const inner = struct();
      const text = pickOne([
        () => inner,
        () => `{"schema":{"type":"struct","fields":[{"type":"int64","field":"id"}]},"payload":${inner}}`,
        () => scalar(),
      ])();
      const bytes =
        random() < 0.1
          ? brokenJson(text, Math.floor(random() * BROKEN_JSON_KINDS), random)
          : Buffer.from(text);
      const read = keyOfText(bytes, 'id', schemas, scan);
      expect(read, bytes.toString()).toEqual(keyOfText(bytes, 'id'));
      if (read.ok && bytes.toString().trimStart().startsWith('{')) structs++;
    }
    expect(structs).toBeGreaterThan(1_000);
    // A key column named like the wrapper's members: a struct of just those two is a wrapper to the parse.
    for (const column of ['schema', 'payload']) {
      const bytes = Buffer.from('{"schema":1,"payload":2}');
      expect(keyOfText(bytes, column, new ConverterSchemas(), new DebeziumScan([column]))).toEqual(
        keyOfText(bytes, column),
      );
    }
  });
});
