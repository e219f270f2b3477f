/**
 * Scenario 3, freshness: producer → subscriber latency with 1,000 live subscriptions (10 sockets × 100, one
 * watched user each) while records for those users are produced at a fixed rate. Every record is a new
 * tweet of a watched user, so every record changes a watched view. Latency of an event = its arrival at the
 * client − `version.eventTime` (the Kafka timestamp of the newest record it reflects, set by the producer at
 * send). Events conflated by the server count once, with the newest record's time.
 *
 * Rates 1k and 5k records/s, each with small producer batches (a send every ~5 ms, as before issue 17) and
 * big ones (a send every ~50 ms). The floor (issue 17 point 6): in the same run, a bare kafkajs consumer
 * group in its own process reads the same topic with the same fetch wait; its produce → receive latency is
 * what the client and the mock broker cost, and matview's latency minus it is ours.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startKafka } from '../../test/utils/kafka-mock.js';
import { distribution, round, sleep, waitFor, type Scenario } from '../lib/common.js';
import { startLatencyProbe } from '../lib/consumers.js';
import { endOffsets, freshTopics, produceWorkload, quietKafka, startMatviewProcess } from '../lib/records.js';
import {
  inheritedSettings,
  observedBetween,
  scrapeHistograms,
  scrapeCounter,
  sourceEnv,
  waitApplied,
} from '../lib/served.js';
import { LiveSocket, type Arrival } from '../../test/utils/live-socket.js';
import { waitReady } from './fanout.js';

/** The server's and the floor consumer's fetch max wait (the mock does not wake a waiting fetch). */
const FETCH_WAIT_MS = 20;

/** Longest wait, after a phase's last send, for the server to have applied all of it. */
const APPLY_TIMEOUT_MS = 120_000;

/** A send of what is due every `sendEveryMs`: the producer's batching. */
const PHASES = [
  { rate: 1000, batching: 'small batches', sendEveryMs: 5 },
  { rate: 5000, batching: 'small batches', sendEveryMs: 5 },
  { rate: 1000, batching: 'big batches', sendEveryMs: 50 },
  { rate: 5000, batching: 'big batches', sendEveryMs: 50 },
] as const;

/**
 * The server's histograms (docs/metrics.md) that say how much of "ours" is the commit itself, and a batch from
 * its handler's start to its commit's result (decoding, the wait behind other commits, its own).
 */
const HISTOGRAMS = [
  'matview_store_commit_seconds',
  'matview_store_commit_records',
  'matview_batch_apply_seconds',
] as const;

/** The server's count of its Fetch requests, by broker. */
const FETCHES = 'matview_kafka_fetch_requests_total';

const QUERY =
  'subscription Fresh($id: ID!) { userChanged(id: $id) { userId kind user { userId tweetCount version { sequence eventTime appliedAt } } } }';

/** The ISO time fields of an event's `version` the scenario reads. */
const TIME_FIELDS = {
  eventTime: /"eventTime":"([^"]+)"/,
  appliedAt: /"appliedAt":"([^"]+)"/,
} as const;

/** The time (ms since the epoch) of an ISO field of an event's JSON, NaN when it has none. */
function timeOf(data: string, field: keyof typeof TIME_FIELDS): number {
  const m = TIME_FIELDS[field].exec(data);
  return m?.[1] === undefined ? NaN : Date.parse(m[1]);
}

