/**
 * A commit input's records as they cross from the event loop to the writer thread: one byte buffer and a few
 * typed arrays, transferred, not copied. Structured clone (what `postMessage` does with plain columns) walks
 * every row object and string generically: 100k records of the catch-up bench's changelog took 97 ms to
 * serialize on the event loop and 254 ms to deserialize on the writer thread, more than a tenth of the CPU a
 * catch-up spends per record on the 2-core bench box, where both threads are busy throughout. Packed: 54 ms
 * and 128 ms. The catch-up changelog (446k records) through the store with its writer thread, in 20k-record
 * commits, three alternated pairs: 16.3-18.1 s of CPU and 11.3-12.0 s against 16.6-19.7 s and 11.6-14.0 s.
 *
 * The unpacked columns are equal to the packed ones (test/store/packed-changes.test.ts): every string
 * exactly (one-byte strings as Latin-1, others as UTF-16, so lone surrogates survive), null and absent
 * fields kept apart, truncates and deletes as they were. Of a row's contract fields (ROW_FIELDS), those the
 * packer is given cross (`CrossingFields`: the store's, every field a view reads or a generation it writes
 * keeps), each a string, null or absent (`packChanges` returns undefined for any other value, and the caller
 * sends the columns as they are); nothing else does, and nothing on the writer thread reads anything else:
 * views declare the fields they read (`ViewModule.reads`), and the stored rows keep those. A field that does
 * not cross is undefined in the unpacked row. A tweet's text, a like's tweetId and every createdAt are
 * neither packed on the event loop nor unpacked on the writer thread.
 *
 * Records are packed one by one as the ingest decodes them (`PackingChangeBatch`, when the store's commits
 * run on the writer thread), or all at once when a commit is handed over with plain columns (`packChanges`,
 * from `WriterThread.apply`): the same bytes either way. The writer thread keeps an input packed until the
 * commit that takes it unpacks it (batch-writer.ts).
 *
 * Layout of `bytes`, per record: key, offset (strings), then the row: one kind byte (0 delete, 1 row with
 * every crossing field, 2 truncate, 3 row with absent fields), then per crossing field (contract order) a
 * string, NULL or ABSENT. A string is a u32 LE header (byte length × 2, + 1 when UTF-16) and its bytes. Which
 * fields cross travels with the columns (`fields`).
 */
import {
  ChangeBatch,
  TRUNCATE,
  recordsOf,
  type BatchInput,
  type ChangeColumns,
  type CommitInput,
  type PartitionPosition,
} from '../materializer/change-batch.js';
import { PLAIN_FORM, type ScannedRow, type ScannedSink } from '../views/scanned-row.js';
import { ROW_FIELDS, TABLES, type Row, type Table } from '../views/source.js';
import { latin1Slice, latin1Write } from '../latin1.js';

export interface PackedChanges {
  /** Index into TABLES, per record. */
  readonly table: Uint8Array;
  /** The distinct topics; `topic` indexes them per record. */
  readonly topics: readonly string[];
  readonly topic: Uint32Array;
  readonly partition: Int32Array;
  readonly eventTime: Float64Array;
  /** Keys, offsets and rows (layout above). */
  readonly bytes: Uint8Array;
  /** Per table (TABLES order), the fields that cross: bit i is ROW_FIELDS[table][i]. */
  readonly fields: readonly number[];
}

/** Per table, the fields of its rows a packed input carries (contract names; any order). */
export type CrossingFields = Readonly<Record<Table, readonly string[]>>;

/** Every contract field of every table: what crosses unless the packer is told less. */
export const ALL_FIELDS: CrossingFields = ROW_FIELDS;

/** Whether two packed inputs carry the same fields of every table (their records can be merged packed). */
export const sameFields = (a: PackedChanges, b: PackedChanges): boolean =>
  a.fields.every((mask, t) => mask === b.fields[t]);

