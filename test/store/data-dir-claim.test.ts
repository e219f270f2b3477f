/**
 * One process per DATA_DIR (src/store/data-dir.ts `claimDataDir`): a claim is a local socket named after the
 * directory, so a second claim of this host is refused with the first one's pid and role, whatever path
 * reaches the directory, even when both start at once; a released or killed holder leaves nothing behind.
 */
import { spawn } from 'node:child_process';
import { cpSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  claimAddress,
  claimDataDir,
  DATA_DIR_ID_FILE,
  heldBy,
  type DataDirClaim,
} from '../../src/store/data-dir.js';
import { loadConfig } from '../../src/ops/config.js';
import { silentLogger } from '../../src/ops/logger.js';
import { startServer } from '../../src/wiring/runtime.js';
import { runCli } from '../cli/run-cli.js';
import { tempDir } from '../utils/tmp.js';

const held: DataDirClaim[] = [];
afterEach(async () => {
  for (const claim of held.splice(0)) await claim.release();
});

async function claim(dir: string, role: 'serve' | 'restore' = 'serve'): Promise<DataDirClaim> {
  const c = await claimDataDir(dir, role);
  held.push(c);
  return c;
}

/** The error a claim of `dir` fails with (undefined: it did not fail). */
async function refusal(dir: string, role: 'serve' | 'restore' = 'serve'): Promise<Error | undefined> {
  return claim(dir, role).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
}

describe('claiming a DATA_DIR', () => {
  it('should refuse a second claim of the same directory, by any path, naming the holder, until it is released', async () => {
    const dir = tempDir();
    const first = await claim(dir);
    const again = await refusal(dir);
    expect((again as { code?: unknown }).code).toBe('MV_ERR_DATA_DIR');
    expect(again!.message).toBe(
      `DATA_DIR "${dir}" is not usable: process ${process.pid} of this host writes its view store (another matview serve on this DATA_DIR?): stop it, or give this server a DATA_DIR of its own`,
    );
    const link = join(tempDir(), 'same-dir');
    symlinkSync(dir, link);
    expect((await refusal(link, 'restore'))?.message).toContain(heldBy(process.pid, 'serve', 'restore'));
    // Another directory is another claim.
    await claim(tempDir());
    await first.release();
    await claim(link, 'restore');
    expect((await refusal(dir))?.message).toContain(heldBy(process.pid, 'restore', 'serve'));
  });

  it('should let a copy of a claimed directory (its id file included) be claimed on its own', async () => {
    const dir = tempDir();
    await claim(dir);
    const copy = join(tempDir(), 'copy');
    cpSync(dir, copy, { recursive: true });
    expect(readFileSync(join(copy, DATA_DIR_ID_FILE), 'utf8')).toBe(
      readFileSync(join(dir, DATA_DIR_ID_FILE), 'utf8'),
    );
    await claim(copy);
  });

  it('should count a claim socket that takes the connection but never answers as held, and leave it alone', async () => {
    const dir = tempDir();
    const address = claimAddress(dir);
    const taken = new Set<Socket>();
    const silent = createServer((socket) => taken.add(socket));
    await new Promise<void>((resolve) => silent.listen(address, resolve));
    try {
      const error = await refusal(dir);
      expect((error as { code?: unknown }).code).toBe('MV_ERR_DATA_DIR');
      expect(error!.message).toBe(
        `DATA_DIR "${dir}" is not usable: another process of this host holds it, but its claim (local socket ${address}) did not say which within 2000 ms: stop it, or give this server a DATA_DIR of its own`,
      );
      expect(silent.listening).toBe(true);
    } finally {
      for (const socket of taken) socket.destroy();
      silent.close();
    }
  });

  it('should release a claim while an asker keeps its connection open', async () => {
    const dir = tempDir();
    const first = await claimDataDir(dir, 'serve');
    const asker = createConnection({ path: claimAddress(dir), allowHalfOpen: true });
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      asker.on('data', (d: Buffer) => (text += d.toString()));
      asker.on('end', () => resolve(text));
    });
    expect(answer).toBe(`${process.pid}\nserve\n`);
    // The asker never ends its side: the release must not wait for it (it would hang here).
    await first.release();
    asker.destroy();
    await claim(dir);
  });

  it('should give a directory to exactly one of two claims made at once', async () => {
    const dir = tempDir();
    const results = await Promise.allSettled([claimDataDir(dir, 'serve'), claimDataDir(dir, 'serve')]);
    for (const r of results) if (r.status === 'fulfilled') held.push(r.value);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
  });

  it("should be free again as soon as its holder is killed, and name another process's pid while it lives", async () => {
    const dir = tempDir();
    // A holder in its own process: the claim through the same module, kept until the process is killed.
    const holder = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `import('./src/store/data-dir.ts').then(async (m) => { await m.claimDataDir(${JSON.stringify(dir)}, 'restore'); console.log('claimed'); setInterval(() => {}, 1000); })`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (d: Buffer) => d.toString().includes('claimed') && resolve());
        holder.on('exit', (code) => reject(new Error(`the holder exited (${code}) before it claimed`)));
      });
      expect((await refusal(dir))?.message).toContain(heldBy(holder.pid!, 'restore', 'serve'));
    } finally {
      holder.kill('SIGKILL');
      await new Promise((resolve) => holder.once('exit', resolve));
    }
    await claim(dir);
  });
});

describe('matview serve and matview restore on a claimed DATA_DIR', () => {
  it('should start exactly one of two servers started at once on one DATA_DIR', async () => {
    const config = loadConfig({ DEMO: 'false', HOST: '127.0.0.1', PORT: '0', DATA_DIR: tempDir() });
    const results = await Promise.allSettled([
      startServer(config, silentLogger),
      startServer(config, silentLogger),
    ]);
    const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    for (const running of started) await running.close();
    expect(started).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected');
    expect((refused?.reason as { code?: unknown }).code).toBe('MV_ERR_DATA_DIR');
    // The one that served released it when it closed.
    await claim(config.dataDir);
  });

  it('should refuse a restore into the DATA_DIR of a running server, before it touches the store', async () => {
    const dataDir = tempDir();
    const running = await startServer(
      loadConfig({ DEMO: 'false', HOST: '127.0.0.1', PORT: '0', DATA_DIR: dataDir }),
      silentLogger,
    );
    try {
      const file = join(tempDir(), 'snapshot.mdb');
      writeFileSync(file, 'not looked at');
      const r = await runCli(['restore', file, '--force'], { DATA_DIR: dataDir });
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(
        `matview: DATA_DIR "${dataDir}" is not usable: ${heldBy(process.pid, 'serve', 'restore')}`,
      );
    } finally {
      await running.close();
    }
  });
});
