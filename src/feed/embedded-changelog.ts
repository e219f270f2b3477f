/**
 * The embedded changelog: an in-process, persistent stand-in for Kafka changelog topics, so `npm start`
 * serves live data with nothing else installed (CONTRACT.md section 5, no `KAFKA_BROKERS`).
 *
 * It is both ends of a topic: a {@link ChangelogWriter} (the demo generator and the DLQ append to it) and a
 * {@link FeedSource} (the materializer consumes it), with Kafka's record semantics so the rest of matview
 * cannot tell the difference:
 * - per topic-partition offsets start at 0 and grow by one per record;
 * - keyed records land on `murmur2(key) % partitions` (Kafka's default partitioner), null keys round-robin;
 * - tombstones (`value: null`), headers and record timestamps are kept;
 * - topics are created on first use with a fixed partition count that never changes afterwards.
 *
 * It is a log on disk, not in memory, in its own LMDB environment: the view store keeps offsets into it,
 * and a log that restarted at offset 0 would make those offsets skip every new record.
 *
 * Layout (sub-databases of the environment at `dir`):
 * - `topics`: topic name → `{ partitions }`;
 * - `records`: `[topic, partition, offset]` → one encoded record (see `encodeRecord`).
 * High watermarks are not stored: a partition's is its last offset + 1, read from `records`. Offsets are
 * assigned inside the LMDB write transaction, and each record is put only where no record is (`putIfAbsent`:
 * one the end read missed moves it on), so an append never overwrites another.
 *
 * One process writes a log (changelog-writer-link.ts): the first handle that appends or creates a topic
 * claims the writer's socket, and every other handle, in this process or another (`matview demo` next to a
 * server), sends its appends there. lmdb-js lost a whole committed append now and then when two processes
 * wrote one environment (1 of 122 loaded runs of the test "never loses or reuses an offset", with
 * overlappingSync off and the no-overwrite put); its synchronous transactions crashed instead. Consumers in
 * any process read the log directly and see other processes' appends within `pollIntervalMs`. The likely
 * cause is the store's (LMDB's ITS#9496, lmdb-open-gate.ts): a process opening the log while the writer
 * commits made it lose that append. So the writer serves an open gate, whose hold stops its appends (after
 * the one in progress) rather than taking LMDB's write lock, because the other processes open the log
 * read-write (any of them may become the writer), which takes that lock.
 */
import { mkdirSync } from 'node:fs';
import { open, type Database, type Key, type RootDatabase } from 'lmdb';
import { commitFailure, DataDirError, FeedCrashError, InvariantError, isCommitFailure } from '../errors.js';
import type { Logger } from '../ops/logger.js';
import { setHeader } from './headers.js';
import { partitionForKey, toPositive } from './partitioner.js';
import type {
  ChangelogWriter,
  FeedBatch,
  FeedRecord,
  FeedSource,
  FeedStartOptions,
  FeedState,
  FeedStatus,
  OutgoingMessage,
  PartitionPosition,
} from './types.js';
import { openThroughGate, serveOpenGate, type OpenGate } from '../lmdb-open-gate.js';
import { atomicTransaction, LMDB_OPEN_OPTIONS } from '../lmdb-transaction.js';
import { WriterLink } from './changelog-writer-link.js';

/**
 * Writes `key` inside the current write transaction unless it exists; whether it wrote. lmdb-js' `putSync`
 * returns that (false: `noOverwrite` found the key), though its types say void.
 */
function putIfAbsent<K extends Key, V>(db: Database<V, K>, key: K, value: V): boolean {
  const wrote: unknown = db.putSync(key, value, { noOverwrite: true });
  if (typeof wrote !== 'boolean') throw new InvariantError('lmdb-js putSync did not say whether it wrote');
  return wrote;
}

