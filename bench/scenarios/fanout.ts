/**
 * Scenario 4, fan-out: many graphql-ws subscriptions on one instance (a `matview serve` process fed by the
 * kcat mock), all watching one hot user. One change of that user is produced; we time from the producer's
 * send until the first, median and last of the subscriptions received it, repeated a few times. Memory per
 * subscription is the growth of the server's RSS and V8 heap (from /metrics) while the subscriptions opened.
 */
import { readFileSync } from 'node:fs';
import { startKafka } from '../../test/utils/kafka-mock.js';
import { distribution, round, sleep, waitFor, type Scenario } from '../lib/common.js';
import { freshTopics, produceWorkload, quietKafka, rssOf, startMatviewProcess } from '../lib/records.js';
import { LiveSocket, type Arrival } from '../../test/utils/live-socket.js';
import { sourceEnv } from '../lib/served.js';

export const HOT_QUERY =
  'subscription Hot($id: ID!) { userChanged(id: $id) { userId kind user { userId username name tweetCount ' +
  'followingCount followerCount likeCount version { sequence eventTime } } } }';

/** Bytes of the server's V8 heap in use, from its Prometheus metrics. */
export async function heapUsed(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^matview_process_nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
  return m?.[1] === undefined ? NaN : Number(m[1]);
}

export async function waitReady(url: string, timeoutMs: number): Promise<boolean> {
  return waitFor(
    async () => (await fetch(`${url}/health/ready`).catch(() => undefined))?.status === 200,
    timeoutMs,
    100,
  );
}

export const fanout: Scenario = {
  name: 'fanout',
  description: '10,000 graphql-ws subscriptions on one hot user: one change delivered to all, memory each',
  async run(ctx) {
    const sockets = ctx.quick ? 10 : 100;
    const perSocket = 100;
    const total = sockets * perSocket;
    const repeats = ctx.quick ? 3 : 5;
    const users = 1000;
    const hot = '7';

    const kafka = await startKafka();
    ctx.defer(() => kafka.stop());
    const topics = freshTopics('fanout');
    await produceWorkload(kafka.brokers, topics, 0, users, users, 1);
    const server = await startMatviewProcess({
      ...sourceEnv(kafka.brokers, topics, `${ctx.tmp}/data`),
      KAFKA_FETCH_MAX_WAIT_MS: '20',
    });
    ctx.defer(() => server.stop());
    if (!(await waitReady(server.url, 60_000))) throw new Error('server not ready');

    const arrivals: Arrival[] = [];
    let snapshots = 0;
    const onNext = (a: Arrival) => {
      if (a.data.includes('"SNAPSHOT"')) snapshots++;
      else arrivals.push(a);
    };
    await sleep(500);
    const rssBefore = rssOf(server.pid, (p) => readFileSync(p, 'utf8'));
    const heapBefore = await heapUsed(server.url);
    const open: LiveSocket[] = [];
    ctx.defer(() => open.forEach((s) => s.close()));
    const t0 = performance.now();
    for (let i = 0; i < sockets; i++) {
      const s = await LiveSocket.open(server.url, onNext);
      open.push(s);
      for (let j = 0; j < perSocket; j++) s.subscribe(HOT_QUERY, { id: hot });
    }
    const allSnap = await waitFor(() => snapshots >= total, 120_000, 20);
    const subscribeSeconds = (performance.now() - t0) / 1000;
    if (!allSnap) throw new Error(`only ${snapshots} of ${total} snapshots arrived`);
    await sleep(1000);
    const rssAfter = rssOf(server.pid, (p) => readFileSync(p, 'utf8'));
    const heapAfter = await heapUsed(server.url);

    const producer = quietKafka(kafka.brokers).producer({ allowAutoTopicCreation: true });
    await producer.connect();
    ctx.defer(() => producer.disconnect());
    const firsts: number[] = [];
    const medians: number[] = [];
    const lasts: number[] = [];
    let incomplete = 0;
    for (let r = 0; r < repeats; r++) {
      arrivals.length = 0;
      const sentAt = performance.timeOrigin + performance.now();
      await producer.send({
        topic: topics.tweets,
        acks: 1,
        messages: [{ key: `hot-${r}`, value: JSON.stringify({ tweetId: `hot-${r}`, userId: hot }) }],
      });
      const complete = await waitFor(() => arrivals.length >= total, 30_000, 5);
      if (!complete) incomplete++;
      const d = distribution(arrivals.map((a) => a.at - sentAt));
      firsts.push(Math.min(...arrivals.map((a) => a.at - sentAt)));
      medians.push(d.p50);
      lasts.push(d.max);
      ctx.log(
        `change ${r + 1}: ${arrivals.length}/${total} delivered, first ${firsts.at(-1)?.toFixed(1)} ms, last ${d.max.toFixed(1)} ms`,
      );
      await sleep(500);
    }
    const last = distribution(lasts);
    const rssEach = (rssAfter - rssBefore) / total;
    const heapEach = (heapAfter - heapBefore) / total;
    ctx.row(`${total} subscriptions (${sockets} sockets × ${perSocket})`, {
      'subscribe all s': round(subscribeSeconds, 2),
      'first ms (median)': round(distribution(firsts).p50, 1),
      'median ms (median)': round(distribution(medians).p50, 1),
      'all delivered ms (median)': round(last.p50, 1),
      'all delivered ms (worst)': round(last.max, 1),
      'RSS KB/sub': round(rssEach / 1024, 2),
      'heap KB/sub': round(heapEach / 1024, 2),
      changes: repeats,
      incomplete,
    });
    ctx.note(
      'fanout: latency is from the producer send to the arrival at the client (includes the Kafka hop: mock broker, 20 ms max fetch wait); the client is one process with raw sockets',
    );
    ctx.check(
      `hot-user change delivered to all ${total} subscriptions in <= 200 ms`,
      `${last.p50.toFixed(0)} ms median, ${last.max.toFixed(0)} ms worst of ${repeats}`,
      last.max <= 200 && incomplete === 0,
    );
    const each = Math.max(rssEach, heapEach) / 1024;
    ctx.check(
      '<= 20 KB memory per subscription',
      `${(rssEach / 1024).toFixed(1)} KB RSS, ${(heapEach / 1024).toFixed(1)} KB heap`,
      each <= 20,
    );
  },
};
