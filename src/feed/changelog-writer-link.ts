/**
 * One writing process per embedded changelog. lmdb-js loses a whole committed transaction now and then
 * when two processes write one environment (1 of ~120 loaded runs of the multi-process test; lmdb-js
 * alone, three writing processes: 2 of 237), with asynchronous transactions and with overlappingSync off;
 * its synchronous transactions crashed (SIGSEGV) in the first loaded run. So exactly one process writes:
 * the first one that needs to claims the writer's socket; every other process (and every other handle in
 * the same process) sends its appends there, and the writer appends them as its own.
 *
 * - The socket: on Linux an abstract Unix socket named after the changelog's id (the kernel frees
 *   it when the process ends, crashed or not, so a dead writer never blocks anyone); on Windows a named
 *   pipe (freed the same way); elsewhere a socket file in the temporary directory, which a crash leaves
 *   behind: a file nobody answers on is removed and claimed again. Abstract sockets belong to a network
 *   namespace: containers that share a data directory but not a network would each become a writer (run
 *   one matview per embedded changelog there, or Kafka).
 * - Who may append: abstract sockets and pipes have no file permissions, so the writer writes a random
 *   token to `writer.token` in the changelog directory (mode 0600: only the user the writer runs as, and
 *   root, can read it) and refuses requests without it. Run every matview process of one data directory as
 *   one user. A client whose token is stale (the writer changed) reads the
 *   file again.
 * - Frames: a 4-byte big-endian length, then JSON. A request carries one `send` (topic, messages with keys,
 *   values and headers in base64); the reply says `ok`, the error the append threw (a partition that does
 *   not exist: a RangeError at the sender too; a matview error keeps its name, code and retriable flag), or
 *   `retry` (the writer is closing or the token was stale: nothing was appended, so the
 *   client sends again, claiming the socket itself if it is free).
 * - What can be lost: nothing silently. A writer that dies holding a request, or does not answer within
 *   `timeoutMs` of its sending, leaves its outcome unknown; the request then fails with
 *   {@link ChangelogForwardError} and the caller may send again (the demo generator does: a row written
 *   twice is the same row). The next send claims the socket if the writer is gone.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ChangelogForwardError, InvariantError, MatviewError, isMatviewError } from '../errors.js';
import { directorySocketAddress, isSocketFile, listenLocal } from '../local-ipc.js';
import type { Logger } from '../ops/logger.js';
import type { OutgoingMessage } from './types.js';

/**
 * Where the writer of the changelog in `dir` listens (see the module comment): named after the log's id
 * (`dir/log.id`). Not after its inode as well, unlike a DATA_DIR's claim: a writer and a client of two
 * matview versions must keep finding each other. So the processes of a copied changelog directory (id file
 * included) find each other's writer: delete the copy's `log.id` before running both at once.
 */
export function writerAddress(dir: string, platform: NodeJS.Platform = process.platform): string {
  return directorySocketAddress(dir, 'log.id', 'matview-changelog', { platform });
}

export interface WriterLinkOptions {
  /** The changelog's directory: holds `writer.token`. */
  readonly dir: string;
  /** Default {@link writerAddress}(dir). */
  readonly address?: string;
  /** Appends in this process (called by {@link WriterLink.append} when this handle is the writer). */
  readonly appendHere: (topic: string, messages: readonly OutgoingMessage[]) => Promise<void>;
  /** Runs another handle's request as this handle's own send (in order with its other appends). */
  readonly serveAppend: (topic: string, messages: readonly OutgoingMessage[]) => Promise<void>;
  /** How long a client waits for the writer's answer to one request (ms). */
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** Called once when this handle becomes the writer. */
  readonly onWriter?: () => void;
}

