/**
 * Scenario catchup (issue 17): how fast a fresh instance catches up with history, next to what the Kafka
 * client alone reads from the same topics, in one run.
 *
 * The changelog (bench/lib/changelog.ts: inserts, edits, moves, tombstones) goes to 4 topics × 4 partitions
 * of the mock cluster, produced in big batches (a loaded producer or a CDC connector), then once more, smaller,
 * in one-record batches (the mock then hands out one tiny record batch per partition per fetch, which caps
 * any consumer). For each:
 * - the ceiling: a bare kafkajs consumer group (as matview's feed uses today) and kafkajs' raw fetch path,
 *   each in its own process, reading from the earliest to the end offsets;
 * - a fresh `matview serve` (spawned as users run it, shipped defaults, fetch wait included) timed from the
 *   spawn to ready (`feedStatus.ready`, what `/health/ready` answers), then every user compared with the
 *   reference the bench computed from the records it produced; the scenario fails if one differs. With the
 *   shipped COLD_START_BULK_LOAD=auto, a history of at least a commit (MAX_RECORDS_PER_COMMIT, 250k) is
 *   loaded as a rebuild before the live feed starts (src/wiring/cold-start.ts), as the big batches' 446k
 *   records are (the one-record batches' 100k are caught up commit by commit);
 * - big batches again, as Debezium's Postgres connector writes the same rows with the JsonConverter's schemas
 *   (bench/lib/debezium.ts; gzip-compressed, so that they fit in the mock): the ceilings and one fresh server;
 * - big batches, json and Debezium, again with the decode thread forced on (DECODE_THREAD=true; the default,
 *   `auto`, leaves it off below 4 cores): the same rows, not checked;
 * - big batches only: the store's size after the catch-up (`matview_lmdb_size_bytes` and the data directory
 *   on disk) per record, per source row and per user; and `user(id)` latency at a fixed offered rate on a
 *   second fresh server, while it catches up and then idle, same server. That server catches up commit by
 *   commit (COLD_START_BULK_LOAD=false, READS_WHILE_CATCHING_UP): what a restarted instance with a store does
 *   (a fresh one loading in bulk serves nothing until its load swaps in).
 */
import { availableParallelism } from 'node:os';
import { DECODE_THREAD_AUTO_CORES } from '../../src/ops/config.js';
import { startKafka, type KafkaHandle } from '../../test/utils/kafka-mock.js';
import {
  distribution,
  median,
  round,
  sleep,
  type Distribution,
  type Scenario,
  type ScenarioContext,
} from '../lib/common.js';
import {
  BIG_BATCHES,
  compressionFromEnv,
  produceChangelog,
  SMALL_BATCHES,
  expectExact,
  type Batching,
  type Reference,
} from '../lib/changelog.js';
import { drainRate, type Drained } from '../lib/consumers.js';
import { asDebezium, writeDebeziumSources } from '../lib/debezium.js';
import { dueBetween, latencyFields, runOpenLoop } from '../lib/load.js';
import { freshTopics, type Topics } from '../lib/records.js';
import {
  diskUsage,
  inheritedSettings,
  scrapeMetrics,
  sourceEnv,
  spawnServer,
  warmBundle,
  watchCatchUp,
  type Started,
} from '../lib/served.js';
import { post, SLA_READ_RATE, zipfIds } from './read.js';

/** matview's KAFKA_FETCH_MAX_WAIT_MS default: the bare consumers fetch with the same wait. */
const SHIPPED_FETCH_WAIT_MS = 100;
/**
 * What the reads-while-catching-up servers add to their variant: they catch up commit by commit into the view
 * they serve, as an instance restarted on its store does. With the shipped COLD_START_BULK_LOAD=auto a fresh
 * store facing this history loads it as a rebuild and serves nothing (every user null) until it swaps in.
 */
const READS_WHILE_CATCHING_UP = {
  label: ' (COLD_START_BULK_LOAD=false)',
  env: { COLD_START_BULK_LOAD: 'false' },
};
const CATCH_UP = 'catch-up';

interface Workload {
  readonly label: string;
  readonly batching: Batching;
  readonly brokers: readonly string[];
  readonly topics: Topics;
  readonly reference: Reference;
  /** A sources file naming the topics and their format (SOURCES_FILE), instead of TOPIC_* with `json`. */
  readonly sourcesFile?: string;
}

