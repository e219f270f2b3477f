/**
 * A rebuild's swap hook (StartOptions `beforeSwap`) that holds the next swap until the test releases it, so
 * that "during the rebuild, its shadow complete" is a state the test controls.
 */
import type { StartOptions } from '../../src/wiring/runtime.js';
import { startTestServer, type TestServer, type TestServerOptions } from './server.js';

/** Every hold's release not called yet: a test that failed while holding a swap leaves one. */
const unreleased = new Set<() => void>();

/**
 * Lets every held swap go on. An `afterAll` that closes servers calls it first: a server's close waits for
 * its rebuild, which waits for the swap a failed test still holds (the hook's timeout, not the failure, would
 * end the file otherwise).
 */
export function releaseHeldSwaps(): void {
  for (const release of [...unreleased]) release();
}

export class SwapHold {
  private waiting: { reached: () => void; release: Promise<void> } | undefined;

  /** Holds the next swap: `reached` settles when it waits, `release()` lets it go on. */
  next(): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let resolve!: () => void;
    const atSwap = new Promise<void>((r) => (reached = r));
    this.waiting = { reached, release: new Promise<void>((r) => (resolve = r)) };
    const release = (): void => {
      unreleased.delete(release);
      resolve();
    };
    unreleased.add(release);
    return { reached: atSwap, release };
  }

  readonly beforeSwap = async (): Promise<void> => {
    const w = this.waiting;
    this.waiting = undefined;
    if (w === undefined) return;
    w.reached();
    await w.release;
  };
}

/**
 * Starts a server on `options`' store whose first rebuild's swap is held (the rebuild its start begins), and
 * returns once that rebuild waits for it. `started` gets the server as soon as it runs (the caller closes it).
 */
export async function startAtHeldSwap(
  options: TestServerOptions,
  start: Omit<StartOptions, 'beforeSwap'>,
  started: (server: TestServer) => void,
): Promise<{ server: TestServer; release: () => void }> {
  const hold = new SwapHold();
  const held = hold.next();
  const server = await startTestServer(options, { ...start, beforeSwap: hold.beforeSwap });
  started(server);
  await held.reached;
  return { server, release: held.release };
}
