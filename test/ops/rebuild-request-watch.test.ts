/**
 * A rebuild request reaches a running server as its file appears (src/store/requests.ts
 * `watchRebuildRequests`), not only at the server's next look for it: here the looks are an hour apart, and
 * `matview rebuild --wait` still completes, its request file removed.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REBUILD_REQUEST_FILE } from '../../src/store/requests.js';
import { storePathOf } from '../../src/wiring/runtime.js';
import { runCli } from '../cli/run-cli.js';
import { eventually, freshTopics } from '../utils/server.js';
import { startOpsServer, type OpsServer } from './helpers.js';

let server: OpsServer | undefined;
afterAll(async () => {
  await server?.close();
});

describe('rebuild requests', () => {
  it('should start a requested rebuild as its request file appears', async () => {
    server = await startOpsServer({ topics: freshTopics() }, { rebuildRequestCheckMs: 3_600_000 });
    const { url, config } = server;
    await eventually(
      async () => ((await fetch(`${url}/health/ready`)).status === 200 ? true : undefined),
      45_000,
      'ready',
    );
    const rebuilt = await runCli(['rebuild', '--wait', '--timeout-ms', '45000'], {
      DATA_DIR: config.dataDir,
    });
    expect({
      code: rebuilt.code,
      stderr: rebuilt.stderr,
      last: rebuilt.stdout.trim().split('\n').pop(),
    }).toEqual({ code: 0, stderr: '', last: 'rebuild: done: generation 2 is active (was 1)' });
    expect(existsSync(join(storePathOf(config.dataDir), REBUILD_REQUEST_FILE))).toBe(false);
  });
});
