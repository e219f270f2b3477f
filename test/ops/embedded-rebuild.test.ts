/**
 * `matview rebuild --wait` against a server on the embedded changelog while the demo generator writes
 * continuously: the rebuild reads the log through its own handle, swaps in, and the server keeps serving;
 * `matview verify` run meanwhile (another process, same store) finds every view equal to its rows.
 * Regression: opening that handle while the writer had an asynchronous LMDB write in flight deadlocked.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../cli/run-cli.js';
import { eventually, freshTopics } from '../utils/server.js';
import { scrape, startOpsServer, type OpsServer } from './helpers.js';

let server: OpsServer | undefined;
afterAll(async () => {
  await server?.close();
});

describe('rebuild on the embedded changelog under writes', () => {
  it('should swap in a rebuilt view while the demo writes, and verify clean while serving', async () => {
    server = await startOpsServer({
      topics: freshTopics(),
      env: { DEMO: 'true', DEMO_RATE: '200', DEMO_USERS: '30' },
    });
    const { url } = server;
    await eventually(
      async () => ((await fetch(`${url}/health/ready`)).status === 200 ? true : undefined),
      45_000,
      'ready',
    );

    // Keep an append in flight nearly all the time while the rebuild starts.
    let writing = true;
    const writer = server.running.writer;
    const users = server.config.topics.users;
    const appends = (async () => {
      for (let i = 0; writing; i++)
        await writer.send(users, [{ key: `w${i % 50}`, value: JSON.stringify({ username: `w${i}` }) }]);
    })();
    const rebuilt = await runCli(['rebuild', '--wait', '--timeout-ms', '45000'], {
      DATA_DIR: server.config.dataDir,
    }).finally(() => (writing = false));
    await appends;
    expect({
      code: rebuilt.code,
      stderr: rebuilt.stderr,
      last: rebuilt.stdout.trim().split('\n').pop(),
    }).toEqual({
      code: 0,
      stderr: '',
      last: 'rebuild: done: generation 2 is active (was 1)',
    });
    const verified = await runCli(['verify'], { DATA_DIR: server.config.dataDir });
    expect({ code: verified.code, out: verified.stdout }).toEqual({
      code: 0,
      out: expect.stringMatching(
        /^verify: OK: every view matches its rows; generation 2; views: /,
      ) as unknown as string,
    });
    const before = (await scrape(url)).sum('matview_records_applied_total');
    await eventually(
      async () => ((await scrape(url)).sum('matview_records_applied_total') > before ? true : undefined),
      30_000,
      'the live feed to go on',
    );
    expect((await fetch(`${url}/health/live`)).status).toBe(200);
  });
});
