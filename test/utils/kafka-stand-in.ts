/**
 * A minimal Kafka broker stand-in for the TLS and SASL tests. librdkafka's mock cluster speaks neither (it
 * answers a SASL handshake with "does not support the requested API version"), so this `net`/`tls` server
 * speaks just enough of the Kafka protocol for kafkajs to connect, authenticate and see an empty cluster,
 * and records what it received:
 *
 * - ApiVersions (v0-2), Metadata (v1: itself as the only broker and controller, the configured topics,
 *   every partition led by it), ListOffsets (v1: offset 0), Fetch (v4: no records, after the request's
 *   max wait, or a configured error per partition), CreateTopics (v0-1: records the topics and their
 *   configs, answers as configured);
 * - SaslHandshake (v0-1) and SaslAuthenticate (v0-1), with the server side of each mechanism:
 *   PLAIN (RFC 4616) checks the user's password; SCRAM-SHA-256/512 (RFC 5802) runs the full exchange
 *   (client-first, server-first with salt and iterations, client-final) and verifies the client proof
 *   against the password salted here, then sends the server signature kafkajs verifies in turn;
 *   OAUTHBEARER (RFC 7628) parses the GS2 header and `auth=Bearer <token>` and asks `acceptToken`.
 *   A successful SaslAuthenticate v1 grants `sessionLifetimeMs` (KIP-368), after which kafkajs
 *   authenticates that connection again.
 *
 * Requests other than ApiVersions and the SASL ones on a connection that has not authenticated close it,
 * as a real broker does. What a real broker proves beyond this is listed in the README ("Secured clusters").
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';

/** API keys (Kafka protocol). */
const Api = {
  Fetch: 1,
  ListOffsets: 2,
  Metadata: 3,
  SaslHandshake: 17,
  ApiVersions: 18,
  CreateTopics: 19,
  SaslAuthenticate: 36,
} as const;
/** [key, min, max] advertised in ApiVersions. */
const SUPPORTED: readonly [number, number, number][] = [
  [Api.Fetch, 4, 4],
  [Api.ListOffsets, 1, 1],
  [Api.Metadata, 1, 1],
  [Api.SaslHandshake, 0, 1],
  [Api.ApiVersions, 0, 2],
  [Api.CreateTopics, 0, 1],
  [Api.SaslAuthenticate, 0, 1],
];
const SASL_AUTHENTICATION_FAILED = 58;
const UNSUPPORTED_SASL_MECHANISM = 33;
const ILLEGAL_SASL_STATE = 34;

/** What the stand-in received; `connection` numbers the TCP connections in accept order. */
export type StandInEvent = { readonly connection: number } & (
  | { readonly kind: 'connection'; readonly tls: boolean; readonly clientCertificate: string | undefined }
  | {
      readonly kind: 'request';
      readonly api: number;
      readonly version: number;
      readonly clientId: string | null;
    }
  | { readonly kind: 'handshake'; readonly mechanism: string }
  | {
      readonly kind: 'plain';
      readonly authorizationId: string;
      readonly username: string;
      readonly password: string;
      readonly ok: boolean;
    }
  | {
      readonly kind: 'scram-client-first';
      readonly mechanism: string;
      readonly gs2Header: string;
      readonly username: string;
      readonly clientNonce: string;
    }
  | { readonly kind: 'scram-client-final'; readonly channelBinding: string; readonly proofValid: boolean }
  | { readonly kind: 'oauthbearer'; readonly gs2Header: string; readonly token: string; readonly ok: boolean }
  | {
      readonly kind: 'fetch';
      readonly partitions: readonly { topic: string; partition: number; offset: string }[];
    }
  | {
      readonly kind: 'create-topics';
      readonly topics: readonly {
        name: string;
        partitions: number;
        replicationFactor: number;
        configs: Record<string, string | null>;
      }[];
    }
);