export interface EmbeddedChangelogOptions {
  /** Directory of the log's own LMDB environment (created if missing). Not the view store's directory. */
  readonly dir: string;
  /** Partition count of topics created from now on (existing topics keep theirs, as in Kafka). Default 4. */
  readonly partitions?: number;
  readonly logger: Logger;
  /**
   * How often an idle consumer re-reads the log without a wake-up (ms, default 1000). Appends in this process wake
   * it at once; appends by another process (`matview demo` next to a server) are seen at the next poll. Each poll
   * also refreshes `lastActivityAt`, so an idle feed still looks alive.
   */
  readonly pollIntervalMs?: number;
  /** Most records per delivered batch (default 1000), like a fetch's max bytes in Kafka. */
  readonly maxBatchRecords?: number;
  /** First delay before redelivering a batch the handler rejected (ms, default 100); doubles up to `retryMaxMs`. */
  readonly retryInitialMs?: number;
  /** Longest delay between redeliveries of a rejected batch (ms, default 5000). */
  readonly retryMaxMs?: number;
  /**
   * Where the log's one writing process listens for the others' appends (default: see `writerAddress` in
   * changelog-writer-link.ts). Tests set a socket file to run the non-Linux way.
   */
  readonly writerAddress?: string;
  /** How long an append sent to the writing process waits for its answer (ms, default 30000). */
  readonly forwardTimeoutMs?: number;
}

/**
 * An embedded changelog: write with `send`, consume with `start`. `stop()` ends consumption only; `close()`
 * stops it too, waits for pending appends and closes the LMDB environment (nothing works afterwards).
 */
export interface EmbeddedChangelog extends FeedSource, ChangelogWriter {
  readonly kind: 'embedded';
  /** The directory of the log's LMDB environment. */
  readonly dir: string;
  /** Names of the topics that exist, sorted. For diagnostics and the CLI. */
  topics(): string[];
  /**
   * Whether this handle writes the log now: one process writes each log, the first one that appends (or
   * creates a topic); every other handle sends its appends there (changelog-writer-link.ts).
   */
  readonly isWriter: boolean;
}

/** Kafka's legal topic names (the broker rejects others); enforcing them keeps embedded and Kafka setups portable. */
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;
const RECORD_FORMAT_VERSION = 1;
const NULL_LENGTH = -1;

type RecordKey = [string, number, number];

interface Cursor {
  readonly topic: string;
  readonly partition: number;
  next: number;
}

interface Waiter {
  readonly wakeOnAppend: boolean;
  readonly done: () => void;
}

/**
 * Opens (or creates) the embedded changelog at `dir`. Async because opening a log is I/O and callers should not
 * depend on it being synchronous; throws {@link DataDirError} when the directory is unusable.
 */