interface WireMessage {
  readonly k: string | null;
  readonly v: string | null;
  readonly h?: Record<string, string>;
  readonly p?: number;
}
interface Request {
  readonly id: number;
  readonly token: string;
  readonly topic: string;
  readonly messages: readonly WireMessage[];
}
type Reply =
  | { readonly id: number; readonly ok: true }
  | { readonly id: number; readonly retry: 'closing' | 'token' }
  | { readonly id: number; readonly error: WireError }
  /** The writer's last frame on a connection: it answered every request it took; it takes no more. */
  | { readonly id: 0; readonly bye: true };

/** An error the writer's append threw: its class name and message, and a matview error's code and flag. */
interface WireError {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
  readonly retriable?: boolean;
}

/** Largest frame read (a forwarded append; the demo generator sends at most 256 KB at a time). */
const MAX_FRAME = 64 * 1024 * 1024;
/** Pause between two attempts to claim the socket, reach the writer or read its token again. */
const ATTEMPT_PAUSE_MS = 20;

/**
 * Routes each append of one changelog handle: here when this process is the writer (or can become it),
 * else to the writer's socket. Appends of one handle are sequential (the handle chains them).
 */
export class WriterLink {
  private readonly address: string;
  private readonly tokenFile: string;
  private server: Server | undefined;
  private token = '';
  private readonly served = new Set<Socket>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Sockets that were told `bye`: their later requests are ignored (the client retries them elsewhere). */
  private readonly saidBye = new WeakSet<Socket>();
  private client: Client | undefined;
  private closing = false;

  constructor(private readonly o: WriterLinkOptions) {
    this.address = o.address ?? writerAddress(o.dir);
    this.tokenFile = join(o.dir, 'writer.token');
  }

  /** Whether this handle is the changelog's writer now. For tests and logs. */
  get isWriter(): boolean {
    return this.server !== undefined;
  }