/** The `fields` masks of `crossing`. */
export function fieldMasks(crossing: CrossingFields): number[] {
  return TABLES.map((t) =>
    ROW_FIELDS[t].reduce((mask, f, i) => (crossing[t].includes(f) ? mask | (1 << i) : mask), 0),
  );
}

const NULL = 0xffffffff;
const ABSENT = 0xfffffffe;
const DELETE = 0;
const FULL_ROW = 1;
const TRUNCATED = 2;
const PARTIAL_ROW = 3;
/** Strings up to this long are copied unit by unit (`Writer.string`). */
const SHORT_STRING = 48;
/** A character outside Latin-1: the string goes as UTF-16. */
const WIDE = /[\u0100-\uffff]/;
const TABLE_INDEX: ReadonlyMap<string, number> = new Map(TABLES.map((t, i) => [t, i]));

/**
 * Bytes a record takes in `bytes`, about (the bench's changelog: 65): a small commit's buffer starts at that
 * many per record, a large one at 64 KiB and doubles. A caught-up feed commits a few records at a time, and a
 * fresh 64 KiB (zero-filled) for each of them made packing 28 records take 24.5-32 µs against 13.4-15 µs.
 */
const RECORD_BYTES_GUESS = 64;
const LARGEST_START = 1 << 16;

/** An output buffer that grows (own ArrayBuffers, never Buffer's shared pool: the result is transferred). */
class Writer {
  buf: Buffer;
  at = 0;

  constructor(bytes: number) {
    this.buf = Buffer.from(new ArrayBuffer(Math.min(LARGEST_START, Math.max(256, bytes))));
  }

  ensure(n: number): void {
    if (this.at + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (this.at + n > size) size *= 2;
    const next = Buffer.from(new ArrayBuffer(size));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.at);
    this.at += 4;
  }

  byte(v: number): void {
    this.ensure(1);
    this.buf[this.at++] = v;
  }

  /** At `at`, the header of a one-byte string of `length` characters (byte by byte: no native call). */
  private latin1Header(length: number): void {
    const { buf, at } = this;
    const header = length * 2;
    buf[at] = header & 0xff;
    buf[at + 1] = (header >>> 8) & 0xff;
    buf[at + 2] = (header >>> 16) & 0xff;
    buf[at + 3] = header >>> 24;
  }

  /** The string whose characters are `src`'s bytes from `from` to `to` (ASCII, as `json-scan.ts` found them). */
  bytesOf(src: Uint8Array, from: number, to: number): void {
    const length = to - from;
    this.ensure(4 + length);
    const buf = this.buf;
    const start = this.at + 4;
    this.latin1Header(length);
    // Short ones (ids, keys) copied here: a view and a native copy cost more.
    if (length <= SHORT_STRING) for (let i = 0; i < length; i++) buf[start + i] = src[from + i]!;
    else buf.set(src.subarray(from, to), start);
    this.at = start + length;
  }

  string(s: string): void {
    const length = s.length;
    this.ensure(4 + length * 2);
    if (length <= SHORT_STRING) {
      // Copied here: for short strings (keys, offsets, ids) the regex and the native call cost more.
      const buf = this.buf;
      const start = this.at + 4;
      let i = 0;
      for (; i < length; i++) {
        const c = s.charCodeAt(i);
        if (c > 0xff) break;
        buf[start + i] = c;
      }
      if (i === length) {
        this.latin1Header(length);
        this.at = start + length;
        return;
      }
    }
    const wide = WIDE.test(s);
    const n = wide ? this.buf.write(s, this.at + 4, 'utf16le') : latin1Write(this.buf, s, this.at + 4);
    this.buf.writeUInt32LE(n * 2 + (wide ? 1 : 0), this.at);
    this.at += 4 + n;
  }
}

/** The distinct topics of packed records, each numbered by its first appearance (`PackedChanges.topic`). */
class TopicNumbers {
  readonly names: string[] = [];
  private readonly index = new Map<string, number>();

