/**
 * lmdb-js' reused read buffer says a value's size in an own `length` property over a larger buffer; Node 24's
 * Buffer methods read the typed array's real length where an end is left out, so a short value read after a
 * long one ran on into the long one's bytes (every GraphQL view read failed to parse on the Docker image's
 * Node). `readFast` gives the same memory at its exact size.
 */
import { open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { readFast } from '../../src/store/fast-read.js';
import { tempDir } from '../utils/tmp.js';

describe('readFast', () => {
  it("should give a value at its exact size, read after a longer one, where lmdb-js' own buffer only says it", async () => {
    const env = open({ path: tempDir() });
    const db = env.openDB<Buffer, string>({ name: 'values', encoding: 'binary' });
    const short = '{"userId":"1"}';
    await db.put('long', Buffer.from(`{"userId":"${'9'.repeat(500)}"}`));
    await db.put('short', Buffer.from(short));

    // What lmdb-js hands out: its buffer, with the value's size as an own property over the larger memory.
    db.getBinaryFast('long');
    const raw = db.getBinaryFast('short')!;
    expect(Object.hasOwn(raw, 'length')).toBe(true);
    expect(raw.length).toBe(short.length);

    expect(readFast(db, 'long')!.length).toBe(513);
    const bytes = readFast(db, 'short')!;
    expect(Object.hasOwn(bytes, 'length')).toBe(false);
    // The calls that leave the end out, on every Node release.
    expect(bytes.toString('utf8', 0)).toBe(short);
    expect(bytes.toString()).toBe(short);
    expect(bytes.subarray(1).toString()).toBe(short.slice(1));
    expect(JSON.parse(bytes.toString('utf8', 0))).toEqual({ userId: '1' });
    const out = Buffer.alloc(short.length + 4, 0x20);
    expect(bytes.copy(out)).toBe(short.length);
    expect(out.toString()).toBe(`${short}    `);
    expect(readFast(db, 'absent')).toBeUndefined();
    await env.close();
  });
});
