/**
 * A TCP proxy in front of a test server, to drop clients' connections for real: `cut()` destroys every
 * connection it carries (both sides, no close frame, like a network drop or a laptop lid), and new connections
 * go through as before, so a client that reconnects reaches the same server.
 */
import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  /** `http://127.0.0.1:<proxy port>`. */
  readonly url: string;
  /** Connections carried so far (each client connection counts once). */
  connections(): number;
  /** Destroys every open connection, both sides. */
  cut(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const open = new Set<Socket>();
  let count = 0;
  const server = createServer((client) => {
    count++;
    const upstream = connect(Number(target.port), target.hostname);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      open.add(a);
      a.pipe(b);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        open.delete(a);
        b.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => count,
    cut() {
      for (const socket of [...open]) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of [...open]) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