  /** `name`'s number, given now if it has none. */
  of(name: string): number {
    let n = this.index.get(name);
    if (n === undefined) {
      n = this.names.length;
      this.index.set(name, n);
      this.names.push(name);
    }
    return n;
  }
}

/** What an Int32Array column keeps as it is (not -0). */
const isInt32 = (p: number): boolean => (p | 0) === p && !Object.is(p, -0);

/** Typed columns of `capacity` records, or `from`'s records in a larger one. */
const grown = <T extends Uint8Array | Uint32Array | Int32Array | Float64Array>(
  make: new (n: number) => T,
  capacity: number,
  from?: T,
): T => {
  const out = new make(capacity);
  if (from !== undefined) out.set(from);
  return out;
};

/**
 * Packs records one at a time (`push`), into columns and a byte buffer that grow as they fill: the ingest
 * packs each record as it decodes it (`PackingChangeBatch`), so a decoded row lives for one record, not
 * until its commit is handed over.
 */
export class ChangesPacker {
  private n = 0;
  private capacity: number;
  private table: Uint8Array;
  private topic: Uint32Array;
  private partition: Int32Array;
  private eventTime: Float64Array;
  private readonly topics = new TopicNumbers();
  private readonly w: Writer;
  private readonly fields: readonly number[];

  /**
   * `expected`: records it will probably hold (what its first buffers are sized for); `crossing`: the fields
   * it packs.
   */
  constructor(expected = 0, crossing: CrossingFields = ALL_FIELDS) {
    this.fields = fieldMasks(crossing);
    this.capacity = Math.max(16, expected);
    this.table = grown(Uint8Array, this.capacity);
    this.topic = grown(Uint32Array, this.capacity);
    this.partition = grown(Int32Array, this.capacity);
    this.eventTime = grown(Float64Array, this.capacity);
    this.w = new Writer(expected * RECORD_BYTES_GUESS);
  }

  /** Bytes its buffers take (allocated, not only filled): what it holds until its commit. */
  get bytes(): number {
    return (
      this.table.byteLength +
      this.topic.byteLength +
      this.partition.byteLength +
      this.eventTime.byteLength +
      this.w.buf.length
    );
  }

  get length(): number {
    return this.n;
  }

  /**
   * Packs one record (ChangeBatch's `push`). False, and nothing of it kept, when the layout does not carry it
   * (a field that is not a string, null or absent, say): the caller keeps it some other way.
   */
  push(
    t: Table,
    key: string,
    row: Row | null | typeof TRUNCATE,
    topicName: string,
    p: number,
    offset: string,
    time: number,
  ): boolean {
    const ti = TABLE_INDEX.get(t);
    if (ti === undefined || !isInt32(p)) return false;
    if (typeof key !== 'string' || typeof offset !== 'string' || typeof time !== 'number') return false;
    if (row !== null && row !== TRUNCATE && (typeof row !== 'object' || row.table !== t)) return false;
    const w = this.w;
    const mark = w.at;
    w.string(key);
    w.string(offset);
    if (row === null) w.byte(DELETE);
    else if (row === TRUNCATE) w.byte(TRUNCATED);
    else {
      const values = row as unknown as Record<string, unknown>;
      const kindAt = w.at;
      w.byte(FULL_ROW);
      const fields = ROW_FIELDS[t];
      const mask = this.fields[ti]!;
      for (let f = 0; f < fields.length; f++) {
        if ((mask & (1 << f)) === 0) continue;
        const v = values[fields[f]!];
        if (typeof v === 'string') w.string(v);
        else if (v === null) w.u32(NULL);
        else if (v === undefined) {
          w.buf[kindAt] = PARTIAL_ROW;
          w.u32(ABSENT);
        } else {
          w.at = mark;
          return false;
        }
      }
    }
    this.add(ti, topicName, p, time);
    return true;
  }

