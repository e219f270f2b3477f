/**
 * String keys read back as they were written (src/store/string-keys.ts): lmdb-js' own reader returned a key of
 * 64 UTF-16 units or more holding a character U+0000-U+0004 as an array, and a table's long row keys sorted
 * outside the range its iterations read. Both are checked here through the store: the positions of a long
 * topic name, a truncate and a view rebuild over long row keys.
 */
import { writeKey } from 'ordered-binary';
import { describe, expect, it } from 'vitest';
import { TRUNCATE } from '../../src/materializer/change-batch.js';
import { openStore } from '../../src/store/lmdb-store.js';
import { readStringKey } from '../../src/store/string-keys.js';
import { verifyGeneration } from '../../src/store/verify.js';
import { VIEWS } from '../../src/views/registry.js';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { commitInput, profile, tweet } from '../utils/changes.js';
import { tempDir } from '../utils/tmp.js';

const written = (key: string): Buffer => {
  const target = Buffer.alloc(4096);
  return target.subarray(0, writeKey(key, target, 0));
};
/** Whether `key` has a character U+0000-U+0004. */
const hasControl = (key: string): boolean => {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) <= 4) return true;
  return false;
};
/**
 * The short key whose escaped form a long key's plain bytes are (ordered-binary's one collision), or
 * undefined: every character U+0000-U+0004 of `key` is the second of a pair U+0004, U+0000-U+0004, and
 * without the first ones it is shorter than 64 units.
 */
function collidesWith(key: string): string | undefined {
  if (key.length < 64) return undefined;
  let short = '';
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c > 4) short += key[i]!;
    else if (c === 4 && i + 1 < key.length && key.charCodeAt(i + 1) <= 4) short += key[++i]!;
    else return undefined;
  }
  return short.length < 64 ? short : undefined;
}
/** What a long key is stored as: a lone surrogate becomes U+FFFD (plain UTF-8). */
const storedLong = (key: string): string =>
  key.length < 64
    ? key
    : key.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
const roundTrip = (key: string): string => {
  const bytes = written(key);
  return readStringKey(bytes, 0, bytes.length);
};

describe('readStringKey', () => {
  it('should give back every key ordered-binary wrote, short or long, with control characters or not', () => {
    // Characters that take every path: escaped (0-4), the leading escape (below 28), ASCII, 2-, 3- and
    // 4-byte UTF-8, a lone surrogate (written as CESU-8 in a short key, as U+FFFD in a long one), U+FEFF
    // (not a byte-order mark here).
    const alphabet = [
      '\u0000',
      '\u0001',
      '\u0003',
      '\u0004',
      '\u0005',
      '\u001b',
      'a',
      'Z',
      'é',
      '€',
      '\ud83d\ude00',
      '\ud800',
      '\ufeff',
    ];
    const random = prng(11);
    const seen = { longWithControl: 0, shortOf64Bytes: 0, leadingFeff: 0 };
    for (let n = 0; n < 20_000; n++) {
      const length = 1 + Math.floor(random() * 120);
      let key = '';
      while (key.length < length) key += alphabet[Math.floor(random() * alphabet.length)]!;
      const short = collidesWith(key);
      expect(JSON.stringify(roundTrip(key))).toBe(JSON.stringify(short ?? storedLong(key)));
      if (short === undefined && key.length >= 64 && hasControl(key)) seen.longWithControl++;
      if (key.length < 64 && written(key).length >= 64) seen.shortOf64Bytes++;
      if (key.length >= 64 && key.startsWith('\ufeff')) seen.leadingFeff++;
    }
    expect(Object.values(seen).every((n) => n > 10)).toBe(true);
    for (const key of [
      'a',
      '\u0000',
      'x'.repeat(63),
      'x'.repeat(64),
      'é'.repeat(256),
      `\ufeff${'x'.repeat(70)}`,
    ])
      expect(roundTrip(key)).toBe(key);
    // A row key of 63 units whose \0 is escaped is 64 bytes: read as that key, not as a 64-unit one.
    const rowKey = `tweets\u0000${'k'.repeat(56)}`;
    expect([written(rowKey).length, roundTrip(rowKey)]).toEqual([64, rowKey]);
    // The 64-unit key written as the same bytes is the same key in the store (collidesWith), read as that one.
    const twin = `tweets\u0004\u0000${'k'.repeat(56)}`;
    expect([collidesWith(twin), written(twin).equals(written(rowKey)), roundTrip(twin)]).toEqual([
      rowKey,
      true,
      rowKey,
    ]);
    // A long key with U+0004 before a character at or above U+0005 keeps its U+0004.
    expect(roundTrip(`x${'a'.repeat(70)}\u0004A`)).toBe(`x${'a'.repeat(70)}\u0004A`);
  });
});

describe('a store with long keys', () => {
  const LONG_TOPIC = `dbserver1.inventory.${'customer_notification_preferences_'.repeat(2)}`;
  const longKey = (i: number) => `${'tenant-0042/user/'.repeat(4)}${i}`;

  it('should read back the position of a topic whose name is 64 characters or more', async () => {
    expect(LONG_TOPIC.length).toBeGreaterThan(64);
    const path = tempDir();
    let store = openStore({ path });
    await store.applyBatch(
      commitInput([
        { table: 'users', key: 'u1', row: profile('a'), topic: LONG_TOPIC, partition: 3, offset: 41 },
      ]),
    );
    await store.close();
    store = openStore({ path });
    expect(store.positions()).toEqual([{ topic: LONG_TOPIC, partition: 3, next: '42' }]);
    await store.close();
  });

  it('should truncate, verify and rebuild views over row keys of 64 characters or more', async () => {
    const path = tempDir();
    let store = openStore({ path });
    const users = [longKey(1), 'short', longKey(2)];
    await store.applyBatch(
      commitInput([
        ...users.map((u, i) => ({ table: 'users' as const, key: u, row: profile(`n${i}`), offset: i })),
        ...users.map((u, i) => ({
          table: 'tweets' as const,
          key: `${longKey(i)}-tweet`,
          row: tweet(u),
          offset: i,
        })),
        { table: 'tweets', key: 'short-tweet', row: tweet('short'), offset: 3 },
      ]),
    );
    expect(users.map((u) => store.getUser(u)?.tweetCount)).toEqual([1, 2, 1]);
    expect(store.activeGeneration().rows.count('tweets')).toBe(4);
    expect(verifyGeneration(store.registry, store.activeGeneration()).differences).toEqual([]);
    await store.close();

    // A view rebuilt from the rows counts the long keys' rows too.
    const bumped = VIEWS.map((v) => (v.name === 'user-information' ? { ...v, version: v.version + 1 } : v));
    store = openStore({ path, views: bumped });
    expect((await store.rebuildStaleViews((t) => t))?.rows).toBe(7);
    expect(users.map((u) => store.getUser(u)?.tweetCount)).toEqual([1, 2, 1]);

    // A truncate removes every row, long keys included.
    await store.applyBatch(commitInput([{ table: 'tweets', key: '', row: TRUNCATE, offset: 4 }]));
    expect(users.map((u) => store.getUser(u)?.tweetCount)).toEqual([0, 0, 0]);
    expect(store.activeGeneration().rows.count('tweets')).toBe(0);
    expect(verifyGeneration(store.registry, store.activeGeneration()).differences).toEqual([]);
    await store.close();
  });
});
