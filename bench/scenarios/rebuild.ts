/**
 * Scenario 5, rebuild:
 * - `matview rebuild --wait` as users run it: a `matview serve` process caught up on the catch-up workload
 *   (bench/lib/changelog.ts, big batches, mock cluster), then the command, timed until it returns (the new
 *   generation is active); the replay itself from the server's metrics (rebuild in progress → generation
 *   swapped); then every user compared with the reference (the scenario fails if one differs). Then
 *   `user(id)` at 1,000/s against that server, alone and while a second `matview rebuild --wait` runs (the
 *   server stays ready and serves the old generation meanwhile, so a load balancer keeps sending it reads).
 * - rebuild: records replayed into a fresh store's shadow generation through `LmdbStore.applyBatch` until it
 *   is swapped in, as `matview rebuild` fills one: its rows first (applied in chunks, each written by one
 *   LMDB transaction, offsets included: src/store/shadow-chunks.ts), 16 batches in flight as the feed's
 *   partitions have them, then its views built from those rows (`buildShadowViews`): the store side,
 *   without the Kafka fetch (scenario 2 measures the feed end to end).
 * - live commits on the rebuilt store: more records of the same workload applied to its active generation,
 *   as a feed that is behind hands them over: ingest at 1M users.
 * - ready from a snapshot: the 1M-user view is snapshotted (LMDB compacting copy, what `matview snapshot`
 *   does), then `matview restore <file>` (a copy) or `matview restore --move <file>` and `matview serve`
 *   run as an operator would; we time until /health/ready answers 200.
 */
