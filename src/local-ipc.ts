/**
 * Coordination between matview processes on one host: where a process listens for the others, and whether
 * a process another one recorded is still there.
 */
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

/** Whether process `pid` of this host is running (EPERM: running as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
