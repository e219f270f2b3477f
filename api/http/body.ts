/**
 * Reading request bodies with a byte cap. The cap is enforced on what arrives, not on Content-Length
 * alone (chunked bodies have none), and a refused body is never buffered: we stop keeping chunks the
 * moment the cap is passed and answer 413 right away.
 *
 * After refusing we keep draining (and dropping) the rest for a little while instead of closing at once:
 * closing a socket with unread input makes the kernel send RST, which can destroy the 413 before the
 * client reads it (RFC 9112 §9.6 "Tear-down", the "lingering close" of Apache and nginx). The drain is
 * bounded in bytes and time; past either bound the socket is destroyed.
 */
import type { IncomingMessage } from 'node:http';

const EMPTY = Buffer.alloc(0);
/** How much of a refused body we read and drop before giving up on the connection. */
const LINGER_BYTES = 1024 * 1024;
/** How long we wait for a refused body to end before giving up on the connection. */
const LINGER_MS = 2000;

/** True when the request announces (Content-Length) a body larger than `maxBytes`. */
export function declaresTooLarge(req: IncomingMessage, maxBytes: number): boolean {
  const declared = req.headers['content-length'];
  return declared !== undefined && Number(declared) > maxBytes;
}

/**
 * Collects the body; calls `onBody` with it, or `onTooLarge` (once, as soon as `maxBytes` is passed).
 * Callbacks rather than a promise: this runs on every POST and the common body is a single chunk.
 */
export function collectBody(
  req: IncomingMessage,
  maxBytes: number,
  onBody: (body: Buffer) => void,
  onTooLarge: () => void,
): void {
  let first: Buffer | undefined;
  let more: Buffer[] | undefined;
  let size = 0;
  let refused = false;
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > maxBytes) {
      refused = true;
      req.removeListener('data', onData);
      first = undefined;
      more = undefined;
      drainRefused(req);
      onTooLarge();
      return;
    }
    if (first === undefined) first = chunk;
    else (more ??= [first]).push(chunk);
  };
  req.on('data', onData);
  req.on('end', () => {
    if (refused) return;
    onBody(more === undefined ? (first ?? EMPTY) : Buffer.concat(more, size));
  });
}

/** Reads and drops the rest of a refused body, within LINGER_BYTES / LINGER_MS (see the module note). */
export function drainRefused(req: IncomingMessage): void {
  let dropped = 0;
  const giveUp = (): void => {
    req.socket.destroy();
  };
  const timer = setTimeout(giveUp, LINGER_MS);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > LINGER_BYTES) {
      clearTimeout(timer);
      giveUp();
    }
  });
  req.on('end', () => clearTimeout(timer));
  req.on('close', () => clearTimeout(timer));
  req.resume();
}
