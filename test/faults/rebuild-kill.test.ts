/**
 * Issue 17, a crash inside a rebuild's chunks (src/store/shadow-chunks.ts): a `matview serve` process
 * rebuilding its view from the feed (`matview rebuild`) is killed with SIGKILL again and again while its
 * shadow generation is being filled, each time after it applied a good part of the records since it
 * started, at a random instant then: while a chunk is applied in memory, or while one is written. Each
 * restart resumes the shadow from its last written chunk (the "rebuild started" line says where), and the
 * last one swaps it in: the served view, rankings, totals and the stored view equal the contract's SQL over
 * every record, nothing lost, nothing counted twice.
 *
 * Chunks of 5,000 records and commits of 5,000 (both shipped at 250k) are the point of the test:
 * a rebuild of 300k records then writes ~60 chunks, so the kills land between and inside them, and what a
 * restart finds stored is at least what the killed incarnation applied minus one chunk and one commit.
 *
 * A rebuild of a large view replays rows first (REBUILD_ROWS_FIRST=auto; 2,000 users against commits of
 * 5,000 records is large): a chunk writes rows and positions, and the shadow's views are built from its rows
 * once it reached the end offsets seen when it (re)started (src/wiring/rebuild.ts,
 * LmdbStore.buildShadowViews), then it goes on with views applied commit by commit until the swap. The first
 * KILLS kills land in the rows' replay: each restart resumes it, rows only ("rebuild started" says
 * `rowsOnly`), its views not rebuilt at the start. One more kill lands while the views are built from the
 * rows (within a few ms of the "building its views" line, logged once the rebuild's consumer stopped, as the
 * build begins): the next start finds them still behind the rows (the switch to the new builds is one
 * transaction) or built.
 * Incarnations alternate between the shipped VIEW_REBUILD_BUFFER_ENTRIES, which the build from 2,000 users'
 * rows never fills, and 3,000 entries, which it fills many times, so that kill also lands between writes.
 *
 * A rebuild of a small view (400 users) applies views commit by commit from the start: a chunk writes rows
 * and positions, the views stay in memory across chunks (written beside a chunk when they fill
 * VIEW_REBUILD_BUFFER_ENTRIES), so a restart after a kill finds them behind the rows and builds them from
 * the rows first (`viewsRebuiltFrom`), then goes on.
 *
 * A cold start is killed the same way: an empty store facing the 300k records loads them as a rebuild before
 * its live feed starts (COLD_START_BULK_LOAD=auto: they are more than a commit of 5,000; src/wiring/
 * cold-start.ts), and every restart finds its store still empty and resumes that load. (The first server of
 * the other two tests does the same before `matview rebuild` asks it for theirs.)
 *
 * Knobs: FAULT_REBUILD_KILLS (default 3), FAULT_SEED (default: random, printed so a failure can be replayed).
 */