  /**
   * Packs the record `scan` has just accepted (json-scan.ts, debezium-scan.ts; its key `key`, as its bytes or as
   * the string its format decodes it into, its value's bytes `value`), or its delete (`value` null): the bytes
   * `push` writes for the row the format's decoder makes of it. False, and nothing
   * of it kept, where `push` refuses the record too (a partition that is not an int32), or where reading a
   * string throws.
   */
  pushScanned(
    scan: ScannedRow,
    key: Uint8Array | string,
    value: Uint8Array | null,
    topicName: string,
    p: number,
    offset: string,
    time: number,
  ): boolean {
    const ti = TABLE_INDEX.get(scan.table)!;
    if (!isInt32(p)) return false;
    const w = this.w;
    const mark = w.at;
    try {
      if (typeof key === 'string') w.string(key);
      else w.bytesOf(key, 0, key.length);
      w.string(offset);
      if (value === null) w.byte(DELETE);
      else {
        w.byte(FULL_ROW);
        const mask = this.fields[ti]!;
        const { start, end, form, dates } = scan;
        for (let f = 0; f < scan.rowFields; f++) {
          if ((mask & (1 << f)) === 0) continue;
          const at = start[f]!;
          const date = dates[f];
          if (at < 0) w.u32(NULL);
          else if (date !== undefined) w.string(date);
          else if (form[f] === PLAIN_FORM) w.bytesOf(value, at, end[f]!);
          else w.string(scan.text(f));
        }
      }
    } catch {
      // A string the scan took that its own reading refuses (none is known): the decoder has the last word.
      w.at = mark;
      return false;
    }
    this.add(ti, topicName, p, time);
    return true;
  }

  private add(ti: number, topicName: string, p: number, time: number): void {
    const tp = this.topics.of(topicName);
    if (this.n === this.capacity) this.grow();
    const i = this.n++;
    this.table[i] = ti;
    this.topic[i] = tp;
    this.partition[i] = p;
    this.eventTime[i] = time;
  }

  private grow(): void {
    this.capacity *= 2;
    this.table = grown(Uint8Array, this.capacity, this.table);
    this.topic = grown(Uint32Array, this.capacity, this.topic);
    this.partition = grown(Int32Array, this.capacity, this.partition);
    this.eventTime = grown(Float64Array, this.capacity, this.eventTime);
  }

  /** What it packed (views of its buffers: push nothing more). */
  finish(): PackedChanges {
    const n = this.n;
    return {
      table: this.table.subarray(0, n),
      topics: this.topics.names,
      topic: this.topic.subarray(0, n),
      partition: this.partition.subarray(0, n),
      eventTime: this.eventTime.subarray(0, n),
      bytes: new Uint8Array(this.w.buf.buffer, 0, this.w.at),
      fields: this.fields,
    };
  }
}

/**
 * Packs `c` (the `crossing` fields of its rows); undefined when something in it is not what the layout
 * carries (send `c` as it is then).
 */
export function packChanges(
  c: ChangeColumns,
  crossing: CrossingFields = ALL_FIELDS,
): PackedChanges | undefined {
  const n = c.key.length;
  const packer = new ChangesPacker(n, crossing);
  for (let i = 0; i < n; i++) {
    const packed = packer.push(
      c.table[i]!,
      c.key[i]!,
      c.row[i]!,
      c.topic[i]!,
      c.partition[i]!,
      c.offset[i]!,
      c.eventTime[i]!,
    );
    if (!packed) return undefined;
  }
  return packer.finish();
}

/**
 * Several packed inputs' records as one, in order: the columns and bytes copied end to end, the topics
 * numbered again. The group commit on the writer thread merges what waits this way and unpacks the result
 * once: unpacked one by one and then concatenated, a catch-up's commit of 90 inputs built every column twice,
 * and the first copies lived, and were copied by the collector, until the second was done.
 */
