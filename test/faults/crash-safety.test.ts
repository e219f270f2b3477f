/**
 * Issue 8.1, crash safety (DESIGN.md "Reference points": Kafka's exactly-once system test): a real
 * `matview serve` process consumes the mock cluster while records keep flowing, and is killed with
 * SIGKILL at random points, again and again, on the same DATA_DIR. Afterwards a verifier reads every
 * topic back, recomputes the view with the contract's SQL and diffs it against both the served view and
 * the LMDB store: nothing lost, nothing counted twice, no negative count; the served and stored rankings and
 * totals (issue 16) equal the reference's too.
 *
 * Kill points alternate between
 * - a random instant after spawn (0-6 s): while it loads code, opens LMDB, joins the group or starts
 *   fetching, and
 * - a random instant (0-800 ms) after this incarnation's first commit: it is then working through the
 *   backlog that piled up while it was down, so nearly all of its time is spent inside a batch (decode,
 *   materialize, LMDB write transaction), i.e. the kill lands mid-batch.
 *
 * Every incarnation runs with the shipped defaults, so all of them use the same group id
 * (`matview-<instanceId>`, the id kept in DATA_DIR). matview joins no consumer group (it reads every
 * partition itself), so a restart after a SIGKILL has no dead member's session to wait out.
 *
 * Knobs: FAULT_KILLS (default 20), FAULT_SEED (default: random, printed so a failure can be replayed).
 */
import { describe, expect, it } from 'vitest';
import { spawnChildServer, describeExit, type ChildServer } from '../utils/child-server.js';
import { useKafka } from '../utils/kafka-mock.js';
import { eventually, freshTopics } from '../utils/server.js';
import { tempDir } from '../utils/tmp.js';
import {
  computeReference,
  expectServedDashboardEquals,
  expectServedViewEquals,
  expectStoreEquals,
  feedStatus,
  readTopics,
  waitCaughtUp,
} from './support/reference.js';
import { changeStream, prng, produceContinuously } from './support/workload.js';

const KILLS = Number(process.env['FAULT_KILLS'] ?? 20);
const SEED = Number(process.env['FAULT_SEED'] ?? Math.floor(Math.random() * 1e9));

const kafka = useKafka();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('crash safety', () => {
  it(`should equal the reference after ${KILLS} SIGKILLs at random points while records flow (seed ${SEED})`, async () => {
    console.log(`crash-safety: FAULT_SEED=${SEED} FAULT_KILLS=${KILLS}`);
    const topics = freshTopics();
    const dataDir = tempDir();
    const random = prng(SEED);
    // ~1,000 records/s in chunks of 1,000: the mock answers a fetch with one record batch per partition,
    // so a consumer catches up only as fast as the producer's batches are big. Bounded in count and time.
    const producing = produceContinuously(kafka.brokers, topics, changeStream(SEED, 80), {
      perChunk: 1_000,
      pauseMs: 1_000,
      maxRecords: 300_000,
      maxMs: 240_000,
    });

    const kills: { mode: string; atMs: number; commitsSeen: number }[] = [];
    try {
      for (let i = 0; i < KILLS; i++) {
        const started = Date.now();
        const child: ChildServer = spawnChildServer({ dataDir, brokers: kafka.brokers, topics });
        let commitsSeen = 0;
        if (i % 2 === 0) {
          await Promise.race([sleep(random() * 6_000), child.exited]);
        } else {
          await child.listening;
          const first = BigInt((await feedStatus(child.url())).sequence);
          await eventually(
            async () => (BigInt((await feedStatus(child.url())).sequence) > first ? true : undefined),
            60_000,
            `incarnation ${i} to commit`,
          );
          commitsSeen = 1;
          await sleep(random() * 800);
        }
        expect(
          child.alive(),
          `incarnation ${i} died on its own:\n${JSON.stringify(child.logs().slice(-20))}`,
        ).toBe(true);
        const exit = await child.kill();
        expect(describeExit(exit)).toBe('signal SIGKILL');
        kills.push({
          mode: i % 2 === 0 ? 'after spawn' : 'after first commit',
          atMs: Date.now() - started,
          commitsSeen,
        });
      }
    } finally {
      await producing.stop();
    }
    console.log(`crash-safety: ${kills.length} kills, ${producing.produced()} records produced`, kills);
    expect(producing.produced()).toBeGreaterThan(0);

    const last = spawnChildServer({ dataDir, brokers: kafka.brokers, topics });
    await last.listening;
    await waitCaughtUp(last.url(), kafka.brokers, topics);
    const reference = computeReference(await readTopics(kafka.brokers, topics));
    expect(reference.recordCount).toBeGreaterThanOrEqual(producing.produced());
    await expectServedViewEquals(last.url(), reference);
    await expectServedDashboardEquals(last.url(), reference);
    expect(describeExit(await last.terminate())).toBe('code 0');
    await expectStoreEquals(dataDir, topics, reference);
  }, 290_000);
});