import { describe, expect, it } from 'vitest';
import { runCli } from '../cli/run-cli.js';
import { describeExit, spawnChildServer, type ChildServer } from '../utils/child-server.js';
import { useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';
import {
  computeReference,
  expectServedDashboardEquals,
  expectServedViewEquals,
  expectStoreEquals,
  readTopics,
  waitCaughtUp,
} from './support/reference.js';
import { changeStream, prng, produceContinuously } from './support/workload.js';

const KILLS = Number(process.env['FAULT_REBUILD_KILLS'] ?? 3);
const SEED = Number(process.env['FAULT_SEED'] ?? Math.floor(Math.random() * 1e9));
const RECORDS = 300_000;
const CHUNK = 5_000;
/** Applied by an incarnation before it is killed: at least this minus a chunk and a commit is stored. */
const APPLIED_BEFORE_KILL = 30_000;
/**
 * An incarnation is killed once it applied a random count from APPLIED_BEFORE_KILL to this much more, then
 * within KILL_JITTER_MS: a random instant of its chunk cycle (a chunk of 5,000 records takes tens of ms). By
 * count, not by time: the rebuild applies ~200k records/s on the CI box, and a kill up to 400 ms after the
 * threshold let three incarnations store all 300k records before the last kill, whose start then found no
 * replay left to resume.
 */
const KILL_SPREAD = 15_000;
const KILL_JITTER_MS = 50;

const kafka = useKafka();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A counter of the child's Prometheus metrics (0 while absent). */
async function metric(child: ChildServer, name: string): Promise<number> {
  const text = await (await fetch(`${child.url()}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/**
 * The child's `msg` line (the first that `which` takes, if given), once it logged it (its last lines in the
 * error if it does not).
 */
async function logged(
  child: ChildServer,
  msg: string,
  timeoutMs: number,
  which: (line: Record<string, unknown>) => boolean = () => true,
) {
  try {
    return await eventually(
      () => Promise.resolve(child.logs().find((l) => l.msg === msg && which(l))),
      timeoutMs,
      msg,
    );
  } catch (e) {
    throw new Error(`${String(e)}; last lines: ${JSON.stringify(child.logs().slice(-15))}`, { cause: e });
  }
}

/** Where a rebuild (re)started, from its "rebuild started" line. */
interface Start {
  reason: unknown;
  resumed: unknown;
  /** What REBUILD_ROWS_FIRST=auto chose for a new shadow, and the live view's entries it weighed. */
  rowsFirst: unknown;
  viewEntries: unknown;
  rowsOnly: unknown;
  viewsRebuiltFrom: unknown;
  stored: bigint;
  target: bigint;
  killedAfterApplied?: number;
}

const startOf = (started: Record<string, unknown>): Start => ({
  reason: started['reason'],
  resumed: started['resumed'],
  rowsFirst: started['rowsFirst'],
  viewEntries: started['viewEntries'],
  rowsOnly: started['rowsOnly'],
  viewsRebuiltFrom: started['viewsRebuiltFrom'],
  stored: BigInt(String(started['storedRecords'])),
  target: BigInt(String(started['targetRecords'])),
});

const base = { REBUILD_CHUNK_RECORDS: String(CHUNK), MAX_RECORDS_PER_COMMIT: String(CHUNK) };
const envOf = (incarnation: number) =>
  incarnation % 2 === 0 ? base : { ...base, VIEW_REBUILD_BUFFER_ENTRIES: '3000' };

/**
 * RECORDS records over `users` users produced, a server caught up on them, and `matview rebuild` asked of it
 * (`cold`: a server started on an empty store instead, whose cold start loads them as a rebuild:
 * src/wiring/cold-start.ts): then KILLS incarnations killed in the replay, each after it applied
 * APPLIED_BEFORE_KILL to KILL_SPREAD more records of it. The starts of the killed ones, and the incarnation
 * running after the last kill.
 */
async function killInReplay(
  topics: ReturnType<typeof freshTopics>,
  dataDir: string,
  users: number,
  random: () => number,
  cold = false,
): Promise<{ starts: Start[]; child: ChildServer }> {
  const producing = produceContinuously(kafka.brokers, topics, changeStream(SEED, users), {
    perChunk: 5_000,
    pauseMs: 0,
    maxRecords: RECORDS,
    maxMs: 120_000,
  });
  await eventually(
    () => Promise.resolve(producing.produced() >= RECORDS ? true : undefined),
    120_000,
    `${RECORDS} records produced`,
  );
  await producing.stop();

  const first = spawnChildServer({ dataDir, brokers: kafka.brokers, topics, env: envOf(0) });
  await first.listening;
  if (!cold) {
    await waitCaughtUp(first.url(), kafka.brokers, topics);
    const requested = await runCli(['rebuild'], { DATA_DIR: dataDir });
    expect(requested.code).toBe(0);
  }

  const starts: Start[] = [];
  let child = first;
  for (let i = 0; i < KILLS; i++) {
    // The first server's store was empty: its cold start loaded the records as a rebuild of its own
    // (COLD_START_BULK_LOAD=auto, src/wiring/cold-start.ts) before `matview rebuild` asked for this one.
    const start = startOf(
      await logged(child, 'rebuild started', 60_000, (l) => cold || l['reason'] !== 'cold-start'),
    );
    // Counted from this rebuild's start (the first server's cold start counted its records too).
    const before = await metric(child, 'matview_rebuild_records_applied_total');
    const killAt = APPLIED_BEFORE_KILL + Math.floor(random() * KILL_SPREAD);
    let applied = 0;
    await eventually(
      async () => {
        applied = (await metric(child, 'matview_rebuild_records_applied_total')) - before;
        return applied >= killAt ? true : undefined;
      },
      60_000,
      `incarnation ${i} to apply ${killAt} records of the rebuild`,
    );
    await sleep(random() * KILL_JITTER_MS);
    expect(
      child.alive(),
      `incarnation ${i} died on its own:\n${JSON.stringify(child.logs().slice(-20))}`,
    ).toBe(true);
    expect(describeExit(await child.kill())).toBe('signal SIGKILL');
    starts.push({ ...start, killedAfterApplied: applied });
    child = spawnChildServer({ dataDir, brokers: kafka.brokers, topics, env: envOf(i + 1) });
    await child.listening;
  }
  console.log('rebuild-kill: rebuild starts', starts);
  // Every restart resumed the shadow (not a new one).
  expect(starts.map((s) => s.resumed)).toEqual([false, ...Array<boolean>(KILLS - 1).fill(true)]);
  return { starts, child };
}

/**
 * Each start after a kill stood where a written chunk had left the shadow: past what the incarnation before
 * had stored, by at least what it applied less one chunk and one commit, and short of its targets.
 */
function expectResumedFromChunks(starts: readonly Start[]): void {
  for (const [i, s] of starts.entries()) {
    if (i === 0) continue;
    const gained = s.stored - starts[i - 1]!.stored;
    expect(gained).toBeGreaterThanOrEqual(BigInt(APPLIED_BEFORE_KILL - 2 * CHUNK));
    expect(s.stored).toBeLessThan(s.target);
  }
}

/** The rebuilt generation swapped in, and the served view, rankings, totals and stored view exact. */
async function expectSwappedInExact(
  child: ChildServer,
  topics: ReturnType<typeof freshTopics>,
  dataDir: string,
): Promise<void> {
  // Swapped in, by this incarnation or maybe by the one before.
  await eventually(
    async () =>
      (await metric(child, 'matview_view_generation')) > 1 &&
      (await metric(child, 'matview_rebuild_in_progress')) === 0
        ? true
        : undefined,
    120_000,
    'the rebuilt generation to be swapped in',
  );
  await waitCaughtUp(child.url(), kafka.brokers, topics);
  const reference = computeReference(await readTopics(kafka.brokers, topics));
  expect(reference.recordCount).toBeGreaterThanOrEqual(RECORDS);
  await expectServedViewEquals(child.url(), reference);
  await expectServedDashboardEquals(child.url(), reference);
  expect(describeExit(await child.terminate())).toBe('code 0');
  await expectStoreEquals(dataDir, topics, reference);
}

describe('SIGKILL inside a rebuild', () => {
  it(`should resume from the last written chunk after each of ${KILLS} kills in the rows' replay and one in the views' build, and swap in the exact view (seed ${SEED})`, async () => {
    console.log(`rebuild-kill: FAULT_SEED=${SEED} FAULT_REBUILD_KILLS=${KILLS}`);
    const topics = freshTopics();
    const dataDir = tempDir();
    // 2,000 users against commits of 5,000 records: REBUILD_ROWS_FIRST=auto replays rows first.
    const killed = await killInReplay(topics, dataDir, 2_000, prng(SEED));
    const { starts } = killed;
    let child = killed.child;

    // The first start weighed the live view (2,000 users, at least one per 8 records of a commit: 625).
    expect(starts[0]).toMatchObject({ rowsFirst: true });
    expect(starts[0]!.viewEntries).toBeGreaterThanOrEqual(625);
    // Rows only at every start, its views not rebuilt there.
    for (const s of starts) expect(s).toMatchObject({ rowsOnly: true, viewsRebuiltFrom: undefined });
    const resumed = startOf(await logged(child, 'rebuild started', 60_000));
    expect(resumed).toMatchObject({ resumed: true, rowsOnly: true });
    expectResumedFromChunks([...starts, resumed]);

    // The last kill: while the views are built from the rows (within ms of the line that says it begins; a
    // build from these rows takes about a second with 3,000 entries buffered).
    const deadline = Date.now() + 120_000;
    while (!child.logs().some((l) => l.msg === 'rebuild replayed its rows; building its views from them')) {
      expect(Date.now(), 'the rebuild to build its views from its rows').toBeLessThan(deadline);
      await sleep(5);
    }
    expect(describeExit(await child.kill())).toBe('signal SIGKILL');
    const built = child.logs().find((l) => l.msg === 'rebuild built its views from its rows');
    console.log(`rebuild-kill: killed ${built ? 'after' : 'while'} the views were built from the rows`);
    child = spawnChildServer({ dataDir, brokers: kafka.brokers, topics, env: envOf(KILLS + 1) });
    await child.listening;
    if (built === undefined) {
      // Not swapped in (that comes after the line): resumed, with its views built again from every stored
      // row when the kill came before the switch to the new builds (one transaction).
      const last = startOf(await logged(child, 'rebuild started', 60_000));
      expect(last.resumed).toBe(true);
      if (last.rowsOnly === true)
        expect(
          (await logged(child, 'rebuild built its views from its rows', 120_000))['rows'],
        ).toBeGreaterThan(0);
    }
    await expectSwappedInExact(child, topics, dataDir);
  }, 400_000);

  it(`should resume from the last written chunk after each of ${KILLS} kills in a replay applying views commit by commit, its views built from its rows where a start finds them behind, and swap in the exact view (seed ${SEED})`, async () => {
    console.log(`rebuild-kill: FAULT_SEED=${SEED} FAULT_REBUILD_KILLS=${KILLS}`);
    const topics = freshTopics();
    const dataDir = tempDir();
    // 400 users against commits of 5,000 records: REBUILD_ROWS_FIRST=auto applies views commit by commit.
    const { starts, child } = await killInReplay(topics, dataDir, 400, prng(SEED + 1));
    const resumed = startOf(await logged(child, 'rebuild started', 60_000));
    expect(resumed).toMatchObject({ resumed: true, rowsOnly: false });
    // The first start weighed the live view: 400 users at most, fewer than one per 8 records of a commit.
    expect(starts[0]).toMatchObject({ rowsFirst: false });
    expect(starts[0]!.viewEntries).toBeGreaterThan(0);
    expect(starts[0]!.viewEntries).toBeLessThanOrEqual(400);
    for (const s of starts) expect(s.rowsOnly).toBe(false);
    // A chunk stores rows and positions, the shipped VIEW_REBUILD_BUFFER_ENTRIES keeps the views in memory: a
    // restart after such an incarnation finds them behind its rows and builds them from those first. (With
    // 3,000 entries the views are written beside the chunk whenever they fill it, so they may not be behind.)
    for (const [i, s] of [...starts, resumed].entries())
      if (i > 0 && envOf(i - 1) === base) expect(s.viewsRebuiltFrom).toBeGreaterThan(0);
    expectResumedFromChunks([...starts, resumed]);
    await expectSwappedInExact(child, topics, dataDir);
  }, 400_000);

  it(`should resume a cold start's bulk load from the last written chunk after each of ${KILLS} kills, and swap in the exact view (seed ${SEED})`, async () => {
    console.log(`rebuild-kill: FAULT_SEED=${SEED} FAULT_REBUILD_KILLS=${KILLS}`);
    const topics = freshTopics();
    const dataDir = tempDir();
    // An empty store facing 300k records (at least a commit of 5,000: COLD_START_BULK_LOAD=auto loads them as
    // a rebuild, and every restart finds its store still empty, its live feed never started).
    const { starts, child } = await killInReplay(topics, dataDir, 2_000, prng(SEED + 2), true);
    const resumed = startOf(await logged(child, 'rebuild started', 60_000));
    for (const s of [...starts, resumed]) expect(s.reason).toBe('cold-start');
    expect(resumed).toMatchObject({ resumed: true });
    expectResumedFromChunks([...starts, resumed]);
    await expectSwappedInExact(child, topics, dataDir);
  }, 400_000);
});