export const freshness: Scenario = {
  name: 'freshness',
  description: 'producer → subscriber latency at 1k and 5k records/s with 1,000 live subscriptions',
  async run(ctx) {
    const sockets = 10;
    const perSocket = 100;
    const watched = sockets * perSocket;
    const seconds = ctx.quick ? 4 : 10;
    const kafka = await startKafka();
    ctx.defer(() => kafka.stop());
    const topics = freshTopics('fresh');
    await produceWorkload(kafka.brokers, topics, 0, watched, watched, 1);
    const server = await startMatviewProcess({
      ...sourceEnv(kafka.brokers, topics, `${ctx.tmp}/data`),
      KAFKA_FETCH_MAX_WAIT_MS: String(FETCH_WAIT_MS),
    });
    ctx.defer(() => server.stop());
    if (!(await waitReady(server.url, 60_000))) throw new Error('server not ready');

    let snapshots = 0;
    let recording = false;
    const arrivals: Arrival[] = [];
    const open: LiveSocket[] = [];
    ctx.defer(() => open.forEach((s) => s.close()));
    for (let i = 0; i < sockets; i++) {
      const s = await LiveSocket.open(server.url, (a) => {
        if (a.data.includes('"SNAPSHOT"')) snapshots++;
        else if (recording) arrivals.push(a);
      });
      open.push(s);
      for (let j = 0; j < perSocket; j++) s.subscribe(QUERY, { id: String(i * perSocket + j) });
    }
    if (!(await waitFor(() => snapshots >= watched, 60_000))) throw new Error(`only ${snapshots} snapshots`);

    const floor = await startLatencyProbe(kafka.brokers, [topics.tweets], 'group', FETCH_WAIT_MS);
    ctx.defer(() => floor.stop());
    const producer = quietKafka(kafka.brokers).producer({ allowAutoTopicCreation: true });
    await producer.connect();
    ctx.defer(() => producer.disconnect());
    let serial = 0;
    for (const { rate, batching, sendEveryMs } of PHASES) {
      arrivals.length = 0;
      await floor.take();
      const before = await scrapeHistograms(server.url, HISTOGRAMS);
      const fetchesBefore = await scrapeCounter(server.url, FETCHES);
      // This process produces and receives the events: how late its own event loop ran is in every arrival.
      const clientDelay = monitorEventLoopDelay({ resolution: 1 });
      clientDelay.enable();
      recording = true;
      const start = performance.now();
      let sent = 0;
      let sendCount = 0;
      let batches = 0;
      const partitions = new Set<number>();
      const sends: Promise<unknown>[] = [];
      // Records of this phase carry Kafka timestamps in [from, to]: only their events count, so a backlog left
      // by a phase the server could not keep up with is not charged to the next one.
      const from = Date.now();
      let to = from;
      while (performance.now() - start < seconds * 1000) {
        const due = Math.floor(((performance.now() - start) / 1000) * rate);
        if (due > sent) {
          const n = Math.min(due - sent, Math.ceil((rate * sendEveryMs * 10) / 1000));
          to = Date.now();
          const now = String(to);
          const messages = Array.from({ length: n }, () => {
            const id = serial++;
            const user = String(id % watched);
            return {
              key: `fresh-${id}`,
              value: JSON.stringify({ tweetId: `fresh-${id}`, userId: user }),
              timestamp: now,
            };
          });
          // One entry per partition written: the record batches this send made.
          sends.push(
            producer.send({ topic: topics.tweets, acks: 1, messages }).then((written) => {
              batches += written.length;
              for (const w of written) partitions.add(w.partition);
            }),
          );
          sent += n;
          sendCount++;
        }
        await sleep(sendEveryMs);
      }
      await Promise.all(sends);
      clientDelay.disable();
      const sentAt = performance.now();
      const fetchesAfter = await scrapeCounter(server.url, FETCHES);
      const sendingSeconds = (sentAt - start) / 1000;
      // Per broker, by node id: only the leaders of the tweets topic's partitions have records to answer with.
      const brokerOf = (labels: string) => Number(/broker="(\d+)"/.exec(labels)?.[1] ?? NaN);
      const fetchRates = [...fetchesAfter]
        .map(
          ([labels, n]) =>
            [brokerOf(labels), (n - (fetchesBefore.get(labels) ?? 0)) / sendingSeconds] as const,
        )
        .sort(([a], [b]) => a - b)
        .map(([, rate]) => round(rate, 0))
        .join(' / ');
      const applied = await waitApplied(
        server.url,
        await endOffsets(kafka.brokers, [topics.tweets]),
        APPLY_TIMEOUT_MS,
      );
      const appliedAfterMs = performance.now() - sentAt;
      if (!applied)
        ctx.note(
          `freshness: at ${rate} records/s, ${batching}, matview had not applied every record ${APPLY_TIMEOUT_MS / 1000} s after the last send: events after that are missing from the row`,
        );
      await sleep(1500);
      recording = false;
      const inPhase = (t: number) => t >= from && t <= to;
      const latencies: number[] = [];
      /** Each event split at its commit's start (`version.appliedAt`): its way there, and on from it. */
      const toCommit: number[] = [];
      const fromCommit: number[] = [];
      for (const a of arrivals) {
        const t = timeOf(a.data, 'eventTime');
        if (!inPhase(t)) continue;
        latencies.push(a.at - t);
        const applied = timeOf(a.data, 'appliedAt');
        toCommit.push(applied - t);
        fromCommit.push(a.at - applied);
      }
      const d = distribution(latencies);
      const there = distribution(toCommit);
      const onward = distribution(fromCommit);
      const after = await scrapeHistograms(server.url, HISTOGRAMS);
      const between = (name: (typeof HISTOGRAMS)[number]) => observedBetween(before[name], after[name]);
      const commits = between('matview_store_commit_seconds');
      const perCommit = between('matview_store_commit_records');
      const applies = between('matview_batch_apply_seconds');
      const received = await floor.take();
      const f = distribution(received.latencies.filter((_, i) => inPhase(received.timestamps[i]!)));
      const achieved = sent / seconds;
      ctx.row(`${rate} records/s, ${batching}`, {
        'records/s sent': round(achieved, 0),
        'records/send': round(sent / Math.max(1, sendCount), 0),
        'batches/s per partition': round(batches / Math.max(1, partitions.size) / sendingSeconds, 0),
        'fetches/s by broker': fetchRates,
        events: d.count,
        'all applied s after': round(appliedAfterMs / 1000, 1),
        'p50 ms': round(d.p50, 1),
        'p95 ms': round(d.p95, 1),
        'p99 ms': round(d.p99, 1),
        'max ms': round(d.max, 1),
        'floor records': f.count,
        'floor p50 ms': round(f.p50, 1),
        'floor p95 ms': round(f.p95, 1),
        'floor p99 ms': round(f.p99, 1),
        'ours p50 ms': round(d.p50 - f.p50, 1),
        'ours p95 ms': round(d.p95 - f.p95, 1),
        'ours p99 ms': round(d.p99 - f.p99, 1),
        'to commit p50 ms': round(there.p50, 1),
        'to commit p99 ms': round(there.p99, 1),
        'commit → client p50 ms': round(onward.p50, 1),
        'commit → client p99 ms': round(onward.p99, 1),
        commits: commits.count,
        'records/commit': round(perCommit.mean, 0),
        'commit mean ms': round(commits.mean * 1000, 1),
        'commit p99 <= ms': round(commits.atMost(0.99) * 1000, 1),
        'batch apply mean ms': round(applies.mean * 1000, 1),
        'batch apply p99 <= ms': round(applies.atMost(0.99) * 1000, 1),
        'client loop delay p99 ms': round(clientDelay.percentile(99) / 1e6, 1),
      });
      if (rate === 5000)
        ctx.check(
          `freshness p99 <= 50 ms at 5k records/s (${batching})`,
          `${d.p99.toFixed(1)} ms (bare kafkajs consumer ${f.p99.toFixed(1)} ms: ours ${(d.p99 - f.p99).toFixed(1)} ms)`,
          d.p99 <= 50,
        );
      await sleep(1000);
    }
    ctx.note(
      `freshness: matview serve with ${inheritedSettings()} (the writer thread is on unless WRITER_THREAD=false) and KAFKA_FETCH_MAX_WAIT_MS=${FETCH_WAIT_MS}; the kcat mock broker does not wake a waiting fetch when records arrive, so the fetch wait bounds the extra wait (a real broker answers at once); Kafka timestamps have 1 ms resolution`,
    );
    ctx.note(
      `freshness: commits = the server's store commits during the phase (matview_store_commit_seconds and _records, scraped before and after): their mean time, and the upper bound of the histogram bucket their p99 falls in; a record waits for its own commit and, when it arrives during one, for the end of that one; batch apply = matview_batch_apply_seconds over the phase (its mean, and its p99's bucket as for the commits), a batch from its handler's start to its commit's result (decoding, the wait behind other commits, its own commit)`,
    );
    ctx.note(
      `freshness: batches/s per partition = the record batches the producer wrote (one per partition a send touched) per partition and second of sending; fetches/s by broker = the server's Fetch requests per second of sending to each broker, in node id order (matview_kafka_fetch_requests_total, scraped before and after the sends; a broker that leads none of the tweets topic's partitions is asked once per fetch wait). The kcat mock answers a fetch with at most one record batch per partition (a real broker with everything waiting, up to the fetch's byte limit), and each broker gets one fetch at a time: the feed keeps up with small batches only while the leaders' fetches/s stay at or above batches/s per partition, and a backlog, once built, drains at the difference`,
    );
    ctx.note(
      `freshness: each event split at its commit's start, \`version.appliedAt\` (the server's clock when its commit began, after LMDB's write lock; ms resolution, like the Kafka timestamp; one host, one clock): to commit = appliedAt − eventTime (the producer's send, the fetch wait, decoding, the wait behind the commit in flight), commit → client = arrival − appliedAt (the commit itself with its sync to disk, its result back on the event loop, the push over graphql-ws, this client's own delay); percentiles of each part, which do not add up to the total's`,
    );
    ctx.note(
      `freshness: floor = a bare kafkajs consumer group (own process, eachBatch, same ${FETCH_WAIT_MS} ms fetch wait) on the same topic during the same phase: receive time − Kafka timestamp of every record; ours = matview's percentile − the floor's (a difference of percentiles, not a percentile of differences; matview's events are conflated per user, the floor counts every record)`,
    );
  },
};