export interface StandInOptions {
  /** Serve TLS with this key and certificate; with `ca` and `requestCert`, require a client certificate. */
  readonly tls?: {
    readonly key: string;
    readonly cert: string;
    readonly ca?: string;
    readonly requestCert?: boolean;
  };
  /** Require SASL with one of these mechanisms (upper case, as on the wire). */
  readonly sasl?: {
    readonly mechanisms: readonly string[];
    /** PLAIN and SCRAM users → passwords. */
    readonly users?: Readonly<Record<string, string>>;
    readonly acceptToken?: (token: string) => boolean;
    /** SaslAuthenticate v1 `session_lifetime_ms` (0: unlimited). */
    readonly sessionLifetimeMs?: number;
  };
  /** Topics in the metadata, with their partition counts. */
  readonly topics?: Readonly<Record<string, number>>;
  /** CreateTopics answer per topic: 0 creates it (it then shows in the metadata), or an error code. */
  readonly createTopicsError?: number;
  /** Fetch error per `topic/partition` (read at each fetch, so a test may change it). */
  readonly fetchErrors?: Map<string, number>;
}

export interface StandIn {
  readonly port: number;
  readonly brokers: string[];
  /** Everything received, in order. */
  readonly events: StandInEvent[];
  close(): Promise<void>;
}

// ---- wire encoding ----

class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  int8 = () => this.buf.readInt8((this.at += 1) - 1);
  int16 = () => this.buf.readInt16BE((this.at += 2) - 2);
  int32 = () => this.buf.readInt32BE((this.at += 4) - 4);
  int64 = () => this.buf.readBigInt64BE((this.at += 8) - 8);
  string(): string | null {
    const n = this.int16();
    if (n < 0) return null;
    return this.buf.toString('utf8', this.at, (this.at += n));
  }
  bytes(): Buffer {
    const n = this.int32();
    return this.buf.subarray(this.at, (this.at += Math.max(0, n)));
  }
  array<T>(item: () => T): T[] {
    const n = this.int32();
    return Array.from({ length: Math.max(0, n) }, item);
  }
}

class Writer {
  private readonly parts: Buffer[] = [];
  private num(size: number, write: (b: Buffer) => void): this {
    const b = Buffer.alloc(size);
    write(b);
    this.parts.push(b);
    return this;
  }
  int8 = (v: number) => this.num(1, (b) => b.writeInt8(v));
  int16 = (v: number) => this.num(2, (b) => b.writeInt16BE(v));
  int32 = (v: number) => this.num(4, (b) => b.writeInt32BE(v));
  int64 = (v: bigint) => this.num(8, (b) => b.writeBigInt64BE(v));
  string(v: string | null): this {
    if (v === null) return this.int16(-1);
    const s = Buffer.from(v, 'utf8');
    this.int16(s.length);
    this.parts.push(s);
    return this;
  }
  bytes(v: Buffer): this {
    this.int32(v.length);
    this.parts.push(v);
    return this;
  }
  array<T>(items: readonly T[], write: (w: this, item: T) => void): this {
    this.int32(items.length);
    for (const item of items) write(this, item);
    return this;
  }
  build = (): Buffer => Buffer.concat(this.parts);
}

// ---- SCRAM (RFC 5802) ----

const SCRAM = {
  'SCRAM-SHA-256': { digest: 'sha256', length: 32 },
  'SCRAM-SHA-512': { digest: 'sha512', length: 64 },
} as const;
type ScramMechanism = keyof typeof SCRAM;
const SCRAM_ITERATIONS = 4096;

interface ScramState {
  readonly mechanism: ScramMechanism;
  readonly username: string;
  readonly clientFirstBare: string;
  readonly serverFirst: string;
  readonly nonce: string;
  readonly salt: Buffer;
}

const attributes = (message: string): Map<string, string> =>
  new Map(message.split(',').map((kv) => [kv.slice(0, 1), kv.slice(2)] as const));

// ---- the server ----

interface Connection {
  readonly id: number;
  authenticated: boolean;
  mechanism: string | undefined;
  scram: ScramState | undefined;
}

