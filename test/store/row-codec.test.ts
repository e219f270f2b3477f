/**
 * The stored form of a source row (src/store/row-codec.ts). Rows are encoded into one reused buffer
 * (`encodeRowTransient`), so two things are checked: the bytes are those the format has always had (a
 * store written before reads the same), over random rows whose strings come from every range (ASCII up to
 * and past the short-string copy, Latin-1, wide characters, astral pairs, lone surrogates, empty); and rows
 * stored by `LmdbRows` many to a transaction, and some outside any, read back as they were written, one by
 * one and in pages.
 */
import { open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { mulberry32 as prng } from '../../src/demo/generator.js';
import { LmdbRows } from '../../src/store/generation.js';
import { decodeStoredRow, encodeRowTransient } from '../../src/store/row-codec.js';
import { stringKeyed } from '../../src/store/string-keys.js';
import { fieldOf, ROW_FIELDS, TABLES, type Row, type Table } from '../../src/views/source.js';
import { tempDir } from '../utils/tmp.js';
import { ALPHABET } from '../utils/alphabet.js';

/** The format as written before rows were encoded into a reused buffer: measured first, then written. */
function referenceEncoding(
  fields: readonly string[],
  row: Row,
  partition: number,
  offset: string,
  eventTime: number,
): Buffer {
  const values = fields.map((f) => fieldOf(row, f));
  let size = 4 + 1 + offset.length + 8;
  for (const v of values) size += 4 + (v === null ? 0 : Buffer.byteLength(v));
  const out = Buffer.alloc(size);
  out.writeUInt32LE(partition, 0);
  out[4] = offset.length;
  out.write(offset, 5, 'latin1');
  let at = 5 + offset.length;
  out.writeDoubleLE(eventTime, at);
  at += 8;
  for (const v of values) {
    if (v === null) {
      out.writeUInt32LE(0xffffffff, at);
      at += 4;
      continue;
    }
    const n = out.write(v, at + 4, 'utf8');
    out.writeUInt32LE(n, at);
    at += 4 + n;
  }
  return out;
}

function randomString(next: () => number): string {
  // Mostly ASCII (the short-string copy), sometimes past its 48 units, sometimes with anything of the alphabet.
  const ascii = next() < 0.6;
  const n = Math.floor(next() * (next() < 0.2 ? 200 : 40));
  let s = '';
  for (let i = 0; i < n; i++)
    s += ascii
      ? String.fromCharCode(32 + Math.floor(next() * 95))
      : ALPHABET[Math.floor(next() * ALPHABET.length)]!;
  return s;
}

function randomRow(next: () => number, table: Table): Row {
  const row: Record<string, string | null> = { table };
  for (const f of ROW_FIELDS[table]) {
    const v = next();
    if (v < 0.15) row[f] = null;
    else if (v < 0.25)
      continue; // absent: stored as null
    else row[f] = randomString(next);
  }
  return row as unknown as Row;
}

/** A row as it reads back: absent fields null, strings through UTF-8 (a lone surrogate becomes U+FFFD). */
function readBack(table: Table, row: Row): Row {
  const out: Record<string, string | null> = { table };
  for (const f of ROW_FIELDS[table]) {
    const v = fieldOf(row, f);
    out[f] = v === null ? null : Buffer.from(v, 'utf8').toString('utf8');
  }
  return out as unknown as Row;
}

describe('row codec', () => {
  it('should write the bytes the format always had, and read back every field and the origin', () => {
    const next = prng(17);
    for (let i = 0; i < 3_000; i++) {
      const table = TABLES[i % TABLES.length]!;
      const row = randomRow(next, table);
      const partition = Math.floor(next() * 2 ** 31);
      const offset = String(Math.floor(next() * 2 ** 53));
      const eventTime = next() < 0.1 ? Number.NaN : Math.floor(next() * 2e12);
      const fields = ROW_FIELDS[table];
      const bytes = Buffer.from(encodeRowTransient(fields, row, partition, offset, eventTime));
      expect(bytes.equals(referenceEncoding(fields, row, partition, offset, eventTime))).toBe(true);
      expect(decodeStoredRow(table, fields, bytes)).toEqual({
        row: readBack(table, row),
        origin: { partition, offset, eventTime },
      });
    }
  });

  it('should store rows put many to a transaction, and some outside any, as they were', async () => {
    const env = open({ path: tempDir() });
    const rows = new LmdbRows(
      env.openDB<Buffer, string>(stringKeyed({ name: 'rows', encoding: 'binary' })),
      ROW_FIELDS,
      (encoder) => env.openDB<null, string>(stringKeyed({ name: 'rows', encoder })),
    );
    const next = prng(5);
    const written = Array.from({ length: 2_000 }, (_, i) => {
      const table = TABLES[i % TABLES.length]!;
      return { table, key: `k${i}`, row: randomRow(next, table), offset: String(i) };
    });
    const outside = written.slice(-20);
    await env.transaction(() => {
      for (const w of written.slice(0, -20)) rows.put(w.table, w.key, w.row, 3, w.offset, 1_700_000_000_000);
    });
    // Outside a transaction each put is one of its own, written before the next row is encoded.
    for (const w of outside) rows.put(w.table, w.key, w.row, 3, w.offset, 1_700_000_000_000);
    await env.flushed;
    for (const w of written) expect(rows.row(w.table, w.key)).toEqual(readBack(w.table, w.row));
    // In pages of 7 after the last key of the page before, as a replay reads them: every row of each table
    // once, in the store's order, with its origin, as `all` reads them one by one.
    for (const table of TABLES) {
      const paged: unknown[] = [];
      let after: string | undefined;
      for (;;) {
        const page = rows.page(table, after, 7);
        expect(page.table).toBe(table);
        for (let i = 0; i < page.length; i++)
          paged.push([
            page.keys[i],
            {
              row: page.rows[i],
              origin: { partition: page.partition[i], offset: page.offset[i], eventTime: page.eventTime[i] },
            },
          ]);
        if (page.length < 7) break;
        after = page.keys[page.length - 1];
      }
      const all = [...rows.all(table)];
      expect(all).toHaveLength(written.filter((w) => w.table === table).length);
      expect(paged).toEqual(all);
    }
    await env.close();
  });
});
