import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WriterLink, writerAddress } from '../../src/feed/changelog-writer-link.js';
import type { FeedRecord } from '../../src/feed/types.js';
import { ChangelogForwardError, InvariantError, StoreWriteError, isMatviewError } from '../../src/errors.js';
import { useEmbeddedLogs } from '../utils/embedded-logs.js';
import { eventually } from '../utils/server.js';
import { tempDir as tmpDir } from '../utils/tmp.js';
import { silentLogger } from '../../src/ops/logger.js';

// One process writes an embedded changelog; every other handle sends its appends to it
// (src/feed/changelog-writer-link.ts). These tests run real sockets and, where a process must die, real
// processes.

const servers: Server[] = [];
const { openLog, closeLog } = useEmbeddedLogs();
const tempDir = () => tmpDir('matview-writer-');

afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((r) => server.close(r));
});

const record = (key: string) => ({ key, value: key, partition: 0 });

/** Every record of `users` partition 0, read by a fresh handle (which writes nothing). */
async function readAll(dir: string, expected: number): Promise<FeedRecord[]> {
  const log = await openLog(dir);
  const records: FeedRecord[] = [];
  await log.start({
    topics: ['users'],
    resumeFrom: () => undefined,
    handler: (batch) => {
      records.push(...batch.records);
      return Promise.resolve();
    },
    onFatal: (e) => {
      throw e;
    },
  });
  const deadline = Date.now() + 20_000;
  while (records.length < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await closeLog(log);
  return records.filter((r) => r.partition === 0);
}

const keysOf = (records: FeedRecord[]) => records.map((r) => r.key?.toString('utf8'));
const offsetsOf = (records: FeedRecord[]) => records.map((r) => Number(r.offset));

/** A child process that opens the log, claims the writer (its first append) and stays until killed. */
async function holdingWriter(dir: string, address: string | undefined) {
  const script = join(tempDir(), 'holder.mts');
  writeFileSync(
    script,
    `import { openEmbeddedChangelog } from ${JSON.stringify(resolve('src/feed/embedded-changelog.ts'))};
import { silentLogger } from ${JSON.stringify(resolve('src/ops/logger.ts'))};
const [dir, address] = process.argv.slice(2);
const log = await openEmbeddedChangelog({ dir, logger: silentLogger, ...(address ? { writerAddress: address } : {}) });
await log.send('users', [{ key: 'holder', value: 'holder', partition: 0 }]);
process.stdout.write(log.isWriter ? 'writer\\n' : 'not the writer\\n');
setInterval(() => undefined, 1000);
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script, dir, address ?? ''], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const said = await new Promise<string>((done, fail) => {
    child.stdout.once('data', (data: Buffer) => done(data.toString('utf8').trim()));
    child.once('exit', (code) => fail(new Error(`the holder exited (${code}) before claiming`)));
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  return {
    said,
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A socket that plays a writer which takes requests and then does `behaviour` with each. */
async function fakeWriter(address: string, behaviour: 'hang' | 'die'): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.on('data', () => {
      if (behaviour === 'die') socket.destroy();
    });
  });
  servers.push(server);
  await new Promise<void>((done) => server.listen(address, done));
  return server;
}

/** One request frame written by hand, and the writer's reply. */
async function rawRequest(address: string, request: object): Promise<unknown> {
  const socket = createConnection(address);
  const body = Buffer.from(JSON.stringify(request), 'utf8');
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length, 0);
  socket.write(Buffer.concat([header, body]));
  const reply = await new Promise<Buffer>((done) => socket.once('data', done));
  socket.destroy();
  return JSON.parse(reply.toString('utf8', 4)) as unknown;
}

describe('the embedded changelog has one writing process', () => {
  it('one handle writes; another sends its appends there, errors included, and takes over when it closes', async () => {
    const dir = tempDir();
    const a = await openLog(dir);
    await a.send('users', [record('a-0')]);
    const b = await openLog(dir);
    await b.send('users', [record('b-0')]);
    expect([a.isWriter, b.isWriter]).toEqual([true, false]);

    // The writer's own error reaches the sender, as the same kind of error.
    const missing = b.send('users', [{ key: 'x', value: 'x', partition: 9 }]);
    await expect(missing).rejects.toThrow(RangeError);
    await expect(missing).rejects.toThrow('Partition 9 does not exist in topic "users" (partitions 0..3)');

    // The writer closes while the other handle keeps sending: every append is stored once, none fails.
    const sends = Array.from({ length: 100 }, (_, i) => b.send('users', [record(`b-${i + 1}`)]));
    await sends[9];
    await closeLog(a);
    await Promise.all(sends);
    expect(b.isWriter).toBe(true);

    const records = await readAll(dir, 102);
    expect(keysOf(records)).toEqual(['a-0', ...Array.from({ length: 101 }, (_, i) => `b-${i}`)]);
    expect(offsetsOf(records)).toEqual(records.map((_, i) => i));
  });

  it.each([
    ['an abstract socket (Linux)', false],
    ['a socket file (other systems), which the killed writer leaves behind', true],
  ])('takes over from a writer killed between appends, on %s', async (_, socketFile) => {
    const dir = tempDir();
    const address = socketFile ? join(dir, 'writer.sock') : undefined;
    const holder = await holdingWriter(dir, address);
    expect(holder.said).toBe('writer');
    const log = await openLog(dir, address === undefined ? {} : { writerAddress: address });
    for (let i = 0; i < 5; i++) await log.send('users', [record(`before-${i}`)]);
    expect(log.isWriter).toBe(false);
    const link = (log as unknown as { link: { client?: { closed: boolean } } }).link;
    expect(link.client?.closed).toBe(false);

    await holder.kill();
    if (socketFile) expect(existsSync(address!)).toBe(true);
    // Between appends: this handle saw the connection end before its next append. The holder's exit can be
    // seen here before its socket's end is; an append sent in between may have been taken by a writer dying
    // with it, for all this handle knows, and says so (the test after this one).
    await eventually(
      () => (link.client?.closed === false ? undefined : true),
      10_000,
      'the connection to end',
    );
    for (let i = 0; i < 5; i++) await log.send('users', [record(`after-${i}`)]);
    expect(log.isWriter).toBe(true);

    const records = await readAll(dir, 11);
    expect(keysOf(records)).toEqual([
      'holder',
      ...[0, 1, 2, 3, 4].map((i) => `before-${i}`),
      ...[0, 1, 2, 3, 4].map((i) => `after-${i}`),
    ]);
    expect(offsetsOf(records)).toEqual(records.map((_, i) => i));
  });

  it('says the outcome is unknown when the writer goes away holding the request, then takes over', async () => {
    const dir = tempDir();
    const address = join(dir, 'writer.sock');
    const fake = await fakeWriter(address, 'die');
    const log = await openLog(dir, { writerAddress: address });
    const lost = log.send('users', [record('in-flight')]);
    await expect(lost).rejects.toThrow(ChangelogForwardError);
    await expect(lost).rejects.toThrow(
      `Append to the embedded changelog in "${dir}" failed: the writing process went away; the append may or may not be stored`,
    );
    await expect(lost).rejects.toMatchObject({ code: 'MV_ERR_CHANGELOG_FORWARD', retriable: true });
    expect(log.isWriter).toBe(false);

    await new Promise((r) => fake.close(r));
    servers.splice(0);
    await log.send('users', [record('next')]);
    expect(log.isWriter).toBe(true);
    expect(keysOf(await readAll(dir, 1))).toEqual(['next']);
  });

  it('gives up on a writer that does not answer within forwardTimeoutMs', async () => {
    const dir = tempDir();
    const address = join(dir, 'writer.sock');
    await fakeWriter(address, 'hang');
    const log = await openLog(dir, { writerAddress: address, forwardTimeoutMs: 100 });
    const send = log.send('users', [record('x')]);
    await expect(send).rejects.toThrow(
      'the writing process did not answer within 100 ms; the append may or may not be stored',
    );
    await expect(send).rejects.toMatchObject({ code: 'MV_ERR_CHANGELOG_FORWARD' });
  });

  it('takes appends only from who can read the token in the log directory', async () => {
    const dir = tempDir();
    const log = await openLog(dir);
    await log.send('users', [record('own')]);
    const request = (token: string, key: string) => ({
      id: 7,
      token,
      topic: 'users',
      messages: [{ k: Buffer.from(key).toString('base64'), v: null, p: 0 }],
    });
    expect(await rawRequest(writerAddress(dir), request('guess', 'intruder'))).toEqual({
      id: 7,
      retry: 'token',
    });
    const token = readFileSync(join(dir, 'writer.token'), 'utf8');
    expect(await rawRequest(writerAddress(dir), request(token, 'granted'))).toEqual({ id: 7, ok: true });

    const records = await readAll(dir, 2);
    expect(keysOf(records)).toEqual(['own', 'granted']);
    expect(records[1]!.value).toBeNull();
  });
});

describe('the writer link on its own', () => {
  const link = (dir: string, address: string, appendHere: () => Promise<void>) =>
    new WriterLink({
      dir,
      address,
      appendHere,
      serveAppend: appendHere,
      timeoutMs: 5_000,
      logger: silentLogger,
    });

  it('keeps the socket while a closing writer still writes what it took', async () => {
    const dir = tempDir();
    const address = join(dir, 'w.sock');
    const order: string[] = [];
    let finish: () => void = () => undefined;
    const a = link(dir, address, () => {
      order.push('a writes');
      return new Promise<void>((resolve) => (finish = resolve));
    });
    const b = link(dir, address, () => Promise.reject(new Error('b never writes here')));
    const c = link(dir, address, () => {
      order.push('c writes');
      return Promise.resolve();
    });
    // a claims the socket with an append of its own (which it writes at once here).
    const first = a.append('users', [record('a')]);
    await eventually(() => Promise.resolve(order.length === 1 ? true : undefined), 10_000, 'a to claim');
    finish();
    await first;
    const forwarded = b.append('users', [record('b')]);
    await eventually(() => Promise.resolve(order.length === 2 ? true : undefined), 10_000, 'a to take it');
    const closing = a.close();
    // c asks while a still writes b's append: a answers "closing" and keeps the socket, so c cannot
    // become a second writer before a is done.
    const third = c.append('users', [record('c')]);
    await new Promise((r) => setTimeout(r, 200));
    expect(order).toEqual(['a writes', 'a writes']);
    expect(c.isWriter).toBe(false);
    finish();
    await forwarded;
    await closing;
    await third;
    expect(order).toEqual(['a writes', 'a writes', 'c writes']);
    expect(c.isWriter).toBe(true);
    await Promise.all([b.close(), c.close()]);
  });

  it("gives a sender the writer's error: a RangeError as such, a matview error's name, code and retriable flag", async () => {
    const dir = tempDir();
    const address = join(dir, 'w.sock');
    const errors: Error[] = [
      new StoreWriteError('the disk is full', { retriable: true }),
      new InvariantError('a broken invariant'),
      new RangeError('Partition 9 does not exist'),
      new TypeError('anything else'),
    ];
    let next = 0;
    const a = link(dir, address, () =>
      next === 0 ? (next++, Promise.resolve()) : Promise.reject(errors[next++ - 1]!),
    );
    const b = link(dir, address, () => Promise.reject(new Error('b never writes here')));
    await a.append('users', [record('a')]);
    const seen = [];
    for (let i = 0; i < errors.length; i++) {
      const error = (await b.append('users', [record(`b-${i}`)]).catch((e: unknown) => e)) as Error;
      seen.push({
        name: error.name,
        message: error.message,
        ...(isMatviewError(error) ? { code: error.code, retriable: error.retriable } : {}),
        range: error instanceof RangeError,
      });
    }
    expect(seen).toEqual([
      {
        name: 'StoreWriteError',
        message: 'the disk is full',
        code: 'MV_ERR_STORE_WRITE',
        retriable: true,
        range: false,
      },
      {
        name: 'InvariantError',
        message: new InvariantError('a broken invariant').message,
        code: 'MV_ERR_INVARIANT',
        retriable: false,
        range: false,
      },
      { name: 'RangeError', message: 'Partition 9 does not exist', range: true },
      { name: 'Error', message: 'anything else', range: false },
    ]);
    await Promise.all([a.close(), b.close()]);
  });

  it('closes though a peer keeps its connection open', async () => {
    const dir = tempDir();
    const address = join(dir, 'w.sock');
    const a = new WriterLink({
      dir,
      address,
      appendHere: () => Promise.resolve(),
      serveAppend: () => Promise.resolve(),
      timeoutMs: 100,
      logger: silentLogger,
    });
    await a.append('users', [record('a')]);
    // A peer that never ends its side (a suspended process, or anyone local: no token is needed to connect).
    const peer = createConnection({ path: address, allowHalfOpen: true });
    peer.on('error', () => undefined);
    await new Promise((r) => peer.once('connect', r));
    await a.close();
    expect(a.isWriter).toBe(false);
    peer.destroy();
  });

  it("names a log's socket after the id kept in its directory", () => {
    const [one, two] = [tempDir(), tempDir()];
    const address = writerAddress(one);
    expect(writerAddress(one)).toBe(address);
    expect(writerAddress(two)).not.toBe(address);
    const id = readFileSync(join(one, 'log.id'), 'utf8');
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(address).toContain('matview-changelog-');
  });
});