import { spawn, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { REBUILD_WAIT_POLL_MS } from '../../src/cli/rebuild.js';
import {
  openStore,
  type BatchTarget,
  type LmdbStore,
  type StoreOptions,
} from '../../src/store/lmdb-store.js';
import { REBUILD_REQUEST_CHECK_MS } from '../../src/store/requests.js';
import { DEFAULT_REBUILD_CHUNK_RECORDS } from '../../src/store/shadow-chunks.js';
import { defaultViewRebuildBufferEntries } from '../../src/store/view-rebuild.js';
import { VIEWS } from '../../src/views/registry.js';
import { USER_INFORMATION } from '../../src/views/user-information.js';
import { startKafka } from '../../test/utils/kafka-mock.js';
import {
  BIG_BATCHES,
  compressionFromEnv,
  expectExact,
  produceChangelog,
  type Reference,
} from '../lib/changelog.js';
import { ROOT, round, sleep, type Distribution, type Scenario, type ScenarioContext } from '../lib/common.js';
import { dueBetween, latencyFields, runOpenLoop } from '../lib/load.js';
import { buildView } from '../lib/peers.js';
import { changes, freshTopics, prng, startMatviewProcess } from '../lib/records.js';
import {
  inheritedSettings,
  scrapeMetrics,
  sourceEnv,
  spawnServer,
  warmBundle,
  watchCatchUp,
} from '../lib/served.js';
import { waitReady } from './fanout.js';
import { post, SLA_READ_RATE, zipfIds } from './read.js';

/** Records per batch and batches waiting for the store at once, as the feed hands them over. */
const BATCH = 10_000;
const IN_FLIGHT = 16;

/**
 * Applies records `from` to `to` of the workload to `target` as the feed hands them over: up to IN_FLIGHT
 * batches wait for the store at once (one per partition, KAFKA_CONCURRENT_PARTITIONS), and the store merges
 * those waiting into one commit (group commit). Each batch is generated here, while the writer thread commits
 * earlier ones (as the feed decodes): counted. `progress` gets the records handed over so far, every 10 s.
 * Returns the sequences of the commits they went into.
 */
async function applyAsFed(
  store: LmdbStore,
  range: { readonly from: number; readonly to: number; readonly users: number; readonly seed: number },
  target: BatchTarget,
  progress?: (records: number) => void,
): Promise<Set<bigint>> {
  const { from, to, users } = range;
  const random = prng(range.seed);
  const commits = new Set<bigint>();
  const pending = new Set<Promise<unknown>>();
  let last = performance.now();
  for (let at = from; at < to; at += BATCH) {
    const batch = changes(at, Math.min(to, at + BATCH), users, random);
    const applied: Promise<unknown> = store.applyBatch(batch, target).then((r) => {
      commits.add(r.sequence);
      pending.delete(applied);
    });
    pending.add(applied);
    while (pending.size >= IN_FLIGHT) await Promise.race(pending);
    if (progress !== undefined && performance.now() - last > 10_000) {
      last = performance.now();
      progress(at + batch.changes.key.length - from);
    }
  }
  await Promise.all(pending);
  return commits;
}

/** A row's columns for records applied by {@link applyAsFed} in `seconds`. */
const fedColumns = (records: number, users: number, seconds: number) => ({
  records,
  users,
  batch: BATCH,
  'in flight': IN_FLIGHT,
  seconds: round(seconds, 1),
  'records/s': round(records / seconds, 0),
});

/**
 * The store `replay` fills and the steps after it reopen, opened with `options` (closed when the scenario ends,
 * if a step did not close it).
 */
function replayedStore(ctx: ScenarioContext, options: Omit<StoreOptions, 'path' | 'mapSize'>): LmdbStore {
  const store = openStore({ path: join(ctx.tmp, 'rebuild'), mapSize: 32 * 1024 ** 3, ...options });
  ctx.defer(() => store.close());
  return store;
}

/** A store's size for a row's `store MB`. */
const storeMB = (store: LmdbStore): number => round(store.sizeBytes() / 1024 ** 2, 0);

async function replay(ctx: ScenarioContext, records: number, users: number): Promise<number> {
  // On the writer thread, as `matview serve` commits.
  const store = replayedStore(ctx, { writerThread: true });
  // Into a shadow generation, as `matview rebuild` fills one (in chunks: src/store/shadow-chunks.ts): rows
  // first, then its views built from them (src/wiring/rebuild.ts).
  const { generation } = await store.beginShadow('requested', (table) => table, { rowsFirst: true });
  const t0 = performance.now();
  await applyAsFed(store, { from: 0, to: records, users, seed: 17 }, generation, (n) =>
    ctx.log(`  rebuild: ${n} records, ${((n / (performance.now() - t0)) * 1000).toFixed(0)} records/s`),
  );
  const rowsSeconds = (performance.now() - t0) / 1000;
  // The rows replayed (the last chunk written first), its views built from them, as a rebuild does once it
  // reached its targets; then until the rebuilt generation is active.
  await store.buildShadowViews(generation, (table) => table);
  const viewsSeconds = (performance.now() - t0) / 1000 - rowsSeconds;
  const swap = await store.trySwap(generation, []);
  if (!swap.swapped) throw new Error('rebuild: the replayed generation did not swap in');
  const seconds = (performance.now() - t0) / 1000;
  const rate = records / seconds;
  ctx.row(
    'rebuild: replay through materialize + applyBatch',
    {
      ...fedColumns(records, users, seconds),
      'rows s': round(rowsSeconds, 1),
      'views s': round(viewsSeconds, 1),
      'store MB': storeMB(store),
    },
    'rebuild',
  );
  await store.close();
  return rate;
}

/**
 * The store `replay` filled, opened with UserInformation's version bumped: `serve` then rebuilds that view and
 * the rankings that depend on it from the stored rows before the feed starts (src/store/view-rebuild.ts), with
 * the shipped default buffer. Returns rows/s.
 */
async function viewRebuild(ctx: ScenarioContext, users: number): Promise<number> {
  const views = VIEWS.map((v) => (v.name === USER_INFORMATION ? { ...v, version: v.version + 1 } : v));
  const store = replayedStore(ctx, { views });
  const t0 = performance.now();
  const result = await store.rebuildStaleViews((table) => table);
  const seconds = (performance.now() - t0) / 1000;
  if (result === undefined) throw new Error('rebuild: the bumped view was not rebuilt');
  const rate = result.rows / seconds;
  ctx.row(
    `view rebuild from the stored rows (${result.rebuilt.join(' and ')}, a version bump)`,
    {
      rows: result.rows,
      users,
      seconds: round(seconds, 1),
      'rows/s': round(rate, 0),
      'buffer entries': defaultViewRebuildBufferEntries(),
      'store MB': storeMB(store),
    },
    'rebuild',
  );
  await store.close();
  return rate;
}

/** Records the live step applies on top of the rebuilt store (BENCH_REBUILD_LIVE_RECORDS). */
const LIVE_RECORDS = 200_000;

/**
 * The store `replay` filled, opened as `matview serve` opens it (writer thread), then more of the same workload
 * applied to its active generation as the feed hands it over (16 batches of 10,000 in flight, merged by the
 * group commit): what ingest costs once the store holds `users` users, where every commit touches users spread
 * over the whole of its views (the catch-up scenario's store has 22.3k).
 */
async function liveOnRebuilt(
  ctx: ScenarioContext,
  from: number,
  records: number,
  users: number,
): Promise<void> {
  const store = replayedStore(ctx, { writerThread: true });
  const t0 = performance.now();
  const commits = await applyAsFed(store, { from, to: from + records, users, seed: 23 }, 'active');
  const seconds = (performance.now() - t0) / 1000;
  ctx.row(
    `live commits on the rebuilt ${users}-user store`,
    {
      ...fedColumns(records, users, seconds),
      commits: commits.size,
      'records/commit': round(records / commits.size, 0),
      'store MB': storeMB(store),
    },
    'rebuild',
  );
  await store.close();
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
  ctx.row(
    `ready from a snapshot of ${users} users, \`restore${move ? ' --move' : ''}\``,
    {
      'snapshot MB': round(snapshotBytes / 1024 ** 2, 0),
      'snapshot ms': round(snapshotMs, 0),
      'restore ms': round(restoreMs, 0),
      'serve → listening ms': round(listeningMs, 0),
      'restore → ready ms': round(totalMs, 0),
    },
    'ready from a snapshot',
  );
  await server.stop();
  return totalMs;
}

interface RebuildSample {
  readonly at: number;
  readonly inProgress: number;
  readonly generation: number;
  readonly applied: number;
}

/**
 * `matview rebuild --wait` on a store a `matview serve` process filled from the topics: the records/s of the
 * whole command, and of the replay as the server's metrics show it.
 */
async function servedRebuild(
  ctx: ScenarioContext,
  records: number,
): Promise<{ rate: number; reads: ReadsDuringRebuild }> {
  const users = Math.max(1, Math.round(records / 20));
  warmBundle();
  const kafka = await startKafka();
  ctx.defer(() => kafka.stop());
  const topics = freshTopics('rebuild');
  const compression = compressionFromEnv();
  const { reference } = await produceChangelog(kafka.brokers, topics, {
    records,
    users,
    seed: 23,
    batching: BIG_BATCHES,
    gzip: compression.gzip,
  });
  const env = sourceEnv(kafka.brokers, topics, join(ctx.tmp, 'served-rebuild'));
  const timeoutMs = Math.max(600_000, records);
  const { server } = await spawnServer(env);
  ctx.defer(() => server.stop());
  const caughtUp = watchCatchUp(server.url, timeoutMs);
  await caughtUp.done;
  if (caughtUp.readyAt === undefined) throw new Error('rebuild: matview serve not ready in time');

  // The replay as the server reports it, sampled every 100 ms while the command runs.
  const samples: RebuildSample[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const m = await scrapeMetrics(server.url);
      samples.push({
        at: performance.now(),
        inProgress: m.get('matview_rebuild_in_progress') ?? NaN,
        generation: m.get('matview_view_generation') ?? NaN,
        applied: m.get('matview_rebuild_records_applied_total') ?? NaN,
      });
      await sleep(100);
    }
  })();
  await sleep(300);
  const before = samples[samples.length - 1]!;
  const { startedAt: t0, endedAt } = await rebuildCommand(env, timeoutMs);
  const wallMs = endedAt - t0;
  await sleep(300);
  polling = false;
  await poller;
  const started = samples.find(
    (s) => s.at >= t0 && (s.inProgress === 1 || s.generation !== before.generation),
  );
  const swapped = samples.find((s) => s.at >= t0 && s.generation !== before.generation);
  const after = samples[samples.length - 1]!;
  const replayMs = started !== undefined && swapped !== undefined ? swapped.at - started.at : NaN;

  await expectExact(
    ctx,
    server.url,
    reference,
    'exact after `matview rebuild --wait` (every user equal to the reference)',
  );
  const reads = await readsDuringRebuild(ctx, server.url, env, reference, timeoutMs);
  await server.stop();

  const rate = records / (wallMs / 1000);
  ctx.row(
    `\`matview rebuild --wait\` on a served store (mock cluster, big batches, ${compression.label})`,
    {
      records,
      users,
      seconds: round(wallMs / 1000, 1),
      'records/s': round(rate, 0),
      'replay s (metrics)': round(replayMs / 1000, 1),
      'records/s replay': round(records / (replayMs / 1000), 0),
      'rebuild records applied': after.applied - before.applied,
    },
    'rebuild',
  );
  return { rate, reads };
}

