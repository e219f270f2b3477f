/**
 * Coordination between matview processes on one host: where a process listens for the others, and whether
 * a process another one recorded is still there.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A local socket's address named `name`: an abstract Unix socket on Linux and a named pipe on Windows (both
 * freed by the kernel when the process ends, crashed or not), a socket file in the temporary directory
 * elsewhere (which a crash leaves behind).
 */
export function localSocketAddress(name: string, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'linux') return `\0${name}`;
  if (platform === 'win32') return `\\\\.\\pipe\\${name}`;
  return join(tmpdir(), `${name}.sock`);
}

/**
 * Listens with `server` on the local socket `address`: true once it listens, false when another socket holds
 * the address (EADDRINUSE); any other failure is thrown.
 */
export function listenLocal(server: Server, address: string): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      error.code === 'EADDRINUSE' ? resolve(false) : reject(error),
    );
    server.listen(address, () => resolve(true));
  });
}

/** Whether a crashed process can leave `address` behind (a socket file), to be removed before claiming it. */
export const isSocketFile = (address: string): boolean =>
  !address.startsWith('\0') && !address.startsWith('\\\\');

/**
 * A local socket's address for the directory `dir`: named after a random id kept in `dir/<idFile>` (created
 * by the first process that asks), so two directories never share a name, whatever their paths (two
 * containers on one network, each with its own volume at /data). With `inode`, the directory's device and
 * inode are part of the name too: a copy of the directory (its id file included) then has a name of its
 * own, and one directory keeps one name whatever path reaches it (a symbolic link, a bind mount). The file
 * appears whole (written aside, then hard-linked into place, which fails if it exists): the first process's
 * id wins and nobody reads half.
 */
export function directorySocketAddress(
  dir: string,
  idFile: string,
  prefix: string,
  { inode = false, platform = process.platform }: { inode?: boolean; platform?: NodeJS.Platform } = {},
): string {
  const file = join(dir, idFile);
  if (!existsSync(file)) {
    const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(aside, randomBytes(16).toString('hex'), { mode: 0o644 });
    try {
      linkSync(aside, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      unlinkSync(aside);
    }
  }
  let id = readFileSync(file, 'utf8').trim();
  if (inode) {
    const { dev, ino } = statSync(dir);
    id += `:${dev}:${ino}`;
  }
  return localSocketAddress(
    `${prefix}-${createHash('sha256').update(id).digest('hex').slice(0, 32)}`,
    platform,
  );
}

/** Whether process `pid` of this host is running (EPERM: running as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
