/**
 * Scenario 5, rebuild:
 * - rebuild: records replayed into a fresh store through `LmdbStore.applyBatch` (materialize + one LMDB write
 *   transaction per batch, offsets included): the store side of `matview rebuild`, without the Kafka fetch
 *   (scenario 2 measures the feed end to end).
 * - ready from a snapshot: the 1M-user view is snapshotted (LMDB compacting copy, what `matview snapshot`
 *   does), then `matview restore <file>` (a copy) or `matview restore --move <file>` and `matview serve`
 *   run as an operator would; we time until /health/ready answers 200.
 */
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../../src/store/lmdb-store.js';
import { ROOT, round, type Scenario, type ScenarioContext } from '../lib/common.js';
import { buildView } from '../lib/peers.js';
import { changes, prng, startMatviewProcess } from '../lib/records.js';
import { waitReady } from './fanout.js';

async function replay(ctx: ScenarioContext, records: number, users: number): Promise<number> {
  const store = openStore({ path: join(ctx.tmp, 'rebuild'), mapSize: 32 * 1024 ** 3 });
  ctx.defer(() => store.close());
  const random = prng(17);
  const BATCH = 10_000;
  let generateMs = 0;
  const t0 = performance.now();
  let last = t0;
  for (let from = 0; from < records; from += BATCH) {
    const g = performance.now();
    const batch = changes(from, Math.min(records, from + BATCH), users, random);
    generateMs += performance.now() - g;
    await store.applyBatch(batch);
    if (performance.now() - last > 10_000) {
      last = performance.now();
      ctx.log(
        `  rebuild: ${from + batch.changes.key.length} records, ${(((from + batch.changes.key.length) / (last - t0)) * 1000).toFixed(0)} records/s`,
      );
    }
  }
  const seconds = (performance.now() - t0 - generateMs) / 1000;
  const rate = records / seconds;
  ctx.row('rebuild: replay through materialize + applyBatch', {
    records,
    users,
    batch: BATCH,
    seconds: round(seconds, 1),
    'records/s': round(rate, 0),
    'store MB': round(store.sizeBytes() / 1024 ** 2, 0),
  });
  await store.close();
  return rate;
}

/**
 * Snapshot of the 1M-user view, then `matview restore [--move] <file>` and `matview serve` until ready.
 * Returns the time from the restore command to ready.
 */
async function fromSnapshot(ctx: ScenarioContext, users: number, move: boolean): Promise<number> {
  const viewPath = await buildView(ctx.cache, users, ctx.log);
  const label = move ? 'move' : 'copy';
  const snapDir = join(ctx.tmp, `snap-${label}`);
  const source = openStore({ path: viewPath, create: false });
  const s0 = performance.now();
  await source.backup(snapDir);
  const snapshotMs = performance.now() - s0;
  await source.close();
  const file = join(snapDir, 'data.mdb');
  const snapshotBytes = statSync(file).size;
  const dataDir = join(ctx.tmp, `restored-${label}`);
  const env = { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: 'warn', DEMO: 'false' };
  const t0 = performance.now();
  const args = move ? ['restore', '--move', file] : ['restore', file];
  const restore = spawnSync(process.execPath, [`${ROOT}/bin/matview.js`, ...args], { env, encoding: 'utf8' });
  const restoreMs = performance.now() - t0;
  if (restore.status !== 0) throw new Error(`matview restore failed: ${restore.stderr}${restore.stdout}`);
  const server = await startMatviewProcess({ DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
  ctx.defer(() => server.stop());
  const listeningMs = performance.now() - t0 - restoreMs;
  const ready = await waitReady(server.url, 60_000);
  const totalMs = performance.now() - t0;
  const probe = (await (await fetch(`${server.url}/users/${users - 1}`)).json().catch(() => null)) as {
    userId?: string;
  } | null;
  if (!ready || probe?.userId !== String(users - 1))
    throw new Error('restored server not ready or not serving the view');
  ctx.row(`ready from a snapshot of ${users} users, \`restore${move ? ' --move' : ''}\``, {
    'snapshot MB': round(snapshotBytes / 1024 ** 2, 0),
    'snapshot ms': round(snapshotMs, 0),
    'restore ms': round(restoreMs, 0),
    'serve → listening ms': round(listeningMs, 0),
    'restore → ready ms': round(totalMs, 0),
  });
  await server.stop();
  return totalMs;
}

export const rebuild: Scenario = {
  name: 'rebuild',
  description: 'rebuilding the view from records, and time to ready from a 1M-user snapshot',
  async run(ctx) {
    const records = ctx.quick ? 200_000 : Number(process.env['BENCH_REBUILD_RECORDS'] ?? 10_000_000);
    const users = ctx.quick ? 100_000 : 1_000_000;
    // Both ways an operator can restore: copying the file (the snapshot stays) and moving it in.
    const copyMs = await fromSnapshot(ctx, users, false);
    const moveMs = await fromSnapshot(ctx, users, true);
    ctx.check(
      `ready from a ${users}-user snapshot <= 3 s`,
      `${(copyMs / 1000).toFixed(2)} s with restore, ${(moveMs / 1000).toFixed(2)} s with restore --move`,
      Math.min(copyMs, moveMs) <= 3000,
    );
    if (records < 10_000_000)
      ctx.note(`rebuild: scaled down from 10M to ${records} records (BENCH_REBUILD_RECORDS)`);
    const rate = await replay(ctx, records, users);
    ctx.check('rebuild >= 200k records/s', `${round(rate, 0)} records/s`, rate >= 200_000);
    ctx.note(
      'rebuild: measured as a replay of decoded records through materialize + applyBatch into a fresh store (what `matview rebuild` does per batch), without the Kafka fetch and decode; workload: users first, then 40% tweets, 30% follows, 20% likes, 10% profile edits',
    );
  },
};