/** What a server of workload `w` is started with. */
function serverEnv(w: Workload, dataDir: string): Record<string, string> {
  if (w.sourcesFile === undefined) return sourceEnv(w.brokers, w.topics, dataDir);
  return { KAFKA_BROKERS: w.brokers.join(','), DATA_DIR: dataDir, SOURCES_FILE: w.sourcesFile };
}

interface CatchUp extends Started {
  readonly firstCommitAt: number;
  readonly readyAt: number;
  /** Store commits (matview_store_commits_total) when it was ready: how far group commit merged the batches. */
  readonly commits: number;
  /**
   * Seconds spent in those commits (matview_store_commit_seconds' sum; they run one at a time): against the time
   * from the first commit to ready, how long the store had nothing to commit.
   */
  readonly committing: number;
}

const seconds = (fromMs: number, toMs: number) => (toMs - fromMs) / 1000;

interface ProduceOptions {
  readonly tag: string;
  readonly records: number;
  readonly users: number;
  readonly batching: Batching;
  /** The changelog as Debezium writes it (bench/lib/debezium.ts), gzip-compressed. */
  readonly debezium?: boolean;
}

async function produce(ctx: ScenarioContext, kafka: KafkaHandle, options: ProduceOptions): Promise<Workload> {
  const topics = freshTopics(`catchup-${options.tag.split(' ')[0]}`);
  // Debezium's records with the converter's schemas are ~2.4 KB: only gzip-compressed do 446k of them fit in
  // the mock's 5 MB per partition.
  const compression =
    options.debezium === true ? { gzip: true, label: 'gzip-compressed' } : compressionFromEnv();
  const { reference, produceMs, partitions } = await produceChangelog(kafka.brokers, topics, {
    records: options.records,
    users: options.users,
    seed: 17,
    batching: options.batching,
    gzip: compression.gzip,
    ...(options.debezium === true ? { as: (records) => asDebezium(records, topics, true) } : {}),
  });
  ctx.note(
    `catchup, ${options.debezium === true ? 'debezium-json, ' : ''}${options.batching.label}, ${compression.label}: ${options.records} records over ${options.users} users ` +
      `(${reference.keys} source rows) on ${partitions} partitions, produced in ${(produceMs / 1000).toFixed(1)} s`,
  );
  const sourcesFile =
    options.debezium === true ? writeDebeziumSources(`${ctx.tmp}/debezium-sources.json`, topics) : undefined;
  return {
    label: options.tag,
    batching: options.batching,
    brokers: kafka.brokers,
    topics,
    reference,
    ...(sourcesFile === undefined ? {} : { sourcesFile }),
  };
}

interface Ceilings {
  readonly group: Drained;
  readonly fetch: Drained;
}

/** Both bare readers over the workload's topics: the client's own rates. */
async function ceilings(ctx: ScenarioContext, w: Workload): Promise<Ceilings> {
  const topics = Object.values(w.topics);
  const timeoutMs = Math.max(120_000, w.reference.records);
  const group = await drainRate(w.brokers, topics, 'group', SHIPPED_FETCH_WAIT_MS, timeoutMs);
  const fetch = await drainRate(w.brokers, topics, 'fetch', SHIPPED_FETCH_WAIT_MS, timeoutMs);
  for (const [name, d] of [
    ['bare kafkajs consumer group (the ceiling)', group],
    ['kafkajs raw fetch path', fetch],
  ] as const) {
    ctx.row(
      `${w.label}: ${name}`,
      {
        records: d.records,
        'records/s': round(d.recordsPerSecond, 0),
        'records/s from start': round(d.recordsPerSecondFromStart, 0),
        'first batch s': round(d.firstBatchMs / 1000, 2),
      },
      CATCH_UP,
    );
  }
  return { group, fetch };
}

/** A fresh `matview serve` on the workload's topics, until ready (throws if it is not ready in time). */
async function catchUp(
  ctx: ScenarioContext,
  w: Workload,
  dataDir: string,
  during?: (started: Started, isReady: () => boolean) => Promise<void>,
  env: Readonly<Record<string, string>> = {},
): Promise<CatchUp> {
  const started = await spawnServer({ ...serverEnv(w, dataDir), ...env });
  ctx.defer(() => started.server.stop());
  const watch = watchCatchUp(started.server.url, Math.max(300_000, w.reference.records));
  let watching = true;
  const watched = watch.done.finally(() => (watching = false));
  if (during !== undefined) await during(started, () => !watching);
  await watched;
  if (watch.readyAt === undefined || watch.firstCommitAt === undefined)
    throw new Error(`${w.label}: matview serve not ready in time`);
  const metrics = await scrapeMetrics(started.server.url);
  return {
    ...started,
    firstCommitAt: watch.firstCommitAt,
    readyAt: watch.readyAt,
    commits: metrics.get('matview_store_commits_total') ?? NaN,
    committing: metrics.get('matview_store_commit_seconds_sum') ?? NaN,
  };
}