export async function openEmbeddedChangelog(options: EmbeddedChangelogOptions): Promise<EmbeddedChangelog> {
  const partitions = options.partitions ?? 4;
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  }
  try {
    mkdirSync(options.dir, { recursive: true });
  } catch (error) {
    throw new DataDirError(options.dir, (error as Error).message, { cause: error });
  }
  // Through the open gate of the process writing the log, if one does (lmdb-open-gate.ts): it stops its
  // appends until this process has opened the log, its databases included (their open writes).
  return openThroughGate(options.dir, () => {
    let env: RootDatabase;
    try {
      env = open({ path: options.dir, maxDbs: 4, ...LMDB_OPEN_OPTIONS });
    } catch (error) {
      throw new DataDirError(options.dir, `cannot open the embedded changelog: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return new Changelog(env, { ...options, partitions });
  });
}

class Changelog implements EmbeddedChangelog {
  readonly kind = 'embedded' as const;
  readonly dir: string;

  private readonly env: RootDatabase;
  private readonly topicsDb: Database<{ partitions: number }, string>;
  private readonly records: Database<Buffer, RecordKey>;
  /** Partition counts of topics known to exist (a topic's count never changes, so caching is safe). */
  private readonly partitionCounts = new Map<string, number>();
  /** Round-robin counters for records without key or explicit partition. */
  private readonly roundRobin = new Map<string, number>();
  private readonly defaultPartitions: number;
  private readonly logger: Logger;
  private readonly pollIntervalMs: number;
  private readonly maxBatchRecords: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;

  /** Appends run one after another so offsets are assigned in commit order and a failed commit leaves no gap. */
  private writeChain: Promise<unknown> = Promise.resolve();
  /** The write transactions in progress. */
  private readonly writing = new Set<Promise<unknown>>();
  /** Set while another process opens the log (the open gate): writes wait for it. */
  private writesHeld: Promise<void> | undefined;
  /** Served from when this handle becomes the log's writer. */
  private gate: OpenGate | undefined;
  /** Appends here when this handle writes the log, else sends them to the process (or handle) that does. */
  private readonly link: WriterLink;
  private readonly waiters = new Set<Waiter>();
  private closed = false;

  private state: FeedState = 'starting';
  private reason: string | undefined;
  private lastActivityAt = Date.now();
  private running = false;
  private loop: Promise<void> | undefined;
  /** Bumped by stop(): a start() still awaiting topic creation when stop() ran must not begin consuming. */
  private generation = 0;

  constructor(env: RootDatabase, options: EmbeddedChangelogOptions & { partitions: number }) {
    this.env = env;
    this.dir = options.dir;
    this.defaultPartitions = options.partitions;
    this.logger = options.logger;
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.maxBatchRecords = options.maxBatchRecords ?? 1000;
    this.retryInitialMs = options.retryInitialMs ?? 100;
    this.retryMaxMs = options.retryMaxMs ?? 5000;
    this.topicsDb = env.openDB<{ partitions: number }, string>({ name: 'topics', encoding: 'json' });
    this.records = env.openDB<Buffer, RecordKey>({ name: 'records', encoding: 'binary' });
    this.link = new WriterLink({
      dir: this.dir,
      ...(options.writerAddress === undefined ? {} : { address: options.writerAddress }),
      appendHere: (topic, messages) => this.appendHere(topic, messages),
      serveAppend: (topic, messages) => this.enqueue(topic, messages),
      timeoutMs: options.forwardTimeoutMs ?? 30_000,
      logger: this.logger,
      onWriter: () => {
        const onError = (error: unknown): void =>
          this.logger.error({ err: error }, 'embedded changelog open gate failed');
        try {
          this.gate = serveOpenGate(this.dir, { hold: () => this.holdWrites(), onError });
        } catch (error) {
          onError(error);
        }
      },
    });
    this.logger.info(
      { dir: this.dir, topics: Object.fromEntries(this.topics().map((t) => [t, this.recordCount(t)])) },
      'embedded changelog opened',
    );
  }

  // ---------------------------------------------------------------------------------------------- writer

  async send(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    this.assertOpen();
    return this.enqueue(topic, messages);
  }

  /** Queues an append of this handle or (when it writes the log) of another handle it serves. */
  private enqueue(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    assertTopicName(topic);
    const result = this.writeChain.then(async () => {
      await this.link.append(topic, messages);
      this.notifyAppend();
    });
    this.writeChain = result.catch(() => undefined);
    return result;
  }

  get isWriter(): boolean {
    return this.link.isWriter;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Stop first: the handler in flight may still append (DLQ copies) and must be allowed to finish.
    await this.stop();
    this.closed = true;
    // This handle's appends finish (while it still writes, or can reach the writer); then it stops serving
    // other handles (those it took finish; later ones go elsewhere) and gives up the writer's socket.
    await this.writeChain;
    await this.link.close();
    await this.writeChain;
    await this.gate?.close();
    await this.env.close();
    this.logger.debug({ dir: this.dir }, 'embedded changelog closed');
  }

  /** One append in this process, the log's writer: the only place records are written. */
  private async appendHere(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) {
      await this.createTopicHere(topic);
      return;
    }
    // Encoding needs no state: done before the write transaction to keep it short.
    const timestamp = Date.now();
    const encoded = messages.map((message) => encodeRecord(timestamp, message));
    let roundRobin = this.roundRobin.get(topic) ?? 0;
    const partitions = await this.write(() => {
      // Inside the write transaction: reads see every committed append, from any process.
      const existing = this.topicsDb.get(topic)?.partitions;
      const count = existing ?? this.defaultPartitions;
      const assigned = messages.map((message) => {
        if (message.partition === undefined) {
          return message.key !== null
            ? partitionForKey(message.key, count)
            : toPositive(roundRobin++) % count;
        }
        if (!Number.isInteger(message.partition) || message.partition < 0 || message.partition >= count) {
          throw new RangeError(
            `Partition ${message.partition} does not exist in topic "${topic}" (partitions 0..${count - 1})`,
          );
        }
        return message.partition;
      });
      if (existing === undefined) void this.topicsDb.put(topic, { partitions: count });
      const next = new Map<number, number>();
      for (const [i, partition] of assigned.entries()) {
        let offset = next.get(partition) ?? this.endOffset(topic, partition);
        // Never over an existing record: the put refuses to overwrite, and the record goes after what
        // the write transaction finds there (a read that missed another process's append moves on).
        while (!putIfAbsent(this.records, [topic, partition, offset], encoded[i]!)) offset++;
        next.set(partition, offset + 1);
      }
      return count;
    });
    this.partitionCounts.set(topic, partitions);
    this.roundRobin.set(topic, roundRobin);
  }

  /**
   * One write transaction. A failed commit (a full disk) rejects with its real cause, read from lmdb-js'
   * `commitError`, which left unread is an unhandled rejection that ends the process; an error thrown by
   * `action` itself (a partition that does not exist) passes as it is.
   */
  private async write<T>(action: () => T): Promise<T> {
    while (this.writesHeld !== undefined) await this.writesHeld;
    const writing = atomicTransaction(this.env, action);
    this.writing.add(writing);
    try {
      return await writing;
    } catch (e) {
      if (!isCommitFailure(e)) throw e;
      throw new Error(`the embedded changelog could not be written: ${await commitFailure(e)}`, { cause: e });
    } finally {
      this.writing.delete(writing);
    }
  }

  /** The open gate's hold: no write starts, and the one in progress has ended, until the release. */
  private async holdWrites(): Promise<() => void> {
    while (this.writesHeld !== undefined) await this.writesHeld;
    let release = (): void => undefined;
    this.writesHeld = new Promise<void>((resolve) => (release = resolve));
    await Promise.allSettled([...this.writing]);
    return () => {
      this.writesHeld = undefined;
      release();
    };
  }

  // ---------------------------------------------------------------------------------------------- source

  async endOffsets(topics: readonly string[]): Promise<PartitionPosition[]> {
    this.assertOpen();
    // As committed now, another process's appends included: lmdb-js keeps a thread's read snapshot until
    // this thread commits or resets it.
    this.env.resetReadTxn();
    const positions: PartitionPosition[] = [];
    for (const topic of topics) {
      assertTopicName(topic);
      const partitions = await this.ensureTopic(topic);
      for (let partition = 0; partition < partitions; partition++) {
        positions.push({ topic, partition, next: String(this.endOffset(topic, partition)) });
      }
    }
    return positions;
  }

  async start(options: FeedStartOptions): Promise<void> {
    this.assertOpen();
    if (this.running || this.loop !== undefined)
      throw new Error('The embedded changelog consumer is already started');
    this.state = 'starting';
    this.reason = undefined;
    const generation = this.generation;
    const cursors: Cursor[] = [];
    for (const topic of options.topics) {
      assertTopicName(topic);
      const partitions = await this.ensureTopic(topic);
      for (let partition = 0; partition < partitions; partition++) {
        const stored = options.resumeFrom(topic, partition);
        const hw = this.endOffset(topic, partition);
        let next = 0;
        if (stored !== undefined) {
          if (!/^\d+$/.test(stored) || !Number.isSafeInteger(Number(stored))) {
            throw this.crash(`Stored offset "${stored}" for ${topic}[${partition}] is not a valid offset`);
          }
          next = Number(stored);
          // Kafka would reset to the earliest offset; replaying into a view that is ahead of the log would leave
          // it wrong, so refuse: the log was deleted or replaced under the view store.
          if (next > hw) {
            throw this.crash(
              `The view store has consumed ${topic}[${partition}] up to offset ${next}, but the embedded changelog ` +
                `in "${this.dir}" ends at ${hw}: it was deleted or replaced. Delete the view store's data directory ` +
                `to rebuild the view from this log.`,
            );
          }
        }
        cursors.push({ topic, partition, next });
      }
    }
    if (generation !== this.generation) return;
    this.running = true;
    this.state = 'running';
    this.lastActivityAt = Date.now();
    this.logger.info(
      { dir: this.dir, topics: options.topics, partitions: cursors.length },
      'embedded changelog consumer started',
    );
    this.loop = this.consume(cursors, options).catch((error: unknown) => {
      const err = error instanceof Error ? error : new Error(String(error));
      this.running = false;
      this.state = 'crashed';
      this.reason = err.message;
      this.logger.error({ err }, 'embedded changelog consumer crashed');
      options.onFatal(err);
    });
  }

  async stop(): Promise<void> {
    this.generation++;
    this.running = false;
    for (const waiter of [...this.waiters]) waiter.done();
    const loop = this.loop;
    this.loop = undefined;
    if (loop !== undefined) await loop;
    if (this.state !== 'crashed') {
      this.state = 'stopped';
      this.reason = undefined;
    }
  }

  status(): FeedStatus {
    return this.reason === undefined
      ? { state: this.state, lastActivityAt: this.lastActivityAt }
      : { state: this.state, reason: this.reason, lastActivityAt: this.lastActivityAt };
  }

  topics(): string[] {
    return [...this.topicsDb.getKeys()].sort();
  }

  // ---------------------------------------------------------------------------------------------- internals

  /** Delivers batches round-robin over the partitions (one batch each per round, like a fair fetch) until stopped. */
  private async consume(cursors: readonly Cursor[], options: FeedStartOptions): Promise<void> {
    while (this.running) {
      let delivered = false;
      for (const cursor of cursors) {
        if (!this.running) return;
        const records = this.read(cursor);
        if (records.length === 0) continue;
        const batch: FeedBatch = {
          topic: cursor.topic,
          partition: cursor.partition,
          records,
          highWatermark: String(this.endOffset(cursor.topic, cursor.partition)),
        };
        if (!(await this.deliver(batch, options))) return;
        cursor.next += records.length;
        delivered = true;
      }
      this.lastActivityAt = Date.now();
      // Nothing new anywhere: sleep until an append (or the poll interval, for liveness). The scan above was
      // synchronous when it found nothing, so no append can have slipped in between it and this wait.
      if (!delivered && this.running) await this.wait(this.pollIntervalMs, true);
    }
  }

  /** Calls the handler until it accepts the batch (true) or the consumer is stopped (false). */
  private async deliver(batch: FeedBatch, options: FeedStartOptions): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await options.handler(batch);
        this.lastActivityAt = Date.now();
        if (this.state === 'retrying') {
          this.state = 'running';
          this.reason = undefined;
          this.logger.info(
            { topic: batch.topic, partition: batch.partition },
            'batch accepted after retries',
          );
        }
        return true;
      } catch (error) {
        // Stopping: the store refuses what it has not started to commit (read again at the next start).
        if (!this.running) return false;
        this.lastActivityAt = Date.now();
        const first = batch.records[0]?.offset;
        const delayMs = Math.min(this.retryMaxMs, this.retryInitialMs * 2 ** Math.min(attempt - 1, 20));
        const message = error instanceof Error ? error.message : String(error);
        this.state = 'retrying';
        this.reason = `Handler rejected ${batch.topic}[${batch.partition}] at offset ${first}: ${message}`;
        this.logger.warn(
          { err: error, topic: batch.topic, partition: batch.partition, offset: first, attempt, delayMs },
          'handler rejected batch; redelivering it',
        );
        if (!this.running) return false;
        await this.wait(delayMs, false);
        if (!this.running) return false;
      }
    }
  }

  private read(cursor: Cursor): FeedRecord[] {
    const records: FeedRecord[] = [];
    const range = this.records.getRange({
      start: [cursor.topic, cursor.partition, cursor.next],
      end: [cursor.topic, cursor.partition, Number.MAX_SAFE_INTEGER],
      limit: this.maxBatchRecords,
    });
    for (const { key, value } of range) {
      records.push(decodeRecord(cursor.topic, cursor.partition, key[2], value));
    }
    return records;
  }

  /** Resolves after `ms`, on stop, or (when `wakeOnAppend`) on the next append. */
  private wait(ms: number, wakeOnAppend: boolean): Promise<void> {
    return new Promise((resolve) => {
      const waiter: Waiter = {
        wakeOnAppend,
        done: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.done, ms);
      this.waiters.add(waiter);
    });
  }

  private notifyAppend(): void {
    for (const waiter of [...this.waiters]) if (waiter.wakeOnAppend) waiter.done();
  }

  /** The partition count of a topic, creating it (empty, with the default count) when it does not exist yet. */
  private async ensureTopic(topic: string): Promise<number> {
    const cached = this.partitionCounts.get(topic) ?? this.topicsDb.get(topic)?.partitions;
    if (cached !== undefined) {
      this.partitionCounts.set(topic, cached);
      return cached;
    }
    // Creating it is a write: an empty append, made by the log's writer (this handle or another process).
    await this.send(topic, []);
    this.env.resetReadTxn(); // see what another process committed
    const partitions = this.partitionCounts.get(topic) ?? this.topicsDb.get(topic)?.partitions;
    if (partitions === undefined) throw new InvariantError(`topic "${topic}" was not created`);
    this.partitionCounts.set(topic, partitions);
    return partitions;
  }

  private async createTopicHere(topic: string): Promise<void> {
    const { partitions, created } = await this.write(() => {
      const existing = this.topicsDb.get(topic)?.partitions;
      if (existing !== undefined) return { partitions: existing, created: false };
      void this.topicsDb.put(topic, { partitions: this.defaultPartitions });
      return { partitions: this.defaultPartitions, created: true };
    });
    if (created) this.logger.info({ topic, partitions }, 'embedded changelog topic created');
    this.partitionCounts.set(topic, partitions);
  }

  /** High watermark of a partition: its last offset + 1 (0 when empty). Reads the write transaction inside one. */
  private endOffset(topic: string, partition: number): number {
    for (const key of this.records.getKeys({
      start: [topic, partition, Number.MAX_SAFE_INTEGER],
      end: [topic, partition, -1],
      reverse: true,
      limit: 1,
    })) {
      return key[2] + 1;
    }
    return 0;
  }

  private recordCount(topic: string): number {
    const partitions = this.topicsDb.get(topic)?.partitions ?? 0;
    let total = 0;
    for (let partition = 0; partition < partitions; partition++) total += this.endOffset(topic, partition);
    return total;
  }

  private crash(message: string): FeedCrashError {
    const error = new FeedCrashError(message);
    this.state = 'crashed';
    this.reason = message;
    return error;
  }

  /** Use after close() is a caller bug (like KafkaWriter.send() after close()), not an operational error. */
  private assertOpen(): void {
    if (this.closed)
      throw new InvariantError(`the embedded changelog in "${this.dir}" was used after close()`);
  }
}

