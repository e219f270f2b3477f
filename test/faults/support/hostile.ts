/**
 * Misbehaving clients for the hostile-client tests, at the byte level where a library would refuse to
 * misbehave: raw WebSocket handshakes followed by broken frames, and slowloris HTTP connections that send
 * their headers or body a few bytes at a time. Everything is bounded in count and closed by `destroy()`.
 */
import { connect, type Socket } from 'node:net';

/** Opens a TCP connection to 127.0.0.1:`port`. */
export function tcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves when the peer closes or resets the socket (an error counts: the server cut it). */
export function closedByPeer(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      if (data.length < 4_096) data += chunk.toString('latin1');
    });
    socket.once('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}: ${data}`));
    socket.once('close', () => resolve(data));
  });
}

/**
 * How the server ends a raw WebSocket: the code of the first close frame it sends (RFC 6455 §5.5.1:
 * opcode 0x8, then the length, then a 2-byte code; servers never mask), or `closed`/`error …` when the
 * TCP connection ends without one. The close handshake itself is not awaited: a broken client never
 * answers it, and `ws` then waits its own closeTimeout before cutting the socket.
 */
export function serverClose(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let data = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const at = data.indexOf(0x88);
      if (at !== -1 && data.length >= at + 4) resolve(String(data.readUInt16BE(at + 2)));
    });
    socket.once('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    socket.once('close', () => resolve('closed'));
  });
}

/** A WebSocket handshake for graphql-transport-ws on /graphql, done by hand; resolves after the 101. */
export async function rawWebSocket(port: number): Promise<Socket> {
  const socket = await tcp(port);
  socket.write(
    'GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
      'Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n',
  );
  await new Promise<void>((resolve, reject) => {
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      if (head.startsWith('HTTP/1.1 101')) resolve();
      else reject(new Error(`handshake refused: ${head.split('\r\n')[0]}`));
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
  return socket;
}

/** A client frame (RFC 6455 §5.2); clients must mask, `masked: false` breaks that rule on purpose. */
export function frame(
  opcode: number,
  payload: Buffer,
  options: { masked?: boolean; claimLength?: bigint } = {},
): Buffer {
  const masked = options.masked ?? true;
  const length = options.claimLength ?? BigInt(payload.length);
  const head: number[] = [0x80 | opcode];
  const maskBit = masked ? 0x80 : 0;
  if (length < 126n) head.push(maskBit | Number(length));
  else if (length < 65_536n) head.push(maskBit | 126, Number(length >> 8n) & 0xff, Number(length) & 0xff);
  else {
    head.push(maskBit | 127);
    for (let shift = 56n; shift >= 0n; shift -= 8n) head.push(Number((length >> shift) & 0xffn));
  }
  if (!masked) return Buffer.concat([Buffer.from(head), payload]);
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i % 4]!));
  return Buffer.concat([Buffer.from(head), key, body]);
}

/** The broken frames each raw socket sends, one kind per socket. */
export const BAD_FRAMES: readonly { name: string; bytes: Buffer }[] = [
  { name: 'unmasked client frame', bytes: frame(0x1, Buffer.from('{"type":"ping"}'), { masked: false }) },
  { name: 'reserved opcode', bytes: frame(0x3, Buffer.from('x')) },
  { name: 'length claims 2^62 bytes', bytes: frame(0x2, Buffer.alloc(0), { claimLength: 1n << 62n }) },
  { name: 'text frame with invalid UTF-8', bytes: frame(0x1, Buffer.from([0xff, 0xfe, 0xfd])) },
  { name: 'not JSON', bytes: frame(0x1, Buffer.from('{not json')) },
  { name: 'unknown message type', bytes: frame(0x1, Buffer.from('{"type":"hello"}')) },
  {
    name: 'subscribe before connection_init',
    bytes: frame(0x1, Buffer.from('{"id":"1","type":"subscribe","payload":{"query":"{ __typename }"}}')),
  },
  { name: 'message over WS_MAX_PAYLOAD_BYTES', bytes: frame(0x1, Buffer.alloc(200_000, 0x20)) },
];

/** Raw HTTP garbage, each on its own connection. */
export const BAD_HTTP: readonly string[] = [
  'GET / HTTP/9.9\r\n\r\n',
  'NOT-A-METHOD /graphql HTTP/1.1\r\nHost: x\r\n\r\n',
  'POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
  'POST /graphql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
  '\u0000\u0001\u0002\u0003garbage\r\n\r\n',
  `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
];

/**
 * A slowloris connection: sends a request a little at a time, `bytesPerTick` every `tickMs`, and never
 * finishes on its own (`headersOnly`: stops in the middle of the headers; otherwise declares a body and
 * trickles it). Returns a stop function.
 */
export async function slowloris(
  port: number,
  headersOnly: boolean,
  tickMs: number,
): Promise<{ socket: Socket; stop(): void }> {
  const socket = await tcp(port);
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  const request = headersOnly
    ? 'POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
      Array.from({ length: 500 }, (_, i) => `X-Slow-${i}: ${'v'.repeat(20)}\r\n`).join('')
    : 'POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 50000\r\n\r\n' +
      ' '.repeat(50_000);
  let at = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || at >= request.length - 1) return; // never the last byte
    socket.write(request.slice(at, at + 16));
    at += 16;
  }, tickMs);
  return {
    socket,
    stop() {
      clearInterval(timer);
      socket.destroy();
    },
  };
}
