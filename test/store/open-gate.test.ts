/**
 * The open gate (src/lmdb-open-gate.ts): a process opening a store another process writes waits until the
 * writer holds its commits, opens, and lets them go. Openers run in child processes (as the CLI does): in
 * the writer's own thread an open would wait for an answer that thread cannot give.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  enterOpenGate,
  liveWriterOf,
  openGateFileOf,
  serveOpenGate,
  type OpenGateOptions,
} from '../../src/lmdb-open-gate.js';
import { localSocketAddress } from '../../src/local-ipc.js';
import { OpenGateError } from '../../src/errors.js';
import { openEmbeddedChangelog } from '../../src/feed/embedded-changelog.js';
import { silentLogger } from '../../src/ops/logger.js';
import { environmentOptions } from '../../src/store/environment.js';
import { openStore, type LmdbStore } from '../../src/store/lmdb-store.js';
import { commitInput, profile } from '../utils/changes.js';
import { tempDir } from '../utils/tmp.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A child that enters the gate of `dir`, says how it went, and leaves when told to (a line on stdin). */
function opener(
  dir: string,
  then: 'store' | 'nothing' | 'watch' = 'store',
): { child: ChildProcessWithoutNullStreams; line: () => Promise<string> } {
  const script = join(tempDir(), 'enter.mts');
  writeFileSync(
    script,
    `import { createInterface } from 'node:readline';
import { enterOpenGate } from ${JSON.stringify(resolve('src/lmdb-open-gate.ts'))};
import { openStore } from ${JSON.stringify(resolve('src/store/lmdb-store.ts'))};
import { environmentOptions } from ${JSON.stringify(resolve('src/store/environment.ts'))};
import { open } from ${JSON.stringify(resolve('node_modules/lmdb/node-index.js'))};
let leave;
let watched;
try {
  leave = enterOpenGate(process.argv[2]);
  // Opened inside the gate, to see the writer's commits from here once it has left.
  if (process.argv[3] === 'watch')
    watched = open({ path: process.argv[2], ...environmentOptions(undefined), readOnly: true }).openDB({ name: 'meta', encoding: 'string' });
  console.log(leave === undefined ? 'no gate' : 'entered');
} catch (e) {
  console.log(e.code + ': ' + e.message);
  process.exit(0);
}
const lines = createInterface({ input: process.stdin });
for await (const _ of lines) break;
leave?.();
if (watched !== undefined) {
  // Until the writer's commit that waited for this opener is stored (a fresh read each turn).
  while (Number(watched.get('sequence') ?? 0) < 2) await new Promise((r) => setTimeout(r, 2));
  const { writeFileSync } = await import('node:fs');
  writeFileSync(process.argv[2] + '.committed', '');
  console.log('committed');
} else if (process.argv[3] === 'store') {
  const store = openStore({ path: process.argv[2], readOnly: true });
  console.log('opened at sequence ' + store.sequence());
  await store.close();
} else console.log('left');
process.exit(0);
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script, dir, then]);
  cleanups.push(() => void child.kill());
  const lines: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  let buffer = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const l = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      const w = waiting.shift();
      if (w) w(l);
      else lines.push(l);
    }
  });
  return {
    child,
    line: () => {
      const l = lines.shift();
      return l !== undefined ? Promise.resolve(l) : new Promise((r) => waiting.push(r));
    },
  };
}

async function gateUp(dir: string): Promise<void> {
  while (!existsSync(openGateFileOf(dir))) await new Promise((r) => setTimeout(r, 10));
}

async function writingStore(): Promise<{ store: LmdbStore; path: string }> {
  const path = join(tempDir(), 'view');
  const store = openStore({ path, writerThread: true });
  cleanups.push(() => store.close());
  await store.applyBatch(commitInput([{ table: 'users', key: 'u0', row: profile('user0'), offset: 0 }]));
  await gateUp(path);
  return { store, path };
}

const commit = (store: LmdbStore, n: number) =>
  store.applyBatch(commitInput([{ table: 'users', key: `u${n}`, row: profile(`user${n}`), offset: n }]));

/**
 * A second gate on the environment at `path`, with `options`: its file (written before serveOpenGate
 * returns) replaces the store's, so openers come to this one.
 */
function ownGate(path: string, options: Omit<OpenGateOptions, 'openOptions'>): void {
  const gate = serveOpenGate(path, { openOptions: environmentOptions(undefined), ...options });
  cleanups.push(() => gate.close());
}

/** A commit of `store` waits while `other` is inside the gate, and completes once it has left. */
async function expectCommitHeldWhileInside(
  store: LmdbStore,
  other: ReturnType<typeof opener>,
): Promise<void> {
  let committed = false;
  const pending = commit(store, 1).then(() => (committed = true));
  // The commit waits for LMDB's write lock, which the gate holds for the opener until it leaves.
  await new Promise((r) => setTimeout(r, 300));
  expect(committed).toBe(false);
  other.child.stdin.write('go\n');
  await pending;
  expect(store.sequence()).toBe(2n);
  expect(await other.line()).toMatch(/^opened at sequence [12]$/);
}

/** Blocks this thread, its event loop included, until `done()` or 60 s. */
function blockUntil(done: () => boolean): void {
  const bound = Date.now() + 60_000;
  while (!done() && Date.now() < bound) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
}

describe('the open gate of a store that commits', () => {
  it('holds the writer’s commits while another process opens, and lets them go when it has', async () => {
    const { store, path } = await writingStore();
    const other = opener(path);
    expect(await other.line()).toBe('entered');
    await expectCommitHeldWhileInside(store, other);
  });

  it('lets its commits go when the opener has opened, even while the gate’s thread is blocked', async () => {
    const { store, path } = await writingStore();
    // A gate of its own that holds longer than this test waits, so only the done file can end its hold.
    ownGate(path, { maxHoldMs: 300_000 });
    const other = opener(path, 'watch');
    expect(await other.line()).toBe('entered');
    // Posted to the writer thread at once; it waits for the lock the gate holds for the opener.
    const pending = commit(store, 1);
    await new Promise<void>((r) => other.child.stdin.write('go\n', () => r()));
    // This thread serves the gate and does not return to its event loop until the opener has seen that
    // commit stored: so the lock was let go by the opener's done file, not by this thread seeing it leave.
    const committed = `${path}.committed`;
    blockUntil(() => existsSync(committed));
    expect(existsSync(committed)).toBe(true);
    await pending;
    expect(await other.line()).toBe('committed');
  }, 120_000);

  it('takes the lock again when its thread claims a hold after the holder gave it up, and only then lets the opener in', async () => {
    const { store, path } = await writingStore();
    // A gate of its own whose thread is busy once, right when the first holder holds the lock, until that
    // holder has given the lock up (announceMs): the gate must then not tell the opener it holds it.
    let holders = 0;
    ownGate(path, {
      announceMs: 100,
      onLockHeld: (givenUp) => {
        if (++holders === 1) blockUntil(givenUp);
      },
    });
    const other = opener(path);
    expect(await other.line()).toBe('entered');
    expect(holders).toBe(2);
    await expectCommitHeldWhileInside(store, other);
  });

  it('writes its file while the store is open and removes it at close; a closed writer’s openers open directly', async () => {
    const path = join(tempDir(), 'view');
    const store = openStore({ path });
    await gateUp(path);
    const [address, token] = readFileSync(openGateFileOf(path), 'utf8').split('\n');
    expect(address).toMatch(
      process.platform === 'linux' ? /^\0matview-open-gate-[0-9a-f]{24}$/ : /open-gate/,
    );
    expect(token).toMatch(/^[0-9a-f]{32}$/);
    await store.close();
    expect(existsSync(openGateFileOf(path))).toBe(false);
    // A file left by a writer that died: nobody listens at its address.
    writeFileSync(openGateFileOf(path), `${address}\n${token}\n`);
    expect(enterOpenGate(path)).toBeUndefined();
  });

  it('refuses an opener without the writer’s token', async () => {
    const { path } = await writingStore();
    const file = openGateFileOf(path);
    const [address] = readFileSync(file, 'utf8').split('\n');
    writeFileSync(file, `${address}\n${'0'.repeat(32)}\n`);
    const other = opener(path);
    expect(await other.line()).toBe(
      `MV_ERR_OPEN_GATE: Cannot open "${path}" next to the process writing it: the process writing it refused the token in ${file}`,
    );
  });

  it('lets its commits go after maxHoldMs when an opener does not leave', async () => {
    const { store, path } = await writingStore();
    // A second gate on the same environment, with a short hold.
    ownGate(path, { maxHoldMs: 200 });
    const other = opener(path);
    expect(await other.line()).toBe('entered');
    await commit(store, 1);
    expect(store.sequence()).toBe(2n);
  });

  it('fails an opener the writer does not answer within its timeout, and never opens meanwhile', async () => {
    const dir = tempDir();
    const address = process.platform === 'win32' ? '\\\\.\\pipe\\mv-silent' : join(dir, 'silent.sock');
    const connections: Socket[] = [];
    const silent: Server = createServer((socket) => void connections.push(socket));
    await new Promise<void>((r) => silent.listen(address, r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          silent.close(() => r());
          for (const c of connections) c.destroy();
        }),
    );
    writeFileSync(openGateFileOf(dir), `${address}\n${'1'.repeat(32)}\n`);
    expect(() => enterOpenGate(dir, 300)).toThrow(OpenGateError);
    expect(() => enterOpenGate(dir, 300)).toThrow(
      'the process writing it did not let this one open it within 300 ms',
    );
  });
});

describe('an opener whose writer is not answering yet, or cannot hold', () => {
  it('waits for a writer that is alive but not listening yet, and enters its gate once it is', async () => {
    const { store, path } = await writingStore();
    await store.close();
    // A writer starting: its file is there, its process (this one) alive, nobody listens yet.
    writeFileSync(
      openGateFileOf(path),
      `${'\0'}matview-open-gate-000000000000000000000000\n${'2'.repeat(32)}\n${process.pid}\n${hostname()}\n`,
    );
    const other = opener(path);
    await new Promise((r) => setTimeout(r, 300));
    const reopened = openStore({ path });
    cleanups.push(() => reopened.close());
    expect(await other.line()).toBe('entered');
    other.child.stdin.write('go\n');
    expect(await other.line()).toBe('opened at sequence 1');
  });

  it('fails an opener when the writer cannot hold its commits, rather than letting it open', async () => {
    const dir = tempDir();
    const gate = serveOpenGate(dir, {
      hold: () => Promise.reject(new Error('no lock today')),
      onError: () => undefined,
    });
    cleanups.push(() => gate.close());
    const other = opener(dir);
    expect(await other.line()).toBe(
      `MV_ERR_OPEN_GATE: Cannot open "${dir}" next to the process writing it: the process writing it could not hold its commits for this open`,
    );
  });
});

describe('the live writer of a store (liveWriterOf: one matview serve per DATA_DIR)', () => {
  const gateFile = (dir: string, address: string, pid: number): void =>
    writeFileSync(openGateFileOf(dir), `${address}\n${'3'.repeat(32)}\n${pid}\n${hostname()}\n`);
  const freshAddress = (): string =>
    localSocketAddress(`matview-test-gate-${randomBytes(8).toString('hex')}`);

  it('names the process whose gate answers, waiting for one still starting; a live pid nobody answers for is nobody', async () => {
    const dir = tempDir();
    const address = freshAddress();
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
    cleanups.push(() => void other.kill());
    const pid = other.pid!;
    // A live process and nothing listens there: a pid the kernel gave another program since.
    gateFile(dir, address, pid);
    expect(await liveWriterOf(dir, 200)).toBeUndefined();
    // A writer still starting (its file comes before its socket): found once it listens.
    const server = createServer((socket) => socket.destroy());
    cleanups.push(() => void server.close());
    const found = liveWriterOf(dir, 10_000);
    setTimeout(() => server.listen(address), 300);
    expect(await found).toEqual({ pid, host: hostname() });
  });

  it('is nobody without a gate file, when the file’s process is gone or is this one, or when this process serves the gate', async () => {
    const dir = tempDir();
    expect(await liveWriterOf(dir)).toBeUndefined();
    // Something listens, but the process the file names has exited (a SIGKILLed server's file).
    const address = freshAddress();
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((r) => server.listen(address, r));
    cleanups.push(() => void server.close());
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    gateFile(dir, address, gone);
    expect(await liveWriterOf(dir, 200)).toBeUndefined();
    // Its pid is this process's now (a container's pid 1 after a restart): not another writer.
    gateFile(dir, address, process.pid);
    expect(await liveWriterOf(dir, 200)).toBeUndefined();
    const gate = serveOpenGate(dir, {});
    cleanups.push(() => gate.close());
    expect(await liveWriterOf(dir, 200)).toBeUndefined();
  });
});

describe('the open gate of an embedded changelog', () => {
  it('holds the writer’s appends while another process opens the log, and lets them go when it has', async () => {
    const dir = tempDir();
    const log = await openEmbeddedChangelog({ dir, logger: silentLogger });
    cleanups.push(() => log.close());
    await log.send('users', [{ key: 'u0', value: 'v0' }]);
    expect(log.isWriter).toBe(true);
    await gateUp(dir);
    const other = opener(dir, 'nothing');
    expect(await other.line()).toBe('entered');
    let appended = false;
    const pending = log.send('users', [{ key: 'u1', value: 'v1' }]).then(() => (appended = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(appended).toBe(false);
    other.child.stdin.write('go\n');
    await pending;
    expect(await other.line()).toBe('left');
    await log.close();
    expect(existsSync(openGateFileOf(dir))).toBe(false);
  });
});