const expectExactAfter = (ctx: ScenarioContext, w: Workload, url: string, when: string) =>
  expectExact(ctx, url, w.reference, `${w.label}: exact after ${when} (every user equal to the reference)`);

/** A workload produced, its ceilings, and one fresh server catching up on it in `dataDir`, checked exact. */
async function singleCatchUp(
  ctx: ScenarioContext,
  kafka: KafkaHandle,
  options: ProduceOptions,
  dataDir: string,
  variants: readonly Variant[] = [],
): Promise<void> {
  const w = await produce(ctx, kafka, options);
  const ceiling = await ceilings(ctx, w);
  for (const v of [DEFAULTS, ...variants]) {
    const run = await catchUp(ctx, w, `${dataDir}${v.dir}`, undefined, v.env);
    catchUpRow(ctx, w, `matview serve${v.label}, spawn → ready`, run, ceiling);
    await expectExactAfter(ctx, w, run.server.url, `catch-up${v.label}`);
    await run.server.stop();
  }
}

/** A setting the scenario also runs a server with, next to the shipped defaults. */
interface Variant {
  readonly label: string;
  readonly dir: string;
  readonly env: Readonly<Record<string, string>>;
}

const DEFAULTS: Variant = { label: '', dir: '', env: {} };

/**
 * The decode thread forced on (src/pipeline/decode-thread.ts): `auto` starts it only with 4 cores or more, so
 * on the 2-core bench box the default rows are without it; these say what it does here.
 */
const DECODE_THREAD_ON: Variant = {
  label: ' (DECODE_THREAD=true)',
  dir: '-decode-thread',
  env: { DECODE_THREAD: 'true' },
};

function catchUpRow(ctx: ScenarioContext, w: Workload, name: string, c: CatchUp, ceiling: Ceilings): number {
  const records = w.reference.records;
  const rate = records / seconds(c.spawnedAt, c.readyAt);
  ctx.row(
    `${w.label}: ${name}`,
    {
      records,
      'records/s': round(rate, 0),
      'x ceiling': round(rate / ceiling.group.recordsPerSecond, 3),
      'x raw fetch': round(rate / ceiling.fetch.recordsPerSecond, 3),
      'listening s': round(seconds(c.spawnedAt, c.listeningAt), 2),
      'first commit s': round(seconds(c.spawnedAt, c.firstCommitAt), 2),
      'ready s': round(seconds(c.spawnedAt, c.readyAt), 2),
      'records/s 1st commit → ready': round(records / seconds(c.firstCommitAt, c.readyAt), 0),
      commits: c.commits,
      'records/commit': round(records / c.commits, 0),
      'committing s': round(c.committing, 2),
    },
    CATCH_UP,
  );
  return rate;
}

/** Store size after the catch-up, from the server's gauge (refreshed every second) and from the disk. */
async function storeSize(ctx: ScenarioContext, w: Workload, c: CatchUp, dataDir: string): Promise<void> {
  await sleep(Math.max(0, c.readyAt + 1_500 - performance.now()));
  const lmdb = (await scrapeMetrics(c.server.url)).get('matview_lmdb_size_bytes') ?? NaN;
  const disk = diskUsage(dataDir);
  const { records, keys, users } = w.reference;
  for (const [name, bytes] of [
    ['LMDB in use (matview_lmdb_size_bytes)', lmdb],
    ['data directory on disk (allocated)', disk.allocated],
  ] as const) {
    ctx.row(
      `${w.label}: store after catch-up, ${name}`,
      {
        MB: round(bytes / 1024 ** 2, 1),
        'bytes/record': round(bytes / records, 0),
        'bytes/source row': round(bytes / keys, 0),
        'bytes/user': round(bytes / users, 0),
      },
      'store size',
    );
  }
}

/** `user(id)` latencies between the first commit and ready, and idle after, on one fresh server. */
interface ReadsWhileCatchingUp {
  readonly during: Distribution;
  readonly idle: Distribution;
}