  /** Appends here when this handle is the writer or becomes it; else sends the append to the writer. */
  async append(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    // A closing writer answers "closing" until the appends it took are written: keep asking for as long as
    // one answer may take.
    const deadline = Date.now() + this.o.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      if (this.server !== undefined) return await this.o.appendHere(topic, messages);
      if (this.closing) throw new InvariantError('append through a closed writer link');
      if (this.client?.closed === true) this.client = undefined;
      const client = this.client ?? (await this.claimOrConnect());
      if (client === undefined) continue; // claimed: append here
      let outcome: 'ok' | 'closing' | 'token';
      try {
        outcome = await client.send(topic, messages, this.readToken());
      } catch (error) {
        if (error instanceof ChangelogForwardError) this.dropClient();
        throw error;
      }
      if (outcome === 'ok') return;
      // Nothing was appended: the writer is closing (claim it next) or rotated its token (read it again).
      if (outcome === 'closing') this.dropClient();
      if (Date.now() >= deadline) {
        throw new ChangelogForwardError(
          this.o.dir,
          `the writing process kept refusing (${outcome}) for ${this.o.timeoutMs} ms (${attempt} attempts); nothing was appended`,
        );
      }
      await pause(ATTEMPT_PAUSE_MS);
    }
  }

  /**
   * Stops serving and disconnects. Requests in progress finish, later ones are answered "closing" (sent
   * again elsewhere); only then is the socket given up, so no other process can claim it while this one
   * still writes. Connections a peer keeps open are cut after `timeoutMs`.
   */
  async close(): Promise<void> {
    this.closing = true;
    this.dropClient();
    const server = this.server;
    if (server === undefined) return;
    await Promise.all([...this.inFlight]);
    for (const socket of this.served) {
      // After every reply: a request that crosses it is one this writer never took, which the client knows.
      this.saidBye.add(socket);
      socket.end(frame$({ id: 0, bye: true }));
    }
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const cut = setTimeout(() => {
      for (const socket of this.served) socket.destroy();
    }, this.o.timeoutMs);
    await closed;
    clearTimeout(cut);
    this.server = undefined;
  }

  // ------------------------------------------------------------------------------------------ claiming

  /** Becomes the writer (undefined) or connects to it, whichever the address allows first. */
  private async claimOrConnect(): Promise<Client | undefined> {
    const deadline = Date.now() + this.o.timeoutMs;
    for (;;) {
      if (await this.tryListen()) return undefined;
      try {
        this.client = await Client.connect(this.address, this.o.timeoutMs, this.o.dir);
        return this.client;
      } catch (error) {
        // Nobody answers: the writer just closed, or (a socket file) it crashed and left the file behind.
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ECONNREFUSED' && isSocketFile(this.address)) {
          try {
            unlinkSync(this.address);
          } catch {
            // Someone else removed it first.
          }
        }
        if (Date.now() >= deadline) {
          throw new ChangelogForwardError(
            this.o.dir,
            `could neither become its writer nor reach it at ${printable(this.address)}: ${(error as Error).message}`,
            { cause: error },
          );
        }
        await pause(ATTEMPT_PAUSE_MS);
      }
    }
  }

  private async tryListen(): Promise<boolean> {
    const server = createServer((socket) => this.serve(socket));
    if (!(await listenLocal(server, this.address))) return false;
    server.on('error', (error) =>
      this.o.logger.error({ err: error }, 'embedded changelog writer socket failed'),
    );
    // The token only after the socket is ours, so a live writer's token is never replaced.
    this.token = randomBytes(24).toString('hex');
    const temporary = `${this.tokenFile}.${process.pid}.tmp`;
    try {
      writeFileSync(temporary, this.token, { mode: 0o600 });
      renameSync(temporary, this.tokenFile);
    } catch (error) {
      // Not a writer others can reach: give the socket up rather than hold it unused.
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw error;
    }
    this.server = server;
    this.o.logger.info({ dir: this.o.dir, pid: process.pid }, 'this process writes the embedded changelog');
    this.o.onWriter?.();
    return true;
  }

  private readToken(): string {
    try {
      return readFileSync(this.tokenFile, 'utf8');
    } catch {
      return ''; // not written yet: the writer answers "token", and the next attempt reads it again
    }
  }

  private dropClient(): void {
    this.client?.destroy();
    this.client = undefined;
  }

  // ------------------------------------------------------------------------------------------ serving

  private serve(socket: Socket): void {
    this.served.add(socket);
    socket.on('close', () => this.served.delete(socket));
    socket.on('error', () => undefined); // a client that went away: nothing to answer
    readFrames(socket, (frame) => {
      const request = JSON.parse(frame) as Request;
      const reply = (r: Reply) => {
        if (!socket.destroyed) socket.write(frame$(r));
      };
      if (this.saidBye.has(socket)) return;
      if (this.closing) return reply({ id: request.id, retry: 'closing' });
      if (request.token !== this.token) return reply({ id: request.id, retry: 'token' });
      const work = this.o.serveAppend(request.topic, request.messages.map(fromWire)).then(
        () => reply({ id: request.id, ok: true }),
        (error: unknown) => {
          const e = error instanceof Error ? error : new Error(String(error));
          const wire: WireError = isMatviewError(e)
            ? { name: e.name, message: e.message, code: e.code, retriable: e.retriable }
            : { name: e.name, message: e.message };
          reply({ id: request.id, error: wire });
        },
      );
      this.inFlight.add(work);
      void work.finally(() => this.inFlight.delete(work));
    });
  }
}