export function mergePackedChanges(list: readonly PackedChanges[]): PackedChanges {
  if (list.length === 1) return list[0]!;
  const first = list[0]!;
  if (!list.every((p) => sameFields(p, first)))
    throw new Error('packed inputs that carry different fields cannot be merged packed');
  let n = 0;
  let size = 0;
  for (const p of list) {
    n += p.table.length;
    size += p.bytes.length;
  }
  const table = new Uint8Array(n);
  const topic = new Uint32Array(n);
  const partition = new Int32Array(n);
  const eventTime = new Float64Array(n);
  const bytes = new Uint8Array(size);
  const topics = new TopicNumbers();
  let at = 0;
  let byteAt = 0;
  for (const p of list) {
    const count = p.table.length;
    table.set(p.table, at);
    partition.set(p.partition, at);
    eventTime.set(p.eventTime, at);
    bytes.set(p.bytes, byteAt);
    const renumbered = p.topics.map((name) => topics.of(name));
    for (let i = 0; i < count; i++) topic[at + i] = renumbered[p.topic[i]!]!;
    at += count;
    byteAt += p.bytes.length;
  }
  return { table, topics: topics.names, topic, partition, eventTime, bytes, fields: first.fields };
}

/** A changelog commit input with its records packed: what the ingest hands a store with a writer thread. */
export interface PackedCommitInput {
  readonly packed: PackedChanges;
  readonly positions: readonly PartitionPosition[];
}

/** Records an input carries, packed or not (the group commit's budget counts them). */
export const recordsIn = (input: BatchInput | PackedCommitInput): number =>
  'packed' in input ? input.packed.table.length : recordsOf(input);

/**
 * ChangeBatch's twin for a store whose commits cross to the writer thread (`LmdbStore.packsChanges`): each
 * record is packed as the ingest decodes it, in the ingest's turns, instead of the whole commit at once when
 * it is handed over. Two things of a catch-up's event loop go with that: a task of up to ~40 ms that packed
 * a partition's whole prefetch while no read was answered, and the decoded rows that lived from their decoding
 * to that task, which each young-generation collection in between copied (its cost grows with what survives).
 * A record the layout does not carry turns it into a ChangeBatch from then on, with what it packed so far
 * unpacked first (equal columns: test/store/packed-changes.test.ts), and its input is the plain columns.
 */
export class PackingChangeBatch implements ScannedSink {
  private packer: ChangesPacker | undefined;
  private plain: ChangeBatch | undefined;

  /** `crossing`: the fields it packs (the store's `packedFields`). */
  constructor(crossing: CrossingFields = ALL_FIELDS) {
    this.packer = new ChangesPacker(0, crossing);
  }

  /** Bytes of what it packed (undefined: it fell back to decoded rows). */
  get packedBytes(): number | undefined {
    return this.packer?.bytes;
  }

  get length(): number {
    return this.packer !== undefined ? this.packer.length : this.plain!.length;
  }

  push(
    table: Table,
    key: string,
    row: Row | null | typeof TRUNCATE,
    topic: string,
    partition: number,
    offset: string,
    eventTime: number,
  ): void {
    if (this.packer !== undefined) {
      if (this.packer.push(table, key, row, topic, partition, offset, eventTime)) return;
      this.plain = new ChangeBatch(unpackChanges(this.packer.finish()));
      this.packer = undefined;
    }
    this.plain!.push(table, key, row, topic, partition, offset, eventTime);
  }

  /**
   * A record whose row was found in its bytes (`ChangesPacker.pushScanned`): true when packed, false when it
   * is to be decoded and pushed (nothing of it was kept).
   */
  pushScanned(
    scan: ScannedRow,
    key: Uint8Array | string,
    value: Uint8Array | null,
    topic: string,
    partition: number,
    offset: string,
    eventTime: number,
  ): boolean {
    return this.packer?.pushScanned(scan, key, value, topic, partition, offset, eventTime) ?? false;
  }

  /** The commit input of what was pushed (push nothing more). */
  input(positions: readonly PartitionPosition[]): PackedCommitInput | CommitInput {
    return this.packer !== undefined
      ? { packed: this.packer.finish(), positions }
      : this.plain!.input(positions);
  }
}