async function readsWhileCatchingUp(
  ctx: ScenarioContext,
  w: Workload,
  dataDir: string,
  ceiling: Ceilings,
  run: string,
  variant: Variant = DEFAULTS,
): Promise<ReadsWhileCatchingUp> {
  const requests = zipfIds(w.reference.users).map(post);
  let reads: Awaited<ReturnType<typeof runOpenLoop>> | undefined;
  const c = await catchUp(
    ctx,
    w,
    dataDir,
    async (started, isReady) => {
      reads = await runOpenLoop(started.server.url, requests, {
        rate: SLA_READ_RATE,
        until: isReady,
        pacing: 'timer',
      });
    },
    { ...READS_WHILE_CATCHING_UP.env, ...variant.env },
  );
  const label = `${variant.label}${READS_WHILE_CATCHING_UP.label}`;
  // Idle from a second after ready, so nothing the catch-up left running flatters the idle figure.
  await sleep(Math.max(0, c.readyAt + 1_000 - performance.now()));
  const idleSeconds = ctx.quick ? 3 : 10;
  const idle = await runOpenLoop(c.server.url, requests, {
    rate: SLA_READ_RATE,
    total: idleSeconds * SLA_READ_RATE,
    pacing: 'timer',
  });
  await expectExactAfter(ctx, w, c.server.url, `catch-up with reads${label}${run}`);
  await c.server.stop();
  if (reads === undefined) throw new Error('no reads ran');
  catchUpRow(
    ctx,
    w,
    `matview serve${label} with ${SLA_READ_RATE} user(id)/s, spawn → ready${run}`,
    c,
    ceiling,
  );
  // Reads by due time: before the first commit (the server started, joined the group, fetched, applied its
  // first batch), between the first commit and ready (catching up), and idle after.
  const before = dueBetween(reads, c.listeningAt, c.firstCommitAt);
  const during = dueBetween(reads, c.firstCommitAt, c.readyAt);
  const after = { d: distribution(idle.latencies), errors: idle.errors };
  for (const [name, window] of [
    ['user(id) listening → 1st commit', before],
    ['user(id) 1st commit → ready (catching up)', during],
    ['user(id) idle, from 1 s after ready', after],
  ] as const)
    ctx.row(
      `${w.label}${label}: ${name}, ${SLA_READ_RATE}/s offered${run}`,
      latencyFields(window),
      'reads while catching up',
    );
  return { during: during.d, idle: after.d };
}

