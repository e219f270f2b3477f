/**
 * `matview rebuild [--wait] [--drain] [--timeout-ms N]`: asks for the view to be rebuilt from the feed (into a
 * shadow generation, swapped in when caught up, the current view serving meanwhile). With `--drain` the server
 * reports not ready (GET /health/ready 503) from when the rebuild starts until the swap, so that a load
 * balancer sends reads to other replicas meanwhile: the rebuild's feed decodes the whole history on the event
 * loop that answers them (the bench's `rebuild` scenario measures those reads). The request is a file next to
 * the store (store/requests.ts: this command writes nothing into the store); the server running on DATA_DIR
 * picks it up as the file appears (within REBUILD_REQUEST_CHECK_MS, 100 ms, where the file system does not
 * report it: store/requests.ts `watchRebuildRequests`), and a stopped one at its next start. With `--wait`
 * the command returns when the new generation is active (a server must be running).
 * Exit 0: requested (and, with --wait, swapped in); 1: no store, no server to wait for, or timed out.
 */
import type { Config } from '../ops/config.js';
import { storePathOf } from '../store/data-dir.js';
import { openStore } from '../store/lmdb-store.js';
import { REBUILD_REQUEST_CHECK_MS } from '../store/requests.js';
import { ExitCode, millis, parse, type Print } from './args.js';

/** How often `--wait` reads the store's active generation (one meta read). */
export const REBUILD_WAIT_POLL_MS = 50;

export async function runRebuild(config: Config, args: readonly string[], print: Print): Promise<ExitCode> {
  const { values } = parse(
    'rebuild',
    args,
    { wait: { type: 'boolean' }, drain: { type: 'boolean' }, 'timeout-ms': { type: 'string' } },
    0,
  );
  const timeoutMs = millis('rebuild', 'timeout-ms', values['timeout-ms'], 10 * 60_000);
  const store = openStore({
    path: storePathOf(config.dataDir),
    readOnly: true,
  });
  try {
    const from = store.storedActiveGeneration();
    const drain = values.drain === true;
    store.requestRebuild('matview rebuild', drain);
    /** What readiness does meanwhile. */
    const readiness = drain ? ', not ready until the swap (--drain)' : '';
    const owner = store.liveOwner();
    if (owner === undefined) {
      print(
        `rebuild: requested; no server is running on DATA_DIR, the next \`matview serve\` rebuilds the view (serving the current one meanwhile${readiness})`,
      );
      if (values.wait === true) {
        print('rebuild: --wait needs a running server');
        return ExitCode.Failed;
      }
      return ExitCode.Ok;
    }
    print(
      `rebuild: requested; the server (pid ${owner.pid}) starts it within ${REBUILD_REQUEST_CHECK_MS} ms and keeps serving generation ${from} meanwhile${readiness}`,
    );
    if (values.wait !== true) return ExitCode.Ok;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      // Between event turns lmdb-js renews its read snapshot, so each poll sees the server's commits.
      await new Promise((r) => setTimeout(r, REBUILD_WAIT_POLL_MS));
      const now = store.storedActiveGeneration();
      if (now !== from) {
        print(`rebuild: done: generation ${now} is active (was ${from})`);
        return ExitCode.Ok;
      }
    }
    print(
      `rebuild: not swapped in within ${timeoutMs} ms; it goes on in the server (see matview_rebuild_in_progress)`,
    );
    return ExitCode.Failed;
  } finally {
    await store.close();
  }
}