export async function startStandIn(options: StandInOptions = {}): Promise<StandIn> {
  const events: StandInEvent[] = [];
  let connections = 0;
  /** Distributes over the union (a spread of an object literal into a union type is not). */
  type EventBody = StandInEvent extends infer E
    ? E extends StandInEvent
      ? Omit<E, 'connection'>
      : never
    : never;
  const record = (conn: { readonly id: number }, event: EventBody): void => {
    events.push({ connection: conn.id, ...event } as StandInEvent);
  };
  const topics = new Map(Object.entries(options.topics ?? {}));
  const sockets = new Set<Socket>();
  let port = 0;

  function reply(socket: Socket, correlationId: number, body: Buffer): void {
    if (socket.destroyed) return;
    const header = Buffer.alloc(8);
    header.writeInt32BE(4 + body.length, 0);
    header.writeInt32BE(correlationId, 4);
    socket.write(Buffer.concat([header, body]));
  }

  /** SaslAuthenticate's payload: the server side of the handshake's mechanism. */
  function authenticate(
    conn: Connection,
    bytes: Buffer,
  ): { error: number; message: string | null; bytes: Buffer } {
    const sasl = options.sasl;
    const fail = (message: string) => ({
      error: SASL_AUTHENTICATION_FAILED,
      message,
      bytes: Buffer.alloc(0),
    });
    if (sasl === undefined || conn.mechanism === undefined)
      return { error: ILLEGAL_SASL_STATE, message: 'no SASL handshake', bytes: Buffer.alloc(0) };
    const text = bytes.toString('utf8');
    if (conn.mechanism === 'PLAIN') {
      const [authorizationId = '', username = '', password = ''] = text.split('\u0000');
      const ok = sasl.users?.[username] !== undefined && sasl.users[username] === password;
      record(conn, { kind: 'plain', authorizationId, username, password, ok });
      if (!ok) return fail(`Authentication failed: Invalid username or password`);
      conn.authenticated = true;
      return { error: 0, message: null, bytes: Buffer.alloc(0) };
    }
    if (conn.mechanism === 'OAUTHBEARER') {
      // n,[a=authzid],^Aauth=Bearer <token>^A[key=value^A]*^A
      const [gs2Header = '', ...kvs] = text.split('\u0001');
      const auth = kvs.find((kv) => kv.startsWith('auth=')) ?? '';
      const token = auth.startsWith('auth=Bearer ') ? auth.slice('auth=Bearer '.length) : '';
      const ok = token !== '' && (sasl.acceptToken?.(token) ?? false);
      record(conn, { kind: 'oauthbearer', gs2Header, token, ok });
      if (!ok) return fail('{"status":"invalid_token"}');
      conn.authenticated = true;
      return { error: 0, message: null, bytes: Buffer.alloc(0) };
    }
    const mechanism = conn.mechanism as ScramMechanism;
    const { digest, length } = SCRAM[mechanism];
    if (conn.scram === undefined) {
      // client-first-message: gs2-header client-first-message-bare
      const gs2End = text.indexOf(',', text.indexOf(',') + 1) + 1;
      const gs2Header = text.slice(0, gs2End);
      const clientFirstBare = text.slice(gs2End);
      const attrs = attributes(clientFirstBare);
      const username = (attrs.get('n') ?? '').replaceAll('=2C', ',').replaceAll('=3D', '=');
      const clientNonce = attrs.get('r') ?? '';
      record(conn, { kind: 'scram-client-first', mechanism, gs2Header, username, clientNonce });
      const salt = randomBytes(16);
      const nonce = `${clientNonce}${randomBytes(18).toString('base64')}`;
      const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=${SCRAM_ITERATIONS}`;
      conn.scram = { mechanism, username, clientFirstBare, serverFirst, nonce, salt };
      return { error: 0, message: null, bytes: Buffer.from(serverFirst) };
    }
    // client-final-message: c=<channel binding>,r=<nonce>,p=<proof>
    const scram = conn.scram;
    conn.scram = undefined;
    const withoutProof = text.slice(0, text.lastIndexOf(',p='));
    const attrs = attributes(text);
    const password = sasl.users?.[scram.username];
    let proofValid = false;
    let serverSignature = Buffer.alloc(0);
    if (password !== undefined && attrs.get('r') === scram.nonce) {
      const salted = pbkdf2Sync(password, scram.salt, SCRAM_ITERATIONS, length, digest);
      const clientKey = createHmac(digest, salted).update('Client Key').digest();
      const storedKey = createHash(digest).update(clientKey).digest();
      const authMessage = `${scram.clientFirstBare},${scram.serverFirst},${withoutProof}`;
      const clientSignature = createHmac(digest, storedKey).update(authMessage).digest();
      const proof = Buffer.from(attrs.get('p') ?? '', 'base64');
      const expected = Buffer.from(clientKey.map((b, i) => b ^ clientSignature[i]!));
      proofValid = proof.length === expected.length && timingSafeEqual(proof, expected);
      const serverKey = createHmac(digest, salted).update('Server Key').digest();
      serverSignature = createHmac(digest, serverKey).update(authMessage).digest();
    }
    record(conn, { kind: 'scram-client-final', channelBinding: attrs.get('c') ?? '', proofValid });
    if (!proofValid)
      return fail(
        `Authentication failed during authentication due to invalid credentials with SASL mechanism ${mechanism}`,
      );
    conn.authenticated = true;
    return { error: 0, message: null, bytes: Buffer.from(`v=${serverSignature.toString('base64')}`) };
  }

  function metadata(requested: string[] | null): Buffer {
    const names = requested === null ? [...topics.keys()] : requested;
    return new Writer()
      .array([0], (w) => w.int32(0).string('127.0.0.1').int32(port).string(null))
      .int32(0) // controller: this broker
      .array(names, (w, name) => {
        const count = topics.get(name);
        w.int16(count === undefined ? 3 : 0) // UNKNOWN_TOPIC_OR_PARTITION
          .string(name)
          .int8(0)
          .array(
            Array.from({ length: count ?? 0 }, (_, i) => i),
            (pw, p) =>
              pw
                .int16(0)
                .int32(p)
                .int32(0)
                .array([0], (x, n) => x.int32(n))
                .array([0], (x, n) => x.int32(n)),
          );
      })
      .build();
  }

  /** Handles one request; returns false to close the connection. */
  function handle(socket: Socket, conn: Connection, frame: Buffer): boolean {
    const r = new Reader(frame);
    const api = r.int16();
    const version = r.int16();
    const correlationId = r.int32();
    const clientId = r.string();
    record(conn, { kind: 'request', api, version, clientId });
    const saslApi = api === Api.ApiVersions || api === Api.SaslHandshake || api === Api.SaslAuthenticate;
    if (options.sasl !== undefined && !conn.authenticated && !saslApi) return false;
    switch (api) {
      case Api.ApiVersions: {
        const w = new Writer()
          .int16(0)
          .array(SUPPORTED, (x, [key, min, max]) => x.int16(key).int16(min).int16(max));
        if (version >= 1) w.int32(0);
        reply(socket, correlationId, w.build());
        return true;
      }
      case Api.SaslHandshake: {
        const mechanism = r.string() ?? '';
        record(conn, { kind: 'handshake', mechanism });
        const enabled = options.sasl?.mechanisms ?? [];
        conn.mechanism = enabled.includes(mechanism) ? mechanism : undefined;
        conn.scram = undefined;
        const error = conn.mechanism === undefined ? UNSUPPORTED_SASL_MECHANISM : 0;
        reply(
          socket,
          correlationId,
          new Writer()
            .int16(error)
            .array(enabled, (x, m) => x.string(m))
            .build(),
        );
        return true;
      }
      case Api.SaslAuthenticate: {
        const result = authenticate(conn, r.bytes());
        const w = new Writer().int16(result.error).string(result.message).bytes(result.bytes);
        if (version >= 1) w.int64(BigInt(result.error === 0 ? (options.sasl?.sessionLifetimeMs ?? 0) : 0));
        reply(socket, correlationId, w.build());
        return true;
      }
      case Api.Metadata: {
        const requested = r.int32();
        const names = requested < 0 ? null : Array.from({ length: requested }, () => r.string() ?? '');
        reply(socket, correlationId, metadata(names));
        return true;
      }
      case Api.ListOffsets: {
        r.int32(); // replica id
        const wanted = r.array(() => ({
          topic: r.string() ?? '',
          partitions: r.array(() => {
            const partition = r.int32();
            r.int64(); // timestamp: earliest or latest, both 0 in an empty topic
            return partition;
          }),
        }));
        const body = new Writer()
          .array(wanted, (w, t) =>
            w.string(t.topic).array(t.partitions, (pw, p) => pw.int32(p).int16(0).int64(-1n).int64(0n)),
          )
          .build();
        reply(socket, correlationId, body);
        return true;
      }
      case Api.Fetch: {
        r.int32(); // replica id
        const maxWait = r.int32();
        r.int32(); // min bytes
        r.int32(); // max bytes
        r.int8(); // isolation level
        const wanted = r.array(() => ({
          topic: r.string() ?? '',
          partitions: r.array(() => {
            const partition = r.int32();
            const offset = r.int64().toString();
            r.int32();
            return { partition, offset };
          }),
        }));
        record(conn, {
          kind: 'fetch',
          partitions: wanted.flatMap((t) => t.partitions.map((p) => ({ topic: t.topic, ...p }))),
        });
        // Nothing to give: answer after the max wait, like a broker with no new records.
        setTimeout(
          () => {
            const body = new Writer()
              .int32(0)
              .array(wanted, (w, t) =>
                w.string(t.topic).array(t.partitions, (pw, { partition: p }) =>
                  pw
                    .int32(p)
                    .int16(options.fetchErrors?.get(`${t.topic}/${p}`) ?? 0)
                    .int64(0n)
                    .int64(0n)
                    .array([], () => undefined)
                    .int32(0),
                ),
              )
              .build();
            reply(socket, correlationId, body);
          },
          Math.min(maxWait, 500),
        ).unref();
        return true;
      }
      case Api.CreateTopics: {
        const requests = r.array(() => {
          const name = r.string() ?? '';
          const partitions = r.int32();
          const replicationFactor = r.int16();
          r.array(() => [r.int32(), r.array(() => r.int32())]);
          const configs = Object.fromEntries(r.array(() => [r.string() ?? '', r.string()] as const));
          return { name, partitions, replicationFactor, configs };
        });
        record(conn, { kind: 'create-topics', topics: requests });
        const error = options.createTopicsError ?? 0;
        if (error === 0) for (const t of requests) topics.set(t.name, 1);
        const w = new Writer().array(requests, (x, t) => {
          x.string(t.name).int16(error);
          if (version >= 1) x.string(error === 0 ? null : 'refused by the stand-in');
        });
        reply(socket, correlationId, w.build());
        return true;
      }
      default:
        return false;
    }
  }

  function serve(socket: Socket, tls: boolean): void {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const peer = tls ? (socket as TLSSocket).getPeerCertificate() : undefined;
    const conn: Connection = {
      id: ++connections,
      authenticated: false,
      mechanism: undefined,
      scram: undefined,
    };
    record(conn, {
      kind: 'connection',
      tls,
      clientCertificate:
        peer !== undefined && peer.subject !== undefined ? String(peer.subject.CN) : undefined,
    });
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4) {
        const size = pending.readInt32BE(0);
        if (pending.length < 4 + size) return;
        const frame = pending.subarray(4, 4 + size);
        pending = pending.subarray(4 + size);
        let keep: boolean;
        try {
          keep = handle(socket, conn, frame);
        } catch {
          keep = false; // a frame it cannot parse: close, as a broker does
        }
        if (!keep) {
          socket.destroy();
          return;
        }
      }
    });
  }

  const server: Server =
    options.tls === undefined
      ? createNetServer((socket) => serve(socket, false))
      : createTlsServer(
          {
            key: options.tls.key,
            cert: options.tls.cert,
            ...(options.tls.ca === undefined ? {} : { ca: options.tls.ca }),
            requestCert: options.tls.requestCert ?? false,
            rejectUnauthorized: options.tls.requestCert ?? false,
          },
          (socket) => serve(socket, true),
        );
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  return {
    port,
    brokers: [`127.0.0.1:${port}`],
    events,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