function assertTopicName(topic: string): void {
  if (!TOPIC_NAME.test(topic)) {
    throw new RangeError(
      `Invalid topic name ${JSON.stringify(topic)}: use 1-249 letters, digits, ".", "_" or "-"`,
    );
  }
}

const toBuffer = (data: string | Buffer): Buffer =>
  typeof data === 'string' ? Buffer.from(data, 'utf8') : data;

/**
 * One record as bytes: version u8, timestamp f64, key (i32 length, -1 = null, then bytes), value (same),
 * header count u16, then per header name (u16 length, UTF-8) and value (i32 length, bytes). A hand-rolled
 * format rather than msgpack: records are appended by the hundred thousand and null vs. empty must survive.
 */
function encodeRecord(timestamp: number, message: OutgoingMessage): Buffer {
  const key = message.key === null ? null : toBuffer(message.key);
  const value = message.value === null ? null : toBuffer(message.value);
  const headers: [Buffer, Buffer][] = [];
  for (const [name, v] of Object.entries(message.headers ?? {})) {
    // Headers typed as present may still be undefined at runtime (optional record fields); drop those.
    if ((v as string | Buffer | undefined) === undefined) continue;
    headers.push([Buffer.from(name, 'utf8'), toBuffer(v)]);
  }
  if (headers.length > 0xffff) throw new RangeError('A record may carry at most 65535 headers');
  let size = 1 + 8 + 4 + (key?.length ?? 0) + 4 + (value?.length ?? 0) + 2;
  for (const [name, v] of headers) size += 2 + name.length + 4 + v.length;
  const out = Buffer.allocUnsafe(size);
  let at = out.writeUInt8(RECORD_FORMAT_VERSION, 0);
  at = out.writeDoubleLE(timestamp, at);
  at = writeBytes(out, at, key);
  at = writeBytes(out, at, value);
  at = out.writeUInt16LE(headers.length, at);
  for (const [name, v] of headers) {
    if (name.length > 0xffff) throw new RangeError('A header name may be at most 65535 bytes');
    at = out.writeUInt16LE(name.length, at);
    at += name.copy(out, at);
    at = writeBytes(out, at, v);
  }
  return out;
}