export const catchup: Scenario = {
  name: 'catchup',
  description:
    'a fresh `matview serve` catching up on 4 topics × 4 partitions vs a bare kafkajs consumer (the ceiling); reads while catching up; store size',
  async run(ctx) {
    const records = ctx.quick ? 60_000 : Number(process.env['BENCH_CATCHUP_RECORDS'] ?? 446_000);
    const users = Number(process.env['BENCH_CATCHUP_USERS'] ?? Math.round(records / 20));
    const smallRecords = ctx.quick ? 10_000 : Number(process.env['BENCH_CATCHUP_SMALL_RECORDS'] ?? 100_000);
    const runs = ctx.quick ? 1 : Math.max(1, Number(process.env['BENCH_CATCHUP_RUNS'] ?? 3));
    /** A run's label suffix (none when there is one run). */
    const runLabel = (i: number): string => (runs === 1 ? '' : `, run ${i} of ${runs}`);
    /** ` (median of n; min-max)` when there are several runs. */
    const spread = (xs: readonly number[], unit: string, digits: number): string =>
      xs.length === 1
        ? ''
        : ` (median of ${xs.length} runs; ${round(Math.min(...xs), digits)}-${round(Math.max(...xs), digits)} ${unit})`;
    warmBundle();
    const kafka = await startKafka();
    ctx.defer(() => kafka.stop());
    ctx.note(
      `catchup: matview serve with ${inheritedSettings()}, set by the bench: KAFKA_BROKERS, DATA_DIR, TOPIC_*, PORT=0, HOST=127.0.0.1, LOG_LEVEL=info (the port is read from the log); bare consumers fetch with the same ${SHIPPED_FETCH_WAIT_MS} ms max wait`,
    );

    const big = await produce(ctx, kafka, { tag: 'big batches', records, users, batching: BIG_BATCHES });
    const bigCeiling = await ceilings(ctx, big);
    // Several fresh servers: one catch-up's rate moves a lot from run to run on this box (the writer thread,
    // the event loop, the mock broker and the bench share 2 cores: 41k to 60k records/s for one build, and
    // p99 while catching up 54 to 254 ms); the checks take the median.
    /** `runs` fresh servers catching up with `v`'s settings, each checked exact: their rates. */
    const coldRuns = async (v: Variant): Promise<number[]> => {
      const rates: number[] = [];
      for (let i = 1; i <= runs; i++) {
        const coldDir = `${ctx.tmp}/big-cold${v.dir}-${i}`;
        const cold = await catchUp(ctx, big, coldDir, undefined, v.env);
        rates.push(
          catchUpRow(ctx, big, `matview serve${v.label}, spawn → ready${runLabel(i)}`, cold, bigCeiling),
        );
        await expectExactAfter(ctx, big, cold.server.url, `catch-up${v.label}${runLabel(i)}`);
        if (i === 1 && v === DEFAULTS) await storeSize(ctx, big, cold, coldDir);
        await cold.server.stop();
      }
      return rates;
    };
    /** `runs` fresh servers with `v`'s settings answering reads while they catch up. */
    const readsRuns = async (v: Variant): Promise<ReadsWhileCatchingUp[]> => {
      const out: ReadsWhileCatchingUp[] = [];
      for (let i = 1; i <= runs; i++)
        out.push(
          await readsWhileCatchingUp(
            ctx,
            big,
            `${ctx.tmp}/big-reads${v.dir}-${i}`,
            bigCeiling,
            runLabel(i),
            v,
          ),
        );
      return out;
    };
    const rates = await coldRuns(DEFAULTS);
    const rate = median(rates);
    ctx.check(
      'catch-up (fresh matview serve, spawn → ready, big batches) >= 100k records/s',
      `${round(rate, 0)} records/s${spread(rates, 'records/s', 0)}, ${(rate / bigCeiling.group.recordsPerSecond).toFixed(3)}x the kafkajs consumer group`,
      rate >= 100_000,
    );
    const reads = await readsRuns(DEFAULTS);
    const ratios = reads.map((r) => r.during.p99 / r.idle.p99);
    const ratio = median(ratios);
    const fewest = Math.min(...reads.map((r) => r.during.count));
    const enough = fewest >= 1_000;
    ctx.check(
      'user(id) p99 while catching up <= 2x its idle p99',
      `${ratio.toFixed(2)}x${spread(ratios, 'x', 2)}; p99 ${reads.map((r) => `${r.during.p99.toFixed(1)} vs ${r.idle.p99.toFixed(1)} ms idle`).join(', ')}; at least ${fewest} reads while catching up`,
      enough ? ratio <= 2 : null,
    );
    if (!enough)
      ctx.note(
        `catchup: only ${fewest} reads fell between the first commit and ready in a run: too few for a p99 (raise BENCH_CATCHUP_RECORDS)`,
      );
    // The decode thread forced on, as many runs (not checked: the checks are the shipped defaults').
    const offLoop = await coldRuns(DECODE_THREAD_ON);
    const offLoopReads = await readsRuns(DECODE_THREAD_ON);
    ctx.note(
      `catchup: with DECODE_THREAD=true (the default \`auto\` starts it with ${DECODE_THREAD_AUTO_CORES} cores or more; this box has ${availableParallelism()}): ` +
        `catch-up ${round(median(offLoop), 0)} records/s${spread(offLoop, 'records/s', 0)} against ${round(rate, 0)}; ` +
        `user(id) p99 while catching up ${offLoopReads.map((r) => r.during.p99.toFixed(1)).join(', ')} ms against ${reads.map((r) => r.during.p99.toFixed(1)).join(', ')}`,
    );

    // The same changelog as Debezium's Postgres connector writes it (JsonConverter with its schemas, Kafka
    // Connect's default): the decoding is the format's, the rest is the same.
    const debezium = {
      tag: 'big batches, debezium-json',
      records,
      users,
      batching: BIG_BATCHES,
      debezium: true,
    };
    await singleCatchUp(ctx, kafka, debezium, `${ctx.tmp}/debezium`, [DECODE_THREAD_ON]);

    const small = {
      tag: 'small batches',
      records: smallRecords,
      users: Math.max(1, Math.round(smallRecords / 20)),
      batching: SMALL_BATCHES,
    };
    await singleCatchUp(ctx, kafka, small, `${ctx.tmp}/small`);
    if (records !== 446_000)
      ctx.note(`catchup: big batches at ${records} records (BENCH_CATCHUP_RECORDS), not 446,000`);
  },
};