/** What `postMessage` must transfer rather than copy. */
export const packedChangesTransferables = (p: PackedChanges): ArrayBuffer[] => [
  p.table.buffer as ArrayBuffer,
  p.topic.buffer as ArrayBuffer,
  p.partition.buffer as ArrayBuffer,
  p.eventTime.buffer as ArrayBuffer,
  p.bytes.buffer as ArrayBuffer,
];

// The reader's state, module-wide: no closure per record on the hot path.
let bytes: Buffer = Buffer.alloc(0);
let at = 0;

function readString(): string {
  const header = bytes.readUInt32LE(at);
  at += 4;
  const n = header >>> 1;
  const s = header & 1 ? bytes.toString('utf16le', at, at + n) : latin1Slice(bytes, at, at + n);
  at += n;
  return s;
}

/** The fields of the row being read that crossed (`PackedChanges.fields` of its table). */
let crossing = 0;

/** A field of a row with every field: a string or null. */
function readValue(): string | null {
  if (bytes.readUInt32LE(at) === NULL) {
    at += 4;
    return null;
  }
  return readString();
}

/** Field `bit` of a row with every crossing field: its value, or undefined when it did not cross. */
function field(bit: number): string | null {
  return crossing & bit ? readValue() : (undefined as unknown as null);
}

/**
 * Object literals of one shape per table, in ROW_FIELDS order (the decoders' rows hold the same fields), a
 * field that did not cross undefined.
 */
function readFullRow(t: Table): Row {
  switch (t) {
    case 'users':
      return {
        table: t,
        username: field(1)!,
        name: field(2),
        description: field(4),
        location: field(8),
        webPageUrl: field(16),
        joinedDate: field(32),
        profileImageUrl: field(64),
        backgroundImageUrl: field(128),
      };
    case 'tweets':
      return { table: t, userId: field(1)!, text: field(2), createdAt: field(4) };
    case 'follows':
      return { table: t, followerId: field(1)!, followeeId: field(2)!, createdAt: field(4) };
    case 'likes':
      return { table: t, userId: field(1)!, tweetId: field(2)!, createdAt: field(4) };
  }
}

/** A row with absent fields: the crossing fields it has, nothing else. */
function readPartialRow(t: Table): Row {
  const out: Record<string, string | null> = { table: t };
  const fields = ROW_FIELDS[t];
  for (let f = 0; f < fields.length; f++) {
    if ((crossing & (1 << f)) === 0) continue;
    const header = bytes.readUInt32LE(at);
    if (header === ABSENT) at += 4;
    else out[fields[f]!] = readValue();
  }
  return out as unknown as Row;
}

/** The columns `packChanges` packed. */
export function unpackChanges(p: PackedChanges): ChangeColumns {
  const n = p.table.length;
  const table = new Array<Table>(n);
  const key = new Array<string>(n);
  const row = new Array<Row | null | typeof TRUNCATE>(n);
  const topic = new Array<string>(n);
  const partition = new Array<number>(n);
  const offset = new Array<string>(n);
  const eventTime = new Array<number>(n);
  bytes = Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.bytes.byteLength);
  at = 0;
  try {
    for (let i = 0; i < n; i++) {
      const t = TABLES[p.table[i]!]!;
      crossing = p.fields[p.table[i]!]!;
      table[i] = t;
      topic[i] = p.topics[p.topic[i]!]!;
      partition[i] = p.partition[i]!;
      eventTime[i] = p.eventTime[i]!;
      key[i] = readString();
      offset[i] = readString();
      const kind = bytes[at++];
      row[i] =
        kind === DELETE
          ? null
          : kind === TRUNCATED
            ? TRUNCATE
            : kind === FULL_ROW
              ? readFullRow(t)
              : readPartialRow(t);
    }
  } finally {
    bytes = Buffer.alloc(0);
  }
  return { table, key, row, topic, partition, offset, eventTime };
}