function writeBytes(out: Buffer, at: number, bytes: Buffer | null): number {
  if (bytes === null) return out.writeInt32LE(NULL_LENGTH, at);
  const end = out.writeInt32LE(bytes.length, at);
  return end + bytes.copy(out, end);
}

/** The inverse of {@link encodeRecord}; `data` must be a private copy (the returned buffers are views into it). */
function decodeRecord(topic: string, partition: number, offset: number, data: Uint8Array): FeedRecord {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const version = buf.readUInt8(0);
  if (version !== RECORD_FORMAT_VERSION) {
    throw new Error(`Unknown embedded record format ${version} at ${topic}[${partition}]@${offset}`);
  }
  const timestamp = buf.readDoubleLE(1);
  let at = 9;
  const readBytes = (): Buffer | null => {
    const length = buf.readInt32LE(at);
    at += 4;
    if (length === NULL_LENGTH) return null;
    const bytes = buf.subarray(at, at + length);
    at += length;
    return bytes;
  };
  const key = readBytes();
  const value = readBytes();
  const count = buf.readUInt16LE(at);
  at += 2;
  const headers: Record<string, Buffer> = {};
  for (let i = 0; i < count; i++) {
    const nameLength = buf.readUInt16LE(at);
    at += 2;
    const name = buf.toString('utf8', at, at + nameLength);
    at += nameLength;
    setHeader(headers, name, readBytes() ?? Buffer.alloc(0));
  }
  return { topic, partition, offset: String(offset), timestamp: String(timestamp), key, value, headers };
}
