/**
 * Scenario 2, ingest:
 * - end to end: a mixed workload is produced into the librdkafka mock cluster first; then `startServer`
 *   (the runtime of `matview serve`, in this process) consumes it, and we time until the stored positions
 *   reach the end offsets: fetch, decode, materialize, LMDB commit with offsets, commit listeners.
 * - decoding alone (bench/lib/decode-alone.ts): per format, the event loop's work from a record's bytes to its
 *   packed form;
 * - the materializer alone: the commit body (resolve + every registered view) over in-memory batches of
 *   decoded records, with the state in memory (src/materializer/memory-state.ts): no LMDB, no Kafka.
 */
import { startKafka } from '../../test/utils/kafka-mock.js';
import { commitBatch, commitPlan } from '../../src/materializer/commit.js';
import { MemoryState } from '../../src/materializer/memory-state.js';
import { createRegistry } from '../../src/views/registry.js';
import { loadConfig } from '../../src/ops/config.js';
import { silentLogger } from '../../src/ops/logger.js';
import { startServer } from '../../src/wiring/runtime.js';
import { prng, round, sleep, type Scenario, type ScenarioContext } from '../lib/common.js';
import { changes, endOffsets, freshTopics, produceWorkload } from '../lib/records.js';
import { decodeAlone } from '../lib/decode-alone.js';

async function endToEnd(ctx: ScenarioContext, records: number, users: number): Promise<number> {
  const kafka = await startKafka();
  ctx.defer(() => kafka.stop());
  const topics = freshTopics('ingest');
  const produceMs = await produceWorkload(kafka.brokers, topics, 0, records, users, 11);
  const topicNames = Object.values(topics);
  const ends = await endOffsets(kafka.brokers, topicNames);
  const end = ends.reduce((n, p) => n + p.high, 0n);
  // The mock drops a partition's oldest record batches beyond 5 MB: only what it still holds is read.
  const dropped = ends.reduce((n, p) => n + p.low, 0n);
  ctx.log(`produced ${records} records in ${(produceMs / 1000).toFixed(1)} s (end offsets total ${end})`);
  if (dropped > 0n)
    ctx.note(
      `ingest: the mock cluster kept ${end - dropped} of the ${records} records produced (at most 5 MB per partition): the end-to-end figures count those only`,
    );
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: `${ctx.tmp}/ingest-data`,
    KAFKA_BROKERS: kafka.brokers.join(','),
    TOPIC_USERS: topics.users,
    TOPIC_TWEETS: topics.tweets,
    TOPIC_FOLLOWS: topics.follows,
    TOPIC_LIKES: topics.likes,
    KAFKA_FETCH_MAX_WAIT_MS: '50',
    DEMO: 'false',
    LOG_LEVEL: 'silent',
    // Server settings that trade throughput against read latency, to compare them under the same workload.
    ...Object.fromEntries(
      ['MAX_RECORDS_PER_COMMIT', 'WRITER_THREAD'].flatMap((name) => {
        const value = process.env[name];
        return value === undefined ? [] : [[name, value]];
      }),
    ),
  });
  const t0 = performance.now();
  const running = await startServer(config, silentLogger);
  ctx.defer(() => running.close());
  const started = performance.now();
  const position = () => running.store.positions().reduce((n, p) => n + BigInt(p.next), 0n);
  let firstAt: number | undefined;
  const deadline = t0 + (ctx.quick ? 60_000 : 900_000);
  let at = 0n;
  while (performance.now() < deadline) {
    at = position();
    if (at > 0n && firstAt === undefined) firstAt = performance.now();
    if (at >= end) break;
    await sleep(20);
  }
  const t1 = performance.now();
  const applied = Number(at - dropped);
  const seconds = (t1 - t0) / 1000;
  const rate = applied / seconds;
  const steady = firstAt === undefined ? NaN : applied / ((t1 - firstAt) / 1000);
  if (at < end) ctx.note(`ingest: only ${applied} of ${end - dropped} records applied before the time limit`);
  ctx.row('end to end (kcat mock → LMDB)', {
    records: applied,
    users,
    seconds: round(seconds, 1),
    'records/s': round(rate, 0),
    'records/s after 1st commit': round(steady, 0),
    'startServer ms': round(started - t0, 0),
    'produce records/s': round(records / (produceMs / 1000), 0),
  });
  await running.close();
  await kafka.stop();
  return rate;
}

function materializerAlone(ctx: ScenarioContext, records: number, users: number): number {
  const registry = createRegistry();
  const plan = commitPlan(registry);
  const state = new MemoryState(registry);
  const random = prng(13);
  const BATCH = 5_000;
  // Building the decoded batches is not part of this figure (nor is keeping them all alive: built lazily).
  let ms = 0;
  let seq = 0n;
  for (let from = 0; from < records; from += BATCH) {
    const batch = changes(from, Math.min(records, from + BATCH), users, random);
    const t0 = performance.now();
    commitBatch(state, plan, batch, ++seq, Date.now());
    ms += performance.now() - t0;
  }
  const seconds = ms / 1000;
  const rate = records / seconds;
  ctx.row('materializer alone (in memory)', {
    records,
    users,
    seconds: round(seconds, 2),
    'records/s': round(rate, 0),
    batch: BATCH,
  });
  return rate;
}

export const ingest: Scenario = {
  name: 'ingest',
  description:
    'records/s from Kafka (kcat mock) into LMDB end to end, decoding alone per format, and the materializer alone',
  async run(ctx) {
    const records = ctx.quick ? 100_000 : Number(process.env['BENCH_INGEST_RECORDS'] ?? 2_000_000);
    const users = ctx.quick ? 10_000 : 100_000;
    await decodeAlone(ctx, ctx.quick ? 20_000 : 100_000);
    const alone = materializerAlone(ctx, ctx.quick ? 200_000 : 2_000_000, users);
    ctx.check('materializer alone >= 1M records/s', `${round(alone, 0)} records/s`, alone >= 1_000_000);
    if (records < 2_000_000)
      ctx.note(`ingest: end to end scaled down from 2M to ${records} records (BENCH_INGEST_RECORDS)`);
    const e2e = await endToEnd(ctx, records, users);
    ctx.check('ingest end to end >= 100k records/s', `${round(e2e, 0)} records/s`, e2e >= 100_000);
  },
};
