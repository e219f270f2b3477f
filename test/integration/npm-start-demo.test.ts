/**
 * Issue 3, acceptance 6: `npm start` on a machine without Kafka serves `user(id)` for demo users
 * within seconds, and the counts change as the demo generator runs. Runs the exact command of the
 * `start` script in a child process, then stops it with SIGTERM and expects a clean exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, graphql } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

let child: ChildProcess | undefined;
afterAll(() => {
  child?.kill('SIGKILL');
});

describe('npm start without Kafka', () => {
  it('should serve demo users and show their counts changing, then stop cleanly on SIGTERM', async () => {
    const start = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: { start: string } }).scripts
      .start;
    const [bin, ...args] = start.split(' ');
    expect(bin).toBe('node');
    const port = await freePort();
    const proc = spawn(process.execPath, args, {
      env: {
        PATH: process.env['PATH'] ?? '',
        PORT: String(port),
        HOST: '127.0.0.1',
        DATA_DIR: tempDir(),
        DEMO_RATE: '200',
        DEMO_USERS: '50',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    const url = `http://127.0.0.1:${port}`;

    await eventually(
      async () => ((await fetch(`${url}/health/ready`)).status === 200 ? true : undefined),
      60_000,
      'ready',
    );
    const ids = Array.from({ length: 50 }, (_, i) => String(10_000_000 + i));
    const query = `query($ids: [ID!]!) { users(ids: $ids) { userId username tweetCount followingCount followerCount likeCount } }`;
    type Users = { users: ({ userId: string; username: string; tweetCount: number } | null)[] };
    const first = await graphql<Users>(url, query, { ids });
    expect(first.errors).toBeUndefined();
    expect(first.data?.users.filter((u) => u !== null).length).toBeGreaterThan(0);
    const one = await graphql<{ user: { userId: string } | null }>(
      url,
      `{ user(id: "${ids[0]}") { userId } }`,
    );
    expect(one).toEqual({
      data: { user: { userId: ids[0] } },
      extensions: { asOf: { sequence: expect.stringMatching(/^\d+$/), lagRecords: expect.any(Number) } },
    });

    await eventually(
      async () => {
        const now = await graphql<Users>(url, query, { ids });
        return JSON.stringify(now.data) !== JSON.stringify(first.data) ? true : undefined;
      },
      30_000,
      'counts to change',
    );

    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
  });
});