/** A connection to the writer; one request at a time (a handle's appends are sequential). */
class Client {
  /** The connection ended (the writer closed or went away, or this side gave up on it). */
  closed = false;
  private nextId = 1;
  private pending: { id: number; settle: (reply: Reply | Error) => void } | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly timeoutMs: number,
    private readonly dir: string,
  ) {}

  static async connect(address: string, timeoutMs: number, dir: string): Promise<Client> {
    const socket = createConnection(address);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new Client(socket, timeoutMs, dir);
    socket.on('error', () => undefined); // reported through 'close'
    socket.on('close', () => {
      client.closed = true;
      // Without `bye` first the writer went away (a crash looks the same): it may have taken the request.
      client.pending?.settle(new Error('the writing process went away'));
    });
    readFrames(socket, (frame) => {
      const reply = JSON.parse(frame) as Reply;
      if ('bye' in reply) {
        // It takes no more requests, and the one pending (if any) was never taken.
        client.closed = true;
        client.pending?.settle({ id: client.pending.id, retry: 'closing' });
      } else if (client.pending?.id === reply.id) client.pending.settle(reply);
    });
    return client;
  }

  async send(
    topic: string,
    messages: readonly OutgoingMessage[],
    token: string,
  ): Promise<'ok' | 'closing' | 'token'> {
    if (this.pending !== undefined) throw new InvariantError('a forwarded append is already in flight');
    if (this.closed) return 'closing'; // ended before this request: nothing sent
    const id = this.nextId++;
    const reply = await new Promise<Reply | Error>((resolve) => {
      const timer = setTimeout(
        () => settle(new Error(`the writing process did not answer within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      const settle = (r: Reply | Error) => {
        clearTimeout(timer);
        this.pending = undefined;
        resolve(r);
      };
      this.pending = { id, settle };
      this.socket.write(frame$({ id, token, topic, messages: messages.map(toWire) }));
    });
    if (reply instanceof Error) {
      this.destroy();
      throw new ChangelogForwardError(this.dir, `${reply.message}; the append may or may not be stored`, {
        cause: reply,
      });
    }
    if ('ok' in reply) return 'ok';
    if ('retry' in reply) return reply.retry;
    if ('bye' in reply) return 'closing';
    // The append itself failed in the writer (a partition that does not exist): the caller's error, as an
    // append here would have thrown it (a RangeError as such, a matview error with its code and flag).
    const { name, message, code, retriable } = reply.error;
    if (code !== undefined) {
      const error = new MatviewError(code, message, { retriable: retriable === true });
      error.name = name;
      throw error;
    }
    throw name === 'RangeError' ? new RangeError(message) : new Error(message);
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const printable = (address: string) => address.replace('\0', '@');

const encode = (data: string | Buffer): string =>
  (typeof data === 'string' ? Buffer.from(data, 'utf8') : data).toString('base64');

function toWire(message: OutgoingMessage): WireMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if ((value as string | Buffer | undefined) !== undefined) headers[name] = encode(value);
  }
  return {
    k: message.key === null ? null : encode(message.key),
    v: message.value === null ? null : encode(message.value),
    h: headers,
    ...(message.partition === undefined ? {} : { p: message.partition }),
  };
}

function fromWire(message: WireMessage): OutgoingMessage {
  const headers: Record<string, Buffer> = {};
  for (const [name, value] of Object.entries(message.h ?? {})) headers[name] = Buffer.from(value, 'base64');
  return {
    key: message.k === null ? null : Buffer.from(message.k, 'base64'),
    value: message.v === null ? null : Buffer.from(message.v, 'base64'),
    headers,
    ...(message.p === undefined ? {} : { partition: message.p }),
  };
}

function frame$(payload: Request | Reply): Buffer {
  const body = Buffer.from(JSON.stringify(payload), 'utf8');
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

/** Calls `onFrame` with each complete frame's JSON text; destroys the socket on a frame too large to be ours. */
function readFrames(socket: Socket, onFrame: (json: string) => void): void {
  let buffered: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4) {
      const length = buffered.readUInt32BE(0);
      if (length > MAX_FRAME) {
        socket.destroy();
        return;
      }
      if (buffered.length < 4 + length) return;
      const json = buffered.toString('utf8', 4, 4 + length);
      buffered = buffered.subarray(4 + length);
      try {
        onFrame(json);
      } catch {
        socket.destroy(); // not our protocol
        return;
      }
    }
  });
}