/** `matview rebuild --wait` run as an operator runs it, against the server of `env`: when it ran. */
async function rebuildCommand(
  env: Readonly<Record<string, string>>,
  timeoutMs: number,
): Promise<{ startedAt: number; endedAt: number }> {
  const startedAt = performance.now();
  const cli = spawn(
    process.execPath,
    [`${ROOT}/bin/matview.js`, 'rebuild', '--wait', '--timeout-ms', String(timeoutMs)],
    { env: { ...process.env, ...env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  cli.stdout.on('data', (c: Buffer) => (output += c.toString()));
  cli.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const code = await new Promise<number | null>((resolve) => cli.once('exit', resolve));
  const endedAt = performance.now();
  if (code !== 0) throw new Error(`matview rebuild --wait exited with ${String(code)}: ${output}`);
  return { startedAt, endedAt };
}

/** Seconds of reads before the command: the first is left out (the client opens its connections then). */
const IDLE_READ_S = 6;

/** `user(id)` latencies in the seconds before a served rebuild, and while it ran. */
interface ReadsDuringRebuild {
  readonly idle: Distribution;
  readonly during: Distribution;
}

/**
 * `user(id)` at SLA_READ_RATE against a ready `matview serve`, first alone, then while `matview rebuild --wait` runs
 * against it: the server stays ready and serves the old generation until the swap, so a load balancer keeps
 * sending it reads, while the rebuild's feed fetches and decodes the whole history on the event loop that
 * answers them. A second rebuild of the same store, after the timed one (its reads would slow it).
 */
async function readsDuringRebuild(
  ctx: ScenarioContext,
  url: string,
  env: Readonly<Record<string, string>>,
  reference: Reference,
  timeoutMs: number,
): Promise<ReadsDuringRebuild> {
  const requests = zipfIds(reference.users).map(post);
  let reading = true;
  const started = performance.now();
  const load = runOpenLoop(url, requests, { rate: SLA_READ_RATE, until: () => !reading, pacing: 'timer' });
  await sleep((ctx.quick ? 3 : IDLE_READ_S) * 1000);
  const command = await rebuildCommand(env, timeoutMs);
  reading = false;
  const reads = await load;
  const idle = dueBetween(reads, started + 1_000, command.startedAt);
  const during = dueBetween(reads, command.startedAt, command.endedAt);
  for (const [name, window] of [
    ['idle, before the command', idle],
    ['while `matview rebuild --wait` runs (serving the old generation)', during],
  ] as const)
    ctx.row(
      `user(id) ${name}, ${SLA_READ_RATE}/s offered`,
      latencyFields(window),
      'reads during a served rebuild',
    );
  await expectExact(ctx, url, reference, 'exact after a second `matview rebuild --wait` under reads');
  return { idle: idle.d, during: during.d };
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
    const served = ctx.quick ? 50_000 : Number(process.env['BENCH_REBUILD_SERVED_RECORDS'] ?? 446_000);
    const { rate: servedRate, reads } = await servedRebuild(ctx, served);
    ctx.check(
      '`matview rebuild --wait` >= 200k records/s',
      `${round(servedRate, 0)} records/s over ${served} records`,
      servedRate >= 200_000,
    );
    const readsRatio = reads.during.p99 / reads.idle.p99;
    ctx.check(
      'user(id) p99 during a served `matview rebuild` <= 2x its idle p99',
      `${readsRatio.toFixed(2)}x: p99 ${reads.during.p99.toFixed(1)} vs ${reads.idle.p99.toFixed(1)} ms idle; ${reads.during.count} reads during the rebuild`,
      reads.during.count >= 1_000 ? readsRatio <= 2 : null,
    );
    ctx.note(
      `rebuild: \`matview rebuild --wait\` timed from the command's spawn to its exit (it polls every ${REBUILD_WAIT_POLL_MS} ms; the server takes the request up as its file appears, and looks for it every ${REBUILD_REQUEST_CHECK_MS} ms); "replay" is the server's matview_rebuild_in_progress → matview_view_generation change, sampled every 100 ms; the server runs with ${inheritedSettings()}; workload: the catch-up changelog (inserts, edits, moves, tombstones) over ${Math.round(served / 20)} users`,
    );
    if (records < 10_000_000)
      ctx.note(`rebuild: scaled down from 10M to ${records} records (BENCH_REBUILD_RECORDS)`);
    const rate = await replay(ctx, records, users);
    ctx.check('rebuild >= 200k records/s', `${round(rate, 0)} records/s`, rate >= 200_000);
    const live = ctx.quick ? 20_000 : Number(process.env['BENCH_REBUILD_LIVE_RECORDS'] ?? LIVE_RECORDS);
    await liveOnRebuilt(ctx, records, live, users);
    await viewRebuild(ctx, users);
    ctx.note(
      `rebuild: live commits on the rebuilt store: ${live.toLocaleString('en')} more records of the same workload (offsets after the replay's) applied to the store the replay left (before the view rebuild, which then rebuilds over them too), reopened with the writer thread as \`matview serve\` runs, 16 batches of 10,000 in flight and merged by the group commit (MAX_RECORDS_PER_COMMIT); each commit's users are spread over all ${users.toLocaleString('en')}, so nearly every one is another page of the views (which hold the users' counts since UserInformation 2)`,
    );
    ctx.note(
      "rebuild: view rebuild from the stored rows: the replayed store reopened with UserInformation's version bumped, as `matview serve` finds it after a deploy that changed the view; timed over `rebuildStaleViews` (the replay, the writes, the switch, the events for subscribers and the drop of the old builds); rows/s over the stored rows (one per source key)",
    );
    ctx.note(
      `rebuild: measured as a replay of decoded records through materialize + applyBatch into a fresh store's shadow generation, rows first (chunks of REBUILD_CHUNK_RECORDS, default ${DEFAULT_REBUILD_CHUNK_RECORDS.toLocaleString('en')}; "rows s"), then its views built from those rows ("views s"), until it is swapped in, 16 batches of 10,000 in flight (what \`matview rebuild\` does with 16 partitions), without the Kafka fetch and decode (the records are generated on the main thread meanwhile, and that time counts); workload: users first, then 40% tweets, 30% follows, 20% likes, 10% profile edits`,
    );
  },
};
